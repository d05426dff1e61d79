"""Score vs DiT block and vs noise timestep with one model load (the paper's Fig. 6 at probe level).

``sweep_blocks`` runs the DiT once, to the deepest requested block, and reads every
requested block's output on the way (:meth:`vega3d.encoders.wan.WanEncoder.blocks`).
``sweep_timesteps`` builds one simulator per timestep on the same loaded modules
(:meth:`WanEncoder.at`); each re-encodes the frames with the VAE, because the simulator
has no public "latents in" entry point (see docs/probe.md).
"""

from __future__ import annotations

from vega3d.errors import Vega3DError
from vega3d.probe.score import score


def sweep_blocks(scene, encoder, blocks, progress: bool = False, **options) -> list[dict]:
    """``[{"block": b, "encoder": config, "result": ProbeResult}, ...]`` for a ``WanEncoder``."""
    _check(encoder, blocks, "blocks")
    grids = encoder.blocks(scene.frames(), blocks)
    out = []
    for b in _bar(sorted(grids), progress, "blocks"):
        out.append({"block": b, "encoder": {**encoder.config, "block": b},
                    "result": score(scene, grids[b], **options)})
    return out


def sweep_timesteps(scene, encoder, timesteps, progress: bool = False, **options) -> list[dict]:
    """``[{"timestep": t, "encoder": config, "result": ProbeResult}, ...]`` for a ``WanEncoder``."""
    _check(encoder, timesteps, "timesteps")
    frames = scene.frames()
    out = []
    for t in _bar(list(timesteps), progress, "timesteps"):
        enc = encoder.at(timestep=t)
        out.append({"timestep": t, "encoder": enc.config, "result": score(scene, enc(frames), **options)})
    return out


def _check(encoder, values, what):
    if getattr(encoder, "name", None) != "wan":
        raise Vega3DError(f"probe sweep over {what} needs the 'wan' encoder, got {getattr(encoder, 'name', encoder)!r}")
    if not list(values):
        raise Vega3DError(f"probe sweep over {what}: no values given")


def _bar(values, progress, what):
    if not progress:
        return values
    from tqdm.auto import tqdm

    return tqdm(values, desc=f"probe: scoring {what}", unit="value")
