"""Clip mode in a store: :meth:`WanWorldSimulator.extract_clip` as a store extractor.

In clip mode an item's ``N = 1 + 4k`` frames are encoded as one video, giving ``1 + k``
latent frames (latent 0 is the clip's first frame alone, latent ``m`` summarises its frames
``4m-3 .. 4m``). The store keeps one row per latent frame and labels row ``m`` with the frame
index of the **last** frame it summarises (frame ``4m`` of the clip; frame 0 for row 0), so
``FeatureStore.get`` returns ``(features (1 + k, h, w, C), labels)``; the record's
``clip_frames`` lists all ``N`` frames of the clip. The store config has ``mode: "clip"``.
"""

from __future__ import annotations

from typing import Any


class ClipExtractor:
    """Wraps a simulator so :func:`vega3d.store.extract.extract_to_store` stores clip-mode features.

    ``extract_rows(frames (N, 3, H, W)) -> (features (1 + k, h, w, C), groups)``, ``groups[m]``
    the positions (0..N-1) of the frames latent ``m`` summarises; ``config`` is the
    simulator's ``clip_config``.
    """

    def __init__(self, simulator: Any):
        self.simulator = simulator

    @property
    def config(self):
        return self.simulator.clip_config

    def extract_rows(self, frames):
        out = self.simulator.extract_clip(frames)
        return out.features, [list(g) for g in out.latent_frames]
