"""``svd``: Stable Video Diffusion's UNet (``UNetSpatioTemporalConditionModel``) on the frame sequence.

The N frames are cut, in order, into clips of ``clip_frames`` (the last may be shorter); each clip
is one UNet call, so its temporal layers mix the frames of that clip only. Per clip, what SVD
img2vid feeds (diffusers ``StableVideoDiffusionPipeline``), with the clip's FIRST frame as the
conditioning image:

* image embedding: the first frame resized whole to the image encoder's size (224 for the real
  CLIP ViT-H), normalised with ``feature_extractor/preprocessor_config.json``'s mean/std →
  ``image_encoder(...).image_embeds`` (the pipeline resizes with its own antialiasing filter, we
  with bilinear antialiasing; no classifier-free guidance: the conditional branch only);
* conditioning latent: VAE mode of the first frame plus ``noise_aug_strength`` × N(0, 1) noise
  (unscaled, as the pipeline does), concatenated to every frame's input channels;
* ``added_time_ids``: ``[fps − 1, motion_bucket_id, noise_aug_strength]`` (pipeline defaults 7,
  127, 0.02; the pipeline subtracts 1 from fps).

Each frame's own latent ``z = VAE mode × scaling_factor`` is noised the EDM way at
``σ = sqrt((1 − ᾱ_t)/ᾱ_t)`` from the folder scheduler's betas (``timestep`` on the same 0..999
scale as ``sd21``: the same noise-to-signal ratio), ``x = (z + σ ε)/sqrt(σ² + 1)``, and the UNet is
given ``c_noise = 0.25 ln σ`` as its timestep (SVD's EulerDiscreteScheduler, continuous timesteps).

Noise: ε of frame i is draw i of ``Generator("cpu").manual_seed(seed)`` (4, height/8, width/8);
the augmentation noise of clip c is draw c of ``manual_seed(seed + 1)`` (3, height, width).
Grids depend on ``clip_frames`` (which frames share a clip); the same frames and settings give
the same grids. Geometry as ``sd21`` (encoders/unet.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vega3d.encoders.common import _triple, check_frames, resize_whole
from vega3d.encoders.unet import UNetEncoder, check_int, check_timestep, load_part, noise_draws
from vega3d.errors import Vega3DError
from vega3d.files import read_json

NAME = "svd encoder"
FILES = ["unet/config.json", "vae/config.json", "scheduler/scheduler_config.json", "image_encoder/config.json",
         "feature_extractor/preprocessor_config.json"]  # fmt: skip


class SVDLatents(NamedTuple):
    """The VAE / image-encoder stage (:meth:`SVDEncoder.encode`): frame latents (N, 4, h8, w8),
    per clip the conditioning latent (C, 4, h8, w8) and image embedding (C, D), and the clips' (start, end)."""

    latents: torch.Tensor
    cond: torch.Tensor
    embeds: torch.Tensor
    clips: tuple


