"""``vega3d probe-compare``: several encoders over the same scenes and frame pairs, one table, one chart.

A spec (YAML, :class:`CompareSpec`) lists the towers; each is built, run over every scene and
scored, then dropped before the next is built (one encoder's weights and one scene's features in
memory at a time). Every scene is loaded once, so every encoder sees the same frames and —
the probe's sampling being seeded and independent of the features — the same frame pairs and
points. Each row gets every headline field as the mean over scenes with a bootstrap 95% interval
over frame pairs (vega3d.probe.bootstrap), the position-only control on the row's own grid, and the
paper's Figure-3 number where the tower has one. ``pixels`` and the ``position`` control (16 px
grid) are reference rows.

Resumable: each spec entry's rows are written atomically to ``OUT/rows/NN-label.json`` as soon as
they are done, with a key (sha256 of the entry, the probe options, the bootstrap settings and the
scenes' frames); a rerun reuses every entry whose file has the same key and computes the rest, so
a run killed after entry k leaves k entries and the rerun continues. ``compare.json``,
``compare.txt`` and ``compare.png`` are written at the end from the row files.

Towers with stages (``wan``, ``wan_vace``, ``sd21``, ``svd``) take ``blocks`` and ``timesteps``
lists: one model load, one VAE pass per scene, one DiT/UNet pass per timestep reading every block.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from vega3d.config import Config, resolve_path
from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json

#: Encoders with the stage API (encode / from_latents(timestep=, blocks=) / config_at).
STAGED = ("wan", "wan_vace", "sd21", "svd")
#: The reference rows: what raw colour and image position alone achieve.
REFERENCES = (("pixels", "pixels", {"stride": 16.0}), ("position control", "position", {"stride": 16.0}))


class TowerSpec(Config):
    """One entry of the spec: an encoder and its options (one row, or one per block x timestep)."""

    label: Annotated[str, Field(min_length=1)]  # row label in the table and chart (unique)
    encoder: str  # a vega3d.encoders name
    options: dict[str, Any] = {}  # its options; a relative ``model`` path is relative to the spec file
    paper: str | None = None  # its tower in the paper's Figure 3 (default: from the encoder name; "" for none)
    blocks: list[int | str] | None = None  # staged towers: several blocks from one pass
    timesteps: list[int | float] | None = None  # staged towers: several noise levels on one VAE pass


class CompareSpec(Config):
    """The ``--encoders`` YAML of ``vega3d probe-compare``."""

    encoders: Annotated[list[TowerSpec], Field(min_length=1)]  # the towers, in table order
    probe: dict[str, Any] = {}  # vega3d.probe.ProbeOptions fields (e.g. min_motion_px)
    bootstrap_draws: Annotated[int, Field(ge=10)] = 1000  # pair resamplings per interval
    bootstrap_seed: Annotated[int, Field(ge=0)] = 0
    level: Annotated[float, Field(gt=0, lt=1)] = 0.95  # interval coverage
    references: bool = True  # add the pixels and position-control rows

    @field_validator("encoders")
    @classmethod
    def _unique_labels(cls, value: list[TowerSpec]) -> list[TowerSpec]:
        labels = [e.label for e in value]
        dupes = sorted({x for x in labels if labels.count(x) > 1} | ({r[0] for r in REFERENCES} & set(labels)))
        if dupes:
            raise ValueError(f"labels must be unique and not a reference row's; repeated or reserved: {dupes}")
        return value


def load_spec(path) -> tuple[CompareSpec, list[dict]]:
    """The spec at ``path`` and its entries (references first), every name and option checked —
    encoder options by :func:`vega3d.encoders.check_encoder`, probe options by ProbeOptions — before
    anything is loaded."""
    import yaml

    from vega3d.config import parse

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise Vega3DError(f"{path}: cannot read the encoders spec ({err})") from None
    spec = parse(CompareSpec, data, str(path))
    return spec, entries(spec, path.parent, str(path))


def entries(spec: CompareSpec, root: Path, where: str) -> list[dict]:
    """Checked entries: ``{label, encoder, options, paper, blocks, timesteps, kind}`` (references first)."""
    from vega3d.encoders import check_encoder
    from vega3d.probe.figure3 import PAPER_FIGURE3, TOWER_OF_ENCODER
    from vega3d.probe.result import ProbeOptions

    ProbeOptions.from_kwargs(**spec.probe)
    out = [dict(label=label, encoder=name, options=opts, paper=None, blocks=None, timesteps=None, kind="reference")
           for label, name, opts in (REFERENCES if spec.references else ())]  # fmt: skip
    for k, e in enumerate(spec.encoders):
        at = f"{where}: encoders.{k} ({e.label})"
        options = dict(e.options)
        if isinstance(options.get("model"), str):
            options["model"] = resolve_path(options["model"], root)
        try:
            check_encoder(e.encoder, options)
        except Vega3DError as err:
            raise Vega3DError(f"{at}: {err}") from None
        if (e.blocks or e.timesteps) and e.encoder not in STAGED:
            raise Vega3DError(
                f"{at}: blocks/timesteps lists need a tower with stages {list(STAGED)}, got {e.encoder!r}"
            )
        paper = TOWER_OF_ENCODER.get(e.encoder) if e.paper is None else (e.paper or None)
        if paper is not None and paper not in PAPER_FIGURE3:
            raise Vega3DError(f"{at}: paper={paper!r}; expected one of {sorted(PAPER_FIGURE3)} or '' for none")
        out.append(dict(label=e.label, encoder=e.encoder, options=options, paper=paper, blocks=e.blocks,
                        timesteps=e.timesteps, kind="encoder"))  # fmt: skip
    return out


def entry_key(entry: dict, spec: CompareSpec, scenes) -> str:
    """What an entry's rows depend on: the entry, the probe options, the bootstrap and the scenes' frames."""
    from vega3d.probe.run import scene_info

    blob = {"entry": entry, "probe": spec.probe, "draws": spec.bootstrap_draws, "seed": spec.bootstrap_seed,
            "level": spec.level, "scenes": [scene_info(s) for s in scenes]}  # fmt: skip
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def row_file(out: Path, index: int, label: str) -> Path:
    return out / "rows" / f"{index:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', label)[:60]}.json"


def run_compare(scenes, spec: CompareSpec, items: list[dict], out: Path, log=print) -> list[dict]:
    """Every entry's rows (computed, or reused from ``out/rows`` when the key matches), in order."""
    rows = []
    for index, entry in enumerate(items):
        path, key = row_file(out, index, entry["label"]), entry_key(entry, spec, scenes)
        done = read_json(path, "probe-compare row file") if path.is_file() else None
        if done is not None and done.get("key") == key:
            log(f"{entry['label']}: reusing {path}")
        else:
            if done is not None:
                log(f"{entry['label']}: {path} holds results for other settings; recomputing")
            t0 = time.perf_counter()
            done = {"key": key, "rows": entry_rows(scenes, spec, entry)}
            write_json(path, done)  # atomic: a kill leaves the entry whole or absent
            log(f"{entry['label']}: done in {time.perf_counter() - t0:.1f} s -> {path}")
        rows += done["rows"]
    return rows


