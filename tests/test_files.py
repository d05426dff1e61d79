import pytest

from vega3d import Vega3DError
from vega3d.files import read_json


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


def test_write_json_is_atomic_nan_safe_and_reads_back(tmp_path, monkeypatch):
    import json
    import os

    from vega3d.files import write_json

    path = write_json(tmp_path / "sub" / "r.json", {"a": float("nan"), "b": (1, 2.5)})
    assert path.read_text().endswith("\n") and json.loads(path.read_text()) == {"a": None, "b": [1, 2.5]}
    # a crash between writing the temporary file and the rename leaves the old content
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": None, "b": [1, 2.5]}


def test_fingerprint_definition_and_what_it_sees(tmp_path):
    """The documented definition, computed by hand with hashlib: relative path, NUL, size, NUL,
    first and last MiB (the whole file when <= 2 MiB)."""
    import hashlib

    from vega3d.files import file_sha256, fingerprint

    small, big = tmp_path / "a.bin", tmp_path / "w" / "b.bin"
    big.parent.mkdir()
    small.write_bytes(b"abc")
    data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB
    big.write_bytes(data)
    mib = 1 << 20
    h = hashlib.sha256()
    h.update(b"a.bin\x003\x00abc")
    h.update(b"w/b.bin\x00" + str(len(data)).encode() + b"\x00" + data[:mib] + data[-mib:])
    assert fingerprint(tmp_path, [small, big]) == h.hexdigest()
    assert file_sha256(big) == hashlib.sha256(data).hexdigest()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1  # mid-file: only the full hash sees it
    big.write_bytes(bytes(flipped))
    assert fingerprint(tmp_path, [small, big]) == h.hexdigest() and file_sha256(big) != hashlib.sha256(data).hexdigest()


def test_read_weight_map_checks_the_index_and_its_shards(tmp_path):
    import json

    from vega3d.files import read_weight_map

    index = tmp_path / "model.safetensors.index.json"
    (tmp_path / "a.safetensors").write_bytes(b"")
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"w1": "a.safetensors", "w2": "b.safetensors"}}))
    with pytest.raises(Vega3DError, match=r"names shard\(s\) \['b\.safetensors'\] \(for 1 tensors, e\.g\. w2\)"):
        read_weight_map(index)
    (tmp_path / "b.safetensors").write_bytes(b"")
    assert read_weight_map(index) == {"w1": "a.safetensors", "w2": "b.safetensors"}
    for bad, message in [
        ({"weight_map": {}}, "weight_map: dictionary should have at least 1 item"),
        ([], "expected a mapping"),
    ]:
        index.write_text(json.dumps(bad))
        with pytest.raises(Vega3DError, match=message):
            read_weight_map(index)
