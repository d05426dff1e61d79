"""Shared pieces of the feature-store tests.

``PatchMeanExtractor`` is a small deterministic extractor used to test the store's mechanics
(writing, reading, resuming, ranks) quickly; the end-to-end tests use the tiny Wan simulator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytest
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PatchMeanConfig:
    model: str = "patch-mean-test-extractor"
    channels: int = 6
    patch: int = 8
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class PatchMeanExtractor:
    """Mean colour of each patch x patch cell, mapped to ``channels`` by a seeded random matrix
    (plus a squared term so values vary per channel): (N, 3, H, W) -> (N, H/patch, W/patch, channels)."""

    def __init__(self, **kw):
        self.config = PatchMeanConfig(**kw)
        g = torch.Generator().manual_seed(self.config.seed)
        self.weight = torch.randn(3, self.config.channels, generator=g)
        self.calls = 0

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        cells = F.avg_pool2d(frames.float(), self.config.patch).permute(0, 2, 3, 1)
        y = cells @ self.weight
        return y + 0.1 * y * y


@pytest.fixture
def extractor():
    return PatchMeanExtractor()


def random_features(n=3, h=4, w=5, c=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, h, w, c, generator=g)
