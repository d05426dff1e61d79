"""One probe run, shared by ``vega3d probe`` and ``vega3d demo``: a scene and an encoder → the
encoder's scores next to the position-only control on the same grid → a table, figures and a
JSON report.

- :func:`load_probe_scene` — a scan folder (frames sampled uniformly) or the synthetic room;
  :func:`scene_warnings` says what loading changed.
- :func:`probe_encoder` — encode the frames, score them and the control: a :class:`ProbeRun`.
- :meth:`ProbeRun.report` / :meth:`ProbeRun.table` / :meth:`ProbeRun.save_figures` — its outputs.
- :func:`stage_bar` — one progress bar over the named steps of a job.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.probe.result import ProbeResult
from vega3d.probe.score import score

STAND_IN_TAG = " [STAND-IN: random weights, not the real model]"


def stand_in_tag(encoder_config: dict) -> str:
    """The title tag of an encoder's config: none for real weights; for a stand-in model folder what
    it holds (:func:`vega3d.standin.stand_in_label`: trained here or random), else :data:`STAND_IN_TAG`."""
    from vega3d.standin import stand_in_label

    if encoder_config.get("stand_in") is not True:
        return ""
    model = encoder_config.get("model")
    path = model.get("path") if isinstance(model, dict) else None
    return f" [STAND-IN: {stand_in_label(path)}, not the real model]" if path else STAND_IN_TAG


#: What the numbers mean, for a reader who has not read docs/probe.md.
READING = """\
How to read the probe's numbers:
  AUROC       how often a true correspondence (one 3D point seen in two frames) is more similar
              than a negative (a different 3D point): 0.5 is chance, 1.0 is perfect.
  headline    the position-controlled AUROC. Its negatives lie as far from the point's position
              in the first frame as the true match does, so knowing only where a cell is in the
              image scores 0.5 on it; only features that follow the 3D point score above 0.5.
  control     position-only features (they know where a cell is in the image, nothing else).
              Between nearby views "the same place in the image" is usually right, so the control
              scores high on random negatives and on the paper score, and can beat a model with
              random weights there; on the headline it stays near 0.5."""


def load_probe_scene(spec: str, frames: int, synthetic_size: str = "240x320", seed: int = 0):
    """A scan folder (``frames`` sampled uniformly) or, for ``"synthetic"``, the synthetic room
    of ``synthetic_size`` ("HxW") drawn from ``seed``. Checks the numbers before any work."""
    from vega3d.scenes import load_scene, synthetic_scene

    if frames < 2:
        raise Vega3DError(
            f"--frames {frames}: the correspondence probe compares frames pairwise; expected at least 2 frames"
        )
    if spec != "synthetic":
        return load_scene(spec, frames=frames)
    try:
        h, w = (int(v) for v in synthetic_size.lower().split("x"))
    except ValueError:
        raise Vega3DError(f"--synthetic-size {synthetic_size!r}: expected HxW, e.g. 240x320") from None
    return synthetic_scene(num_frames=frames, height=h, width=w, seed=seed)


def scene_warnings(scene, frames: int) -> list[str]:
    """What loading the scene changed or substituted, in words (from ``Scene.extras``): fewer
    frames than asked for, depth intrinsics taken from colour, frames with invalid poses."""
    extras = scene.extras if isinstance(scene.extras, dict) else {}
    out = []
    available = extras.get("num_available_frames")
    if available is not None and available < frames:
        out.append(f"asked for {frames} frames, the input has {available}: using all {available}")
    if extras.get("depth_intrinsics_from"):
        out.append(
            f"{scene.source}: no depth intrinsics file; depth has the colour image size, so the colour "
            f"intrinsics ({extras['depth_intrinsics_from']}) are used for depth"
        )
    invalid = extras.get("invalid_pose_frame_ids") or []
    if invalid:
        out.append(
            f"{len(invalid)} of {len(scene)} loaded frames have invalid (non-finite) poses, frame ids "
            f"{list(invalid)}: excluded from scoring"
        )
    return out


def scene_info(scene) -> dict:
    """The scene's identity in a report: name, source, frame ids and image sizes."""
    return {
        "name": scene.name,
        "source": scene.source,
        "num_frames": len(scene),
        "frame_ids": list(scene.frame_ids),
        "image_size": list(scene.image_size),
        "depth_size": list(scene.depth_size),
    }


