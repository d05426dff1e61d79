"""Tiny random-weight stand-ins: determinism, the marker, the built-in default."""

import json

import pytest
import torch
from safetensors.torch import load_file

from vega3d.errors import Vega3DError
from vega3d.standin import MARKER as STAND_IN_MARKER
from vega3d.standin.wan import DEFAULT_MODEL_KWARGS, default_model_dir, save_tiny_wan


def _dit(path):
    return load_file(str(path / "transformer" / "diffusion_pytorch_model.safetensors"))


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = _dit(save_tiny_wan(tmp_path / "a", num_layers=2, seed=3))
    b = _dit(save_tiny_wan(tmp_path / "b", num_layers=2, seed=3))
    c = _dit(save_tiny_wan(tmp_path / "c", num_layers=2, seed=4))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_writing_a_stand_in_leaves_the_global_rng_alone(tmp_path):
    before = torch.get_rng_state()
    save_tiny_wan(tmp_path / "m", num_layers=1)
    assert torch.equal(before, torch.get_rng_state())


def test_marker_says_it_is_a_random_stand_in(tmp_path):
    root = save_tiny_wan(tmp_path / "m", num_layers=1)
    text = (root / STAND_IN_MARKER).read_text()
    assert "NOT Wan2.1" in text and "random weights" in text


def test_architecture_matches_wan21_t2v(tmp_path):
    root = save_tiny_wan(tmp_path / "m", num_layers=3, dim=32)
    cfg = json.loads((root / "transformer" / "config.json").read_text())
    assert cfg["patch_size"] == [1, 2, 2] and cfg["in_channels"] == 16 and cfg["out_channels"] == 16
    assert cfg["num_layers"] == 3 and cfg["qk_norm"] == "rms_norm_across_heads" and cfg["cross_attn_norm"] is True
    vae = json.loads((root / "vae" / "config.json").read_text())
    assert vae["z_dim"] == 16 and vae["dim_mult"] == [1, 2, 4, 4] and vae["temperal_downsample"] == [False, True, True]


def test_heads_must_split_the_width(tmp_path):
    with pytest.raises(Vega3DError, match="heads of even size"):
        save_tiny_wan(tmp_path / "m", num_layers=1, dim=30, num_heads=4)


def test_default_model_dir_is_built_once_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "vega3d"))
    root = default_model_dir()
    assert root.parent == tmp_path / "vega3d" and (root / STAND_IN_MARKER).is_file()
    assert (
        json.loads((root / "transformer" / "config.json").read_text())["num_layers"]
        == DEFAULT_MODEL_KWARGS["num_layers"]
        == 30
    )
    stamp = (root / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert default_model_dir() == root
    assert (root / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "vega3d").iterdir()] == [root.name]  # no temp folders left behind


def test_default_model_dir_refuses_a_foreign_folder_in_its_place(tmp_path, monkeypatch):
    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "vega3d"))
    root = default_model_dir()
    (root / STAND_IN_MARKER).unlink()
    with pytest.raises(Vega3DError, match="not a complete vega3d stand-in"):
        default_model_dir()
    assert [p.name for p in (tmp_path / "vega3d").iterdir()] == [root.name]


def test_default_model_dir_tolerates_losing_the_race(tmp_path, monkeypatch):
    """If another process finishes first, its folder is used and ours is discarded."""
    import vega3d.standin.wan as tiny

    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "vega3d"))
    real_save = tiny.save_tiny_wan

    def racing_save(path, **kw):
        real_save(tmp_path / "vega3d" / f"tiny-wan2.1-standin-v{tiny.DEFAULT_MODEL_VERSION}", **kw)  # the winner
        return real_save(path, **kw)

    monkeypatch.setattr(tiny, "save_tiny_wan", racing_save)
    root = tiny.default_model_dir()
    assert (root / STAND_IN_MARKER).is_file() and [p.name for p in (tmp_path / "vega3d").iterdir()] == [root.name]
