"""Posed RGB-D scenes: the :class:`Scene`, loaders for scan layouts, frame sampling, synthetic scenes.

- :func:`load_scene` — ScanNet SensReader and ``posed_images`` folders (auto-detected).
- :func:`sample_frames` — uniform frame sampling (LLaVA-Video's ``np.linspace(..., dtype=int)`` rule).
- :func:`synthetic_scene` — a ray-cast textured room with exact depth and poses.
- :func:`write_scene` — a Scene back to either folder layout.
- :mod:`vega3d.scenes.geometry` — back-projection and projection helpers.
"""

from vega3d.scenes.loaders import detect_layout, load_scene
from vega3d.scenes.sampling import sample_frames
from vega3d.scenes.scene import Scene
from vega3d.scenes.synthetic import synthetic_scene
from vega3d.scenes.writer import write_scene

__all__ = ["Scene", "detect_layout", "load_scene", "sample_frames", "synthetic_scene", "write_scene"]