def position_control(scene, grid: tuple[int, int], options: dict) -> ProbeResult:
    """The position-only control's scores on ``grid`` (the grid of the features it is compared with)."""
    from vega3d.encoders.position import PositionEncoder

    return score(scene, PositionEncoder(grid=tuple(grid))(scene.frames()), **options)


@dataclass
class ProbeRun:
    """An encoder's features of a scene, its scores and the position-only control's."""

    scene: object
    encoder: object
    features: torch.Tensor  # (N, h, w, C) float32
    result: ProbeResult
    control: ProbeResult  # the position-only control on the same grid (``result`` when the encoder is it)
    warnings: list[str]  # what loading the scene changed (scene_warnings)
    encode_s: float  # seconds spent encoding the frames

    @property
    def stand_in(self) -> bool:
        return self.encoder.config.get("stand_in") is True

    @property
    def tag(self) -> str:
        return stand_in_tag(self.encoder.config)

    def report(self, command: str, **extra) -> dict:
        """The JSON report: command, scene, warnings, encoder config, result, control, ``extra``."""
        return {
            "command": command,
            "scene": scene_info(self.scene),
            "warnings": self.warnings,
            "encoder": self.encoder.config,
            "result": self.result.to_dict(),
            "position_control": self.control.to_dict(),
            **extra,
        }

    def table(self, label: str) -> str:
        """The result's table under a title naming ``label``, the scene and the grid, then the
        control's (once: for the position encoder they are the same)."""
        h, w = self.result.grid_size
        title = f"{label} on {self.scene.name} ({len(self.scene)} frames, grid {h}x{w}){self.tag}"
        if self.encoder.name == "position":
            return self.result.table(f"{title}: the position-only control itself")
        return self.result.table(title) + "\n\n" + self.control.table("position-only control (same grid)")

    def save_figures(self, out: Path, label: str, *, heatmaps: str | None = None, pca: str | None = None) -> list[Path]:
        """Write the similarity heatmaps and the PCA picture to ``out``/``heatmaps`` and
        ``out``/``pca`` (each skipped when None); returns the paths written."""
        from vega3d.probe import figures

        out.mkdir(parents=True, exist_ok=True)
        written = []
        if heatmaps:
            title = f"{label} on {self.scene.name}{self.tag}"
            written.append(
                figures.similarity_heatmaps(self.scene, self.features, self.result, out / heatmaps, title=title)
            )
        if pca:
            title = f"{label}: PCA of features across views{self.tag}"
            written.append(figures.pca_figure(self.scene, self.features, out / pca, title=title))
        return written


def probe_encoder(scene, encoder, options: dict, *, warnings=(), progress: bool = False, step=None) -> ProbeRun:
    """Encode ``scene``'s frames with ``encoder``, score them (``options``: ProbeOptions fields)
    and score the position-only control on the same grid. ``step(name)``, when given, is told
    when encoding and scoring start (:func:`stage_bar`); ``progress`` shows the scoring bar."""
    if step:
        step("encoding frames")
    t0 = time.perf_counter()
    features = encoder(scene.frames())
    encode_s = time.perf_counter() - t0
    if step:
        step("scoring")
    result = score(scene, features, progress=progress, **options)
    control = result if encoder.name == "position" else position_control(scene, result.grid_size, options)
    return ProbeRun(scene, encoder, features, result, control, list(warnings), encode_s)


@contextmanager
def stage_bar(desc: str, total: int):
    """One progress bar (:func:`vega3d.progress.progress`) over a job's ``total`` named steps:
    yields ``step(name)``, called as each step starts. Log records are written above the bar, and
    the bar is closed when the block ends, before anything after the job is printed."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from vega3d.progress import progress

    started = 0
    bar = progress(total=total, desc=desc, unit="stage")

    def step(name: str) -> None:
        nonlocal started
        if started:
            bar.update(1)
        started += 1
        bar.set_postfix(step=name)

    with logging_redirect_tqdm(), bar:
        yield step
        if started:
            bar.update(1)
