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
  uses, or SensReader), a plain folder of frames — or else ``<root>/<scene_id>.mp4``. Read
  as training does (:func:`vega3d.mllm.data.load_video`: uniform sampling, scans through
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
- Stand-ins: when the checkpoint's Qwen2.5-VL base or Wan simulator is a small random-weight
  stand-in (:func:`stand_in_parts`), a NOTE is printed before the table, the table row is
  marked ``STAND-IN`` and ``run.json`` / ``result.json`` carry ``"stand_in": true`` and
  ``"stand_in_parts"`` — its numbers say nothing about VEGA-3D.
- Grounding / captioning benchmarks (``scanrefer``, ``multi3drefer``, ``scan2cap``) need a
  box head the MLLM does not have yet: a clear error; their predictions from another source
  are scored with ``vega3d eval``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval.runners.media import MediaReader
from vega3d.eval.runners.outputs import AnswerLog, answer_file, check_settings, finish, read_answers
from vega3d.eval.runners.questions import (  # noqa: F401 - re-exported
    BOX_BENCHMARKS,
    TEXT_BENCHMARKS,
    Plan,
    Task,
    check_benchmark,
    media_kind,
    prepare,
)

RESULT_FILE = "result.json"
DEFAULT_NUM_FRAMES = 32  # used only when the answerer does not say how many it samples
SPATIAL_INSTRUCTION = (
    "The video captures 3D spatial information of a scene. Please focus on the spatial "
    "relationships in the video and answer the following questions."
)


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
        raise Vega3DError(
            f"num_frames={num_frames} but the answerer samples {sampled} frames per video; "
            f"load it with Answerer.from_checkpoint(..., num_frames={num_frames})"
        )
    return num_frames


def stand_in_parts(answerer) -> list[str]:
    """Which parts of ``answerer.model`` are small random-weight stand-ins, as short keys:

    - ``"base"``: the Qwen2.5-VL base folder carries the stand-in marker of
      :func:`vega3d.standin.qwen.save_tiny_qwen25vl`;
    - ``"simulator"``: the attached Wan simulator says ``stand_in`` (or, with none attached,
      the one the checkpoint records does);
    - ``"features"``: a real simulator is attached but the checkpoint was trained on
      features of a stand-in one (its recorded simulator says ``stand_in``);
    - ``"model"``: only the checkpoint as a whole says so (``Answerer.stand_in``, the
      model's ``stand_in`` / ``recorded_stand_in`` — the top-level ``stand_in`` of
      ``vega3d_config.json`` — or the config's ``stand_in``), e.g. its base folder moved.

    Empty for real weights."""
    from vega3d.standin.qwen import is_stand_in

    model = getattr(answerer, "model", None)
    config = getattr(model, "config", None)
    parts = []
    base = getattr(config, "base_model", None)
    if base and is_stand_in(base):
        parts.append("base")
    attached = getattr(model, "simulator", None)
    recorded = getattr(config, "simulator", None)
    recorded = isinstance(recorded, dict) and recorded.get("stand_in") is True
    if attached is not None and getattr(attached, "stand_in", False):
        parts.append("simulator")
    elif recorded:
        parts.append("simulator" if attached is None else "features")
    flags = (
        getattr(answerer, "stand_in", None),
        getattr(model, "stand_in", None),
        getattr(model, "recorded_stand_in", None),
        getattr(config, "stand_in", None),
    )
    if not parts and any(flag is True for flag in flags):
        parts.append("model")
    return parts


def _stand_in_note(parts: list[str]) -> str:
    names = {
        "base": "the Qwen2.5-VL base",
        "simulator": "the Wan simulator",
        "features": "the generative features it was trained on",
        "model": "the checkpoint",
    }
    what = " and ".join(names[p] for p in parts)
    return (
        f"NOTE: {what} {'is' if len(parts) == 1 else 'are'} a small STAND-IN with random weights: the "
        f"numbers below say nothing about VEGA-3D or the paper's rows (the row is marked STAND-IN)."
    )


def _process(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """This process's rank and the number of processes (torch.distributed if initialised)."""
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None or not 0 <= rank < world_size:
        raise Vega3DError(f"rank/world_size: expected both, 0 <= rank < world_size; got {rank!r}/{world_size!r}")
    return int(rank), int(world_size)


def _default_barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def run_benchmark(
    benchmark: str,
    answerer,
    annotations_path,
    media_root,
    out_dir,
    *,
    num_frames: int | None = None,
    batch_size: int = 4,
    limit: int | None = None,
    skip_missing: bool = False,
    max_new_tokens: int = 128,
    instruction: str | None = None,
    generative: bool | None = None,
    model: dict | None = None,
    scorer=None,
    paper: bool = True,
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    barrier=None,
    reuse_media: bool = True,
    read_ahead: bool = True,
) -> dict | None:
    """Answer, write predictions, score, print the table; return the result dict.

    ``answerer``: an :class:`~vega3d.mllm.infer.Answerer` (anything with
    ``answer(questions, videos, max_new_tokens=, batch_size=)`` and ``num_frames``).
    ``reuse_media``: when the answerer has ``prepare(path)``, read each video / scan once and
    give ``answer`` the prepared video for all its questions (else the path, per question);
    ``read_ahead``: read the next scene in a background thread meanwhile
    (:class:`~vega3d.eval.runners.media.MediaReader`). Neither changes the answers.
    ``num_frames``: None = as many as the answerer samples; otherwise it must match.
    ``generative=False`` runs the paired baseline (branch off). ``model``: JSON-able
    identity of the checkpoint, recorded in ``run.json`` so a resume with another model is
    refused. ``scorer``: a shared :class:`~vega3d.eval.captions.CaptionScorer` (ScanQA).
    Writes ``out_dir/predictions.jsonl``, ``run.json``, ``result.json`` (the module's result
    plus ``"run"``: settings and counts, skipped ids). See the module docstring.

    Several processes (``torch.distributed`` initialised, e.g. ``accelerate launch``; or
    ``rank`` / ``world_size`` given): all read what is done, meet, then each answers a
    contiguous share of the rest into its own part file; after they meet again process 0
    merges, scores, prints and returns the result; the others return None. ``barrier``: a
    callable where the processes meet (default: ``torch.distributed.barrier`` if a process
    group is initialised).
    """
    from tqdm import tqdm

    from vega3d.eval.records import validate_prediction

    plan = prepare(
        benchmark, annotations_path, media_root, limit=limit, skip_missing=skip_missing, instruction=instruction
    )
    _positive("batch_size", batch_size)
    _positive("max_new_tokens", max_new_tokens)
    frames = _frame_count(answerer, num_frames)
    rank, world_size = _process(rank, world_size)
    main = rank == 0
    barrier = barrier if barrier is not None else _default_barrier
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "benchmark": benchmark,
        "annotations": str(Path(annotations_path).resolve()),
        "media_root": str(Path(media_root).resolve()),
        "num_frames": frames,
        "instruction": instruction,
        "max_new_tokens": max_new_tokens,
        "generative": generative,
        "model": model,
        "model_config": _model_config(answerer),
    }
    parts = stand_in_parts(answerer)
    settings.update({"stand_in": bool(parts), "stand_in_parts": parts})
    check_settings(out_dir, settings, write=main)
    wanted = {t.id for t in plan.tasks}
    own = answer_file(out_dir, rank, world_size)
    done = read_answers(out_dir, benchmark, wanted, own=own)
    if world_size > 1:
        barrier()  # every process has read the same answers before any writes new ones
    # grouped by media (stable: annotation order within a scene), so a scene's questions run
    # together; each process takes a contiguous share
    todo = sorted((t for t in plan.tasks if t.id not in done), key=lambda t: str(t.media))
    mine = todo[rank * len(todo) // world_size : (rank + 1) * len(todo) // world_size]
    resumed = len(done)
    if main and parts:
        print(_stand_in_note(parts), file=sys.stderr)
    if main:
        print(
            f"{benchmark}: {len(plan.tasks)} questions to answer ({plan.total} in the annotations"
            + (f", first {limit}" if limit is not None else "")
            + (f", {len(plan.skipped)} skipped: media missing" if plan.skipped else "")
            + f"); {resumed} already in {out_dir}, generating {len(todo)}"
            + (f" on {world_size} processes" if world_size > 1 else "")
        )

    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    if generative is not None:
        kwargs["generative"] = generative
    prepare_media = getattr(answerer, "prepare", None) if reuse_media else None
    reader = (
        MediaReader(prepare_media, [t.media for t in mine], read_ahead=read_ahead) if callable(prepare_media) else None
    )
    with (
        AnswerLog(own) as log,
        reader or nullcontext(),
        tqdm(total=len(mine), desc=f"{benchmark} answers", unit="q", disable=not (progress and main)) as bar,
    ):
        for start in range(0, len(mine), batch_size):
            chunk = mine[start : start + batch_size]
            try:
                # each scene read once (as in training) and reused for all its questions; else the path
                videos = [reader.get(t.media) if reader else str(t.media) for t in chunk]
                answers = answerer.answer([t.prompt for t in chunk], videos, **kwargs)
            except Vega3DError as err:
                raise Vega3DError(f"{benchmark} questions {[t.id for t in chunk]}: {err}") from err
            if len(answers) != len(chunk):
                raise Vega3DError(f"answerer returned {len(answers)} answers for {len(chunk)} questions")
            records = []
            for task, text in zip(chunk, answers):
                item_id, record = validate_prediction(
                    {"id": task.id, "prediction": text}, benchmark, where=f"answer to question {task.id!r}"
                )
                records.append({"id": item_id, **record})
            log.write(records)
            bar.update(len(chunk))

    if world_size > 1:
        barrier()
    if not main:
        return None
    done = read_answers(out_dir, benchmark, wanted)
    missing = [t.id for t in plan.tasks if t.id not in done]
    if missing:
        raise Vega3DError(
            f"{out_dir}: {len(missing)} questions have no answer after generation (first: {missing[:5]}); "
            f"did another process fail? Run the same command again to generate only those"
        )
    pred_path = finish(out_dir, benchmark, [{"id": t.id, **done[t.id]} for t in plan.tasks])
    return _score(
        benchmark,
        plan,
        pred_path,
        annotations_path,
        out_dir,
        limit,
        scorer,
        paper,
        {
            **settings,
            "counts": {
                "in_annotations": plan.total,
                "selected": plan.total if limit is None else min(limit, plan.total),
                "skipped_missing_media": len(plan.skipped),
                "answered": len(plan.tasks),
                "resumed": resumed,
                "generated": len(todo),
                "processes": world_size,
            },
            "skipped": plan.skipped,
        },
    )


def _score(benchmark, plan, pred_path, annotations_path, out_dir, limit, scorer, paper, run) -> dict:
    """Evaluate ``pred_path`` on the run's questions, print the summary line and the table,
    write ``result.json``."""
    from vega3d.eval.cli import _json_safe
    from vega3d.eval.table import render_table

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
    parts = run["stand_in_parts"]
    if parts:
        print(_stand_in_note(parts))
        rows = [(f"{label} (STAND-IN)", values) for label, values in rows]
    print(render_table(benchmark, columns, rows, paper=paper))

    result = {**result, "stand_in": bool(parts), "stand_in_parts": parts, "run": run}
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
    p.add_argument(
        "--media",
        required=True,
        type=Path,
        help="vsibench: folder with <dataset>/<scene>.mp4; scanqa/sqa3d: folder with <scene_id>/ scans",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (predictions.jsonl, run.json, result.json)")
    p.add_argument("--num-frames", type=int, help="frames sampled uniformly (default: as in training, else 32)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, help="only the first N questions of the annotation file")
    p.add_argument("--skip-missing", action="store_true", help="skip (and count) questions whose media is missing")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--instruction", help="text put on a line before every prompt (default: none)")
    p.add_argument(
        "--spatial-instruction",
        action="store_true",
        help="use Video-3D LLM's training-time spatial instruction as --instruction",
    )
    p.add_argument("--base", help="Qwen2.5-VL folder (default: the one the checkpoint records)")
    p.add_argument("--simulator", help="Wan2.1 folder (default: the one the checkpoint records)")
    p.add_argument(
        "--device",
        help="torch device (default: accelerate's - each process's GPU under "
        "`accelerate launch`, else cuda if available, else cpu)",
    )
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
    prepare(
        args.benchmark, args.gt, args.media, limit=args.limit, skip_missing=args.skip_missing, instruction=instruction
    )
    from accelerate import PartialState

    from vega3d.mllm.infer import Answerer

    state = PartialState(cpu=args.device == "cpu")  # joins the process group under accelerate launch / torchrun
    if state.num_processes > 1 and args.device not in (None, "cpu"):
        raise Vega3DError(
            f"--device {args.device}: with {state.num_processes} processes each uses its own device; "
            f"leave --device out (or give cpu)"
        )
    device = args.device or str(state.device)
    answerer = Answerer.from_checkpoint(
        args.model,
        base=args.base,
        simulator=args.simulator,
        device=device,
        dtype=args.dtype,
        num_frames=args.num_frames,
    )
    model = {
        "checkpoint": str(args.model.resolve()),
        "base": args.base,
        "simulator": args.simulator,
        "dtype": args.dtype,
    }
    run_benchmark(
        args.benchmark,
        answerer,
        args.gt,
        args.media,
        args.out,
        batch_size=args.batch_size,
        limit=args.limit,
        skip_missing=args.skip_missing,
        max_new_tokens=args.max_new_tokens,
        instruction=instruction,
        generative=False if args.baseline else None,
        model=model,
        paper=not args.no_paper,
        progress=not args.no_progress,
    )
    return 0
