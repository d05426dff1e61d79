"""The fast paths equal the straightforward diffusers computations to float tolerance."""

import pytest
import torch
import torch.nn.functional as F

from tests.simulator.sim_helpers import context, hooked_full_forward, make_sim, tiny_transformer, tiny_vae
from vega3d.errors import Vega3DError
from vega3d.simulator.dit_prefix import condition, dit_prefix
from vega3d.simulator.vae2d import FrameEncoder, supports_2d


@pytest.mark.parametrize("size", [(64, 96), (48, 80)])
def test_2d_vae_matches_stock_encoder(size):
    vae = tiny_vae()
    x = torch.rand(3, 3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    stock = vae.encode(x[:, :, None]).latent_dist.mode()
    fast = FrameEncoder(vae)(x)
    assert stock.shape == (3, 16, 1, size[0] // 8, size[1] // 8)
    torch.testing.assert_close(fast[:, :, None], stock, rtol=1e-5, atol=1e-6)


def test_2d_vae_uses_only_last_temporal_tap():
    """Changing the non-last temporal taps must not change a one-frame encode (stock or fast)."""
    vae = tiny_vae()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    before = vae.encode(x[:, :, None]).latent_dist.mode()
    with torch.no_grad():
        for p in vae.encoder.parameters():
            if p.ndim == 5 and p.shape[2] == 3:
                p[:, :, :2].normal_()
    after = vae.encode(x[:, :, None]).latent_dist.mode()
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(FrameEncoder(vae)(x)[:, :, None], after, rtol=1e-5, atol=1e-6)


def test_2d_vae_rejects_wan22_topology():
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=16,
        is_residual=True,
        patch_size=2,
        in_channels=12,
        out_channels=12,
        decoder_base_dim=8,
        temperal_downsample=[False, True, True],
    )
    assert not supports_2d(vae) and supports_2d(tiny_vae())
    with pytest.raises(Vega3DError, match="Wan2.1"):
        FrameEncoder(vae)


@pytest.mark.parametrize("num_frames", [1, 3])
def test_truncated_dit_matches_hooked_full_forward(num_frames):
    model = tiny_transformer(num_layers=5)
    ctx = F.pad(context(), (0, 0, 0, 512 - context().shape[0]))
    latents = torch.randn(2, 16, num_frames, 8, 12, generator=torch.Generator().manual_seed(4))
    tproj, cproj = condition(model, 299, ctx)
    for block in (0, 3):
        ref = hooked_full_forward(model, latents, 299, ctx, block)
        out = dit_prefix(model, latents, tproj, cproj, block)
        assert out.shape == (2, num_frames, 4, 6, 32)
        torch.testing.assert_close(out.flatten(1, 3), ref, rtol=1e-4, atol=1e-5)


def test_truncated_dit_never_runs_later_blocks_or_head():
    model = tiny_transformer(num_layers=4)
    ran = []
    for name in ("blocks.3", "norm_out", "proj_out"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: ran.append(name))
    tproj, cproj = condition(model, 299, F.pad(context(), (0, 0, 0, 505)))
    dit_prefix(model, torch.randn(1, 16, 1, 4, 4), tproj, cproj, block=2)
    assert ran == []


def test_default_batch_comes_from_the_model_not_the_device(monkeypatch):
    """The default batch_frames is a function of the model, the size and the budget only."""
    from types import SimpleNamespace

    from vega3d.simulator.simulator import DEFAULT_MEMORY_BUDGET, default_batch_frames, dit_bytes_per_frame

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: pytest.fail("the device's free memory was queried"))
    per_frame = 24 * (64 + 8 * 32) * 4 + 2 * 24 * 24 * 4  # 4x6 tokens, FFN 64, width 32 in float32; 2 heads' scores
    assert dit_bytes_per_frame(tiny_transformer().config, 64, 96, torch.float32) == per_frame
    assert make_sim(memory_budget=5 * per_frame + 1).batch_frames == 5
    assert make_sim(memory_budget=1).batch_frames == 1 and make_sim(memory_budget=1 << 40).batch_frames == 64
    default = make_sim()
    assert default.batch_frames == min(64, DEFAULT_MEMORY_BUDGET // per_frame) == default.config.batch_frames
    assert make_sim(batch_frames=5).config.batch_frames == 5
    wan13 = SimpleNamespace(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960)  # Wan2.1-T2V-1.3B
    assert default_batch_frames(wan13, 480, 832, torch.bfloat16) == 23  # 4 GiB / 183.1 MB
    assert default_batch_frames(wan13, 720, 1280, torch.bfloat16) == 5  # 4 GiB / 775.1 MB


def test_compile_flag_constructs():
    sim = make_sim(compile=True)
    assert sim.compiled and len(sim._blocks) == sim.block + 1
    assert not make_sim().compiled


def test_bf16_runs_close_to_fp32():
    fp32 = make_sim()
    bf16 = make_sim()
    bf16.transformer.to(torch.bfloat16)
    bf16.vae.to(torch.bfloat16)
    from vega3d.simulator import WanWorldSimulator

    sim = WanWorldSimulator(bf16.transformer, bf16.vae, *_stats(), context(), block=2, height=64, width=96)
    assert sim.config.dtype == "bfloat16" and sim.config.vae_dtype == "bfloat16"  # modules used as given
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    a, b = fp32.extract(x), sim.extract(x)
    assert b.dtype == torch.float32
    rel = (a - b).norm() / a.norm()
    assert rel < 0.05


def _stats():
    from tests.simulator.sim_helpers import latent_stats

    return latent_stats()


def test_benchmark_script_runs_and_both_ways_agree(tmp_path, capsys):
    """benchmarks/bench_simulator.py at its CPU config (30 blocks, block 20) on a tiny frame."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_simulator.py"
    spec = importlib.util.spec_from_file_location("bench_simulator", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--frames", "2", "--repeats", "1", "--sizes", "48x32", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["results"][0]
    assert result["model"]["layers"] == 30 and result["block"] == 20
    assert row["max_abs_diff"] <= 1e-4 * max(1.0, row["max_abs_feature"])
    assert row["speedup"] > 0 and "speedup" in capsys.readouterr().out
    # the FLOP formula reproduces the paper's figures for 21 blocks of the 1.3B model
    cfg = bench.CONFIGS["wan1.3b"]
    assert abs(bench.dit_flops_per_frame(cfg, 480, 832, 21) / 1e12 - 3.26) < 0.02
    assert abs(bench.dit_flops_per_frame(cfg, 720, 1280, 21) / 1e12 - 8.32) < 0.02
