"""``wan_vae``: the Wan2.1 VAE's latents as features (the paper's "Wan VAE" tower).

The frame is fitted whole to ``height x width`` (multiples of 16, as the simulator: resize, no
crop), encoded as a one-frame video with the simulator's 2-D single-frame path
(:class:`vega3d.simulator.vae2d.FrameEncoder`; the stock ``vae.encode`` where the VAE is not
Wan2.1's topology) and normalised with the folder's latent mean/std — exactly the latents
``z`` that the Wan simulator noises and gives its DiT (``WanWorldSimulator.encode``, bit for
bit). Output: (N, height/8, width/8, 16) float32; cell (i, j) covers frame pixels
``[jW/w, (j+1)W/w) x [iH/h, (i+1)H/h)`` (vega3d.grids). Only the VAE is read from the folder
(either Wan2.1 layout, or Wan2.1-VACE's), never the DiT. No noise: deterministic.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vega3d.devices import dtype_name, parse_dtype
from vega3d.encoders.common import Encoder
from vega3d.files import fingerprint


class WanVAEEncoder(Encoder):
    """Normalised Wan2.1 VAE latents (module docstring)."""

    name = "wan_vae"

    def __init__(self, model, height: int = 480, width: int = 832, dtype: str = "float32", device: str = "cpu"):
        from vega3d.simulator.geometry import check_size
        from vega3d.simulator.layouts import detect_layout
        from vega3d.simulator.vae2d import FrameEncoder, supports_2d

        check_size(height, width)
        self.height, self.width = int(height), int(width)
        self.dtype, self.device = parse_dtype(dtype, "wan_vae encoder: dtype"), torch.device(device)
        root = Path(model).expanduser()
        layout = detect_layout(root)  # one error listing what an incomplete folder lacks
        vae, mean, std, files = _load_vae(root, layout, self.dtype, self.device)
        self.vae = vae
        self._frame = FrameEncoder(vae) if supports_2d(vae) else None
        self._mean = mean.view(1, -1, 1, 1).to(self.device)
        self._inv_std = (1.0 / std).view(1, -1, 1, 1).to(self.device)
        from vega3d.standin import is_stand_in

        self.config = {
            "name": self.name,
            "model": {"path": str(root.resolve()), "layout": layout, "vae_hash": fingerprint(root, files)},
            "stand_in": is_stand_in(root),
            "height": self.height,
            "width": self.width,
            "features": "normalised VAE posterior mode (z - latents_mean) / latents_std, 16 channels at /8",
            "dtype": dtype_name(self.dtype),
        }

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        from vega3d.simulator.geometry import fit_frames

        x, _ = fit_frames(x, self.height, self.width, pad=False)
        out = []
        for frame in x * 2.0 - 1.0:  # one frame per call, as the simulator
            f = frame[None].to(self.device, self.dtype)
            mode = (
                self._frame(f)
                if self._frame is not None
                else self.vae.encode(f[:, :, None]).latent_dist.mode()[:, :, 0]
            )
            out.append((mode.float() - self._mean) * self._inv_std)
        return torch.cat(out).permute(0, 2, 3, 1).cpu().contiguous()


def _load_vae(root: Path, layout: str, dtype: torch.dtype, device):
    """``(vae, latents_mean, latents_std, weight files)`` of a Wan2.1 folder, the VAE only."""
    from diffusers import AutoencoderKLWan

    from vega3d.encoders.unet import load_part
    from vega3d.simulator.convert import ORIGINAL_VAE, WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, load_original_vae
    from vega3d.simulator.layouts import cast_like_diffusers

    if layout == "diffusers":
        vae = load_part(root, "vae", AutoencoderKLWan, dtype, device)
        mean, std = vae.config.latents_mean, vae.config.latents_std
        files = sorted((root / "vae").glob("*.safetensors"))
    else:
        vae = cast_like_diffusers(load_original_vae(root / ORIGINAL_VAE), dtype).to(device).eval().requires_grad_(False)
        mean, std, files = WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, [root / ORIGINAL_VAE]
    return vae, torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32), files
