"""The small world model: a diffusers ``WanTransformer3DModel`` trained with Wan's rectified-flow
objective in the latent space of a frozen ``AutoencoderKLWan``, and that VAE's own training.

:class:`WorldModel` (family ``world``). Per clip (B clips of F frames):

    frames (B, F, H, W, 3) uint8 ─/255, ×2−1→ [−1, 1] ─VAE posterior mode, each frame alone (the
      simulator's 2-D single-frame path)→ (B·F, 16, H/8, W/8)
    z   = (mode − latents_mean) / latents_std, laid out (B, 16, F, H/8, W/8): F latent frames
    x_t = (1 − σ) z + σ ε                               (float32; ε and σ come with the batch)
    v   = DiT(x_t, t, empty-prompt context)             (all blocks, the output projection)
    loss = mean((v − (ε − z))²)                          (Wan's flow target, uniform weighting)

Frames are encoded one by one because that is how :class:`~vega3d.simulator.WanWorldSimulator`
encodes them (its per-frame mode, the one the probe reads): the DiT learns on exactly the latents
it is probed on, and its self-attention sees F views of one room. The context is a fixed random
one-row stand-in embedding zero-padded to 512 rows, as the simulator pads it.

:func:`init_transformer` is Wan2.1's own ``WanModel.init_weights`` on diffusers' module names,
drawn from an explicit generator. :func:`save_world_model` writes the diffusers Wan layout the
simulator loads (``transformer/``, ``vae/``, ``prompt_embedding.safetensors``) with the stand-in
marker saying "trained small model".

:class:`WorldVae` (family ``world_vae``): the VAE trained first, on L1 reconstruction plus a small
KL term; its folder records the latent mean/std measured on frames of a seed range of their own.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from vega3d.simulator.prompt import PROMPT_FILE, TEXT_LEN
from vega3d.world.data import Z_DIM

VAE_DIM_MULT = [1, 2, 4, 4]  # Wan2.1's: 8x spatial down
RECORD_FILE = "vega3d_world.json"


# ----------------------------------------------------------------------------- building
def init_transformer(transformer, generator: torch.Generator):
    """Wan2.1's ``WanModel.init_weights`` on diffusers' names, from ``generator`` (parameters in
    sorted-name order): every Linear xavier-uniform with zero bias; the patch embedding
    xavier-uniform over its flattened kernel (bias: PyTorch's default uniform); the text and time
    embedders' Linears N(0, 0.02²); the output projection zero; the modulation tables
    N(0, 1/dim) (their constructors' draw); norms at their constant defaults."""
    params = dict(transformer.named_parameters())
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    with torch.no_grad():
        for name in sorted(params):
            p, module, leaf = params[name], name.rsplit(".", 1)[0], name.rsplit(".", 1)[-1]
            shape = p.shape
            if "scale_shift_table" in name:
                value = torch.randn(shape, generator=generator) / math.sqrt(dim)
            elif module == "proj_out":
                value = torch.zeros(shape)
            elif module == "patch_embedding":
                fan_in = math.prod(params["patch_embedding.weight"].shape[1:])
                if leaf == "weight":
                    value = _xavier(shape[0], fan_in, generator).reshape(shape)
                else:
                    value = (torch.rand(shape, generator=generator) * 2 - 1) / math.sqrt(fan_in)
            elif p.ndim == 1:  # biases zero, norm scales one (their defaults)
                value = torch.zeros(shape) if leaf == "bias" else torch.ones(shape)
            elif ".text_embedder." in name or ".time_embedder." in name:
                value = 0.02 * torch.randn(shape, generator=generator)
            else:
                value = _xavier(shape[0], shape[1], generator)
            p.copy_(value.to(p.dtype))
    return transformer


def _xavier(fan_out: int, fan_in: int, generator) -> torch.Tensor:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound


def build_transformer(m, seed: int):
    """The DiT of the ``model`` section ``m`` (Wan2.1-T2V's architecture), initialised from ``seed``."""
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):  # constructors draw from the global RNG: leave it untouched
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=m.num_heads,
            attention_head_dim=m.dim // m.num_heads,
            in_channels=Z_DIM,
            out_channels=Z_DIM,
            text_dim=m.text_dim,
            freq_dim=m.freq_dim,
            ffn_dim=m.ffn_dim,
            num_layers=m.num_layers,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        )
    return init_transformer(transformer, torch.Generator().manual_seed(seed))


def build_vae(base_dim: int, num_res_blocks: int, seed: int):
    """A random ``AutoencoderKLWan`` with Wan2.1's topology (z_dim 16, 8x down, 4x in time) at
    ``base_dim``: :func:`vega3d.standin.wan.randomize_` from ``seed`` (N(0, 1/fan_in) kernels)."""
    from diffusers import AutoencoderKLWan

    from vega3d.simulator.convert import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
    from vega3d.standin.wan import randomize_

    with torch.random.fork_rng(devices=[]):
        vae = AutoencoderKLWan(base_dim=base_dim, z_dim=Z_DIM, dim_mult=VAE_DIM_MULT, num_res_blocks=num_res_blocks,
                               attn_scales=[], temperal_downsample=[False, True, True],
                               latents_mean=list(WAN21_LATENTS_MEAN), latents_std=list(WAN21_LATENTS_STD))  # fmt: skip
    return randomize_(vae, torch.Generator().manual_seed(seed))


