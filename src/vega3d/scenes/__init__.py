"""Posed RGB-D scenes: the :class:`Scene`, loaders for scan layouts, frame sampling, synthetic scenes."""

from vega3d.scenes.scene import Scene

__all__ = ["Scene"]
