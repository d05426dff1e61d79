"""A model that takes online features from an attached simulator (``Vega3DQwen``, ``Video3DLLM``,
``VLAPolicy``): :class:`AttachedSimulator`, their one way to hold it and run it.

The simulator (a frozen :class:`~vega3d.simulator.WanWorldSimulator`, or the feature cache in front
of one, :class:`vega3d.store.CachedExtractor`) is a plain attribute: not a submodule, so it never
appears in ``state_dict`` or a checkpoint and ``.to()`` never moves it; it may sit on another
device. It runs without gradients and outside any autocast: it keeps its own dtype.
"""

from __future__ import annotations

import torch

from vega3d.errors import Vega3DError


class AttachedSimulator:
    """Mixin of an ``nn.Module`` whose ``config.generative_dim`` is the width of the features it takes.
    ``__init__`` calls ``self.attach_simulator(None)`` (before anything reads :attr:`simulator`)."""

    def attach_simulator(self, simulator) -> None:
        """Use ``simulator`` (any device; None: none) for online features; its ``feature_dim`` must
        be the model's ``generative_dim``."""
        if simulator is not None and int(simulator.feature_dim) != int(self.config.generative_dim):
            raise Vega3DError(
                f"simulator feature_dim={simulator.feature_dim} but the model expects "
                f"generative_dim={self.config.generative_dim}"
            )
        self.__dict__["_simulator"] = simulator  # past nn.Module.__setattr__: never a submodule

    @property
    def simulator(self):
        return self.__dict__["_simulator"]

    def feature_cache_stats(self) -> dict:
        """Counters of the attached simulator's feature cache (:class:`vega3d.store.CachedExtractor`:
        hits, disk_hits, misses, evictions, entries, bytes, max_bytes); empty without one."""
        stats = getattr(self.simulator, "stats", None)
        return stats() if callable(stats) else {}

    def _require_simulator(self, precomputed: str) -> None:
        """An error unless a simulator is attached; ``precomputed`` names the argument that carries
        precomputed features instead."""
        if self.simulator is None:
            raise Vega3DError(
                f"the generative branch needs Wan features: pass {precomputed} (precomputed, e.g. from a "
                "FeatureStore) or attach a WanWorldSimulator with attach_simulator()"
            )

    def _extract(self, frames) -> torch.Tensor:
        """The attached simulator's ``extract(frames)``: no gradients, no autocast."""
        assert self.simulator is not None, "checked by _require_simulator"
        device = torch.device(self.simulator.device)
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            return self.simulator.extract(frames)
