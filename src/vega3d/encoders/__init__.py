"""Encoders behind one interface: frames (N, 3, H, W) float [0, 1] -> grid (N, h, w, C) float32
covering the full frame (vega3d.grids). Each has ``.name`` and ``.config`` (a JSON-ready dict).

- ``pixels``      patch-averaged colour (:class:`PixelEncoder`)
- ``position``    Fourier features of the cell's image position, the position-only control
- ``random_vit``  a random-init ViT: the floor for a learned architecture (keeps local appearance;
                  not the probe's chance floor, which is AUROC 0.5)
- ``wan``         the Wan2.1 world simulator (vega3d.simulator), any block / timestep
- ``hf``          any local Hugging Face vision backbone (SigLIP, DINOv2, CLIP, ...)
- the other towers of the paper's Figure 3 (docs/towers.md): ``sd21`` (Stable Diffusion 2.1 UNet,
  DIFT-style), ``svd`` (Stable Video Diffusion UNet), ``wan_vace`` (Wan2.1-VACE through the
  simulator), ``wan_vae`` (Wan VAE latents), ``vjepa2`` (V-JEPA 2), ``dinov3`` (DINOv3, registers
  and CLS by name), ``vggt`` (VGGT aggregator tokens, when its package is installed)
- ``effnet_lite0`` EfficientNet-Lite0 with its ImageNet weights (optional extra ``real-weights``) or
                  seeded random ones (``pretrained=False``): a real trained network, offline

:func:`check_encoder` checks a name and its options without building anything (no weights are
read); :func:`build_encoder` checks, then builds.
"""

from __future__ import annotations

import importlib
import inspect

from vega3d.errors import Vega3DError

ENCODERS = {
    "pixels": "vega3d.encoders.pixels:PixelEncoder",
    "position": "vega3d.encoders.position:PositionEncoder",
    "random_vit": "vega3d.encoders.random_vit:RandomViTEncoder",
    "wan": "vega3d.encoders.wan:WanEncoder",
    "hf": "vega3d.encoders.hf:HFEncoder",
    "sd21": "vega3d.encoders.sd21:SD21Encoder",
    "svd": "vega3d.encoders.svd:SVDEncoder",
    "wan_vace": "vega3d.encoders.wan_vace:WanVACEEncoder",
    "wan_vae": "vega3d.encoders.wan_vae:WanVAEEncoder",
    "vjepa2": "vega3d.encoders.vjepa2:VJEPA2Encoder",
    "dinov3": "vega3d.encoders.dinov3:DINOv3Encoder",
    "vggt": "vega3d.encoders.vggt:VGGTEncoder",
    "effnet_lite0": "vega3d.encoders.effnet:EffNetLite0Encoder",
}
# encoders that read weights from a local folder, passed as model=FOLDER (--model FOLDER): their one
# required option
MODEL_FOLDERS = {"wan": "a Wan2.1-T2V folder", "hf": "a local Hugging Face vision backbone folder"}
MODEL_FOLDERS.update(
    sd21="a Stable Diffusion 2.1 folder (diffusers layout)",
    svd="a Stable Video Diffusion folder (diffusers layout)",
    wan_vace="a Wan2.1-VACE folder (diffusers layout)",
    wan_vae="a Wan2.1 folder (its VAE is read)",
    vjepa2="a V-JEPA 2 folder (transformers layout)",
    dinov3="a DINOv3 ViT folder (transformers layout)",
    vggt="a VGGT-1B folder",
)
# encoders that hand their other keyword options on to this function
FORWARDED = {
    "wan": "vega3d.simulator:WanWorldSimulator.from_pretrained",
    "wan_vace": "vega3d.simulator:WanWorldSimulator.from_pretrained",
}


def _resolve(target: str):
    module, attr = target.split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _parameters(fn) -> dict[str, inspect.Parameter]:
    """Named keyword parameters of ``fn`` (``self``/``cls``/``path`` and ``*args``/``**kw`` left out)."""
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        k: p
        for k, p in inspect.signature(fn).parameters.items()
        if k not in ("self", "cls", "path") and p.kind not in skip
    }


def check_encoder(name: str, options: dict) -> type:
    """The class of encoder ``name`` once ``options`` are known to be its options and the
    required ones are given (``model`` for ``wan`` and ``hf``). Imports the encoder's module,
    builds nothing. :class:`Vega3DError` naming what was found and what is expected otherwise."""
    if name not in ENCODERS:
        raise Vega3DError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    cls = _resolve(ENCODERS[name])
    params = _parameters(cls.__init__)
    valid = set(params) | (set(_parameters(_resolve(FORWARDED[name]))) if name in FORWARDED else set())
    unknown = sorted(set(options) - valid)
    if unknown:
        raise Vega3DError(f"encoder {name!r}: unknown option(s) {unknown}; valid: {sorted(valid)}")
    built_from = {"simulator", "components"} & {k for k, v in options.items() if v is not None}
    if name in MODEL_FOLDERS and options.get("model") is None and not built_from:
        raise Vega3DError(f"encoder {name!r} needs model=<{MODEL_FOLDERS[name]}> (on the command line: --model DIR)")
    if hasattr(cls, "check_options"):  # an encoder's own value checks that need no weights
        cls.check_options(options)
    return cls


def build_encoder(name: str, **options):
    """The encoder called ``name`` (one of :data:`ENCODERS`) built with ``options``, after
    :func:`check_encoder`. ``wan`` and ``hf`` need ``model=<local folder>``."""
    return check_encoder(name, options)(**options)


__all__ = ["ENCODERS", "build_encoder", "check_encoder"]
