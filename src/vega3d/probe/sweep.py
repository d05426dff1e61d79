"""Score vs DiT block and vs noise timestep with one model load (the paper's Fig. 6 at probe level).

Both sweeps encode the frames with the VAE ONCE (:meth:`vega3d.encoders.wan.WanEncoder.encode`,
i.e. ``WanWorldSimulator.encode``). ``sweep_blocks`` then runs the DiT once, to the deepest
requested block, reading every requested block on the way; ``sweep_timesteps`` runs one DiT
pass per timestep on the same latents, with the same noise draw
(``WanWorldSimulator.features_from_latents(..., timestep=t)``). Each row's numbers equal a
separate ``extract`` at that setting + ``score`` (tests/probe/test_sweep.py).
"""

from __future__ import annotations

from vega3d.errors import Vega3DError
from vega3d.probe.score import score
from vega3d.progress import progress as progress_bar


def sweep_blocks(scene, encoder, blocks, progress: bool = False, **options) -> list[dict]:
    """``[{"block": b, "encoder": config, "result": ProbeResult}, ...]`` for a ``WanEncoder``,
    sorted by block (duplicates merged): one VAE pass and one DiT pass."""
    blocks = _check(encoder, blocks, "blocks")
    grids = encoder.blocks(scene.frames(), blocks)
    out = []
    for b in _bar(sorted(grids), progress, "blocks"):
        out.append({"block": b, "encoder": encoder.config_at(block=b), "result": score(scene, grids[b], **options)})
    return out


def sweep_timesteps(scene, encoder, timesteps, progress: bool = False, **options) -> list[dict]:
    """``[{"timestep": t, "encoder": config, "result": ProbeResult}, ...]`` for a ``WanEncoder``,
    in the given order: one VAE pass, then one DiT pass per timestep."""
    from vega3d.simulator import flow_noise_level

    timesteps = _check(encoder, timesteps, "timesteps")
    for t in timesteps:  # bad values fail before the VAE pass
        flow_noise_level(t, encoder.simulator.config.shift)
    latents = encoder.encode(scene.frames())
    out = []
    for t in _bar(timesteps, progress, "timesteps"):
        out.append(
            {
                "timestep": t,
                "encoder": encoder.config_at(timestep=t),
                "result": score(scene, encoder.from_latents(latents, timestep=t), **options),
            }
        )
    return out


def _check(encoder, values, what) -> list:
    if getattr(encoder, "name", None) != "wan":
        raise Vega3DError(f"probe sweep over {what} needs the 'wan' encoder, got {getattr(encoder, 'name', encoder)!r}")
    values = list(values)
    if not values:
        raise Vega3DError(f"probe sweep over {what}: no values given")
    return values


def _bar(values, progress, what):
    if not progress:
        return values
    return progress_bar(values, desc=f"probe: scoring {what}", unit="value", leave=False)
