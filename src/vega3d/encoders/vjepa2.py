"""``vjepa2``: V-JEPA 2's video encoder (transformers ``VJEPA2Model``, predictor skipped), per-frame grids.

Input: each frame resized whole (no crop) to the model's square ``crop_size`` (256 for
``vjepa2-vitl-fpc64-256``; its 3-D RoPE decodes token positions on that grid, so no other size is
offered) and normalised with the folder's ``image_mean`` / ``image_std`` (from
``video_preprocessor_config.json`` or ``preprocessor_config.json``; ImageNet's for the released
models). Tokens come in (tubelet, row, column) order; the patch embedding is a Conv3d over
``tubelet_size`` (2) frames x ``patch_size``² pixels.

How frames map to tokens (``clip_frames``):

* ``1`` (default): every frame is its own clip, repeated to fill one tubelet (transformers'
  VJEPA2 embedding repeats a clip shorter than the tubelet; V-JEPA 2 embeds images this way),
  so frame i's grid is the tokens of its own tubelet and no information crosses frames;
* an even ``L`` >= 2: the frames are cut, in order, into clips of L; the clip's ``L/2`` tubelets
  cover frames (2t, 2t+1), and BOTH frames of a tubelet get that tubelet's grid (attention mixes
  all the clip's tokens). A last clip of odd length repeats its last frame to complete the tubelet.
  Two frames that share a tubelet share a grid: a correspondence probe pair of them compares a grid
  with itself, so prefer ``clip_frames=1`` for the probe and use clips to study temporal context.

Output: (N, crop/patch, crop/patch, hidden) float32; ``layer`` as for ``hf`` (index into
``hidden_states``, 0 = embeddings; None = ``last_hidden_state``, after the final LayerNorm).
Deterministic (no noise).
"""

from __future__ import annotations

import torch

from vega3d.devices import dtype_name, parse_dtype
from vega3d.encoders.common import Encoder, check_layer, model_config, normalisation, resize_whole
from vega3d.encoders.unet import check_int, load_part
from vega3d.errors import Vega3DError
from vega3d.files import fingerprint

NAME = "vjepa2 encoder"
PREPROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


class VJEPA2Encoder(Encoder):
    """V-JEPA 2 patch-token grids per frame (module docstring)."""

    name = "vjepa2"

    def __init__(
        self,
        model,
        layer: int | None = None,
        clip_frames: int = 1,
        mean=None,
        std=None,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        from transformers import VJEPA2Model

        root, cfg = model_config(model, NAME, "a V-JEPA 2 model in the transformers layout")
        if cfg.get("model_type") != "vjepa2":
            raise Vega3DError(f"{root / 'config.json'}: model_type {cfg.get('model_type')!r}; expected 'vjepa2'")
        self.tubelet, self.patch, self.crop = int(cfg["tubelet_size"]), int(cfg["patch_size"]), int(cfg["crop_size"])
        self.clip_frames = check_int(clip_frames, "clip_frames", 1, NAME)
        if self.clip_frames > 1 and self.clip_frames % self.tubelet:
            raise Vega3DError(
                f"{NAME}: clip_frames={clip_frames}; expected 1 or a multiple of tubelet_size {self.tubelet}"
            )
        check_layer(layer, int(cfg["num_hidden_layers"]) + 1, NAME)
        mean, std = normalisation(root, mean, std, PREPROCESSOR_FILES, NAME)
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.layer, self.batch_size = layer, check_int(batch_size, "batch_size", 1, NAME)
        self.dtype, self.device = parse_dtype(dtype, f"{NAME}: dtype"), torch.device(device)
        self.model = load_part(root, "", VJEPA2Model, self.dtype, self.device, library="transformers")
        self.grid = (self.crop // self.patch, self.crop // self.patch)
        from vega3d.standin import is_stand_in

        self.config = {
            "name": self.name,
            "model": {
                "path": str(root.resolve()),
                "weights_hash": fingerprint(root, sorted(root.glob("*.safetensors"))),
            },
            "stand_in": is_stand_in(root),
            "layer": layer,
            "clip_frames": self.clip_frames,
            "frames_to_tokens": "each frame its own tubelet (repeated)"
            if self.clip_frames == 1
            else f"clips of {self.clip_frames}; frames 2t, 2t+1 share tubelet t's grid",
            "image_size": [self.crop, self.crop],
            "grid": list(self.grid),
            "mean": mean,
            "std": std,
            "dtype": dtype_name(self.dtype),
        }

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        px = (resize_whole(x, (self.crop, self.crop)) - self.mean) / self.std
        if self.clip_frames == 1:  # (B, 1, 3, S, S): one frame per clip
            return torch.cat(
                [self._grids(px[s : s + self.batch_size, None]) for s in range(0, len(px), self.batch_size)]
            )
        out = []
        for s in range(0, len(px), self.clip_frames):
            clip = px[s : s + self.clip_frames]
            if len(clip) % self.tubelet:  # complete the last tubelet with the last frame
                clip = torch.cat([clip, clip[-1:].expand(self.tubelet - len(clip) % self.tubelet, -1, -1, -1)])
            grids = self._grids(clip[None])  # (1, T/2 tubelets, h, w, C) → one grid per tubelet
            out.append(grids.repeat_interleave(self.tubelet, 0)[: min(self.clip_frames, len(px) - s)])
        return torch.cat(out)

    def _grids(self, videos: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) clips → one (h, w, C) grid per tubelet: (B·T', h, w, C) float32 CPU."""
        res = self.model(pixel_values_videos=videos.to(self.device, self.dtype), skip_predictor=True,
                         output_hidden_states=self.layer is not None)  # fmt: skip
        tokens = res.last_hidden_state if self.layer is None else res.hidden_states[self.layer]
        h, w = self.grid
        return tokens.reshape(-1, h, w, tokens.shape[-1]).float().cpu().contiguous()
