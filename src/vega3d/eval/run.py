"""Benchmark runners: a VEGA-3D checkpoint → ``predictions.jsonl`` → the benchmark table.

:func:`run_benchmark` answers every question of a text-answer benchmark (``vsibench``,
``scanqa``, ``sqa3d``) with an :class:`vega3d.mllm.infer.Answerer`, writes the predictions
in the one JSONL format (:func:`vega3d.eval.records.write_predictions`), scores them with
the benchmark module's ``evaluate`` and prints its table. ``vega3d eval-model`` is the CLI.

- Prompts: exactly the loaded question's ``.prompt`` (VSI-Bench: the official lmms-eval
  prompt; ScanQA / SQA3D: Video-3D LLM's question turn without ``<image>``, which is also
  all its QA runner feeds the model). ``instruction`` optionally goes before it on its own
  line (e.g. :data:`SPATIAL_INSTRUCTION`, Video-3D LLM's training-time
  ``add_spatial_instruction`` text).
- Media under ``media_root``: VSI-Bench ``<root>/<dataset>/<scene_name>.mp4``; ScanQA /
  SQA3D ``<root>/<scene_id>`` — a ScanNet scan folder (``posed_images`` as Video-3D LLM
  uses, or SensReader; read with :func:`vega3d.scenes.load_scene`), a plain folder of frames,
  or else ``<root>/<scene_id>.mp4``. Frames are sampled uniformly
  (:func:`vega3d.scenes.sample_frames`), as many as the Answerer samples (default: the
  count recorded at training, else 32).
- Missing media: :class:`Vega3DError` naming the question id and the path, checked for all
  questions before anything is generated; ``skip_missing=True`` skips those questions,
  counts them, lists them in ``result.json`` and scores the rest (scored vs in the file).
- Questions are answered grouped by video / scan (annotation order within one), so a scan
  is read once; answers are independent of batching (left padding, greedy decoding).
- Resumable: ``out_dir/predictions.jsonl`` gets one line per answer as it is generated
  (flushed per batch); a rerun with the same settings (``run.json``) generates only the
  ids not yet in it. When all are done the file is rewritten in annotation order.
- Grounding / captioning benchmarks (``scanrefer``, ``multi3drefer``, ``scan2cap``) need a
  box head the MLLM does not have yet: a clear error; their predictions from another source
  are scored with ``vega3d eval``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from vega3d.errors import Vega3DError

TEXT_BENCHMARKS = ("vsibench", "scanqa", "sqa3d")
BOX_BENCHMARKS = ("scanrefer", "multi3drefer", "scan2cap")
PREDICTIONS_FILE = "predictions.jsonl"
RESULT_FILE = "result.json"
RUN_FILE = "run.json"
DEFAULT_NUM_FRAMES = 32  # used only when the answerer does not say how many it samples
SPATIAL_INSTRUCTION = (
    "The video captures 3D spatial information of a scene. Please focus on the spatial "
    "relationships in the video and answer the following questions."
)


def check_benchmark(benchmark: str) -> None:
    """Raise unless ``benchmark`` is one the runner can answer with the MLLM's text output."""
    if benchmark in BOX_BENCHMARKS:
        raise Vega3DError(
            f"{benchmark}: the VEGA-3D MLLM has no grounding/box head yet, so it cannot produce "
            f"{benchmark} predictions (boxes); predictions from another source can be scored with "
            f"`vega3d eval {benchmark} --pred preds.jsonl --gt ANNOTATIONS` (format in docs/eval.md)"
        )
    if benchmark not in TEXT_BENCHMARKS:
        raise Vega3DError(f"unknown benchmark {benchmark!r}; the runner supports {TEXT_BENCHMARKS}")


@dataclass(frozen=True)
class Task:
    """One question to answer: its id, the text prompt, the media path and its ``kind``
    (``"video"`` file, ``"frames"`` folder, or ``"scan"`` folder read with load_scene)."""

    id: str
    prompt: str
    media: Path
    kind: str


@dataclass(frozen=True)
class Plan:
    """What a run answers: ``questions`` (loaded annotation items, in file order, after
    ``limit``; missing-media ones removed when skipped), their ``tasks``, the ``skipped``
    ``{"id", "path"}`` records and ``total`` (questions in the annotation file)."""

    questions: list
    tasks: list[Task]
    skipped: list[dict]
    total: int


def media_candidates(benchmark: str, question, root: Path) -> list[Path]:
    """Where a question's video / scan may be, in the order they are tried."""
    if benchmark == "vsibench":
        return [question.video_path(root)]
    if not question.scene_id:
        raise Vega3DError(f"{benchmark} question {question.id!r}: no scene id in the annotations "
                          f"(llava-style 'video' field or official 'scene_id') to find its scan")
    return [root / question.scene_id, root / f"{question.scene_id}.mp4"]


