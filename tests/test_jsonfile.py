import pytest

from vega3d import Vega3DError
from vega3d.jsonfile import read_json


def test_read_json_names_the_file_and_what_it_is(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"k": [1, 2]}')
    assert read_json(good, "thing") == {"k": [1, 2]}
    with pytest.raises(Vega3DError, match=r"thing: .*missing\.json does not exist"):
        read_json(tmp_path / "missing.json", "thing")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(Vega3DError, match=r"thing: .*bad\.json is not valid JSON"):
        read_json(bad, "thing")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(Vega3DError, match="not valid JSON"):
        read_json(binary, "thing")
