"""``hf``: any Hugging Face vision backbone from a local folder (SigLIP, DINOv2, CLIP, ...).

Loading: ``transformers.AutoModel.from_pretrained(folder, local_files_only=True)``; a
dual-encoder (SigLIP, CLIP) contributes its ``vision_model``. Preprocessing: the whole
frame is resized to the model's image size (``vision_config.image_size``, rounded down to a
multiple of the patch size — the pixels the patch convolution covers; no crop, so the grid covers
the full frame) and normalised with ``image_mean`` / ``image_std`` read as
plain JSON from the folder's ``preprocessor_config.json`` (pass ``mean``/``std`` to
override; without either this is an error, never a silent default). Output: the patch
tokens of the chosen hidden layer reshaped to the (image_size/patch)^2 grid; CLS and
register tokens (whatever precedes the patches) are dropped.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from vega3d.devices import dtype_name, parse_dtype
from vega3d.encoders.common import Encoder, check_layer, model_config, normalisation, resize_whole
from vega3d.errors import Vega3DError


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class HFEncoder(Encoder):
    """Patch-token grids of a local Hugging Face vision model (module docstring).

    ``model``: folder. ``layer``: index into ``hidden_states`` (None: ``last_hidden_state``
    as the model defines it); ``hidden_states`` has ``num_hidden_layers + 1`` entries (0 = the
    embeddings), negative indices count from the end as in Python, anything else is an error.
    ``image_size``: override the input size (int or (h, w); position embeddings are
    interpolated). ``mean``/``std``: override the normalisation.
    """

    name = "hf"

    def __init__(
        self,
        model,
        layer: int | None = None,
        image_size=None,
        mean=None,
        std=None,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        folder, _ = model_config(model, "hf encoder", "a Hugging Face model folder")
        self.dtype, self.device = parse_dtype(dtype, "hf encoder: dtype"), torch.device(device)
        mean, std = normalisation(folder, mean, std, ("preprocessor_config.json",), "hf encoder")  # before the weights
        net, vcfg = _load_vision_model(folder, self.dtype)
        self.model = net.to(device).eval()
        self.image_size, self.grid, native_grid = _input_grid(vcfg, image_size)
        # models with a switch (CLIP, SigLIP) need it off-native; DINOv2 always interpolates
        self.interpolate = (
            self.grid != native_grid and "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters
        )
        # hidden_states holds the embedding output and then one entry per layer
        n = self.num_hidden_states = int(getattr(vcfg, "num_hidden_layers", 0)) + 1
        check_layer(layer, n, f"hf encoder ({folder}, {type(self.model).__name__})")
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.layer, self.batch_size = layer, int(batch_size)
        self.config = {
            "name": self.name,
            "model": str(folder.resolve()),
            "class": type(self.model).__name__,
            "model_type": getattr(vcfg, "model_type", None),
            "layer": layer,
            "image_size": list(self.image_size),
            "grid": list(self.grid),
            "mean": mean,
            "std": std,
            "dtype": dtype_name(self.dtype),
        }

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            tokens = self._tokens((resize_whole(x[s : s + self.batch_size], self.image_size) - self.mean) / self.std)
            extra = tokens.shape[1] - h * w  # CLS and register tokens precede the patches
            assert extra >= 0, f"{tokens.shape[1]} tokens for a {h}x{w} patch grid"
            out.append(tokens[:, extra:].reshape(-1, h, w, tokens.shape[-1]).float().cpu())
        return torch.cat(out).contiguous()

    def _tokens(self, px: torch.Tensor) -> torch.Tensor:
        """The chosen layer's tokens (B, T, C) for normalised pixels ``px``."""
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        px = px.to(self.device, self.dtype)
        res = self.model(pixel_values=px, output_hidden_states=self.layer is not None, **kwargs)
        if self.layer is None:
            return res.last_hidden_state
        assert len(res.hidden_states) == self.num_hidden_states, "hidden states differ from the config's layer count"
        return res.hidden_states[self.layer]


def _load_vision_model(folder: Path, dtype: torch.dtype):
    """The vision tower of ``transformers.AutoModel`` at ``folder`` (a dual encoder's
    ``vision_model``) and its vision config."""
    from transformers import AutoModel

    try:
        full = AutoModel.from_pretrained(folder, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        raise Vega3DError(f"hf encoder: could not load {folder} with transformers.AutoModel: {err}") from err
    vcfg = getattr(full.config, "vision_config", full.config)
    if not hasattr(vcfg, "patch_size") or not hasattr(vcfg, "image_size"):
        raise Vega3DError(
            f"hf encoder: {folder} ({type(full).__name__}) is not a ViT-style vision model "
            f"(its config has no patch_size/image_size)"
        )
    return getattr(full, "vision_model", full), vcfg


def _input_grid(vcfg, image_size) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(input size, patch grid, the model's native patch grid) for ``image_size`` (None: native)."""
    native, patch = _pair(vcfg.image_size), _pair(vcfg.patch_size)
    native_grid = (native[0] // patch[0], native[1] // patch[1])
    if image_size is None:
        # The patch conv ignores a remainder (SigLIP so400m: 384 px, patch 14 -> 27 patches
        # over 378 px), so the whole frame is resized onto exactly the pixels it covers.
        size = (native_grid[0] * patch[0], native_grid[1] * patch[1])
    else:
        size = _pair(image_size)
        if size[0] % patch[0] or size[1] % patch[1]:
            raise Vega3DError(f"hf encoder: image_size {size} is not a multiple of the patch size {patch}")
    return size, (size[0] // patch[0], size[1] // patch[1]), native_grid
