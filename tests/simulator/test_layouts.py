"""Loading Wan2.1 folders in both layouts (tiny random-weight stand-ins written to disk)."""

import json
import shutil

import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.simulator.layouts import PROMPT_FILE, STAND_IN_MARKER, detect_layout, load_wan_components
from vega3d.simulator.prompt import load_prompt_embedding
from vega3d.simulator.tiny import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, save_tiny_wan

TINY = dict(num_layers=2, dim=32, text_dim=32, seed=1)


@pytest.fixture(scope="module")
def diffusers_dir(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "diffusers", layout="diffusers", **TINY)


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- diffusers layout


def test_diffusers_layout_loads_frozen_modules(diffusers_dir):
    assert detect_layout(diffusers_dir) == "diffusers"
    c = load_wan_components(diffusers_dir)
    assert c.layout == "diffusers" and c.stand_in and c.identity["stand_in"]
    assert type(c.transformer).__name__ == "WanTransformer3DModel" and type(c.vae).__name__ == "AutoencoderKLWan"
    for m in (c.transformer, c.vae):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert c.latents_mean.shape == c.latents_std.shape == (16,) and c.latents_mean.dtype == torch.float32
    assert c.text_encoder is None and c.tokenizer is None
    # the folder's prompt_embedding.safetensors is found and padded to 512 rows
    saved = load_prompt_embedding(diffusers_dir / PROMPT_FILE, 32)
    assert c.prompt_embedding.shape == (512, 32) and torch.equal(c.prompt_embedding, saved)
    assert c.prompt_embedding[0].abs().sum() > 0 and not c.prompt_embedding[1:].any()


def test_diffusers_latent_stats_come_from_the_vae_config(diffusers_dir, tmp_path):
    c = load_wan_components(diffusers_dir)
    assert torch.allclose(c.latents_mean, torch.tensor(WAN21_LATENTS_MEAN))
    root = _copy(diffusers_dir, tmp_path)
    cfg = json.loads((root / "vae" / "config.json").read_text())
    cfg["latents_mean"] = [float(i) for i in range(16)]
    cfg["latents_std"] = [1.0 + i for i in range(16)]
    (root / "vae" / "config.json").write_text(json.dumps(cfg))
    c2 = load_wan_components(root)
    assert torch.equal(c2.latents_mean, torch.arange(16.0)) and torch.equal(c2.latents_std, torch.arange(16.0) + 1)
    assert not torch.allclose(c2.latents_std, torch.tensor(WAN21_LATENTS_STD))


def test_diffusers_latent_stats_of_wrong_length_are_rejected(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    cfg = json.loads((root / "vae" / "config.json").read_text())
    cfg["latents_std"] = [1.0] * 15
    (root / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Vega3DError, match="latents_std"):
        load_wan_components(root)


def test_identity_hash_is_stable_and_tracks_the_weights(diffusers_dir, tmp_path):
    h = load_wan_components(diffusers_dir).identity["weights_hash"]
    assert h == load_wan_components(_copy(diffusers_dir, tmp_path, "same")).identity["weights_hash"]
    other = save_tiny_wan(tmp_path / "other", layout="diffusers", **{**TINY, "seed": 2})
    assert load_wan_components(other).identity["weights_hash"] != h
    json.dumps(load_wan_components(diffusers_dir).identity)  # serialisable


def test_stand_in_flag_follows_the_marker(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    (root / STAND_IN_MARKER).unlink()
    assert load_wan_components(root).stand_in is False


def test_bfloat16_keeps_diffusers_fp32_modules(diffusers_dir):
    c = load_wan_components(diffusers_dir, dtype="bfloat16")
    assert c.transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert c.transformer.scale_shift_table.dtype == torch.float32  # in _keep_in_fp32_modules
    assert c.prompt_embedding.dtype == torch.float32


def test_bad_dtype(diffusers_dir):
    with pytest.raises(Vega3DError, match="dtype"):
        load_wan_components(diffusers_dir, dtype="int8")


def test_explicit_prompt_embedding_wins_over_the_folder_file(diffusers_dir):
    emb = torch.ones(3, 32)
    c = load_wan_components(diffusers_dir, prompt_embedding=emb)
    assert torch.equal(c.prompt_embedding[:3], emb) and not c.prompt_embedding[3:].any()
    assert c.identity["prompt"]["source"] == "tensor"


def test_prompt_embedding_of_wrong_width_is_rejected(diffusers_dir):
    with pytest.raises(Vega3DError, match="text_dim=32"):
        load_wan_components(diffusers_dir, prompt_embedding=torch.ones(1, 33))


def test_no_prompt_source_is_a_clear_error(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    (root / PROMPT_FILE).unlink()
    with pytest.raises(Vega3DError, match="export-prompt"):
        load_wan_components(root)
    assert load_wan_components(root, require_prompt=False).prompt_embedding is None


# ----------------------------------------------------------------------------- missing / partial folders


def test_missing_folder(tmp_path):
    with pytest.raises(Vega3DError, match="does not exist"):
        load_wan_components(tmp_path / "Wan2.1-T2V-1.3B")


def test_empty_folder_names_both_layouts(tmp_path):
    with pytest.raises(Vega3DError) as err:
        detect_layout(tmp_path)
    msg = str(err.value)
    assert "transformer/config.json" in msg and "Wan2.1_VAE.pth" in msg and "_class_name WanModel" in msg


@pytest.mark.parametrize(
    "remove, missing",
    [
        ("vae", ["vae/config.json", "vae/*.safetensors"]),
        ("transformer/diffusion_pytorch_model.safetensors", ["transformer/*.safetensors"]),
        ("transformer/config.json", ["transformer/config.json"]),
    ],
)
def test_partial_diffusers_folder_lists_what_is_missing(diffusers_dir, tmp_path, remove, missing):
    root = _copy(diffusers_dir, tmp_path)
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(Vega3DError) as err:
        load_wan_components(root)
    msg = str(err.value)
    assert "diffusers-layout" in msg and all(m in msg for m in missing)
