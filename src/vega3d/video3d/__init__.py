"""The Video-3D LLM setting's model-independent half: geometry, frame selection, data formats.

Geometry (:mod:`vega3d.video3d.geometry`; names fixed by issue 9):

- :func:`world_coordinate_map` — depth → (384, 384, 3) aligned world coordinates (``resize`` or
  ``center_crop`` geometry);
- :func:`patch_world_coords` — (…, 14, 14, 3) token positions (27-px bins of the top-left 378 px);
- :func:`discretize`, :func:`sin3d` — the "avg-discrete-sin3d" position embedding;
- :func:`box_cells`, :func:`object_features` — proposal features from pre-pool SigLIP cells;
- :func:`select_multi`, :func:`select_single` — grounding predictions from InfoNCE scores;
  :func:`best_proposal` — Scan2Cap's proposal for a GT object.

Frames (:mod:`vega3d.video3d.frames`): :func:`uniform_frames`, :func:`max_coverage`,
:func:`frames_for_ratio`; :func:`max_coverage_record` runs maximum coverage on a scan folder.

Data (:mod:`vega3d.video3d.formats`, :mod:`vega3d.video3d.data`): readers of the released files,
:class:`Video3DData` (one ``data/`` folder → frames, world maps, proposals), and
:func:`write_tiny_dataset` (synthetic scans in exactly those formats). Docs: docs/video3d.md.
"""

import importlib

_EXPORTS = {
    "PosedFrames": "vega3d.video3d.data",
    "Video3DData": "vega3d.video3d.data",
    "Video3DInputs": "vega3d.video3d.data",
    "list_posed_frames": "vega3d.video3d.data",
    "max_coverage_record": "vega3d.video3d.data",
    "read_posed_frames": "vega3d.video3d.data",
    "TASKS": "vega3d.video3d.formats",
    "Sample": "vega3d.video3d.formats",
    "ScanInfo": "vega3d.video3d.formats",
    "check_samples": "vega3d.video3d.formats",
    "read_boxes": "vega3d.video3d.formats",
    "read_embodiedscan_infos": "vega3d.video3d.formats",
    "read_samples": "vega3d.video3d.formats",
    "read_scene_voxels": "vega3d.video3d.formats",
    "read_select_frames": "vega3d.video3d.formats",
    "write_select_frames": "vega3d.video3d.formats",
    "Coverage": "vega3d.video3d.frames",
    "SelectFrames": "vega3d.video3d.frames",
    "candidate_positions": "vega3d.video3d.frames",
    "frames_for_ratio": "vega3d.video3d.frames",
    "max_coverage": "vega3d.video3d.frames",
    "uniform_frames": "vega3d.video3d.frames",
    "voxel_keys": "vega3d.video3d.frames",
    "TOKENS_PER_FRAME": "vega3d.video3d.geometry",
    "best_proposal": "vega3d.video3d.geometry",
    "box_cells": "vega3d.video3d.geometry",
    "discretize": "vega3d.video3d.geometry",
    "map_pixels": "vega3d.video3d.geometry",
    "nearest_indices": "vega3d.video3d.geometry",
    "object_features": "vega3d.video3d.geometry",
    "patch_world_coords": "vega3d.video3d.geometry",
    "select_multi": "vega3d.video3d.geometry",
    "select_single": "vega3d.video3d.geometry",
    "sin3d": "vega3d.video3d.geometry",
    "unproject_depth": "vega3d.video3d.geometry",
    "world_coordinate_map": "vega3d.video3d.geometry",
    "TinyDatasetConfig": "vega3d.video3d.tiny",
    "write_tiny_dataset": "vega3d.video3d.tiny",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy, so that `vega3d --help` (which imports vega3d.video3d.cli) stays fast
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vega3d.video3d' has no attribute {name!r}")
