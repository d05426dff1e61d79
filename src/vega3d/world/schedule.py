"""The probe schedule: the rigorous probe of the DiT in training, against its random init and pixels.

Every ``probe.every`` optimizer steps (and at the last one) :func:`probe_step` reads the DiT being
trained through the simulator's own path — a :class:`~vega3d.simulator.WanWorldSimulator` built on
the live modules: VAE once per scene (``encode``), then one DiT pass per noise level reading every
probed block (``features_from_latents``) — and scores the features with :func:`vega3d.probe.score`
on the held-out synthetic rooms (seeds ``0..n-1``; training rooms have other seeds) and on the
scan (e.g. the real TUM sample). Settings: every (block, timestep) of the ``probe`` section.

Baselines, computed once per run (``probe/baselines.json``): the same DiT at ``random_seeds``
random inits (seed ``model.init_seed + k``; seed ``init_seed`` is this run's step 0), the mean RGB
of each DiT token's 16x16 input pixels ("pixels"), and the normalised VAE latents averaged over each
token's 2x2 latent cells ("VAE latents": what the DiT is given).

Outputs in ``OUTPUT/probe/``: ``step-XXXXXXX.json`` per probed step, ``baselines.json``,
``probe.json`` (every curve and the verdict) and ``probe.png`` (:mod:`vega3d.world.figure`).
Nothing here draws from a global RNG or leaves the model changed, so a run with the probe trains
bit-identically to one without.

The verdict, per scene set and setting: the DiT's ``auroc_local`` at the last probed step minus its
own random init (step 0) against the seed spread (max - min over the random inits); *positive* when
the gain exceeds the spread and the trained value exceeds every random init. The headline setting
(the first block and the first timestep, chosen before training) decides the run's result.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import torch

from vega3d.files import read_json, write_json

RADIUS = "32"  # the NN-recall radius (px) of the curves: the middle default radius
SETS = ("synthetic", "scan")


# ----------------------------------------------------------------------------- scenes and features
@lru_cache(maxsize=4)
def _scenes(probe_json: str) -> tuple:
    from vega3d.scenes import load_scene, synthetic_scene

    p = json.loads(probe_json)
    out = [("synthetic", synthetic_scene(p["synthetic_frames"], p["synthetic_height"], p["synthetic_width"], k,
                                         arc_degrees=p["arc_degrees"], name=f"heldout_room_{k}"))
           for k in range(p["synthetic_scenes"])]  # fmt: skip
    if p["scan"]:
        out.append(("scan", load_scene(p["scan"], frames=p["scan_frames"])))
    return tuple(out)


def probe_scenes(probe) -> tuple:
    """``((set, Scene), ...)``: the held-out rooms, then the scan (cached per process)."""
    return _scenes(json.dumps(probe.to_dict(), sort_keys=True))


def simulator_for(config, transformer, vae, latents_mean, latents_std, context):
    """A :class:`~vega3d.simulator.WanWorldSimulator` on these modules at the probe's settings."""
    from vega3d.simulator import WanWorldSimulator

    p, d = config.probe, config.data
    return WanWorldSimulator(transformer, vae, latents_mean, latents_std, context, timestep=p.timesteps[0],
                             shift=config.model.shift, block=max(p.blocks), height=d.height, width=d.width,
                             seed=p.seed, stand_in=True, identity={"source": "vega3d.world probe"})  # fmt: skip


def row(set_name: str, scene, result, **setting) -> dict:
    """The numbers of one score, with the scene set and the setting (block, timestep or a baseline)."""
    return {
        "set": set_name,
        "scene": scene.name,
        **setting,
        "auroc_local": result.auroc_local,
        "auroc": result.auroc,
        "paper_score": result.paper_score,
        "nn_recall": dict(result.nn_recall),
        "nn_recall_same_location": dict(result.nn_recall_same_location),
        "num_pairs": result.num_pairs,
    }


def _score(scene, features, probe):
    from vega3d.probe import score

    return score(scene, features, seed=probe.seed, **probe.options)