def media_kind(path: Path) -> str:
    """``"video"`` for a file; ``"scan"`` for a ScanNet scan folder (SensReader, or
    ``posed_images`` with ``intrinsic.txt`` or ``NNNNN.txt`` poses); else ``"frames"`` (so a
    folder of ``00000.jpg, 00001.jpg, ...`` alone is a frame folder)."""
    if path.is_file():
        return "video"
    from vega3d.scenes import detect_layout

    try:
        layout = detect_layout(path)
    except Vega3DError:
        return "frames"
    if layout == "posed_images" and not (path / "intrinsic.txt").is_file() and not any(
            p.suffix == ".txt" and p.stem.isdigit() for p in path.iterdir()):
        return "frames"
    return "scan"


def prepare(benchmark: str, annotations_path, media_root, *, limit: int | None = None,
            skip_missing: bool = False, instruction: str | None = None) -> Plan:
    """Load the annotations and find every question's media (no model needed)."""
    check_benchmark(benchmark)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise Vega3DError(f"limit must be a positive number of questions, got {limit!r}")
    root = Path(media_root)
    if not root.is_dir():
        raise Vega3DError(f"media root {root} is not a folder")
    module = importlib.import_module(f"vega3d.eval.{benchmark}")
    questions = module.load_annotations(annotations_path)
    total = len(questions)
    if limit is not None:
        questions = questions[:limit]
    kept, tasks, skipped = [], [], []
    for question in questions:
        candidates = media_candidates(benchmark, question, root)
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            if skip_missing:
                skipped.append({"id": question.id, "path": str(candidates[0])})
                continue
            tried = " or ".join(str(p) for p in candidates)
            raise Vega3DError(f"{benchmark} question {question.id!r}: media not found: {tried} "
                              f"(skip such questions with skip_missing / --skip-missing)")
        prompt = question.prompt if not instruction else f"{instruction}\n{question.prompt}"
        kept.append(question)
        tasks.append(Task(id=question.id, prompt=prompt, media=found, kind=media_kind(found)))
    if not tasks:
        raise Vega3DError(f"{benchmark}: nothing to answer: all {len(questions)} selected questions lack media")
    return Plan(questions=kept, tasks=tasks, skipped=skipped, total=total)


class MediaLoader:
    """What the Answerer gets for a task: the path of a video file / frame folder (the
    Answerer samples it), or a scan's uniformly sampled colour frames (N,H,W,3) uint8.
    The last few scans are kept, since consecutive questions usually share a scene."""

    def __init__(self, num_frames: int, cache_size: int = 2):
        self.num_frames = int(num_frames)
        self.cache_size = int(cache_size)
        self._scans: OrderedDict[Path, object] = OrderedDict()

    def __call__(self, task: Task):
        if task.kind != "scan":
            return str(task.media)
        if task.media not in self._scans:
            from vega3d.scenes import load_scene

            try:
                self._scans[task.media] = load_scene(task.media, frames=self.num_frames).color
            except Vega3DError as err:
                raise Vega3DError(f"question {task.id!r}: scan {task.media}: {err}") from err
            while len(self._scans) > self.cache_size:
                self._scans.popitem(last=False)
        self._scans.move_to_end(task.media)
        return self._scans[task.media]


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Vega3DError(f"{name} must be a positive integer, got {value!r}")


def _frame_count(answerer, num_frames: int | None) -> int:
    sampled = getattr(answerer, "num_frames", None)
    if num_frames is None:
        if sampled is None:
            return DEFAULT_NUM_FRAMES
        _positive("the answerer's num_frames", sampled)
        return int(sampled)
    _positive("num_frames", num_frames)
    if sampled is not None and int(sampled) != num_frames:
        raise Vega3DError(f"num_frames={num_frames} but the answerer samples {sampled} frames per video; "
                          f"load it with Answerer.from_checkpoint(..., num_frames={num_frames})")
    return num_frames


