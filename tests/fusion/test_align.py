"""Grid alignment onto Qwen2.5-VL merged tokens and square token grids.

The token-order tests decode pixel positions from transformers' own Qwen2-VL processors
(the image processor, and the video processor's ``patchify``) and from a tiny random
``Qwen2_5_VisionTransformerPretrainedModel``, so they check our order against theirs.
"""

import importlib
import sys
import types

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.fusion import align_to_grid, align_to_qwen_image, align_to_qwen_tokens, qwen_grid_thw
from vega3d.grids import cell_centers

P = 14  # Qwen patch size


def position_grid(n, h, w, height, width):
    """(n, h, w, 3) features = (frame index, y, x) of each cell centre, in pixels."""
    xy = cell_centers(h, w, height, width)
    frame = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, h, w, 1)
    return torch.cat([frame, xy[None, ..., 1:2].expand(n, h, w, 1), xy[None, ..., 0:1].expand(n, h, w, 1)], -1)


def position_video(n, height, width):
    """(n, 3, H, W) float "frames" whose channels are (frame index, pixel-centre y, pixel-centre x)."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    frames = torch.empty(n, 3, height, width)
    frames[:, 0] = torch.arange(n, dtype=torch.float32)[:, None, None]
    frames[:, 1] = ys[:, None]
    frames[:, 2] = xs[None, :]
    return frames


def decode_rows(pixel_values, channels=3, temporal=2):
    """Mean (frame, y, x) of each patch row (C, tp, ph, pw) -> (rows, 3), then per merged token (rows/4, 3)."""
    rows = torch.as_tensor(np.asarray(pixel_values)).reshape(-1, channels, temporal * P * P).mean(-1)
    return rows.reshape(-1, 4, channels).mean(1)


def test_shapes_odd_frames_non_square():
    feats = torch.randn(5, 9, 13, 7)  # 5 frames -> 3 temporal patches (last frame repeated)
    out = align_to_qwen_tokens(feats, (3, 8, 12))
    assert out.shape == (3 * 4 * 6, 7) and out.dtype == feats.dtype
    grid = out.reshape(3, 4, 6, 7)
    from vega3d.grids import resample_grid

    per_frame = resample_grid(feats, (4, 6))
    assert torch.allclose(grid[0], (per_frame[0] + per_frame[1]) / 2, atol=1e-6)
    assert torch.allclose(grid[1], (per_frame[2] + per_frame[3]) / 2, atol=1e-6)
    assert torch.allclose(grid[2], per_frame[4], atol=1e-6)  # padded with itself
    assert align_to_qwen_tokens(feats[:1].bfloat16(), torch.tensor([[1, 4, 2]])).dtype == torch.bfloat16


def test_spatial_geometry_merged_token_centres():
    # 3 frames of 84 x 140 px, Qwen grid 6 x 10 patches -> merged 3 x 5 tokens of 28 x 28 px;
    # a 6 x 10 generative grid (14-px cells) averages exactly onto them.
    feats = position_grid(3, 6, 10, 84, 140)
    out = align_to_qwen_tokens(feats, (2, 6, 10)).reshape(2, 3, 5, 3)
    centres = cell_centers(3, 5, 84, 140)
    assert torch.allclose(out[..., 1], centres[..., 1].expand(2, 3, 5))
    assert torch.allclose(out[..., 2], centres[..., 0].expand(2, 3, 5))
    assert torch.allclose(out[0, ..., 0], torch.full((3, 5), 0.5))
    assert torch.allclose(out[1, ..., 0], torch.full((3, 5), 2.0))


def test_token_order_matches_qwen_image_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    height, width = 4 * P, 6 * P  # no resize needed: already multiples of 28
    frame = position_video(1, height, width)[0]
    proc = Qwen2VLImageProcessorPil(do_resize=False, do_rescale=False, do_normalize=False)
    batch = proc(images=[frame.permute(1, 2, 0).numpy()], input_data_format="channels_last", return_tensors="np")
    assert batch["image_grid_thw"].tolist() == [[1, 4, 6]]
    tokens = decode_rows(batch["pixel_values"])
    feats = position_grid(1, 8, 12, height, width)  # finer generative grid over the same frame
    ours = align_to_qwen_image(feats, batch["image_grid_thw"][0])
    assert ours.shape == tokens.shape == (2 * 3, 3)
    assert torch.allclose(ours, tokens, atol=1e-4)


@pytest.fixture
def qwen_video_patchify(monkeypatch):
    """transformers' Qwen2VLVideoProcessor.patchify; the module imports torchvision, which
    this environment must not install, so it is imported against an empty stand-in
    (patchify itself is plain torch) and removed from sys.modules afterwards."""
    import transformers.video_processing_utils  # noqa: F401  (real imports first)

    name = "transformers.models.qwen2_vl.video_processing_qwen2_vl"
    had = name in sys.modules
    for stub in (
        "torchvision",
        "torchvision.transforms",
        "torchvision.transforms.v2",
        "torchvision.transforms.v2.functional",
    ):
        if stub not in sys.modules:
            monkeypatch.setitem(sys.modules, stub, types.ModuleType(stub))
    module = importlib.import_module(name)
    yield lambda videos: module.Qwen2VLVideoProcessor.patchify(
        None, videos, patch_size=P, merge_size=2, temporal_patch_size=2
    )
    if not had:
        sys.modules.pop(name, None)
        parent = sys.modules["transformers.models.qwen2_vl"]
        if getattr(parent, "__dict__", {}).get("video_processing_qwen2_vl") is module:
            delattr(parent, "video_processing_qwen2_vl")


@pytest.mark.parametrize("num_frames", [4, 5, 1])
def test_token_order_matches_qwen_video_patchify(qwen_video_patchify, num_frames):
    height, width = 6 * P, 4 * P  # portrait, non-square
    videos = position_video(num_frames, height, width)[None]
    patches, t, hp, wp = qwen_video_patchify(videos)
    assert (t, hp, wp) == (-(-num_frames // 2), 6, 4)
    tokens = decode_rows(patches[0])
    feats = position_grid(num_frames, 3, 2, height, width)  # generative grid coarser than the tokens
    ours = align_to_qwen_tokens(feats, (t, hp, wp))
    assert ours.shape == tokens.shape
    # frame index (temporal pairing, odd padding) exactly; positions up to bilinear upsampling
    assert torch.allclose(ours[:, 0], tokens[:, 0])
    exact = align_to_qwen_tokens(position_grid(num_frames, 6, 4, height, width), (t, hp, wp))
    assert torch.allclose(exact, tokens, atol=1e-4)
    # coarse grid: interior positions agree; every token is nearest to its own merged cell
    dist = torch.cdist(ours[:, 1:], tokens[:, 1:])
    same_frame = ours[:, :1] == tokens[:, :1].T
    nearest = torch.where(same_frame, dist, torch.inf).argmin(dim=1)
    assert torch.equal(nearest, torch.arange(len(tokens)))


def test_keep_merge_window_matches_processor_blocks(qwen_video_patchify):
    height, width = 4 * P, 6 * P
    videos = position_video(3, height, width)[None]
    patches, t, hp, wp = qwen_video_patchify(videos)
    per_patch = patches[0].reshape(-1, 3, 2 * P * P).mean(-1)  # (t*Hp*Wp, 3) in processor row order
    feats = position_grid(3, 2 * hp, 2 * wp, height, width)
    windows = align_to_qwen_tokens(feats, (t, hp, wp), keep_merge_window=True)
    assert windows.shape == (t * (hp // 2) * (wp // 2), 4 * 3)
    assert torch.allclose(windows.reshape(-1, 3), per_patch, atol=1e-4)
    plain = align_to_qwen_tokens(feats, (t, hp, wp))
    assert torch.allclose(windows.reshape(-1, 4, 3).mean(1), plain, atol=1e-5)


def test_vision_tower_merges_processor_rows_in_order():
    """A tiny random Qwen2.5-VL vision tower (window attention on, so tokens are reordered
    internally) with its attention outputs zeroed is a per-token function; its merged token k
    must then be exactly the merge of pixel_values rows 4k..4k+3 — the order we align to."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    cfg = Qwen2_5_VLVisionConfig(
        depth=2, hidden_size=16, num_heads=2, intermediate_size=32, out_hidden_size=8,
        window_size=56, fullatt_block_indexes=[1], patch_size=P, temporal_patch_size=2, spatial_merge_size=2,
    )  # fmt: skip
    torch.manual_seed(0)
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg).eval()
    with torch.no_grad():
        for block in tower.blocks:
            block.attn.proj.weight.zero_()
            block.attn.proj.bias.zero_()
    t, hp, wp = 2, 6, 10  # merged 3 x 5 per frame, windows of 2 x 2 merged tokens
    x = torch.randn(t * hp * wp, 3 * 2 * P * P, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = tower(x, grid_thw=torch.tensor([[t, hp, wp]])).pooler_output
        alone = torch.cat(
            [tower(x[4 * k : 4 * k + 4], grid_thw=torch.tensor([[1, 2, 2]])).pooler_output for k in range(len(full))]
        )
        # sanity: with attention on, tokens do see each other (the test above is not vacuous)
        tower.blocks[0].attn.proj.weight.normal_()
        mixed = tower(x, grid_thw=torch.tensor([[t, hp, wp]])).pooler_output
    assert full.shape == (t * (hp // 2) * (wp // 2), 8)
    assert torch.allclose(full, alone, atol=1e-5)
    assert not torch.allclose(full, mixed, atol=1e-3)


def test_align_to_grid_square_tokens():
    feats = position_grid(2, 8, 8, 64, 96)
    out = align_to_grid(feats, (4, 4))
    assert out.shape == (2, 16, 3)
    centres = cell_centers(4, 4, 64, 96).reshape(16, 2)
    assert torch.allclose(out[1, :, 2], centres[:, 0]) and torch.allclose(out[1, :, 1], centres[:, 1])


def test_qwen_grid_thw_uses_smart_resize():
    # 480 x 640 with a large budget: 476 x 644 -> 34 x 46 patches; 5 frames -> 3 temporal patches
    assert qwen_grid_thw(5, 480, 640, min_pixels=56 * 56, max_pixels=28 * 28 * 1280) == (3, 34, 46)
    t, hp, wp = qwen_grid_thw(16, 480, 832, min_pixels=128 * 28 * 28, max_pixels=28 * 28 * 192)
    assert t == 8 and hp % 2 == 0 and wp % 2 == 0 and hp * wp * P * P <= 28 * 28 * 192


def test_errors():
    feats = torch.randn(4, 6, 8, 3)
    with pytest.raises(Vega3DError, match=r"N=4 frames.*ceil\(4/2\) = 2.*T=3"):
        align_to_qwen_tokens(feats, (3, 4, 4))
    with pytest.raises(Vega3DError, match=r"\(2, 5, 4\).*divisible by spatial_merge_size=2"):
        align_to_qwen_tokens(feats, (2, 5, 4))
    with pytest.raises(Vega3DError, match=r"\(N, h, w, C\).*\(6, 8, 3\)"):
        align_to_qwen_tokens(feats[0], (1, 4, 4))
    with pytest.raises(Vega3DError, match="one \\(T, Hp, Wp\\) triple"):
        align_to_qwen_tokens(feats, (2, 4))
    with pytest.raises(Vega3DError, match="positive"):
        align_to_qwen_tokens(feats, (2, 0, 4))
    with pytest.raises(Vega3DError, match="one image"):
        align_to_qwen_image(feats, (2, 4, 4))
    with pytest.raises(Vega3DError, match="one image"):
        align_to_qwen_image(feats[:1], (2, 4, 4))
    with pytest.raises(Vega3DError, match="N >= 1"):
        align_to_grid(feats[:0], (2, 2))
    with pytest.raises(Vega3DError, match="positive"):
        qwen_grid_thw(0, 10, 10, min_pixels=1, max_pixels=10**6)
