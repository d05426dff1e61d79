"""Which questions a runner answers, with what prompt, about which video or scan.

:func:`prepare` loads a benchmark's annotations (the benchmark module's
``load_annotations``), keeps the first ``limit`` questions, builds each prompt (the
question's ``.prompt``, optionally after an ``instruction`` line) and finds its media under
the media root:

- VSI-Bench: ``<root>/<dataset>/<scene_name>.mp4`` (``Question.video_path``);
- ScanQA / SQA3D: ``<root>/<scene_id>`` — a ScanNet scan folder or a plain frame folder —
  else ``<root>/<scene_id>.mp4``.

A question whose media is missing is a :class:`Vega3DError` naming its id and the paths
tried, or, with ``skip_missing``, left out and listed in ``Plan.skipped``. Its kind is
:func:`vega3d.media.media_kind`'s (the rule ``vega3d extract`` and training use). The media
is read the way training does (:func:`vega3d.media.load_media`: uniform frame sampling;
scans through :func:`vega3d.scenes.load_scene`), once per scene
(:mod:`~vega3d.eval.runners.media`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from vega3d.config import Config, Int
from vega3d.errors import Vega3DError
from vega3d.media import media_kind

TEXT_BENCHMARKS = ("vsibench", "scanqa", "sqa3d")
BOX_BENCHMARKS = ("scanrefer", "multi3drefer", "scan2cap")


#: A count argument of a run: None (the default) or an integer >= 1.
Positive = Annotated[Int, Field(ge=1)]
Count = Positive | None
POSITIVE = "None or a positive integer"


class RunArguments(Config):
    """The arguments of a run that need no file (checked by :func:`check_arguments`); a bad one is
    ``name: got VALUE; expected DESCRIPTION``."""

    WHAT = ""

    # one the runner answers with the MLLM's text output
    benchmark: Literal[TEXT_BENCHMARKS] = Field(description=f"one of the runner's benchmarks {TEXT_BENCHMARKS}")
    num_frames: Count = Field(None, description=POSITIVE)  # frames per video
    batch_size: Count = Field(None, description=POSITIVE)  # questions per answer() call
    limit: Count = Field(None, description=POSITIVE)  # only the first N questions of the annotation file
    max_new_tokens: Count = Field(None, description=POSITIVE)  # longest answer in tokens


def check_arguments(benchmark: str, **counts) -> None:
    """A run's arguments: ``benchmark`` one the runner can answer with the MLLM's text output, and
    ``counts`` (``batch_size``, ``num_frames``, ``limit``, ``max_new_tokens``) each None or an
    integer >= 1 (:class:`RunArguments`)."""
    if benchmark in BOX_BENCHMARKS:
        raise Vega3DError(
            f"{benchmark}: the VEGA-3D MLLM has no grounding/box head yet, so it cannot produce "
            f"{benchmark} predictions (boxes); predictions from another source can be scored with "
            f"`vega3d eval {benchmark} --pred preds.jsonl --gt ANNOTATIONS` (format in docs/eval.md)"
        )
    RunArguments(benchmark=benchmark, **counts)


@dataclass(frozen=True)
class Task:
    """One question to answer: its id, the text prompt, the media path and its ``kind``
    (``"video"`` file, ``"frames"`` folder or ``"scan"`` folder)."""

    id: str
    prompt: str
    media: Path
    kind: str


@dataclass(frozen=True)
class Plan:
    """What a run answers: ``questions`` (loaded annotation items in file order, after
    ``limit``, without skipped ones), their ``tasks`` (same order), the ``skipped``
    ``{"id", "path"}`` records and ``total`` (questions in the annotation file)."""

    questions: list
    tasks: list[Task]
    skipped: list[dict]
    total: int


def media_candidates(benchmark: str, question, root: Path) -> list[Path]:
    """Where a question's video / scan may be, in the order they are tried (none without a scene id)."""
    if benchmark == "vsibench":
        return [question.video_path(root)]
    return [root / question.scene_id, root / f"{question.scene_id}.mp4"] if question.scene_id else []


def prepare(
    benchmark: str,
    annotations_path,
    media_root,
    *,
    limit: int | None = None,
    skip_missing: bool = False,
    instruction: str | None = None,
) -> Plan:
    """Load the annotations and find every question's media (no model needed); the arguments
    are :func:`check_arguments`'s."""
    module = importlib.import_module(f"vega3d.eval.{benchmark}")
    questions = module.load_annotations(annotations_path)  # the annotations are checked before the media
    root = Path(media_root)
    if not root.is_dir():
        raise Vega3DError(f"media root {root} is not a folder")
    total = len(questions)
    questions = questions[:limit] if limit is not None else questions
    kept, tasks, skipped = [], [], []
    for question in questions:
        path, kind = _locate(benchmark, question, root, skip_missing)
        if kind is None:
            skipped.append({"id": question.id, "path": str(path)})
            continue
        prompt = question.prompt if not instruction else f"{instruction}\n{question.prompt}"
        kept.append(question)
        tasks.append(Task(id=question.id, prompt=prompt, media=path, kind=kind))
    if not tasks:
        raise Vega3DError(f"{benchmark}: nothing to answer: all {len(questions)} selected questions lack media")
    if benchmark == "vsibench":  # a selection the scorer refuses (Rel. Dir. without all 3 sub-tasks) fails now
        module.check_directions([q.question_type for q in kept], "the selected questions cannot be scored: ")
    return Plan(questions=kept, tasks=tasks, skipped=skipped, total=total)


def _locate(benchmark: str, question, root: Path, skip_missing: bool) -> tuple[Path, str | None]:
    """A question's media and its kind; ``(the first place tried, None)`` when it is missing
    and ``skip_missing``."""
    candidates = media_candidates(benchmark, question, root)
    if not candidates:
        raise Vega3DError(
            f"{benchmark} question {question.id!r}: no scene id in the annotations "
            f"(llava-style 'video' field or official 'scene_id') to find its scan"
        )
    found = next((p for p in candidates if p.exists()), None)
    if found is None and skip_missing:
        return candidates[0], None
    if found is None:
        tried = " or ".join(str(p) for p in candidates)
        raise Vega3DError(
            f"{benchmark} question {question.id!r}: media not found: {tried} "
            f"(skip such questions with skip_missing / --skip-missing)"
        )
    kind = media_kind(found)
    if kind is None:
        raise Vega3DError(
            f"{benchmark} question {question.id!r}: {found} is neither a video file, a folder of frames nor a scan folder"
        )
    return found, kind
