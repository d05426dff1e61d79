"""A runner's output folder: settings, answers appended as generated, resume, final merge.

Files in the folder:

- ``run.json`` — the run's settings (benchmark, annotations, media root, frames, prompt
  instruction, generation length, model identity). A run that finds answers written
  under other settings stops (:func:`check_settings`).
- ``predictions.jsonl`` — the final predictions, one record per question in annotation
  order (:func:`vega3d.eval.records.write_predictions`). A single process also appends
  its answers here while it generates.
- ``predictions.part<rank>.jsonl`` — where process ``rank`` of a multi-process run appends;
  merged into ``predictions.jsonl`` and removed by :func:`finish`.
- ``result.json`` — the scores, the run's settings and its stand-in parts (:func:`report`).

A run's steps: :func:`resume` (check the settings, read the answers already there), answer into
the process's :class:`AnswerLog`, :func:`merge` (process 0, all done), score, :func:`report`.

Every answer is one JSON line, written with the rest of its batch and fsynced, so a crash
loses at most the batch in flight; a last line cut off mid-write is ignored, and removed
by the process that owns the file (:func:`read_answers`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json

PREDICTIONS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"
PART_PATTERN = "predictions.part*.jsonl"
RESULT_FILE = "result.json"


def answer_file(out_dir: Path, rank: int, world_size: int) -> Path:
    """Where process ``rank`` of ``world_size`` appends its answers."""
    return out_dir / (PREDICTIONS_FILE if world_size == 1 else f"predictions.part{rank}.jsonl")


def answer_files(out_dir: Path) -> list[Path]:
    """The files holding answers: ``predictions.jsonl`` and any part files, if present."""
    files = [out_dir / PREDICTIONS_FILE] + sorted(out_dir.glob(PART_PATTERN))
    return [f for f in files if f.is_file()]


def check_settings(out_dir: Path, settings: dict, *, write: bool) -> None:
    """On a fresh folder write ``run.json`` (if ``write``); where answers exist require the
    settings they were made with."""
    path = out_dir / RUN_FILE
    have_answers = bool(answer_files(out_dir))
    if path.is_file():
        recorded = read_json(path, "run settings")
        diff = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        if diff and have_answers:
            details = "; ".join(f"{k}: recorded {recorded.get(k)!r}, now {settings.get(k)!r}" for k in diff[:4])
            raise Vega3DError(
                f"{out_dir}: holds predictions of a run with other settings ({details}); "
                f"use another output folder or delete it"
            )
    elif have_answers:
        raise Vega3DError(
            f"{answer_files(out_dir)[0]} exists but {path} does not: not written by this runner; "
            f"use another output folder"
        )
    if write:
        write_json(path, settings, sort_keys=True)


def read_answers(out_dir: Path, benchmark: str, wanted: set[str], own: Path | None = None) -> dict[str, dict]:
    """All answers already in the folder, ``{id: record}``, each validated.

    Every id must be one of ``wanted`` (this run's questions); an id in two files must have
    the same record there (a merge interrupted before the part files were removed). A last
    line without a newline that is not valid JSON was cut off by a crash: it is ignored, and
    removed (printed) when the file is ``own`` — the file this process appends to.
    """
    from vega3d.eval.records import check_prediction, parse_lines

    done: dict[str, dict] = {}
    where_seen: dict[str, str] = {}
    for path in answer_files(out_dir):
        for line, where in parse_lines(_complete_lines(path, own=path == own), path):
            record = check_prediction(line, benchmark, where)
            item_id = record.pop("id")
            if item_id not in wanted:
                raise Vega3DError(
                    f"{where}: prediction id {item_id!r} is not among this run's questions; use another output folder"
                )
            if item_id in done and done[item_id] != record:
                raise Vega3DError(f"{where}: id {item_id!r} has another answer in {where_seen[item_id]}")
            done[item_id] = record
            where_seen.setdefault(item_id, where)
    return done


def _complete_lines(path: Path, own: bool) -> list[str]:
    """The lines of an answer file without a last line cut off mid-write (no newline, not
    valid JSON); in the process's ``own`` file that line is removed, or a missing final
    newline added, so that appending goes on cleanly."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
        except ValueError:
            data = data[:cut]
            if own:
                print(f"{path}: dropping an incomplete last line (interrupted write); it is generated again")
                with path.open("r+b") as handle:
                    handle.truncate(cut)
        else:
            if own:
                with path.open("ab") as handle:
                    handle.write(b"\n")
    return data.decode("utf-8").splitlines()


class AnswerLog:
    """Appends answers to one file: ``write(records)`` writes a batch as JSON lines, flushed
    and fsynced. A context manager."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def write(self, records: list[dict]) -> None:
        self._handle.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AnswerLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def finish(out_dir: Path, benchmark: str, records: list[dict]) -> Path:
    """Write ``predictions.jsonl`` (all ``records``, validated, atomically) and remove the
    part files whose answers it now holds."""
    from vega3d.eval.records import write_predictions

    path = out_dir / PREDICTIONS_FILE
    write_predictions(path, benchmark, records)
    for part in sorted(out_dir.glob(PART_PATTERN)):
        part.unlink()
    return path


def resume(out_dir: Path, benchmark: str, settings: dict, ids: set[str], rank: int, world_size: int, meet):
    """This process's start: the folder made, :func:`check_settings` (process 0 writes them), the
    answers already there read; every process has read them before any writes (``meet``). Returns
    ``(the file this process appends to, {id: answer} done)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    check_settings(out_dir, settings, write=rank == 0)
    own = answer_file(out_dir, rank, world_size)
    done = read_answers(out_dir, benchmark, ids, own=own)
    meet()
    return own, done


def merge(out_dir: Path, benchmark: str, ids: list[str]) -> Path:
    """Process 0, once every process has answered its share: every answer into ``predictions.jsonl``
    in the order of ``ids``."""
    done = read_answers(out_dir, benchmark, set(ids))
    missing = [i for i in ids if i not in done]  # every process answered its share before the barrier
    assert not missing, f"{out_dir}: no answer to {missing[:5]} after generation; rerun to generate only those"
    return finish(out_dir, benchmark, [{"id": i, **done[i]} for i in ids])


def report(benchmark: str, module, result: dict, run: dict, out_dir: Path, pred_path: Path, annotations,
           paper: bool) -> dict:  # fmt: skip
    """Print the benchmark's table (``module.table_rows``; paper rows unless not ``paper``; rows
    marked STAND-IN when ``run["stand_in_parts"]``) and write ``result.json``: the scores, the
    stand-in parts and the run's settings. Returns that result."""
    from vega3d.eval.table import render_table

    columns, rows = module.table_rows(result)
    parts = run["stand_in_parts"]
    if parts:
        rows = [(f"{label} (STAND-IN)", values) for label, values in rows]
    print(render_table(benchmark, columns, rows, paper=paper))
    result = {**result, "stand_in": bool(parts), "stand_in_parts": parts, "run": run}
    write_json(out_dir / RESULT_FILE, {"predictions": str(pred_path), "annotations": str(annotations), **result})
    return result
