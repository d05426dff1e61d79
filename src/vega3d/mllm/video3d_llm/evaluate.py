"""The five Table-1 benchmarks with a Video-3D LLM checkpoint: predictions → ``vega3d eval`` → table.

:func:`run_benchmark` reads a released ``*_llava_style.json`` val/test file, answers it over a
``data/`` folder (:class:`vega3d.video3d.Video3DData`: scans, the proposals file) and writes the
one predictions format (:mod:`vega3d.eval.records`) that ``vega3d eval`` scores:

- ``scanrefer``: InfoNCE scores over the scan's proposals (``scannet_val_pred_box.json``) + the
  zero target; the box of :func:`~vega3d.video3d.select_single` (``{"id", "box", "scores"}``);
- ``multi3drefer``: :func:`~vega3d.video3d.select_multi` (``{"id", "boxes", "scores"}``);
- ``scan2cap``: per object the proposal of largest IoU >= 0.5 with its GT box (strictly larger
  replaces, as ``process_scan2cap.py``) feeds ``<coord>``; none → the empty caption (scored 0),
  as released (``{"id", "prediction", "box"}``);
- ``scanqa``, ``sqa3d``: greedy answers (``{"id", "prediction"}``).

Everything a run needs is checked before the model runs (records, every scan folder, a scan
missing from the proposals file, the frame choice of every scan). Resumable and multi-process
like the text runner (:mod:`vega3d.eval.run`): answers are appended as they are made
(:mod:`vega3d.eval.runners.outputs`), a rerun with the same settings makes only the missing ones,
``torch.distributed`` processes each take a contiguous share of the scans and process 0 merges,
scores and prints the paper-order table.
"""

from __future__ import annotations

import importlib
import sys
from itertools import groupby
from pathlib import Path
from typing import Literal

from pydantic import Field

from vega3d.config import Config
from vega3d.errors import Vega3DError
from vega3d.eval.runners.outputs import AnswerLog, merge, report, resume
from vega3d.eval.runners.processes import meeting, process, share
from vega3d.eval.runners.questions import POSITIVE, Count, Positive
from vega3d.progress import progress as progress_bar

BENCHMARKS = ("scanrefer", "multi3drefer", "scan2cap", "scanqa", "sqa3d")


class RunArguments(Config):
    """A run's arguments that need no file; a bad one is ``name: got VALUE; expected DESCRIPTION``."""

    WHAT = ""

    # the Table-1 benchmark to answer
    benchmark: Literal[BENCHMARKS] = Field(description=f"one of the Video-3D LLM family's benchmarks {BENCHMARKS}")
    limit: Count = Field(None, description=POSITIVE)  # only the first N records
    num_frames: Count = Field(None, description=POSITIVE)  # frames per scan
    batch_size: Positive = Field(1, description="a positive integer")  # questions per answer() call
    max_new_tokens: Positive = Field(128, description="a positive integer")  # longest answer in tokens


def plan(benchmark: str, annotations, data_root, *, limit=None, num_frames: int = 32, sampling: str = "uniform"):
    """The samples to answer, the data folder and every scan's frames — all checked (module
    docstring) before any model runs. Returns ``(samples, data, frames by video)``."""
    from vega3d.video3d import Video3DData, check_samples, read_samples

    RunArguments(benchmark=benchmark, limit=limit)
    samples = read_samples(annotations, benchmark)[:limit]
    if not samples:
        raise Vega3DError(f"{annotations}: no {benchmark} records")
    data = Video3DData(data_root)
    if benchmark in ("scanrefer", "multi3drefer", "scan2cap"):
        check_samples(samples, proposals=data.boxes("val"), proposals_file=str(data.box_files["val"]))
    frames = {v: data.choose_frames(v, num_frames, sampling) for v in dict.fromkeys(s.video for s in samples)}
    return samples, data, frames


def _predict(benchmark: str, answerer, scene, samples, data, kwargs: dict) -> list[dict]:
    """Prediction records of ``samples`` (all of one scan)."""
    from vega3d.video3d import best_proposal, discretize, select_multi, select_single

    questions = [s.question for s in samples]
    if benchmark in ("scanrefer", "multi3drefer"):
        boxes = data.proposals(samples[0].video, "val")
        scores = answerer.ground(scene, questions, boxes, batch_size=kwargs["batch_size"],
                                 generative=kwargs["generative"])  # fmt: skip
        if benchmark == "scanrefer":
            return [{"id": s.id, "box": boxes[select_single(sc)].tolist(), "scores": sc.tolist()}
                    for s, sc in zip(samples, scores)]  # fmt: skip
        return [{"id": s.id, "boxes": [boxes[i].tolist() for i in select_multi(sc)], "scores": sc.tolist()}
                for s, sc in zip(samples, scores)]  # fmt: skip
    if benchmark == "scan2cap":
        proposals = data.proposals(samples[0].video, "val")
        chosen = [best_proposal(proposals, s.boxes[0]) for s in samples]
        asked = [(s, b) for s, b in zip(samples, chosen) if b is not None]
        texts = answerer.answer(scene, [s.question for s, _ in asked], coords=[discretize(b[:3]) for _, b in asked],
                                **_gen(kwargs)) if asked else []  # fmt: skip
        captions = dict(zip([s.id for s, _ in asked], texts))
        return [{"id": s.id, "prediction": captions.get(s.id, ""), **({"box": b.tolist()} if b is not None else {})}
                for s, b in zip(samples, chosen)]  # fmt: skip
    texts = answerer.answer(scene, questions, **_gen(kwargs))
    return [{"id": s.id, "prediction": t} for s, t in zip(samples, texts)]