def _check_run_file(out_dir: Path, settings: dict) -> None:
    """Write ``run.json`` on a fresh run; on a resume require the same settings."""
    path, predictions = out_dir / RUN_FILE, out_dir / PREDICTIONS_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        diff = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        if diff and predictions.exists():
            details = "; ".join(f"{k}: recorded {recorded.get(k)!r}, now {settings.get(k)!r}" for k in diff[:4])
            raise Vega3DError(f"{out_dir}: holds predictions of a run with other settings ({details}); "
                              f"use another output folder or delete it")
    elif predictions.exists():
        raise Vega3DError(f"{predictions} exists but {path} does not: not written by this runner; "
                          f"use another output folder")
    tmp = path.with_name(RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _read_done(path: Path, benchmark: str, wanted: set[str]) -> dict[str, dict]:
    """Predictions already in ``path`` (all must belong to this run). A last line cut off
    by a crash (no newline, not JSON) is removed and regenerated."""
    from vega3d.eval.records import read_predictions

    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
        except ValueError:
            print(f"{path}: dropping an incomplete last line (interrupted write); it is generated again")
            with path.open("r+b") as handle:
                handle.truncate(cut)
        else:
            with path.open("ab") as handle:
                handle.write(b"\n")
    done = read_predictions(path, benchmark)
    foreign = [i for i in done if i not in wanted]
    if foreign:
        raise Vega3DError(f"{path}: {len(foreign)} prediction id(s) are not among this run's questions "
                          f"(first: {foreign[:5]}); use another output folder")
    return done


def run_benchmark(benchmark: str, answerer, annotations_path, media_root, out_dir, *,
                  num_frames: int | None = None, batch_size: int = 4, limit: int | None = None,
                  skip_missing: bool = False, max_new_tokens: int = 128, instruction: str | None = None,
                  generative: bool | None = None, model: dict | None = None, scorer=None,
                  paper: bool = True, progress: bool = True) -> dict:
    """Answer, write predictions, score, print the table; return the result dict.

    ``answerer``: an :class:`~vega3d.mllm.infer.Answerer` (anything with
    ``answer(questions, videos, max_new_tokens=, batch_size=)`` and ``num_frames``).
    ``num_frames``: None = as many as the answerer samples; otherwise it must match.
    ``generative=False`` runs the paired baseline (branch off). ``model``: JSON-able
    identity of the checkpoint, recorded in ``run.json`` so a resume with another model is
    refused. ``scorer``: a shared :class:`~vega3d.eval.captions.CaptionScorer` (ScanQA).
    Writes ``out_dir/predictions.jsonl``, ``run.json``, ``result.json`` (the module's result
    plus ``"run"``: settings and counts, skipped ids). See the module docstring.
    """
    from tqdm import tqdm

    from vega3d.eval.cli import _json_safe
    from vega3d.eval.records import validate_prediction, write_predictions
    from vega3d.eval.table import render_table

    plan = prepare(benchmark, annotations_path, media_root, limit=limit, skip_missing=skip_missing,
                   instruction=instruction)
    _positive("batch_size", batch_size)
    _positive("max_new_tokens", max_new_tokens)
    frames = _frame_count(answerer, num_frames)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "benchmark": benchmark, "annotations": str(Path(annotations_path).resolve()),
        "media_root": str(Path(media_root).resolve()), "num_frames": frames, "instruction": instruction,
        "max_new_tokens": max_new_tokens, "generative": generative, "model": model,
        "model_config": _model_config(answerer),
    }
    _check_run_file(out_dir, settings)
    pred_path = out_dir / PREDICTIONS_FILE
    done = _read_done(pred_path, benchmark, {t.id for t in plan.tasks})
    # grouped by media (stable: annotation order within a scene), so each scan is read once
    todo = sorted((t for t in plan.tasks if t.id not in done), key=lambda t: str(t.media))
    resumed = len(done)
    print(f"{benchmark}: {len(plan.tasks)} questions to answer ({plan.total} in the annotations"
          + (f", first {limit}" if limit is not None else "")
          + (f", {len(plan.skipped)} skipped: media missing" if plan.skipped else "")
          + f"); {resumed} already in {pred_path}, generating {len(todo)}")

    load = MediaLoader(frames)
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    if generative is not None:
        kwargs["generative"] = generative
    with pred_path.open("a", encoding="utf-8") as handle, \
            tqdm(total=len(todo), desc=f"{benchmark} answers", unit="q", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            videos = [load(t) for t in chunk]
            try:
                answers = answerer.answer([t.prompt for t in chunk], videos, **kwargs)
            except Vega3DError as err:
                raise Vega3DError(f"{benchmark} questions {[t.id for t in chunk]}: {err}") from err
            if len(answers) != len(chunk):
                raise Vega3DError(f"answerer returned {len(answers)} answers for {len(chunk)} questions")
            lines = []
            for task, text in zip(chunk, answers):
                item_id, record = validate_prediction({"id": task.id, "prediction": text}, benchmark,
                                                      where=f"answer to question {task.id!r}")
                done[item_id] = record
                lines.append(json.dumps({"id": item_id, **record}, allow_nan=False) + "\n")
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(chunk))

    write_predictions(pred_path, benchmark, [{"id": t.id, **done[t.id]} for t in plan.tasks])
    module = importlib.import_module(f"vega3d.eval.{benchmark}")
    extra = {"scorer": scorer} if benchmark == "scanqa" and scorer is not None else {}
    result = module.evaluate(pred_path, plan.questions, **extra)

    counts = result["counts"]
    line = f"{benchmark}: scored {counts['scored']} of {counts['expected']} expected items"
    if counts["expected"] != plan.total:
        line += f" ({plan.total} in {annotations_path}"
        line += f"; first {limit} selected" if limit is not None else ""
        line += f"; {len(plan.skipped)} skipped: media missing" if plan.skipped else ""
        line += ")"
    if counts.get("tasks_present", 0) != counts.get("tasks_total", 0):
        line += f"; only {counts['tasks_present']} of {counts['tasks_total']} tasks present, Avg. is over those"
    print(line)
    columns, rows = module.table_rows(result)
    print(render_table(benchmark, columns, rows, paper=paper))

    result = dict(result)
    result["run"] = {
        **settings,
        "counts": {"in_annotations": plan.total, "selected": plan.total if limit is None else min(limit, plan.total),
                   "skipped_missing_media": len(plan.skipped), "answered": len(plan.tasks),
                   "resumed": resumed, "generated": len(todo)},
        "skipped": plan.skipped,
    }
    record = {"predictions": str(pred_path), "annotations": str(annotations_path), **result}
    tmp = out_dir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n")
    tmp.replace(out_dir / RESULT_FILE)
    print(f"wrote {pred_path} and {out_dir / RESULT_FILE}")
    return result


