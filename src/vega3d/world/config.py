"""The training YAML of a small world model: families ``world`` (the DiT) and ``world_vae`` (its VAE).

Both add their ``model`` and ``data`` sections to the generic ones (:mod:`vega3d.training.config`);
``world`` also has ``probe`` (:class:`ProbeSchedule`: the rigorous probe every K steps). Every
field is declared once here, with its range and a comment; docs/world.md explains the choices.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from vega3d.config import Config, Float
from vega3d.training.config import TrainConfig

#: Held-out scenes and training clips never share a room: probe rooms use seeds below this,
#: training clips seeds from it on, latent statistics from STATS_SEED_BASE on.
TRAIN_SEED_BASE = 1_000_000
STATS_SEED_BASE = 2_000_000_000


def _multiple_of_16(value: int) -> int:
    if value % 16:
        raise ValueError("a multiple of 16 (the VAE's 8x and the DiT's 2x2 patches)")
    return value


class WorldData(Config):
    """Where the training clips come from (:mod:`vega3d.world.data`)."""

    source: Literal["synthetic", "media"] = "synthetic"  # synthetic rooms rendered on the fly, or media_root's files
    media_root: str | None = None  # media: a video, frame folder, scan folder, or a folder of them (vega3d.media)
    height: int = Field(144, ge=16)  # the model's input size: frames are rendered at (or fitted whole to) it
    width: int = Field(192, ge=16)
    clip_frames: int = Field(4, ge=1)  # frames per clip: the DiT's latent frames (each frame encoded alone)
    num_clips: int = Field(256, ge=1)  # clips per epoch (synthetic: a new room for every clip of every epoch)
    arc_degrees: Float = Field(40.0, gt=0, le=360)  # synthetic: the camera's arc over one clip
    frame_stride: int = Field(1, ge=1)  # media: frames between two frames of a clip
    crop: int = Field(0, ge=0)  # world_vae: square random crops of this size (0: whole frames); world: 0
    stats_frames: int = Field(32, ge=2)  # frames whose VAE latents give the latent mean/std (a separate seed range)
    seed: int = Field(0, ge=0)  # which clips, crops and noise draws (an explicit generator per clip)

    @field_validator("height", "width")
    @classmethod
    def _size(cls, value: int) -> int:
        return _multiple_of_16(value)


class WorldModelConfig(Config):
    """The DiT (diffusers ``WanTransformer3DModel``, Wan2.1-T2V's architecture at a small size), its
    fixed VAE and context, and the rectified-flow objective's noise-level distribution."""

    num_layers: int = Field(6, ge=1)  # DiT blocks (Wan2.1-T2V-1.3B: 30)
    dim: int = Field(96, ge=8)  # width = num_heads x head dim (1.3B: 1536)
    num_heads: int = Field(4, ge=1)  # attention heads; dim / num_heads must be even (rotary embedding)
    ffn_dim: int = Field(256, ge=8)  # feed-forward width (1.3B: 8960)
    text_dim: int = Field(32, ge=8)  # width of the fixed empty-prompt context (umT5-xxl: 4096)
    freq_dim: int = Field(256, ge=8)  # sinusoidal timestep embedding width (Wan: 256)
    vae: str | None = None  # a trained VAE: a world_vae run's model/ or a Wan folder (vae/); unset: a fixed random one
    vae_base_dim: int = Field(8, ge=1)  # the fixed random VAE's base width (model.vae unset)
    init_seed: int = Field(0, ge=0)  # DiT weights, the random VAE and the context (an explicit torch.Generator)
    shift: Float = Field(5.0, gt=0)  # flow shift: sigma = s u / (1 + (s - 1) u) (Wan2.1 T2V: 5)
    logit_mean: Float = 0.0  # u = sigmoid(N(logit_mean, logit_std)): diffusers' "logit_normal" density
    logit_std: Float = Field(1.0, gt=0)

    @field_validator("num_heads")
    @classmethod
    def _even_heads(cls, value: int, info) -> int:
        dim = info.data.get("dim")
        if dim is not None and (dim % value or (dim // value) % 2):
            raise ValueError(f"a divisor of dim={dim} leaving an even head size (rotary embedding)")
        return value


class WorldVaeConfig(Config):
    """The small VAE (diffusers ``AutoencoderKLWan``, Wan2.1's topology: z_dim 16, 8x down) trained
    first on reconstruction, then frozen under the DiT (as Wan trains its VAE before its DiT)."""

    base_dim: int = Field(8, ge=1)  # base width (Wan2.1's VAE: 96)
    num_res_blocks: int = Field(1, ge=1)  # residual blocks per level (Wan2.1: 2)
    kl_weight: Float = Field(1e-6, ge=0)  # loss = L1(reconstruction) + kl_weight x KL(posterior || N(0, I))
    init_seed: int = Field(0, ge=0)  # initial weights (an explicit torch.Generator)


class ProbeSchedule(Config):
    """The rigorous probe every ``every`` optimizer steps (:mod:`vega3d.world.schedule`). The first
    block and the first timestep are the headline setting of the verdict (chosen before training)."""

    every: int = Field(100, ge=0)  # optimizer steps between probes (0: never)
    blocks: list[int] = Field(default_factory=lambda: [3], min_length=1)  # 0-based DiT blocks read
    timesteps: list[Float] = Field(default_factory=lambda: [300.0], min_length=1)  # noise levels, on Wan's grid
    synthetic_scenes: int = Field(2, ge=0)  # held-out rooms (seeds 0..n-1; training rooms use other seeds)
    synthetic_frames: int = Field(8, ge=2)  # frames per held-out room
    synthetic_height: int = Field(240, ge=16)  # the held-out rooms' rendered size (the model sees data.height x width)
    synthetic_width: int = Field(320, ge=16)
    arc_degrees: Float = Field(100.0, gt=0, le=360)  # the held-out rooms' camera arc
    scan: str | None = None  # a posed RGB-D scan folder (e.g. the real TUM sample), or none
    scan_frames: int = Field(10, ge=2)  # frames sampled uniformly from the scan
    random_seeds: int = Field(3, ge=1)  # random-init DiTs (init_seed, init_seed + 1, ...): the baseline band
    seed: int = Field(0, ge=0)  # the probe's noise draw and point sampling
    options: dict = Field(default_factory=dict)  # vega3d.probe.ProbeOptions fields (seed comes from above)


class _WorldTrainConfig(TrainConfig):
    """What both world families share: no online simulator. Any ``simulator`` section is read as
    given, so that the family's check refuses it by name ("remove the 'simulator' section")
    instead of pydantic reporting a field of a section that should not be there."""

    simulator: Any = None  # must stay unset: these families train their own model


class WorldTrainConfig(_WorldTrainConfig):
    """A training config of the world-model DiT (``family: world``)."""

    family: Literal["world"] = "world"
    model: WorldModelConfig = Field(default_factory=WorldModelConfig)
    data: WorldData = Field(default_factory=WorldData)
    probe: ProbeSchedule = Field(default_factory=ProbeSchedule)


class WorldVaeTrainConfig(_WorldTrainConfig):
    """A training config of the world model's VAE (``family: world_vae``)."""

    family: Literal["world_vae"] = "world_vae"
    model: WorldVaeConfig = Field(default_factory=WorldVaeConfig)
    data: WorldData = Field(default_factory=WorldData)