def _gen(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("max_new_tokens", "batch_size", "generative")}


def run_benchmark(benchmark: str, answerer, annotations, data_root, out_dir, *, limit=None, batch_size: int = 1,
                  max_new_tokens: int = 128, generative=None, model: dict | None = None, paper: bool = True,
                  progress: bool = True, rank=None, world_size=None, barrier=None, scorer=None) -> dict | None:  # fmt: skip
    """Answer, write ``out_dir/predictions.jsonl`` (+ ``run.json``, ``result.json``), score and print
    the table; returns the result on process 0 (None on the others). See the module docstring."""
    RunArguments(benchmark=benchmark, limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens)
    samples, data, frames = plan(benchmark, annotations, data_root, limit=limit, num_frames=answerer.num_frames,
                                 sampling=answerer.sampling)  # fmt: skip
    rank, world_size = process(rank, world_size)
    meet, out_dir = meeting(barrier, world_size), Path(out_dir)
    settings = _settings(benchmark, answerer, annotations, data_root, max_new_tokens, generative, model)
    ids = [str(s.id) for s in samples]
    own, done = resume(out_dir, benchmark, settings, set(ids), rank, world_size, meet)
    todo = sorted((s for s in samples if str(s.id) not in done), key=lambda s: s.video)
    if rank == 0:
        _announce(benchmark, answerer, len(samples), len(done), len(todo), out_dir, world_size)
    kwargs = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "generative": generative}
    _answer_share(benchmark, answerer, share(todo, rank, world_size), data, frames, own, kwargs,
                  show=progress and rank == 0)  # fmt: skip
    meet()
    if rank != 0:
        return None
    pred = merge(out_dir, benchmark, ids)
    return score(benchmark, pred, annotations, out_dir, set(ids), settings, paper, scorer)


def _settings(benchmark, answerer, annotations, data_root, max_new_tokens, generative, model) -> dict:
    """What ``run.json`` records: a resume must have the same."""
    parts = answerer.stand_in_parts()
    return {"benchmark": benchmark, "annotations": str(Path(annotations).resolve()),
            "data": str(Path(data_root).resolve()), "num_frames": answerer.num_frames, "sampling": answerer.sampling,
            "instruction": answerer.instruction, "max_new_tokens": max_new_tokens, "generative": generative,
            "model": model, "model_config": answerer.model.config.to_dict(), "stand_in": bool(parts),
            "stand_in_parts": parts}  # fmt: skip


def _announce(benchmark, answerer, items: int, resumed: int, todo: int, out_dir: Path, world_size: int) -> None:
    """Process 0 says what the run does (and, on stand-ins, the NOTE on stderr)."""
    if note := answerer.model.stand_in_notice("The numbers say nothing about VEGA-3D (rows marked STAND-IN)."):
        print(note, file=sys.stderr)
    print(f"{benchmark}: {items} items; {resumed} already in {out_dir}, answering {todo}"
          + (f" on {world_size} processes" if world_size > 1 else ""))  # fmt: skip


def _answer_share(benchmark, answerer, mine, data, frames: dict, own: Path, kwargs: dict, show: bool) -> None:
    """This process's samples answered scan by scan into its answer file ``own``."""
    with AnswerLog(own) as log, progress_bar(total=len(mine), desc=benchmark, unit="q", enabled=show) as bar:
        for video, group in groupby(mine, key=lambda s: s.video):
            group = list(group)
            scene = answerer.scene(data, video, frames[video])
            try:
                log.write(_predict(benchmark, answerer, scene, group, data, kwargs))
            except Vega3DError as err:
                raise Vega3DError(f"{benchmark} items {[s.id for s in group][:5]} of {video}: {err}") from err
            bar.update(len(group))


def score(benchmark, pred_path, annotations, out_dir, ids: set, settings: dict, paper: bool = True, scorer=None):
    """``vega3d eval``'s scoring of the predictions on the answered items: the summary, the
    paper-order table (rows marked STAND-IN on stand-ins), ``result.json``."""
    module = importlib.import_module(f"vega3d.eval.{benchmark}")
    items = [q for q in module.load_annotations(annotations) if q.id in ids]
    own = None
    if benchmark in ("scanqa", "scan2cap") and scorer is None:
        from vega3d.eval.captions import CaptionScorer

        scorer = own = CaptionScorer()
    try:
        result = module.evaluate(pred_path, items, **({"scorer": scorer} if scorer is not None else {}))
    finally:
        if own is not None:
            own.close()
    counts = result["counts"]
    print(f"{benchmark}: scored {counts['scored']} of {counts['expected']} items")
    return report(benchmark, module, result, settings, Path(out_dir), pred_path, annotations, paper)