def vae_folder(path) -> Path:
    """The folder holding the VAE's ``config.json``: ``path`` itself or its ``vae/``."""
    path = Path(path)
    return path / "vae" if (path / "vae" / "config.json").is_file() else path


def load_vae(path):
    """A frozen ``AutoencoderKLWan`` (float32) from a VAE folder or a Wan folder's ``vae/``."""
    from diffusers import AutoencoderKLWan

    from vega3d.simulator.convert import from_pretrained_strict

    folder = vae_folder(path)
    kw = dict(local_files_only=True, torch_dtype=torch.float32, output_loading_info=True)
    return from_pretrained_strict(lambda: AutoencoderKLWan.from_pretrained(folder, **kw), folder, "AutoencoderKLWan",
                                  "diffusers").eval().requires_grad_(False)  # fmt: skip


@torch.no_grad()
def latent_statistics(vae, frames: torch.Tensor, batch: int = 8) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the posterior modes of ``frames`` (N, 3, H, W)
    in [0, 1] (the 2-D single-frame encoder), as lists of 16 floats (what Wan's VAE config holds)."""
    from vega3d.simulator.vae2d import FrameEncoder

    encoder = FrameEncoder(vae)
    device = next(vae.parameters()).device
    modes = torch.cat([encoder(frames[s : s + batch].to(device) * 2 - 1).float() for s in range(0, len(frames), batch)])
    flat = modes.transpose(0, 1).reshape(Z_DIM, -1).double()
    return flat.mean(1).tolist(), flat.std(1).clamp_min(1e-6).tolist()


def context_rows(text_dim: int, seed: int) -> torch.Tensor:
    """The fixed one-row stand-in for the empty-prompt context (umT5 gives the real one): N(0, 1)."""
    return torch.randn(1, text_dim, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the DiT
class WorldModel(torch.nn.Module):
    """The trainable DiT with its frozen VAE, latent statistics and context (module docstring)."""

    def __init__(self, transformer, vae, context: torch.Tensor, record: dict):
        from vega3d.simulator.prompt import load_prompt_embedding

        super().__init__()
        self.transformer = transformer.train()
        self.vae = vae.eval().requires_grad_(False)
        self.record = record  # what the saved folder records (configs, the VAE's origin)
        self.context_rows = context  # (k, text_dim): saved as prompt_embedding.safetensors
        text_dim = int(transformer.config.text_dim)
        self.register_buffer("context", load_prompt_embedding(context, text_dim, TEXT_LEN), persistent=False)
        self.register_buffer("latents_mean", torch.tensor(vae.config.latents_mean).float(), persistent=False)
        self.register_buffer("latents_std", torch.tensor(vae.config.latents_std).float(), persistent=False)
        self._encoders: dict = {}

    # what the trainer asks of a model (vega3d.training.families)
    def parameter_groups(self) -> dict:
        return {"llm": list(self.transformer.parameters())}  # the main network trains at train.lr

    def trainable_names(self) -> list[str]:
        return [f"transformer.{n}" for n, _ in self.transformer.named_parameters()]

    def gradient_checkpointing_enable(self) -> None:
        self.transformer.enable_gradient_checkpointing()

    def stand_in_notice(self, consequence: str) -> str | None:
        from vega3d.standin import notice

        if self.record["vae"]["source"] == "random":
            return notice(["model.vae: a VAE with random weights"], consequence)
        return None

    def frame_encoder(self):
        """The simulator's 2-D single-frame VAE encoder on the VAE's current device (built once per device)."""
        from vega3d.simulator.vae2d import FrameEncoder

        device = self.vae.encoder.conv_in.weight.device
        if device not in self._encoders:
            self._encoders[device] = FrameEncoder(self.vae)
        return self._encoders[device]

    @torch.no_grad()
    def latents(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 → normalised latents (B, 16, F, H/8, W/8) float32, each frame alone."""
        b, f = frames.shape[:2]
        with torch.autocast(frames.device.type, enabled=False):
            x = frames.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
            mode = self.frame_encoder()(x * 2.0 - 1.0).float()
        z = (mode - self.latents_mean.view(1, -1, 1, 1)) * (1.0 / self.latents_std).view(1, -1, 1, 1)
        return z.unflatten(0, (b, f)).transpose(1, 2).contiguous()

    def forward(self, frames, noise, t, sigma):
        z = self.latents(frames)
        s = sigma.float().view(-1, 1, 1, 1, 1)
        x_t = (1.0 - s) * z + s * noise.float()
        context = self.context.expand(len(z), -1, -1)
        pred = self.transformer(x_t, t, context, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise.float() - z)
        return SimpleNamespace(loss=loss, gate_means=None)

    def save_pretrained(self, folder, state_dict=None) -> Path:
        """The diffusers Wan layout (:func:`save_world_model`); ``state_dict``: the trainer's gathered one."""
        transformer = self.transformer
        if state_dict is not None:
            transformer = copy.deepcopy(self.transformer).cpu()
            prefix = "transformer."
            transformer.load_state_dict({k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)})
        return save_world_model(folder, transformer, self.vae, self.context_rows, self.record)


def save_world_model(folder, transformer, vae, context: torch.Tensor, record: dict) -> Path:
    """Write a Wan2.1-T2V folder in the diffusers layout — ``transformer/``, ``vae/`` (its config
    holding the latent mean/std), ``prompt_embedding.safetensors`` — with ``record`` as
    ``vega3d_world.json`` and the stand-in marker of a small trained model."""
    from vega3d.files import write_json
    from vega3d.simulator.prompt import save_prompt_embedding
    from vega3d.standin import RANDOM_VAE_NOTE, write_marker

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(folder / "transformer", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    meta = {"source": "fixed random stand-in context (not a umT5 output)", "text": ""}
    save_prompt_embedding(context.float().cpu(), folder / PROMPT_FILE, metadata=meta)
    write_json(folder / RECORD_FILE, record)
    note = RANDOM_VAE_NOTE if record["vae"]["source"] == "random" else ""
    write_marker(folder, real="Wan2.1-T2V", writer="vega3d train-world (vega3d.world)", recipe=record["model"],
                 trained=True, note=note)  # fmt: skip
    return folder


# ----------------------------------------------------------------------------- the VAE
class WorldVae(torch.nn.Module):
    """``AutoencoderKLWan`` trained on L1 reconstruction + ``kl_weight`` x KL (per latent element)
    of each frame alone (a one-frame video: only the last temporal tap of each causal conv is
    used, as in the simulator's per-frame mode). ``stats_frames`` (N, 3, H, W) in [0, 1]: the
    frames its saved latent mean/std and reconstruction PSNR are measured on."""

    def __init__(self, vae, kl_weight: float, stats_frames: torch.Tensor, record: dict):
        super().__init__()
        self.vae = vae.train()
        self.kl_weight = float(kl_weight)
        self.stats_frames, self.record = stats_frames, record

    def parameter_groups(self) -> dict:
        return {"llm": list(self.vae.parameters())}

    def trainable_names(self) -> list[str]:
        return [f"vae.{n}" for n, _ in self.vae.named_parameters()]

    def gradient_checkpointing_enable(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def stand_in_notice(self, consequence: str) -> str | None:
        return None

    def forward(self, frames, noise):
        x = frames.flatten(0, 1).permute(0, 3, 1, 2).float()[:, :, None] / 255.0 * 2.0 - 1.0  # (N, 3, 1, h, w)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * noise.transpose(1, 2).flatten(0, 1)[:, :, None].float()
        reconstruction = self.vae.decode(z).sample
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
        loss = F.l1_loss(reconstruction.float(), x) + self.kl_weight * kl
        return SimpleNamespace(loss=loss, gate_means=None)

    def save_pretrained(self, folder, state_dict=None) -> Path:
        """The VAE folder (``config.json`` with the measured latent mean/std, safetensors), the record
        with the reconstruction PSNR on the statistics frames, and the trained stand-in marker."""
        from vega3d.files import write_json
        from vega3d.standin import write_marker

        vae = copy.deepcopy(self.vae).cpu().eval()
        if state_dict is not None:
            vae.load_state_dict({k[4:]: v for k, v in state_dict.items() if k.startswith("vae.")})
        mean, std = latent_statistics(vae, self.stats_frames)
        vae.register_to_config(latents_mean=mean, latents_std=std)
        folder = Path(folder)
        vae.save_pretrained(folder, safe_serialization=True)
        write_json(folder / RECORD_FILE, {**self.record, "psnr_db": reconstruction_psnr(vae, self.stats_frames)})
        write_marker(folder, real="the Wan2.1 VAE", writer="vega3d train-world (vega3d.world, family world_vae)",
                     recipe=self.record["model"], trained=True)  # fmt: skip
        return folder


@torch.no_grad()
def reconstruction_psnr(vae, frames: torch.Tensor, batch: int = 8) -> float:
    """Mean PSNR (dB, pixels in [0, 1]) of ``vae``'s reconstructions (posterior mode) of ``frames``."""
    errors = []
    for s in range(0, len(frames), batch):
        x = frames[s : s + batch, :, None] * 2 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample
        mse = ((rec - x) / 2).pow(2).flatten(1).mean(1)
        errors.append(mse)
    return float((-10 * torch.log10(torch.cat(errors).clamp_min(1e-12))).mean())


def read_record(folder) -> dict:
    """A saved world model's or VAE's record (``vega3d_world.json``)."""
    return json.loads((Path(folder) / RECORD_FILE).read_text())
