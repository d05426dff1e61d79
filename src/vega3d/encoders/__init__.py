"""Encoders behind one interface: frames (N, 3, H, W) float [0, 1] -> grid (N, h, w, C) float32
covering the full frame (vega3d.grids). Each has ``.name`` and ``.config`` (a JSON-ready dict).

- ``pixels``      patch-averaged colour (:class:`PixelEncoder`)
- ``position``    Fourier features of the cell's image position, the position-only control
- ``random_vit``  a random-init ViT: the floor for a learned architecture (keeps local appearance;
                  not the probe's chance floor, which is AUROC 0.5)
- ``wan``         the Wan2.1 world simulator (vega3d.simulator), any block / timestep
- ``hf``          any local Hugging Face vision backbone (SigLIP, DINOv2, CLIP, ...)
"""

from __future__ import annotations

from vega3d.errors import Vega3DError

ENCODERS = {
    "pixels": "vega3d.encoders.pixels:PixelEncoder",
    "position": "vega3d.encoders.position:PositionEncoder",
    "random_vit": "vega3d.encoders.random_vit:RandomViTEncoder",
    "wan": "vega3d.encoders.wan:WanEncoder",
    "hf": "vega3d.encoders.hf:HFEncoder",
}


def build_encoder(name: str, **options):
    """The encoder called ``name`` (one of :data:`ENCODERS`) built with ``options``.

    ``wan`` and ``hf`` need ``model=<local folder>``.
    """
    import importlib
    import inspect

    if name not in ENCODERS:
        raise Vega3DError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    module, cls_name = ENCODERS[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params) - {"self"})
        if unknown:
            raise Vega3DError(
                f"encoder {name!r}: unknown option(s) {unknown}; valid: {sorted(k for k in params if k != 'self')}"
            )
    return cls(**options)


__all__ = ["ENCODERS", "build_encoder"]
