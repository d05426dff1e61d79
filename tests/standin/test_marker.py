"""The one stand-in marker and the one way to ask which inputs of a run are stand-ins."""

from vega3d.standin import MARKER, is_stand_in, notice, stand_in_parts, write_marker


def test_marker_says_what_it_stands_for_and_how_it_was_made(tmp_path):
    write_marker(tmp_path, real="Wan2.1-T2V", writer="tests", recipe={"seed": 3})
    text = (tmp_path / MARKER).read_text()
    assert "NOT Wan2.1-T2V" in text and "random weights" in text and '{"seed": 3}' in text
    trained = tmp_path / "trained"
    trained.mkdir()
    write_marker(trained, real="Wan2.1-T2V", writer="tests", trained=True)
    assert "trained by vega3d" in (trained / MARKER).read_text() and "random" not in (trained / MARKER).read_text()
    assert is_stand_in(tmp_path) and is_stand_in(trained) and not is_stand_in(tmp_path / "missing")


class _Sim:
    stand_in = True


def test_parts_cover_folders_recorded_configs_objects_and_flags(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    fake = tmp_path / "fake"
    fake.mkdir()
    write_marker(fake, real="X", writer="tests")
    nested = {"model": {"path": "p"}, "extractor": {"simulator": {"stand_in": True}}}  # a clip store's config
    parts = stand_in_parts(
        base=fake, other_base=str(real), simulator=nested, plain={"stand_in": False}, attached=_Sim(),
        flag=True, off=False, missing=None, empty="",
    )  # fmt: skip
    assert parts == ["base", "simulator", "attached", "flag"]
    assert notice([], "x") is None
    assert notice(["a", "b"], "Meaningless.") == "NOTE: small STAND-IN(s), not the real model: a; b. Meaningless."


def test_a_real_models_recorded_config_is_not_a_stand_in():
    """Lists of plain values inside a recorded config (a Wan VAE's temperal_downsample) say nothing."""
    real_wan = {"stand_in": False, "vae": {"temperal_downsample": [False, True, True]}, "paths": ["a", "b"]}
    assert stand_in_parts(simulator=real_wan) == []
    assert stand_in_parts(clips=[{"stand_in": False}, {"extractor": {"stand_in": True}}]) == ["clips"]