def entry_rows(scenes, spec: CompareSpec, entry: dict) -> list[dict]:
    """Build the entry's encoder, score each setting on every scene, free the encoder."""
    from vega3d.encoders import build_encoder

    encoder = build_encoder(entry["encoder"], **entry["options"])
    try:
        settings = _settings(encoder, entry)
        measured = {s: [] for s in settings}
        for scene in scenes:
            t0 = time.perf_counter()
            grids = _features(encoder, scene, entry, settings)
            seconds = time.perf_counter() - t0
            for s in settings:
                measured[s].append(_measure(scene, grids.pop(s), spec, seconds / len(settings)))
        return [_row(entry, s, encoder, measured[s], spec) for s in settings]
    finally:
        del encoder
        gc.collect()
        _empty_cuda_cache()


def _settings(encoder, entry: dict) -> list[tuple]:
    """``(timestep, block)`` pairs of the entry (``(None, None)``: the encoder as configured)."""
    if entry["blocks"] is None and entry["timesteps"] is None:
        return [(None, None)]
    return [(t, b) for t in (entry["timesteps"] or [None]) for b in (entry["blocks"] or [None])]


def _features(encoder, scene, entry: dict, settings: list[tuple]) -> dict:
    """``{setting: (N, h, w, C) grid}`` for one scene: one VAE pass and one pass per timestep for staged towers."""
    frames = scene.frames()
    if settings == [(None, None)]:
        return {(None, None): encoder(frames)}
    latents = encoder.encode(frames)
    blocks = entry["blocks"]
    out = {}
    for t in entry["timesteps"] or [None]:
        got = encoder.from_latents(latents, timestep=t, blocks=blocks)
        for b in blocks or [None]:
            out[(t, b)] = (got[b] if blocks else got).float().cpu()
    return out


def _measure(scene, grid, spec: CompareSpec, seconds: float) -> dict:
    """Score one grid (keeping the per-pair samples for the bootstrap) and the control on its grid."""
    from vega3d.probe.bootstrap import SceneDraws
    from vega3d.probe.result import ProbeOptions
    from vega3d.probe.run import position_control
    from vega3d.probe.score import score

    samples: dict = {}
    result = score(scene, grid, samples=samples, **spec.probe)
    opts = ProbeOptions.from_kwargs(**spec.probe)
    control = position_control(scene, result.grid_size, spec.probe)
    draws = SceneDraws(samples, opts.recall_radii_px, opts.tie_tolerance)
    return {"result": result, "control": control, "draws": draws, "encode_s": seconds}