@torch.no_grad()
def probe_transformer(config, transformer, model) -> list[dict]:
    """Rows of ``transformer`` (the trained DiT or a random init) at every probed block and
    timestep on every probe scene; ``model``: the :class:`~vega3d.world.model.WorldModel` whose
    VAE, latent statistics and context it is read with."""
    from vega3d.simulator import flow_noise_level

    p = config.probe
    was_training = transformer.training
    transformer.eval()
    try:
        sim = simulator_for(config, transformer, model.vae, model.latents_mean, model.latents_std, model.context_rows)
        rows = []
        for set_name, scene in probe_scenes(p):
            latents = sim.encode(scene.frames())
            for ts in p.timesteps:
                t, sigma = flow_noise_level(ts, config.model.shift)
                grids = sim.features_from_latents(latents, timestep=ts, blocks=p.blocks)
                for b in p.blocks:
                    result = _score(scene, grids[b].float().cpu(), p)
                    rows.append(row(set_name, scene, result, block=b, timestep=ts, t=t, sigma=sigma))
    finally:
        transformer.train(was_training)
    return rows


@torch.no_grad()
def input_baselines(config, model) -> tuple[list[dict], list[dict]]:
    """``(pixels rows, VAE-latent rows)`` on every probe scene, on the DiT's token grid."""
    import torch.nn.functional as F

    from vega3d.simulator.geometry import fit_frames

    p, d = config.probe, config.data
    sim = simulator_for(config, model.transformer, model.vae, model.latents_mean, model.latents_std,
                        model.context_rows)  # fmt: skip
    pixels, latents = [], []
    for set_name, scene in probe_scenes(p):
        x, _ = fit_frames(scene.frames(), d.height, d.width)
        feats = F.avg_pool2d(x, 16).permute(0, 2, 3, 1) - 0.5
        pixels.append(row(set_name, scene, _score(scene, feats, p), baseline="pixels"))
        z = sim.encode(scene.frames()).latents[:, :, 0].float().cpu()
        feats = F.avg_pool2d(z, 2).permute(0, 2, 3, 1)
        latents.append(row(set_name, scene, _score(scene, feats, p), baseline="vae_latents"))
    return pixels, latents


def baselines(config, model) -> dict:
    """Random-init DiTs at ``probe.random_seeds`` seeds, pixels and VAE latents (module docstring)."""
    from vega3d.world.model import build_transformer

    m, p = config.model, config.probe
    device = model.transformer.patch_embedding.weight.device
    seeds = [m.init_seed + k for k in range(p.random_seeds)]
    random_init = [
        {"seed": s, "rows": probe_transformer(config, build_transformer(m, s).to(device), model)} for s in seeds
    ]
    pixels, latents = input_baselines(config, model)
    return {"random_init": random_init, "pixels": pixels, "vae_latents": latents}


# ----------------------------------------------------------------------------- the schedule
def baseline_key(config, model) -> dict:
    """What the baselines depend on: the probe, the DiT's recipe, the input size and the VAE."""
    return {"probe": config.probe.to_dict(), "model": config.model.to_dict(),
            "size": [config.data.height, config.data.width], "vae": model.record["vae"]}  # fmt: skip


def probe_step(config, model, step: int) -> dict:
    """Probe the DiT at ``step``; (re)write ``probe/step-XXXXXXX.json``, ``probe.json`` and ``probe.png``."""
    from tqdm.auto import tqdm

    from vega3d.world.figure import probe_figure

    out = Path(config.train.output_dir) / "probe"
    out.mkdir(parents=True, exist_ok=True)
    key = baseline_key(config, model)
    base_file = out / "baselines.json"
    base = read_json(base_file, "probe baselines") if base_file.is_file() else None
    if base is None or base.get("key") != json.loads(json.dumps(key)):
        tqdm.write("probe: the baselines (random inits, pixels, VAE latents), once per run", file=sys.stderr)
        base = {"key": key, **baselines(config, model)}
        write_json(base_file, base)
    tqdm.write(f"probe: step {step}", file=sys.stderr)  # above the bar: training waits for it
    write_json(
        out / f"step-{step:07d}.json", {"step": step, "rows": probe_transformer(config, model.transformer, model)}
    )
    report = aggregate(config, base, out, step)
    write_json(out / "probe.json", report)
    probe_figure(report, out / "probe.png")
    return report


