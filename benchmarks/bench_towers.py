"""Seconds per frame of every Figure-3 tower on its tiny stand-in (CPU), and what sharing one VAE pass saves.

Part 1 times each encoder on its random-weight stand-in (vega3d.standin.towers / .wan) at the
given size: these numbers only show relative plumbing cost, never the real models' speed.

Part 2 is the performance claim, as a ratio measured in one run: an SD2.1 sweep over T timesteps x
B blocks done the straightforward way (one encoder call per setting: T·B VAE passes and T·B UNet
passes) against the staged way probe-compare uses (``encode`` once, then ``from_latents`` per
timestep reading all blocks: 1 VAE pass, T UNet passes). Both give the same grids (checked here).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_towers.py --frames 4

Real sizes need a GPU and the real folders (not measured here), e.g. per tower:

    vega3d probe-compare SCAN --frames 32 --encoders towers.yaml --out runs/fig3   # docs/towers.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vega3d.encoders import build_encoder

SIZE = dict(height=128, width=192)


def towers(root: Path) -> dict:
    """``{label: (encoder name, options)}`` on freshly written stand-ins."""
    from vega3d.standin import towers as st
    from vega3d.standin.wan import save_tiny_wan

    wan = save_tiny_wan(root / "wan", num_layers=4)
    vace = st.save_tiny_wan_vace(root / "vace")
    return {
        "sd21 (up1)": ("sd21", dict(model=st.save_tiny_sd21(root / "sd21"), **SIZE)),
        "svd (up1)": ("svd", dict(model=st.save_tiny_svd(root / "svd"), clip_frames=4, **SIZE)),
        "wan (block 3)": ("wan", dict(model=wan, block=3, height=128, width=192)),
        "wan_vace (block 3)": ("wan_vace", dict(model=vace, block=3, height=128, width=192)),
        "wan_vae": ("wan_vae", dict(model=vace, height=128, width=192)),
        "vjepa2": ("vjepa2", dict(model=st.save_tiny_vjepa2(root / "vjepa2"))),
        "dinov3": ("dinov3", dict(model=st.save_tiny_dinov3(root / "dinov3"))),
    }


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    frames = torch.rand(args.frames, 3, 120, 160, generator=torch.Generator().manual_seed(0))
    report = {"frames": args.frames, "frame_size": [120, 160], "per_frame_s": {}, "note": "tiny stand-ins, CPU"}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, options) in towers(Path(tmp)).items():
            enc = build_encoder(name, **options)
            enc(frames[:1])  # warm-up
            report["per_frame_s"][label] = best_of(lambda: enc(frames), args.repeats) / args.frames
        sd = build_encoder("sd21", **towers(Path(tmp) / "again")["sd21 (up1)"][1])
        report["sweep"] = sweep(sd, frames, [100, 261, 500], ["up1", "up2"], args.repeats)
    for label, s in report["per_frame_s"].items():
        print(f"{label:<20} {1000 * s:8.1f} ms/frame")
    sw = report["sweep"]
    print(f"\nSD2.1 sweep, {sw['settings']} settings: one VAE + UNet call per setting {sw['straightforward_s']:.2f} s, "
          f"one VAE pass + one UNet pass per timestep {sw['staged_s']:.2f} s: {sw['ratio']:.2f}x")  # fmt: skip
    print(json.dumps(report, indent=1))


def sweep(enc, frames, timesteps, blocks, repeats: int) -> dict:
    """Straightforward (an encoder per setting: VAE + UNet each time) vs staged (one VAE pass)."""

    def straightforward():
        return {
            (t, b): enc.from_latents(enc.encode(frames), timestep=t, blocks=[b])[b] for t in timesteps for b in blocks
        }

    def staged():
        latents = enc.encode(frames)
        out = {}
        for t in timesteps:
            got = enc.from_latents(latents, timestep=t, blocks=blocks)
            out.update({(t, b): got[b] for b in blocks})
        return out

    a, b = straightforward(), staged()
    assert all(torch.equal(a[k], b[k]) for k in a), "the staged sweep must give the same grids"
    slow, fast = best_of(straightforward, repeats), best_of(staged, repeats)
    return {"settings": len(a), "straightforward_s": slow, "staged_s": fast, "ratio": slow / fast}


if __name__ == "__main__":
    main()