def _row(entry: dict, setting: tuple, encoder, measured: list[dict], spec: CompareSpec) -> dict:
    """One table row: label, config, per-scene results, the summary with intervals, the paper's number."""
    from vega3d.probe.bootstrap import bootstrap
    from vega3d.probe.figure3 import PAPER_FIGURE3
    from vega3d.probe.result import summarize

    t, b = setting
    label = entry["label"] + "".join(f" {k}={v}" for k, v in (("block", b), ("t", t)) if v is not None)
    config = encoder.config_at(timestep=t, block=b) if setting != (None, None) else encoder.config
    results = [m["result"] for m in measured]
    intervals = bootstrap([m["draws"] for m in measured], spec.bootstrap_draws, spec.bootstrap_seed, spec.level)
    summary = _summary(summarize(results), intervals)
    control = summarize([m["control"] for m in measured])
    return {
        "label": label,
        "kind": entry["kind"],
        "encoder": config,
        "stand_in": bool(config.get("stand_in")),
        "tower": entry["paper"],
        "paper_figure3": PAPER_FIGURE3.get(entry["paper"]) if entry["paper"] else None,
        "grid": list(results[0].grid_size),
        "num_pairs": sum(r.num_pairs for r in results),
        "encode_s_per_frame": sum(m["encode_s"] for m in measured) / sum(r.num_frames for r in results),
        "summary": summary,
        "control_auroc_local": control["auroc_local"]["mean"],
        "scenes": [{"result": {k: v for k, v in r.to_dict().items() if k != "pairs"}} for r in results],
    }


def _summary(means: dict, intervals: dict) -> dict:
    """``{field: {value, low, high}}``: the scene mean of each field with its bootstrap interval."""
    out = {}
    for key, iv in intervals.items():
        if "@" in key:
            name, radius = key.split("@")
            value = means[name].get(radius, {}).get("mean")
        else:
            value = means[key]["mean"]
        out[key] = {"value": value, **iv}
    return out


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- outputs

TABLE_FIELDS = ("auroc_local", "auroc", "paper_score", "pos_cosine", "neg_cosine", "margin", "neg_cosine_local",
                "margin_local")  # fmt: skip


def table(rows: list[dict], radius: str) -> str:
    """The readable table: every headline field as ``value [low, high]`` (x100), then the control and the paper."""
    fields = list(TABLE_FIELDS) + [f"nn_recall@{radius}"]
    heads = ["label", "grid"] + fields + ["control AUROC-local", "paper Fig.3", "pairs"]
    body = []
    for r in rows:
        cells = [r["label"], "x".join(str(g) for g in r["grid"])]
        cells += [_ci(r["summary"].get(f)) for f in fields]
        cells += [_pct(r["control_auroc_local"]), "-" if r["paper_figure3"] is None else f"{r['paper_figure3']:g}",
                  str(r["num_pairs"])]  # fmt: skip
        body.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(line.rstrip() for line in lines)


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


def _ci(cell) -> str:
    if not cell:
        return "n/a"
    return f"{_pct(cell['value'])} [{_pct(cell['low'])}, {_pct(cell['high'])}]"


def write_outputs(out: Path, rows: list[dict], spec: CompareSpec, scenes, command: str, figure: bool) -> str:
    """``compare.json`` (everything), ``compare.txt`` (the table) and ``compare.png`` (the chart); returns the table."""
    from vega3d.probe.figure3 import PAPER_SOURCE, bar_chart
    from vega3d.probe.result import ProbeOptions
    from vega3d.probe.run import STAND_IN_TAG, scene_info

    radii = ProbeOptions.from_kwargs(**spec.probe).recall_radii_px
    radius = f"{radii[len(radii) // 2]:g}"
    stand_ins = [r["label"] for r in rows if r["stand_in"]]
    text = table(rows, radius)
    notes = [
        f"values x100; [low, high]: bootstrap {100 * spec.level:g}% interval over frame pairs "
        f"({spec.bootstrap_draws} draws)",
        "paper Fig.3: " + PAPER_SOURCE,
    ]
    if stand_ins:
        notes.append("STAND-IN rows (random weights, not the real models): " + ", ".join(stand_ins))
    text += "\n\n" + "\n".join(notes)
    report = {"command": command, "spec": spec.to_dict(), "scenes": [scene_info(s) for s in scenes],
              "paper_source": PAPER_SOURCE, "rows": rows}  # fmt: skip
    write_json(out / "compare.json", report)
    (out / "compare.txt").write_text(text + "\n")
    if figure:
        title = f"multi-view correspondence on {', '.join(s.name for s in scenes)}" + (
            STAND_IN_TAG if stand_ins else ""
        )
        bar_chart(rows, out / "compare.png", title=title)
    return text
