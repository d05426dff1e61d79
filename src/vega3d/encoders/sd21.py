"""``sd21``: Stable Diffusion 2.1 UNet features, DIFT-style (Tang et al. 2023, "Emergent
Correspondence from Image Diffusion").

Per frame::

    frame ─resize whole→ height x width ─×2−1→ VAE encode (posterior mode) × scaling_factor = z
    z_t = sqrt(ᾱ_t)·z + sqrt(1−ᾱ_t)·ε        (the folder scheduler's ᾱ; diffusers' add_noise)
    UNet(z_t, t, empty-prompt context) → the chosen block's output (unet.py: stops after it)
    with ``ensemble`` = E > 1: E noise draws per frame, block outputs averaged (DIFT's ensemble)

DIFT's settings: SD2.1, ``t=261``, ``up_ft_index=1`` (``block="up1"``), 768 px, ensemble 8 (ours
defaults to 1: one UNet pass per frame). DIFT draws the latent from the posterior
(``latent_dist.sample()``); we take its mode, so the VAE adds no noise (SD's posterior std is tiny).

Context: ``prompt_embedding`` (tensor or safetensors file, exactly (77, cross_attention_dim):
the UNet attends to all 77 rows, padding included) → the folder's ``prompt_embedding.safetensors``
→ the folder's CLIP text encoder on "" (tokenised as the pipeline does: padded to 77).

Noise: ε of frame i, ensemble member k is draw ``i·E + k`` of shape (4, height/8, width/8) from
``torch.Generator("cpu").manual_seed(seed)``: same frames + seed + settings → same grids.
Stages: :meth:`SD21Encoder.encode` (VAE, once) and :meth:`SD21Encoder.from_latents` (any
timestep, several blocks from one UNet pass).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vega3d.encoders.common import check_frames, resize_whole
from vega3d.encoders.unet import UNetEncoder, check_int, load_part, noise_draws, vp_noise
from vega3d.errors import Vega3DError

NAME = "sd21 encoder"
FILES = ["unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"]
CONTEXT_ROWS = 77  # CLIP's context length


class SD21Encoder(UNetEncoder):
    """Block features of Stable Diffusion 2.1's UNet (module docstring): (N, h, w, C) float32.

    ``model``: a diffusers SD2.x folder. ``block``: down0..3 | mid | up0..3 (default up1, DIFT's).
    ``timestep``: DDPM step 0..999 (default 261, DIFT's). ``height``/``width``: the UNet input,
    multiples of 64 (default 768, SD2.1's size). ``ensemble``: noise draws averaged per frame.
    """

    name = "sd21"

    def __init__(
        self,
        model,
        block: str = "up1",
        timestep: int = 261,
        height: int = 768,
        width: int = 768,
        seed: int = 0,
        ensemble: int = 1,
        prompt_embedding=None,
        batch_size: int = 4,
        dtype: str = "float32",
        vae_dtype: str = "float32",
        device: str = "cpu",
    ):
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

        root, unet = self._settings(
            model, FILES, "Stable Diffusion", block, height, width, seed, dtype, vae_dtype, device
        )
        self.ensemble = check_int(ensemble, "ensemble", 1, NAME)
        self.batch_size = check_int(batch_size, "batch_size", 1, NAME)
        self.alphas = DDIMScheduler.from_pretrained(root / "scheduler").alphas_cumprod
        self.noise = vp_noise(self.alphas, timestep, NAME)
        self.context, prompt = _context(root, prompt_embedding, int(unet["cross_attention_dim"]))  # before weights
        self.unet = load_part(root, "unet", UNet2DConditionModel, self.dtype, self.device)
        self.vae = load_part(root, "vae", AutoencoderKL, self.vae_dtype, self.device)
        self._ctx = self.context.to(self.device, self.dtype)
        self.config = {
            **self._identity(root, ("unet", "vae")),
            "timestep": self.noise[0],
            "sqrt_alpha_bar": self.noise[1],
            "height": self.height,
            "width": self.width,
            "seed": self.seed,
            "ensemble": self.ensemble,
            "latent": "VAE posterior mode x scaling_factor",
            "noise": "cpu-generator(seed), frame i / ensemble member k = draw i*E+k of (4, height/8, width/8)",
            "prompt": prompt,
            "batch_size": self.batch_size,
            **self._dtypes(),
        }

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """The VAE stage: (N, 4, height/8, width/8) float32 latents ``z`` (mode × scaling_factor), on the device."""
        return self._latents(check_frames(frames, NAME))

    @torch.no_grad()
    def from_latents(self, latents: torch.Tensor, *, timestep: int | None = None, blocks=None):
        """The UNet stage on :meth:`encode`'s latents: the (N, h, w, C) grid of the encoder's block,
        or ``{block: grid}`` for ``blocks`` (one UNet pass, stopped after the deepest).
        ``timestep``: another noise level (the same ε)."""
        names = self._block_names(blocks)
        t, a, s = self.noise if timestep is None else vp_noise(self.alphas, timestep, NAME)
        n, e = latents.shape[0], self.ensemble
        eps = noise_draws(self.seed, n * e, tuple(latents.shape[1:])).view(n, e, *latents.shape[1:])

        def passes():  # one UNet call per batch of frames, each frame repeated for its E noise draws
            for s0 in range(0, n, self.batch_size):
                z = latents[s0 : s0 + self.batch_size].float().repeat_interleave(e, 0)
                z_t = (a * z + s * eps[s0 : s0 + self.batch_size].flatten(0, 1).to(z.device)).to(self.dtype)
                ctx = self._ctx.expand(len(z_t), -1, -1)
                yield lambda: self.unet(z_t, t, encoder_hidden_states=ctx)

        return self._read(names, passes(), blocks, reduce=lambda f: f.float().unflatten(0, (-1, e)).mean(1))

    def _noise_config(self, timestep) -> dict:
        t, sqrt_alpha_bar, _ = vp_noise(self.alphas, timestep, NAME)
        return {"timestep": t, "sqrt_alpha_bar": sqrt_alpha_bar}

    # ------------------------------------------------------------------ pieces
    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """One frame per VAE call (a frame's latent never depends on its neighbours in a batch)."""
        x = resize_whole(x, (self.height, self.width)) * 2.0 - 1.0
        scale = float(self.vae.config.scaling_factor)
        modes = [self.vae.encode(f[None].to(self.device, self.vae_dtype)).latent_dist.mode() for f in x]
        return torch.cat(modes).float() * scale


def _context(root: Path, prompt_embedding, width: int) -> tuple[torch.Tensor, dict]:
    """The (77, width) float32 empty-prompt context and where it came from."""
    from vega3d.simulator.prompt import PROMPT_FILE, TENSOR_NAME, context_sha256

    source = prompt_embedding if prompt_embedding is not None else root / PROMPT_FILE
    if isinstance(source, torch.Tensor) or Path(source).is_file():
        ctx = source if isinstance(source, torch.Tensor) else _read_tensor(Path(source), TENSOR_NAME)
        where = "prompt_embedding" if isinstance(source, torch.Tensor) else str(source)
        info = {"source": "tensor" if isinstance(source, torch.Tensor) else str(Path(source).resolve())}
    elif (root / "text_encoder" / "config.json").is_file() and (root / "tokenizer").is_dir():
        ctx, where, info = _encode_empty_prompt(root), "text encoder", {"source": "text_encoder", "text": ""}
    else:
        raise Vega3DError(
            f"{root}: no empty-prompt context: expected text_encoder/ + tokenizer/ (CLIP), or {PROMPT_FILE}, "
            "or prompt_embedding= a (77, cross_attention_dim) tensor or file"
        )
    if tuple(ctx.shape) != (CONTEXT_ROWS, width):
        raise Vega3DError(f"{where}: context of shape {tuple(ctx.shape)}; expected ({CONTEXT_ROWS}, {width}) "
                          "(all 77 CLIP rows, padding included, at the UNet's cross_attention_dim)")  # fmt: skip
    ctx = ctx.detach().float().cpu()
    return ctx, {**info, "sha256": context_sha256(ctx)}


def _read_tensor(path: Path, name: str) -> torch.Tensor:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if name not in tensors:
        raise Vega3DError(f"{path}: no tensor named {name!r} (found {sorted(tensors)})")
    return tensors[name]


@torch.no_grad()
def _encode_empty_prompt(root: Path) -> torch.Tensor:
    """CLIP's last hidden state for "" padded to the tokenizer's length, as the SD pipeline encodes it."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    encoder = load_part(root, "text_encoder", CLIPTextModel, torch.float32, "cpu", library="transformers")
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # fmt: skip
    return encoder(ids)[0][0]
