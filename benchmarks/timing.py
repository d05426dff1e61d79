"""Timing helpers of the benchmark scripts (``from timing import ...``; a script's folder is on its
path): best-of-N wall time with CUDA synchronised, and the peak CUDA memory of a block."""

from __future__ import annotations

import time

import torch


def sync(device) -> None:
    """Wait for the device's queued work (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn, device, repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


class Peak:
    """Peak CUDA memory allocated during a ``with`` block: ``peak_bytes`` in all, in GiB ``total_gib``
    and ``gib`` (above the block's start); all None on the CPU."""

    def __init__(self, device):
        self.device, self.peak_bytes, self.gib, self.total_gib = device, None, None, None

    def __enter__(self):
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            sync(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            self.total_gib = self.peak_bytes / 2**30
            self.gib = self.total_gib - self.start / 2**30
