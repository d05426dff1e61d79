"""Benchmark runners: a VEGA-3D checkpoint → ``predictions.jsonl`` → the benchmark table.

:func:`run_benchmark` answers every question of a text-answer benchmark (``vsibench``,
``scanqa``, ``sqa3d``) with an :class:`vega3d.mllm.infer.Answerer`, writes the predictions
in the one JSONL format (:func:`vega3d.eval.records.write_predictions`), scores them with
the benchmark module's ``evaluate`` and prints its table. ``vega3d eval-model`` is the CLI
(:mod:`vega3d.eval.cli`).

- Prompts: exactly the loaded question's ``.prompt`` (VSI-Bench: the official lmms-eval
  prompt; ScanQA / SQA3D: Video-3D LLM's question turn without ``<image>``, which is also
  all its QA runner feeds the model). ``instruction`` optionally goes before it on its own
  line (e.g. :data:`SPATIAL_INSTRUCTION`, Video-3D LLM's training-time
  ``add_spatial_instruction`` text).
- Media under ``media_root``: VSI-Bench ``<root>/<dataset>/<scene_name>.mp4``; ScanQA /
  SQA3D ``<root>/<scene_id>`` — a ScanNet scan folder (``posed_images`` as Video-3D LLM
  uses, or SensReader), a plain folder of frames — or else ``<root>/<scene_id>.mp4``. Read
  as training does (:func:`vega3d.media.load_media`: uniform sampling, scans through
  :func:`vega3d.scenes.load_scene`), as many frames as the Answerer samples (default: the
  count recorded at training, else 32): once per scene with ``Answerer.prepare`` (the next
  scene read ahead in a background thread) and reused for all its questions — the same
  answers as reading it per question.
- Missing media: :class:`Vega3DError` naming the question id and the path, checked for all
  questions before anything is generated; ``skip_missing=True`` skips those questions,
  counts them, lists them in ``result.json`` and scores the rest (scored vs in the file).
- Questions are answered grouped by video / scan (annotation order within one); answers
  are independent of batching (left padding, greedy decoding).
- Resumable: answers are appended to ``out_dir/predictions.jsonl`` as they are generated
  (fsynced per batch); a rerun with the same settings (``run.json``) generates only the
  ids not yet there. When all are done the file is rewritten in annotation order
  (:mod:`vega3d.eval.runners.outputs`).
- Data parallel: under ``accelerate launch`` / torchrun each process answers a contiguous
  share into its own part file; process 0 merges, scores and prints.
- Stand-ins: when the answerer says parts of its model are small random-weight stand-ins
  (:meth:`vega3d.mllm.infer.Answerer.stand_in_parts`; an answerer without that method has
  none), a NOTE (:func:`vega3d.standin.notice`) is printed at the start and before the
  table, the table's rows are marked ``STAND-IN`` and ``run.json`` / ``result.json`` carry
  ``"stand_in": true`` and ``"stand_in_parts"`` — its numbers say nothing about VEGA-3D.
- Grounding / captioning benchmarks (``scanrefer``, ``multi3drefer``, ``scan2cap``) need a
  box head the MLLM does not have yet: a clear error; their predictions from another source
  are scored with ``vega3d eval``.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval.runners.media import MediaReader
from vega3d.eval.runners.outputs import RESULT_FILE, AnswerLog, merge, report, resume
from vega3d.eval.runners.processes import meeting, process, share
from vega3d.eval.runners.questions import (  # noqa: F401 - re-exported
    BOX_BENCHMARKS,
    TEXT_BENCHMARKS,
    Plan,
    Task,
    check_arguments,
    media_kind,
    prepare,
)
from vega3d.progress import progress as _progress
from vega3d.standin import notice
from vega3d.video3d.formats import SPATIAL_INSTRUCTION  # noqa: F401 - re-exported

DEFAULT_NUM_FRAMES = 32  # used only when the answerer does not say how many it samples
#: What each stand-in part of :meth:`Answerer.stand_in_parts` is, in the notes.
STAND_IN_NAMES = {
    "base": "the Qwen2.5-VL base",
    "simulator": "the Wan simulator",
    "features": "the generative features it was trained on",
    "model": "the checkpoint",
}


@dataclass(frozen=True)
class RunOptions:
    """The keyword options of :func:`run_benchmark` (rules in the module docstring)."""

    num_frames: int | None = None  # frames per video: None = as many as the answerer samples, else it must match
    batch_size: int = 4  # questions per answer() call (the answers do not depend on it)
    limit: int | None = None  # only the first N questions of the annotation file
    skip_missing: bool = False  # skip (count, list) questions whose media is missing instead of stopping
    max_new_tokens: int = 128  # longest answer in tokens
    instruction: str | None = None  # a line put before every prompt (e.g. SPATIAL_INSTRUCTION)
    generative: bool | None = None  # False: the paired baseline (branch off); None: as the answerer is
    model: dict | None = None  # the checkpoint's identity in run.json (a resume with another is refused)
    scorer: object = None  # a shared CaptionScorer (ScanQA)
    paper: bool = True  # print the paper's rows with the table
    progress: bool = True  # a progress bar on process 0
    rank: int | None = None  # this process among world_size (both None: from torch.distributed)
    world_size: int | None = None
    barrier: Callable | None = None  # where the processes meet (None: torch.distributed's barrier)
    reuse_media: bool = True  # each scene read once with the answerer's prepare() (never changes the answers)
    read_ahead: bool = True  # ... the next scene read in a background thread (MediaReader)
    plan: Plan | None = None  # prepare()'s result for these arguments when the caller has it (the CLI)


def _frame_count(answerer, num_frames: int | None) -> int:
    """Frames per video: ``num_frames`` (checked), which must be what the answerer samples."""
    sampled = getattr(answerer, "num_frames", None)
    if num_frames is None:
        return DEFAULT_NUM_FRAMES if sampled is None else int(sampled)
    if sampled is not None and int(sampled) != num_frames:
        raise Vega3DError(
            f"num_frames={num_frames} but the answerer samples {sampled} frames per video; "
            f"load it with Answerer.from_checkpoint(..., num_frames={num_frames})"
        )
    return num_frames


def _stand_in_parts(answerer) -> list[str]:
    """The answerer's stand-in parts (:meth:`vega3d.mllm.infer.Answerer.stand_in_parts`: "base",
    "simulator", "features", "model"); none for an answerer without that method (a user's own)."""
    method = getattr(answerer, "stand_in_parts", None)
    return list(method()) if callable(method) else []


def stand_in_note(parts: list[str]) -> str | None:
    """The NOTE printed for a run on stand-ins (:func:`vega3d.standin.notice`), None for none."""
    return notice(
        [STAND_IN_NAMES.get(p, p) for p in parts],
        "The numbers say nothing about VEGA-3D or the paper's rows (the table's rows are marked STAND-IN).",
    )


def run_benchmark(benchmark: str, answerer, annotations_path, media_root, out_dir, **options) -> dict | None:
    """Answer, write predictions, score, print the table; return the result dict on process 0 (None
    on the others). The module docstring has the rules: prompts, media, resume, processes, stand-ins.

    ``answerer``: an :class:`~vega3d.mllm.infer.Answerer` (anything with ``answer(questions,
    videos, max_new_tokens=, batch_size=)``, optionally ``num_frames`` and ``prepare(path)``).
    ``options``: the fields of :class:`RunOptions`. Writes ``out_dir/predictions.jsonl``,
    ``run.json``, ``result.json``.
    """
    o = RunOptions(**options)
    check_arguments(benchmark, num_frames=o.num_frames, batch_size=o.batch_size, limit=o.limit,
                    max_new_tokens=o.max_new_tokens)  # fmt: skip
    plan = o.plan or prepare(benchmark, annotations_path, media_root, limit=o.limit, skip_missing=o.skip_missing,
                             instruction=o.instruction)  # fmt: skip
    frames = _frame_count(answerer, o.num_frames)
    rank, world_size = process(o.rank, o.world_size)
    meet, out_dir = meeting(o.barrier, world_size), Path(out_dir)
    settings = _settings(benchmark, answerer, annotations_path, media_root, frames, o)
    own, done = resume(out_dir, benchmark, settings, {t.id for t in plan.tasks}, rank, world_size, meet)
    # grouped by media (stable: annotation order within a scene), so a scene's questions run together
    todo = sorted((t for t in plan.tasks if t.id not in done), key=lambda t: str(t.media))
    if rank == 0:
        _announce(plan, settings, o.limit, len(done), len(todo), out_dir, world_size)
    _answer_share(answerer, benchmark, share(todo, rank, world_size), own, o, show=o.progress and rank == 0)
    meet()
    if rank != 0:
        return None
    pred_path = merge(out_dir, benchmark, [t.id for t in plan.tasks])
    counts = _counts(plan, o.limit, resumed=len(done), generated=len(todo), processes=world_size)
    run = {**settings, "counts": counts, "skipped": plan.skipped}
    return _score(benchmark, plan, pred_path, annotations_path, out_dir, o, run)


def _settings(benchmark, answerer, annotations_path, media_root, frames: int, o: RunOptions) -> dict:
    """What ``run.json`` records: a resume must have the same."""
    parts = _stand_in_parts(answerer)
    return {
        "benchmark": benchmark,
        "annotations": str(Path(annotations_path).resolve()),
        "media_root": str(Path(media_root).resolve()),
        "num_frames": frames,
        "frames_as": getattr(answerer, "frames_as", None),  # "video" / "images" (None: an answerer that does not say)
        "instruction": o.instruction,
        "max_new_tokens": o.max_new_tokens,
        "generative": o.generative,
        "model": o.model,
        "model_config": _model_config(answerer),
        "stand_in": bool(parts),
        "stand_in_parts": parts,
    }


def _announce(plan: Plan, settings: dict, limit, resumed: int, todo: int, out_dir: Path, world_size: int) -> None:
    """Process 0 says what the run does (and, on stand-ins, the NOTE on stderr)."""
    note = stand_in_note(settings["stand_in_parts"])
    if note:
        print(note, file=sys.stderr)
    print(
        f"{settings['benchmark']}: {len(plan.tasks)} questions to answer ({plan.total} in the annotations"
        + (f", first {limit}" if limit is not None else "")
        + (f", {len(plan.skipped)} skipped: media missing" if plan.skipped else "")
        + f"); {resumed} already in {out_dir}, generating {todo}"
        + (f" on {world_size} processes" if world_size > 1 else "")
    )


def _media_reader(answerer, tasks: list[Task], reuse_media: bool, read_ahead: bool) -> MediaReader | None:
    """Each scene read once with the answerer's ``prepare`` (None: the answerer reads paths)."""
    prepare_media = getattr(answerer, "prepare", None) if reuse_media else None
    return (
        MediaReader(prepare_media, [t.media for t in tasks], read_ahead=read_ahead) if callable(prepare_media) else None
    )


def _answer_share(answerer, benchmark: str, mine: list[Task], own: Path, o: RunOptions, show: bool) -> None:
    """This process's questions answered into its answer file ``own``."""
    kwargs = {"max_new_tokens": o.max_new_tokens, "batch_size": o.batch_size}
    kwargs.update({} if o.generative is None else {"generative": o.generative})
    reader = _media_reader(answerer, mine, o.reuse_media, o.read_ahead)
    with AnswerLog(own) as log, reader or nullcontext():
        _answer(answerer, benchmark, mine, reader, log, kwargs, show)


def _answer(answerer, benchmark: str, tasks: list[Task], reader, log: AnswerLog, kwargs: dict, show: bool) -> None:
    """Answer ``tasks`` in batches of ``kwargs["batch_size"]``, appending each batch to ``log``."""
    batch_size = kwargs["batch_size"]
    with _progress(total=len(tasks), desc=f"{benchmark} answers", unit="q", enabled=show) as bar:
        for start in range(0, len(tasks), batch_size):
            chunk = tasks[start : start + batch_size]
            try:
                # each scene read once (as in training) and reused for all its questions; else the path
                videos = [reader.get(t.media) if reader else str(t.media) for t in chunk]
                answers = answerer.answer([t.prompt for t in chunk], videos, **kwargs)
            except Vega3DError as err:
                raise Vega3DError(f"{benchmark} questions {[t.id for t in chunk]}: {err}") from err
            if len(answers) != len(chunk) or not all(isinstance(a, str) for a in answers):  # maybe a user's answerer
                raise Vega3DError(f"answerer returned {answers!r} for {len(chunk)} questions; expected one string each")
            log.write([{"id": t.id, "prediction": text} for t, text in zip(chunk, answers)])
            bar.update(len(chunk))


def _counts(plan: Plan, limit, *, resumed: int, generated: int, processes: int) -> dict:
    return {
        "in_annotations": plan.total,
        "selected": plan.total if limit is None else min(limit, plan.total),
        "skipped_missing_media": len(plan.skipped),
        "answered": len(plan.tasks),
        "resumed": resumed,
        "generated": generated,
        "processes": processes,
    }


def _score(benchmark, plan: Plan, pred_path: Path, annotations_path, out_dir: Path, o: RunOptions, run: dict) -> dict:
    """Evaluate ``pred_path`` on the run's questions, print the summary line, the NOTE on stand-ins
    and the table, write ``result.json``."""
    module = importlib.import_module(f"vega3d.eval.{benchmark}")
    extra = {"scorer": o.scorer} if benchmark == "scanqa" and o.scorer is not None else {}
    result = module.evaluate(pred_path, plan.questions, **extra)
    print(_summary_line(benchmark, result["counts"], plan, annotations_path, o.limit))
    if run["stand_in_parts"]:
        print(stand_in_note(run["stand_in_parts"]))
    result = report(benchmark, module, result, run, out_dir, pred_path, annotations_path, o.paper)
    print(f"wrote {pred_path} and {out_dir / RESULT_FILE}")
    return result


def _summary_line(benchmark: str, counts: dict, plan: Plan, annotations_path, limit) -> str:
    line = f"{benchmark}: scored {counts['scored']} of {counts['expected']} expected items"
    if counts["expected"] != plan.total:
        line += f" ({plan.total} in {annotations_path}"
        line += f"; first {limit} selected" if limit is not None else ""
        line += f"; {len(plan.skipped)} skipped: media missing" if plan.skipped else ""
        line += ")"
    if counts.get("tasks_present", 0) != counts.get("tasks_total", 0):
        line += f"; only {counts['tasks_present']} of {counts['tasks_total']} tasks present, Avg. is over those"
    return line


def _model_config(answerer):
    config = getattr(getattr(answerer, "model", None), "config", None)
    to_dict = getattr(config, "to_dict", None)
    return json.loads(json.dumps(to_dict(), default=str)) if callable(to_dict) else None