def _model_config(answerer):
    config = getattr(getattr(answerer, "model", None), "config", None)
    to_dict = getattr(config, "to_dict", None)
    return json.loads(json.dumps(to_dict(), default=str)) if callable(to_dict) else None


# ------------------------------------------------------------------------------------------ CLI
def register(subparsers) -> None:
    """Add ``eval-model``."""
    from vega3d.eval import BENCHMARKS

    p = subparsers.add_parser(
        "eval-model",
        help="answer a benchmark with a VEGA-3D checkpoint, then score it (predictions.jsonl + table)",
        description="Answer every question of a text-answer benchmark (vsibench, scanqa, sqa3d) with a VEGA-3D "
        "checkpoint, write OUT/predictions.jsonl (resumable), score it like `vega3d eval` and write OUT/result.json.",
    )
    p.add_argument("benchmark", choices=BENCHMARKS, metavar="BENCH", help=f"one of {', '.join(TEXT_BENCHMARKS)}")
    p.add_argument("--model", required=True, type=Path, help="checkpoint folder (vega3d train / save_pretrained)")
    p.add_argument("--gt", required=True, type=Path, help="annotation file (official / Video-3D LLM format)")
    p.add_argument("--media", required=True, type=Path,
                   help="vsibench: folder with <dataset>/<scene>.mp4; scanqa/sqa3d: folder with <scene_id>/ scans")
    p.add_argument("--out", required=True, type=Path, help="output folder (predictions.jsonl, run.json, result.json)")
    p.add_argument("--num-frames", type=int, help="frames sampled uniformly (default: as in training, else 32)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, help="only the first N questions of the annotation file")
    p.add_argument("--skip-missing", action="store_true", help="skip (and count) questions whose media is missing")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--instruction", help="text put on a line before every prompt (default: none)")
    p.add_argument("--spatial-instruction", action="store_true",
                   help="use Video-3D LLM's training-time spatial instruction as --instruction")
    p.add_argument("--base", help="Qwen2.5-VL folder (default: the one the checkpoint records)")
    p.add_argument("--simulator", help="Wan2.1 folder (default: the one the checkpoint records)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--baseline", action="store_true", help="generative branch off (the paired baseline)")
    p.add_argument("--no-paper", action="store_true", help="do not print the paper's published rows")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.set_defaults(func=_eval_model)


def _eval_model(args: argparse.Namespace) -> int:
    if args.instruction and args.spatial_instruction:
        raise Vega3DError("give --instruction or --spatial-instruction, not both")
    instruction = SPATIAL_INSTRUCTION if args.spatial_instruction else args.instruction
    for name in ("num_frames", "batch_size", "max_new_tokens"):
        if getattr(args, name) is not None:
            _positive(name, getattr(args, name))
    # annotations and media are checked before the (slow) model load
    prepare(args.benchmark, args.gt, args.media, limit=args.limit, skip_missing=args.skip_missing,
            instruction=instruction)
    from vega3d.mllm.infer import Answerer

    answerer = Answerer.from_checkpoint(args.model, base=args.base, simulator=args.simulator, device=args.device,
                                        dtype=args.dtype, num_frames=args.num_frames)
    model = {"checkpoint": str(args.model.resolve()), "base": args.base, "simulator": args.simulator,
             "dtype": args.dtype}
    run_benchmark(args.benchmark, answerer, args.gt, args.media, args.out, batch_size=args.batch_size,
                  limit=args.limit, skip_missing=args.skip_missing, max_new_tokens=args.max_new_tokens,
                  instruction=instruction, generative=False if args.baseline else None, model=model,
                  paper=not args.no_paper, progress=not args.no_progress)
    return 0