def aggregate(config, base: dict, out: Path, last_step: int) -> dict:
    """The report: step 0 (this run's random init) and every probed step up to ``last_step``, the
    curves per scene set and setting, the baselines and the verdict."""
    p = config.probe
    steps = [{"step": 0, "rows": base["random_init"][0]["rows"]}]
    for f in sorted(out.glob("step-*.json")):
        record = read_json(f, "probe step")
        if 0 < record["step"] <= last_step:
            steps.append(record)
    settings = [(b, t) for b in p.blocks for t in p.timesteps]
    sets = [s for s in SETS if any(r["set"] == s for r in steps[0]["rows"])]
    report = {
        "what": "auroc_local and NN recall of the DiT in training vs its random inits, pixels and VAE latents",
        "radius_px": RADIUS,
        "headline": {"block": p.blocks[0], "timestep": p.timesteps[0]},
        "sets": {s: sorted({r["scene"] for r in steps[0]["rows"] if r["set"] == s}) for s in sets},
        "random_init_seeds": [r["seed"] for r in base["random_init"]],
        "curves": {s: [curve(steps, base, s, b, t) for b, t in settings] for s in sets},
        "inputs": {s: {k: _mean(base[k], s) for k in ("pixels", "vae_latents")} for s in sets},
        "steps": steps,
        "baselines": {k: v for k, v in base.items() if k != "key"},
    }
    report["verdict"] = verdict(report)
    return report


def _mean(rows: list[dict], set_name: str, **setting) -> dict:
    """Mean ``auroc_local`` and NN recall over the scenes of ``set_name`` (rows matching ``setting``)."""
    chosen = [r for r in rows if r["set"] == set_name and all(r.get(k) == v for k, v in setting.items())]
    return {"auroc_local": _nanmean(r["auroc_local"] for r in chosen),
            "nn_recall": _nanmean(r["nn_recall"][RADIUS] for r in chosen)}  # fmt: skip


def _nanmean(values) -> float:
    """The mean of the measured values (NaN, or None as JSON writes NaN, left out); NaN if none."""
    kept = [float(v) for v in values if v is not None and v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def curve(steps, base, set_name: str, block: int, timestep: float) -> dict:
    """One setting's numbers vs training step, and its random inits' (per seed)."""
    values = [_mean(s["rows"], set_name, block=block, timestep=timestep) for s in steps]
    inits = [_mean(r["rows"], set_name, block=block, timestep=timestep) for r in base["random_init"]]
    return {
        "block": block,
        "timestep": timestep,
        "steps": [s["step"] for s in steps],
        **{k: [v[k] for v in values] for k in ("auroc_local", "nn_recall")},
        "random_init": {k: [v[k] for v in inits] for k in ("auroc_local", "nn_recall")},
    }


def verdict(report: dict) -> dict:
    """Per scene set and setting: the gain of ``auroc_local`` over the run's own random init at the
    last probed step, the seed spread, and whether the gain is larger (module docstring)."""
    out, head = {}, report["headline"]
    for s, curves in report["curves"].items():
        out[s] = []
        for c in curves:
            inits, last = c["random_init"]["auroc_local"], c["auroc_local"][-1]
            spread, gain = max(inits) - min(inits), last - c["auroc_local"][0]
            positive = len(inits) >= 3 and gain > spread and last > max(inits)
            out[s].append({"block": c["block"], "timestep": c["timestep"], "step": c["steps"][-1], "auroc_local": last,
                           "random_init": inits, "gain": gain, "seed_spread": spread, "positive": positive,
                           "pixels": report["inputs"][s]["pixels"]["auroc_local"],
                           "vae_latents": report["inputs"][s]["vae_latents"]["auroc_local"]})  # fmt: skip
    heads = {s: next(v for v in rows if v["block"] == head["block"] and v["timestep"] == head["timestep"])
             for s, rows in out.items()}  # fmt: skip
    return {"by_set": out, "headline": heads, "positive": bool(heads) and all(v["positive"] for v in heads.values())}


def summary(report: dict) -> str:
    """The verdict as a table (what ``vega3d train-world`` prints)."""
    lines = [f"{'set':<10}{'block':>6}{'timestep':>9}{'step':>7}{'AUROC-local':>13}{'random init (seeds)':>28}"
             f"{'gain':>8}{'spread':>8}{'pixels':>8}{'VAE':>7}  beats init by > spread?"]  # fmt: skip
    for s, rows in report["verdict"]["by_set"].items():
        for v in rows:
            inits = " / ".join(f"{x:.3f}" for x in v["random_init"])
            lines.append(f"{s:<10}{v['block']:>6}{v['timestep']:>9g}{v['step']:>7}{v['auroc_local']:>13.3f}"
                         f"{inits:>28}{v['gain']:>+8.3f}{v['seed_spread']:>8.3f}{v['pixels']:>8.3f}"
                         f"{v['vae_latents']:>7.3f}  "
                         f"{'yes' if v['positive'] else 'no'}")  # fmt: skip
    head = report["headline"]
    word = "POSITIVE" if report["verdict"]["positive"] else "negative"
    lines.append(f"headline (block {head['block']}, timestep {head['timestep']:g}): {word}")
    return "\n".join(lines)