class SVDEncoder(UNetEncoder):
    """Block features of SVD's UNet on clips of the frames (module docstring): (N, h, w, C) float32.

    ``block``: down0..3 | mid | up0..3. ``timestep``: 0..999, σ from the scheduler's betas
    (default 261, the noise level of ``sd21``'s default). ``height``/``width``: multiples of 64
    (default 576x1024, SVD's size). ``clip_frames``: frames per UNet call (default 14, img2vid's).
    """

    name = "svd"

    def __init__(
        self,
        model,
        block: str = "up1",
        timestep: int = 261,
        height: int = 576,
        width: int = 1024,
        clip_frames: int = 14,
        seed: int = 0,
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
        dtype: str = "float32",
        vae_dtype: str = "float32",
        device: str = "cpu",
    ):
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionModelWithProjection

        root, _ = self._settings(model, FILES, "Stable Video Diffusion", block, height, width, seed, dtype, vae_dtype,
                                 device)  # fmt: skip
        self.clip_frames = check_int(clip_frames, "clip_frames", 1, NAME)
        self.time_ids = _time_ids(fps, motion_bucket_id, noise_aug_strength)
        self.aug = self.time_ids[2]
        self.alphas = EulerDiscreteScheduler.from_pretrained(root / "scheduler").alphas_cumprod
        self.sigma = edm_sigma(self.alphas, timestep)
        self.clip_mean, self.clip_std = _clip_normalisation(root)
        self.unet = load_part(root, "unet", UNetSpatioTemporalConditionModel, self.dtype, self.device)
        self.vae = load_part(root, "vae", AutoencoderKLTemporalDecoder, self.vae_dtype, self.device)
        self.image_encoder = load_part(root, "image_encoder", CLIPVisionModelWithProjection, self.dtype, self.device,
                                       "transformers")  # fmt: skip
        self.timestep = int(timestep)
        self.config = {
            **self._identity(root, ("unet", "vae", "image_encoder")),
            "timestep": self.timestep,
            "sigma": self.sigma,
            "height": self.height,
            "width": self.width,
            "clip_frames": self.clip_frames,
            "seed": self.seed,
            "added_time_ids": self.time_ids,
            "conditioning": "each clip's first frame: CLIP image embedding + noise-augmented VAE latent",
            "noise": "eps: cpu-generator(seed) draw i for frame i; augmentation: cpu-generator(seed+1) draw c for clip c",
            **self._dtypes(),
        }

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> SVDLatents:
        """The VAE and image-encoder stage (once for every timestep and block)."""
        return self._latents(check_frames(frames, NAME))

    @torch.no_grad()
    def from_latents(self, latents: SVDLatents, *, timestep: int | None = None, blocks=None):
        """The UNet stage: the (N, h, w, C) grid of the encoder's block, or ``{block: grid}`` for
        ``blocks`` (one UNet pass per clip, stopped after the deepest). ``timestep``: another σ (same ε)."""
        names = self._block_names(blocks)
        sigma = self.sigma if timestep is None else edm_sigma(self.alphas, timestep)
        z = latents.latents
        eps = noise_draws(self.seed, z.shape[0], tuple(z.shape[1:])).to(z.device)
        c_in, c_noise = (sigma**2 + 1) ** -0.5, torch.tensor([0.25 * float(torch.tensor(sigma).log())])
        time_ids = torch.tensor([self.time_ids], dtype=self.dtype, device=self.device)

        def passes():  # one UNet call per clip
            for c, (s, e) in enumerate(latents.clips):
                x = ((z[s:e] + sigma * eps[s:e]) * c_in).float()
                cond = latents.cond[c : c + 1].expand(e - s, -1, -1, -1)
                sample = torch.cat([x, cond], dim=1)[None].to(self.dtype)  # (1, frames, 8, h8, w8)
                emb = latents.embeds[c].view(1, 1, -1).to(self.dtype)
                yield lambda: self.unet(sample, c_noise.to(self.device), encoder_hidden_states=emb,
                                        added_time_ids=time_ids)  # fmt: skip

        return self._read(names, passes(), blocks)

    def _noise_config(self, timestep) -> dict:
        return {"timestep": int(timestep), "sigma": edm_sigma(self.alphas, timestep)}

    # ------------------------------------------------------------------ pieces
    def _latents(self, x: torch.Tensor) -> SVDLatents:
        n = x.shape[0]
        clips = tuple((s, min(n, s + self.clip_frames)) for s in range(0, n, self.clip_frames))
        px = resize_whole(x, (self.height, self.width)) * 2.0 - 1.0
        scale = float(self.vae.config.scaling_factor)
        z = torch.cat([self._mode(f[None]) for f in px]) * scale
        aug = noise_draws(self.seed + 1, len(clips), tuple(px.shape[1:]))
        cond = torch.cat([self._mode(px[s : s + 1] + self.aug * aug[c : c + 1]) for c, (s, _) in enumerate(clips)])
        firsts = x[[s for s, _ in clips]]
        size = self.image_encoder.config.image_size
        pixels = (resize_whole(firsts, (size, size)) - self.clip_mean) / self.clip_std
        embeds = self.image_encoder(pixel_values=pixels.to(self.device, self.dtype)).image_embeds.float()
        return SVDLatents(z, cond, embeds, clips)

    def _mode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x.to(self.device, self.vae_dtype)).latent_dist.mode().float()


def edm_sigma(alphas_cumprod: torch.Tensor, timestep) -> float:
    """σ = sqrt((1 − ᾱ_t)/ᾱ_t) at DDPM step ``timestep`` (as EulerDiscreteScheduler builds its sigmas, float32)."""
    a = alphas_cumprod.float()[check_timestep(timestep, len(alphas_cumprod), NAME)]
    return float(((1 - a) / a) ** 0.5)


def _time_ids(fps, motion_bucket_id, noise_aug_strength) -> list[float]:
    """``added_time_ids`` (module docstring): ``[fps − 1, motion_bucket_id, noise_aug_strength]``, checked."""
    fps, motion = check_int(fps, "fps", 1, NAME), check_int(motion_bucket_id, "motion_bucket_id", 0, NAME)
    aug = noise_aug_strength
    if isinstance(aug, bool) or not isinstance(aug, (int, float)) or aug < 0:
        raise Vega3DError(f"{NAME}: noise_aug_strength={aug!r}; expected a number >= 0")
    return [float(fps - 1), float(motion), float(aug)]


def _clip_normalisation(root) -> tuple[torch.Tensor, torch.Tensor]:
    """The image encoder's input mean and std, (1, 3, 1, 1) each, from ``feature_extractor/``."""
    path = root / "feature_extractor" / "preprocessor_config.json"
    fe = read_json(path, "svd feature extractor config")
    mean, std = (_triple(fe.get(f"image_{k}"), f"{path}: image_{k}") for k in ("mean", "std"))
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
