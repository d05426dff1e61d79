"""Loading Wan2.1 folders in both layouts (tiny random-weight stand-ins written to disk)."""

import json
import shutil

import pytest
import torch

from tests.original_layout import (
    save_tiny_wan_original,
    to_original_t5_keys,
    to_original_transformer_keys,
    to_original_vae_keys,
)
from vega3d.errors import Vega3DError
from vega3d.simulator.convert import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
from vega3d.simulator.layouts import detect_layout, load_wan_components
from vega3d.simulator.prompt import PROMPT_FILE, load_prompt_embedding
from vega3d.standin import MARKER
from vega3d.standin.wan import save_tiny_wan

TINY = dict(num_layers=2, dim=32, text_dim=32, seed=1)


@pytest.fixture(scope="module")
def diffusers_dir(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "diffusers", **TINY)


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
    other = save_tiny_wan(tmp_path / "other", **{**TINY, "seed": 2})
    assert load_wan_components(other).identity["weights_hash"] != h
    json.dumps(load_wan_components(diffusers_dir).identity)  # serialisable


def test_stand_in_flag_follows_the_marker(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    (root / MARKER).unlink()
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
    with pytest.raises(Vega3DError) as err:
        load_wan_components(root)
    # worded for both: the CLI flag and the Python argument
    msg = str(err.value)
    assert "vega3d export-prompt" in msg and "vega3d extract --prompt-embedding FILE" in msg
    assert "prompt_embedding= a tensor or that file" in msg
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
    assert "is not a complete Wan2.1 checkpoint folder (it looks like the diffusers layout)" in msg
    assert all(m in msg for m in missing)


# ----------------------------------------------------------------------------- original release layout


@pytest.fixture(scope="module")
def original_dir(tmp_path_factory):
    return save_tiny_wan_original(tmp_path_factory.mktemp("wan") / "original", **TINY)


def _video(seed=0, frames=1, size=32):
    return torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@torch.no_grad()
def _dit_out(transformer, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = transformer.patch_embedding.weight.dtype
    x = torch.randn(1, 16, 1, 8, 8, generator=g).to(dtype)
    ctx = torch.randn(1, 512, transformer.config.text_dim, generator=g).to(dtype)
    return transformer(x, torch.tensor([299]), ctx, return_dict=False)[0]


def test_original_layout_files_are_the_release_names(original_dir):
    names = {p.name for p in original_dir.iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth"} <= names
    cfg = json.loads((original_dir / "config.json").read_text())
    assert cfg["_class_name"] == "WanModel" and cfg["model_type"] == "t2v" and cfg["text_len"] == 512
    assert "text_dim" not in cfg and "patch_size" not in cfg  # as in the released config: read off the weights
    from safetensors import safe_open

    with safe_open(str(original_dir / "diffusion_pytorch_model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert {
        "head.modulation",
        "blocks.0.self_attn.q.weight",
        "blocks.0.norm3.weight",
        "text_embedding.0.weight",
    } <= keys
    vae = torch.load(original_dir / "Wan2.1_VAE.pth", weights_only=True)
    assert {"encoder.conv1.weight", "decoder.middle.1.to_qkv.weight", "decoder.upsamples.3.resample.1.weight"} <= set(
        vae
    )


def test_original_layout_gives_the_same_models_as_the_diffusers_layout(diffusers_dir, original_dir):
    """Same random weights saved both ways: the converter path must reproduce the diffusers models."""
    assert detect_layout(original_dir) == "original"
    d, o = load_wan_components(diffusers_dir), load_wan_components(original_dir)
    assert o.layout == "original" and o.stand_in and o.text_len == 512
    assert dict(o.transformer.config)["text_dim"] == 32 and list(o.transformer.config.patch_size) == [1, 2, 2]
    for name in ("num_attention_heads", "attention_head_dim", "ffn_dim", "num_layers", "qk_norm", "cross_attn_norm"):
        assert o.transformer.config[name] == d.transformer.config[name], name
    assert torch.equal(_dit_out(o.transformer), _dit_out(d.transformer))
    with torch.no_grad():
        video = _video(frames=5)
        assert torch.equal(o.vae.encode(video).latent_dist.mode(), d.vae.encode(video).latent_dist.mode())
    for m in (o.transformer, o.vae):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert o.identity["configs"]["original"]["_class_name"] == "WanModel"


def test_original_latent_stats_are_wan21_published_constants(original_dir):
    o = load_wan_components(original_dir)
    assert torch.equal(o.latents_mean, torch.tensor(WAN21_LATENTS_MEAN, dtype=torch.float32))
    assert torch.equal(o.latents_std, torch.tensor(WAN21_LATENTS_STD, dtype=torch.float32))


def test_sharded_original_layout(tmp_path, diffusers_dir):
    root = save_tiny_wan_original(tmp_path / "sharded", shards=2, **TINY)
    shards = sorted(p.name for p in root.glob("diffusion_pytorch_model-*.safetensors"))
    assert shards == [
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
    ]
    assert not (root / "diffusion_pytorch_model.safetensors").exists()
    o = load_wan_components(root)
    assert torch.equal(_dit_out(o.transformer), _dit_out(load_wan_components(diffusers_dir).transformer))


def test_partial_shards_are_named(tmp_path):
    root = save_tiny_wan_original(tmp_path / "sharded", shards=2, **TINY)
    (root / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    with pytest.raises(Vega3DError, match="diffusion_pytorch_model-00002-of-00002.safetensors"):
        load_wan_components(root)


def test_vae_topology_is_inferred_at_a_non_default_width(tmp_path):
    root = save_tiny_wan_original(tmp_path / "wide", vae_base_dim=12, **TINY)
    ref = save_tiny_wan(tmp_path / "wide_d", vae_base_dim=12, **TINY)
    o, d = load_wan_components(root), load_wan_components(ref)
    assert o.vae.config.base_dim == 12 and o.vae.config.z_dim == 16
    assert list(o.vae.config.temperal_downsample) == [False, True, True]
    with torch.no_grad():
        video = _video(seed=1, frames=1)
        assert torch.equal(o.vae.encode(video).latent_dist.mode(), d.vae.encode(video).latent_dist.mode())


@pytest.mark.parametrize(
    "remove, missing",
    [
        ("Wan2.1_VAE.pth", "Wan2.1_VAE.pth"),
        ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model*.safetensors"),
        ("config.json", "config.json"),
    ],
)
def test_partial_original_folder_lists_what_is_missing(original_dir, tmp_path, remove, missing):
    root = _copy(original_dir, tmp_path)
    (root / remove).unlink()
    with pytest.raises(Vega3DError) as err:
        load_wan_components(root)
    assert "original-release" in str(err.value) and missing in str(err.value)


def test_original_folder_missing_two_files_names_both(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path, "Wan2.1-T2V-1.3B")
    (root / "Wan2.1_VAE.pth").unlink()
    (root / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(Vega3DError) as err:
        load_wan_components(root)
    msg = str(err.value)
    assert (
        "Wan2.1-T2V-1.3B is not a complete Wan2.1 checkpoint folder (it looks like the original-release layout)" in msg
    )
    assert "Wan2.1_VAE.pth" in msg and "diffusion_pytorch_model*.safetensors" in msg


def test_config_that_is_not_wan_model(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    cfg = json.loads((root / "config.json").read_text())
    cfg["_class_name"] = "UNet2DModel"
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Vega3DError, match="WanModel"):
        load_wan_components(root)


def test_config_missing_a_field(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    cfg = json.loads((root / "config.json").read_text())
    del cfg["num_heads"]
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Vega3DError, match="num_heads"):
        load_wan_components(root)


def _edit_dit(root, edit):
    from safetensors.torch import load_file, save_file

    f = root / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(f))
    edit(sd)
    save_file(sd, str(f))


def test_dit_with_a_missing_key(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    _edit_dit(root, lambda sd: sd.pop("blocks.1.ffn.2.weight"))
    with pytest.raises(Vega3DError, match=r"missing key.*blocks\.1\.ffn\.net\.2\.weight"):
        load_wan_components(root)


def test_dit_with_an_unexpected_key(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    _edit_dit(root, lambda sd: sd.__setitem__("blocks.0.extra.weight", torch.zeros(2)))
    with pytest.raises(Vega3DError, match=r"unexpected key.*blocks\.0\.extra\.weight"):
        load_wan_components(root)


def test_dit_with_more_blocks_than_the_config_says(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    cfg = json.loads((root / "config.json").read_text())
    cfg["num_layers"] = 1
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Vega3DError, match=r"unexpected key.*blocks\.1\."):
        load_wan_components(root)


def test_dit_with_a_wrong_shape(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    _edit_dit(root, lambda sd: sd.__setitem__("blocks.0.ffn.0.bias", torch.zeros(7)))
    with pytest.raises(Vega3DError, match="shapes"):
        load_wan_components(root)


def test_vae_with_a_missing_key(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    sd = torch.load(root / "Wan2.1_VAE.pth", weights_only=True)
    sd.pop("decoder.upsamples.4.shortcut.weight")
    torch.save(sd, root / "Wan2.1_VAE.pth")
    with pytest.raises(Vega3DError, match=r"Wan2\.1_VAE\.pth.*missing key.*up_blocks\.1\.resnets\.0\.conv_shortcut"):
        load_wan_components(root)


def test_vae_that_is_not_a_wan_vae(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    torch.save({"weight": torch.zeros(3)}, root / "Wan2.1_VAE.pth")
    with pytest.raises(Vega3DError, match="encoder.conv1.weight"):
        load_wan_components(root)


def test_vae_pth_that_is_not_a_state_dict(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    (root / "Wan2.1_VAE.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Vega3DError, match="weights-only"):
        load_wan_components(root)


def test_sharded_diffusers_transformer_loads_and_partial_shards_are_named(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    ref = load_wan_components(diffusers_dir).transformer
    shutil.rmtree(root / "transformer")
    ref.save_pretrained(root / "transformer", max_shard_size="40KB")
    shards = sorted((root / "transformer").glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) >= 2
    assert torch.equal(_dit_out(load_wan_components(root).transformer), _dit_out(ref))
    shards[-1].unlink()
    with pytest.raises(Vega3DError, match=f"transformer/{shards[-1].name}"):
        load_wan_components(root)


# ----------------------------------------------------------------------------- real-size configs (meta tensors, no memory)

# Wan2.1-T2V-1.3B's released config.json and its diffusers export's transformer config.
WAN13B_ORIGINAL_CONFIG = {
    "_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": 1536, "eps": 1e-06, "ffn_dim": 8960,
    "freq_dim": 256, "in_dim": 16, "model_type": "t2v", "num_heads": 12, "num_layers": 30, "out_dim": 16, "text_len": 512,
}  # fmt: skip
WAN13B_DIFFUSERS_TRANSFORMER = {
    "added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06, "ffn_dim": 8960,
    "freq_dim": 256, "image_dim": None, "in_channels": 16, "num_attention_heads": 12, "num_layers": 30,
    "out_channels": 16, "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024,
    "text_dim": 4096,
}  # fmt: skip


def _meta_state_dict(model):
    return {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict().items()}


def test_real_13b_config_maps_onto_the_diffusers_export_config(tmp_path):
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from vega3d.simulator.convert import transformer_config_from_original

    with init_empty_weights():
        real = WanTransformer3DModel.from_config(WAN13B_DIFFUSERS_TRANSFORMER)
    original_sd = to_original_transformer_keys(_meta_state_dict(real))
    assert original_sd["text_embedding.0.weight"].shape == (1536, 4096)
    cfg = transformer_config_from_original(WAN13B_ORIGINAL_CONFIG, original_sd, tmp_path / "config.json")
    assert {k: cfg[k] for k in WAN13B_DIFFUSERS_TRANSFORMER} == WAN13B_DIFFUSERS_TRANSFORMER
    assert set(convert_wan_transformer_to_diffusers(dict(original_sd))) == set(real.state_dict())


def test_real_wan21_vae_topology_is_inferred_from_its_weights(tmp_path):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan

    from vega3d.simulator.convert import vae_config_from_original

    with init_empty_weights():
        real = AutoencoderKLWan()  # diffusers' defaults are Wan2.1's VAE (base 96, z 16)
    cfg = vae_config_from_original(to_original_vae_keys(_meta_state_dict(real)), tmp_path / "Wan2.1_VAE.pth")
    assert (cfg["base_dim"], cfg["z_dim"], cfg["temperal_downsample"]) == (96, 16, [False, True, True])


def test_real_umt5_xxl_config_is_inferred_from_its_weights(tmp_path):
    from accelerate import init_empty_weights
    from transformers import UMT5Config, UMT5EncoderModel

    from vega3d.simulator.convert import t5_config_from_original

    xxl = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               relative_attention_num_buckets=32)  # fmt: skip
    with init_empty_weights():
        real = UMT5EncoderModel(UMT5Config(**xxl, feed_forward_proj="gated-gelu"))
    cfg = t5_config_from_original(to_original_t5_keys(_meta_state_dict(real)), tmp_path / "t5.pth")
    assert {k: cfg[k] for k in xxl} == xxl and cfg["feed_forward_proj"] == "gated-gelu"


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_bad_prompt_embedding_fails_before_the_weights_are_read(diffusers_dir, original_dir, tmp_path, layout):
    root = _copy(diffusers_dir if layout == "diffusers" else original_dir, tmp_path)
    vae = root / ("vae/diffusion_pytorch_model.safetensors" if layout == "diffusers" else "Wan2.1_VAE.pth")
    vae.write_bytes(b"corrupt")  # would fail loudly if it were read
    with pytest.raises(Vega3DError, match="text_dim=32"):
        load_wan_components(root, prompt_embedding=torch.ones(1, 64))


def test_diffusers_weights_with_missing_or_unexpected_keys(diffusers_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    root = _copy(diffusers_dir, tmp_path)
    f = root / "transformer" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(f))
    sd.pop("blocks.1.ffn.net.2.weight")
    sd["blocks.0.extra.weight"] = torch.zeros(2)
    save_file(sd, str(f))
    with pytest.raises(
        Vega3DError, match=r"missing keys.*blocks\.1\.ffn\.net\.2\.weight.*unexpected keys.*blocks\.0\.extra"
    ):
        load_wan_components(root)


def test_corrupt_diffusers_weights_name_the_folder(diffusers_dir, tmp_path):
    root = _copy(diffusers_dir, tmp_path)
    (root / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(Vega3DError, match=r"vae: diffusers could not load AutoencoderKLWan"):
        load_wan_components(root)


def test_corrupt_original_dit_names_the_file(original_dir, tmp_path):
    root = _copy(original_dir, tmp_path)
    (root / "diffusion_pytorch_model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(Vega3DError, match=r"diffusion_pytorch_model\.safetensors: not a readable safetensors file"):
        load_wan_components(root)


@pytest.mark.parametrize(
    "edit, match",
    [
        ({"model_type": "i2v"}, "model_type"),
        ({"num_heads": 3}, "not divisible"),
        ({"text_dim": 4096}, "text_dim=4096 but the weights have text_dim=32"),
        # WanModelConfig: one line naming config.json, the field and the value; every mismatch with the weights
        ({"num_heads": "12"}, r"config\.json: num_heads: input should be a valid integer, got '12'"),
        ({"num_layers": 0}, r"config\.json: num_layers: input should be greater than or equal to 1, got 0"),
        ({"_class_name": "UNet2DModel"}, r"config\.json: _class_name: input should be 'WanModel', got 'UNet2DModel'"),
        ({"num_heads": 5, "text_dim": 4096}, r"not divisible by num_heads=5; text_dim=4096 but the weights"),
    ],
)
def test_original_config_values_that_cannot_be_mapped(original_dir, tmp_path, edit, match):
    root = _copy(original_dir, tmp_path)
    cfg = json.loads((root / "config.json").read_text())
    cfg.update(edit)
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Vega3DError, match=match):
        load_wan_components(root)


def test_bfloat16_dtypes_agree_between_layouts(diffusers_dir, original_dir):
    d = load_wan_components(diffusers_dir, dtype=torch.bfloat16)
    o = load_wan_components(original_dir, dtype=torch.bfloat16)
    for a, b in ((d.transformer, o.transformer), (d.vae, o.vae)):
        assert {n: p.dtype for n, p in a.named_parameters()} == {n: p.dtype for n, p in b.named_parameters()}
    assert torch.equal(_dit_out(d.transformer), _dit_out(o.transformer))
