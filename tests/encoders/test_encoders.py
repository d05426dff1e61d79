import json

import pytest
import torch

from vega3d.encoders import ENCODERS, build_encoder
from vega3d.errors import Vega3DError

FRAMES = torch.rand(3, 3, 96, 128, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Tiny random-weight SigLIP / DINOv2 / DINOv2-with-registers / CLIP-vision / DINOv3 folders
    saved by transformers, with their (slow) image processors' preprocessor_config.json."""
    from transformers import (
        BitImageProcessor,
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        DINOv3ViTConfig,
        DINOv3ViTModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )

    root = tmp_path_factory.mktemp("hf")
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        SiglipModel(
            SiglipConfig(
                vision_config=dict(**small, image_size=64, patch_size=16), text_config=dict(**small, vocab_size=100)
            )
        ).save_pretrained(root / "siglip")
        Dinov2Model(Dinov2Config(**small, image_size=56, patch_size=14)).save_pretrained(root / "dinov2")
        Dinov2WithRegistersModel(
            Dinov2WithRegistersConfig(**small, image_size=56, patch_size=14, num_register_tokens=4)
        ).save_pretrained(root / "dinov2_reg")
        CLIPVisionModel(CLIPVisionConfig(**small, image_size=64, patch_size=16)).save_pretrained(root / "clip")
        DINOv3ViTModel(DINOv3ViTConfig(**small, image_size=64, patch_size=16, num_register_tokens=4)).save_pretrained(
            root / "dinov3"
        )
    SiglipImageProcessor(size={"height": 64, "width": 64}).save_pretrained(root / "siglip")
    BitImageProcessor(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(
        root / "dinov2"
    )
    BitImageProcessor(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(
        root / "dinov2_reg"
    )
    CLIPImageProcessor().save_pretrained(root / "clip")
    (root / "dinov3" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    )
    return root


def test_pixels_is_patch_mean_colour():
    enc = build_encoder("pixels", stride=16)
    f = enc(FRAMES)
    assert f.shape == (3, 6, 8, 3) and f.dtype == torch.float32
    expect = FRAMES[1, :, 16:32, 32:48].mean(dim=(1, 2)) - 0.5  # cell (1, 2)
    torch.testing.assert_close(f[1, 1, 2], expect)
    assert json.dumps(enc.config) and enc.name == "pixels"


def test_position_is_frame_independent_and_isotropic():
    enc = build_encoder("position", stride=8)
    f = enc(FRAMES)
    assert f.shape == (3, 12, 16, 2 * 8 * 8)
    assert torch.equal(f[0], f[2])  # position only: frame content is ignored
    g = torch.nn.functional.normalize(f[0], dim=-1)
    right = (g[4, 4] * g[4, 7]).sum()  # 3 cells (24 px) to the right
    down = (g[4, 4] * g[7, 4]).sum()  # 3 cells (24 px) down
    near = (g[4, 4] * g[4, 5]).sum()
    assert abs(float(right - down)) < 0.1 and near > right
    assert build_encoder("position", grid=(5, 7))(FRAMES).shape[1:3] == (5, 7)


def test_random_vit_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_encoder("random_vit", seed=3, image_size=64, hidden_size=48, num_layers=2)
    assert torch.equal(torch.get_rng_state(), state)
    b = build_encoder("random_vit", seed=3, image_size=64, hidden_size=48, num_layers=2)
    c = build_encoder("random_vit", seed=4, image_size=64, hidden_size=48, num_layers=2)
    fa = a(FRAMES)
    assert fa.shape == (3, 4, 4, 48)
    assert torch.equal(fa, b(FRAMES)) and not torch.allclose(fa, c(FRAMES))
    assert torch.equal(a(FRAMES[:1]), fa[:1])  # batching does not matter
    # it is the floor of a learned architecture, never described as the probe's chance floor
    assert "not the probe's chance floor" in a.config["weights"] and "0.5" in a.config["weights"]


@pytest.mark.parametrize(
    "folder,prefix,grid", [("siglip", 0, 4), ("dinov2", 1, 4), ("dinov2_reg", 5, 4), ("clip", 1, 4), ("dinov3", 5, 4)]
)
def test_hf_backbones_patch_grid(hf_models, folder, prefix, grid):
    from transformers import AutoModel

    enc = build_encoder("hf", model=hf_models / folder)
    f = enc(FRAMES)
    assert f.shape == (3, grid, grid, 32) and f.dtype == torch.float32
    # independent computation: whole frame resized, normalised from the JSON, CLS/registers dropped
    model = AutoModel.from_pretrained(hf_models / folder)
    model = getattr(model, "vision_model", model).eval()
    cfg = json.loads((hf_models / folder / "preprocessor_config.json").read_text())
    size = enc.image_size
    x = torch.nn.functional.interpolate(FRAMES, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(cfg["image_mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["image_std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = model(pixel_values=x).last_hidden_state
    assert tokens.shape[1] == grid * grid + prefix
    torch.testing.assert_close(f, tokens[:, prefix:].reshape(3, grid, grid, 32), rtol=1e-4, atol=1e-4)
    assert enc.config["mean"] == pytest.approx(cfg["image_mean"])


def test_hf_layer_and_image_size(hf_models):
    enc = build_encoder("hf", model=hf_models / "clip", layer=1, image_size=96)
    assert enc(FRAMES).shape == (3, 6, 6, 32)
    last = build_encoder("hf", model=hf_models / "dinov2", image_size=(56, 84))(FRAMES)
    assert last.shape == (3, 4, 6, 32)


def test_hf_layer_is_checked_against_the_hidden_states(hf_models):
    # 2 layers -> 3 hidden states (embeddings + one per layer); negative indices as in Python
    grids = {k: build_encoder("hf", model=hf_models / "clip", layer=k)(FRAMES) for k in (-3, -1, 0, 2)}
    assert torch.equal(grids[-1], grids[2]) and torch.equal(grids[-3], grids[0])
    assert not torch.allclose(grids[0], grids[2])
    for bad in (3, 9, -4, 1.0, "1", True):
        with pytest.raises(Vega3DError, match=r"layer .* 3 hidden states.* expected an integer in \[-3, 2\]"):
            build_encoder("hf", model=hf_models / "clip", layer=bad)


def test_hf_errors(hf_models, tmp_path):
    import shutil

    shutil.copytree(hf_models / "clip", tmp_path / "clip")
    (tmp_path / "clip" / "preprocessor_config.json").unlink()
    with pytest.raises(Vega3DError, match="no preprocessor_config.json; pass mean"):
        build_encoder("hf", model=tmp_path / "clip")
    ok = build_encoder("hf", model=tmp_path / "clip", mean=[0.5] * 3, std=[0.5] * 3)
    assert ok(FRAMES).shape == (3, 4, 4, 32)
    with pytest.raises(Vega3DError, match="no config.json"):
        build_encoder("hf", model=tmp_path / "missing")
    with pytest.raises(Vega3DError, match="not a multiple of the patch size"):
        build_encoder("hf", model=hf_models / "dinov2", image_size=60)


def test_hf_mean_and_std_go_together(hf_models):
    # one given without the other: the missing one is named (the folder's values are not mixed in)
    with pytest.raises(Vega3DError, match=r"hf encoder: std: expected 3 numbers .*together\), found None"):
        build_encoder("hf", model=hf_models / "clip", mean=[0.5] * 3)
    with pytest.raises(Vega3DError, match=r"hf encoder: mean: expected 3 numbers .*found \[0.5, 0.5\]"):
        build_encoder("hf", model=hf_models / "clip", mean=[0.5] * 2, std=[0.5] * 3)


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    from vega3d.standin.wan import save_tiny_wan

    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny", num_layers=4)


def test_wan_encoder_matches_simulator_and_sweeps_share_the_model(wan_dir):
    from vega3d.simulator import WanWorldSimulator

    enc = build_encoder("wan", model=wan_dir, block=2, height=64, width=96)
    f = enc(FRAMES)
    sim = WanWorldSimulator.from_pretrained(wan_dir, block=2, height=64, width=96)
    assert f.shape == (3, 4, 6, sim.feature_dim)
    torch.testing.assert_close(f, sim.extract(FRAMES))
    assert enc.config["block"] == 2 and enc.config["stand_in"] is True
    grids = enc.blocks(FRAMES, [3, 0, 1])  # one VAE pass, one DiT pass to block 3
    assert list(grids) == [0, 1, 3]
    for b in (0, 1, 3):
        other = enc.at(block=b)
        assert other.simulator.transformer is enc.simulator.transformer  # no reload
        assert torch.equal(grids[b], other(FRAMES))
        assert enc.config_at(block=b) == other.config
    later = enc.at(timestep=700)
    assert later.config["t"] == 700 and not torch.allclose(later(FRAMES), f)
    latents = enc.encode(FRAMES)
    at_700 = enc.from_latents(latents, timestep=700)
    assert at_700.device.type == "cpu" and torch.equal(at_700, later(FRAMES))
    assert enc.config_at(timestep=700) == later.config and enc.config_at() == enc.config
    assert torch.equal(enc.from_latents(latents), f)
    with pytest.raises(Vega3DError, match="0..3"):
        enc.blocks(FRAMES, [4])


def test_wan_encoder_blocks_with_padding_and_vae_dtype(wan_dir):
    """blocks() now goes through the simulator's stages, so pad=True works (the hook-based
    capture refused it); vae_dtype reaches the loader and the recorded config."""
    enc = build_encoder("wan", model=wan_dir, block=1, height=64, width=96, pad=True)
    tall = FRAMES[:, :, :, :48]  # 96x48 frames: padded left and right
    grids = enc.blocks(tall, [0, 2])
    for b in (0, 2):
        assert torch.equal(grids[b], enc.at(block=b)(tall))
    half = build_encoder("wan", model=wan_dir, block=1, height=64, width=96, vae_dtype="bfloat16")
    assert half.config["vae_dtype"] == "bfloat16" and half.simulator.vae.encoder.conv_in.weight.dtype == torch.bfloat16
    assert half.components.vae is half.simulator.vae  # loaded in bfloat16, not cast from a float32 copy
    assert enc.config["vae_dtype"] == "float32"


def test_build_and_frame_errors(wan_dir):
    with pytest.raises(Vega3DError, match="unknown encoder"):
        build_encoder("resnet")
    with pytest.raises(Vega3DError, match="unknown option"):
        build_encoder("pixels", patch=16)
    with pytest.raises(Vega3DError, match="unknown option"):
        build_encoder("wan", model=wan_dir, layer=3)
    with pytest.raises(Vega3DError, match="model="):
        build_encoder("wan")
    enc = build_encoder("pixels")
    with pytest.raises(Vega3DError, match="float in \\[0, 1\\]"):
        enc((FRAMES * 255).to(torch.uint8))
    with pytest.raises(Vega3DError, match="\\(N, 3, H, W\\)"):
        enc(FRAMES[:, :2])
    with pytest.raises(Vega3DError, match="in \\[0, 1\\]"):
        enc(FRAMES * 2)
    assert {"pixels", "position", "random_vit", "wan", "hf"} <= set(ENCODERS)


def test_hf_image_size_not_a_multiple_of_the_patch(tmp_path):
    """Like SigLIP so400m (384 px, patch 14): the frame goes onto the 27*14 px the conv covers."""
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                image_size=60,
                patch_size=16,
            )
        )
    model.save_pretrained(tmp_path / "m")
    SiglipImageProcessor().save_pretrained(tmp_path / "m")
    enc = build_encoder("hf", model=tmp_path / "m")
    assert enc.image_size == (48, 48) and enc.grid == (3, 3)
    f = enc(FRAMES)
    assert f.shape == (3, 3, 3, 32)
    x = torch.nn.functional.interpolate(FRAMES, size=(48, 48), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        ref = model.eval()(pixel_values=(x - 0.5) / 0.5).last_hidden_state
    torch.testing.assert_close(f, ref.reshape(3, 3, 3, 32), rtol=1e-4, atol=1e-4)


def test_check_encoder_checks_names_and_options_without_building_anything(tmp_path):
    from vega3d.encoders import check_encoder
    from vega3d.encoders.wan import WanEncoder

    nowhere = tmp_path / "not_written"  # no model is read: the folder need not exist yet
    assert check_encoder("wan", {"model": nowhere, "block": 2, "vae_dtype": "bfloat16"}) is WanEncoder
    for name, options, message in [
        ("nosuch", {}, r"unknown encoder 'nosuch'; expected one of \[.*'hf', "),
        ("hf", {}, r"encoder 'hf' needs model=<.*folder> \(on the command line: --model DIR\)"),
        ("wan", {"block": 2}, r"encoder 'wan' needs model="),
        ("wan", {"model": nowhere, "layer": 3}, r"unknown option\(s\) \['layer'\]; valid: .*'vae_dtype'"),
        ("pixels", {"stride": 8, "block": 3}, r"unknown option\(s\) \['block'\]; valid: \['center', 'stride'\]"),
    ]:
        with pytest.raises(Vega3DError, match=message):
            check_encoder(name, options)
    with pytest.raises(Vega3DError, match="needs model="):  # build_encoder checks first: no TypeError
        build_encoder("hf")
    assert not nowhere.exists()
