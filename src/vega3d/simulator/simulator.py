"""WanWorldSimulator: frames → dense DiT-block features of Wan2.1-T2V (VEGA-3D's generative branch).

Per frame (the paper's mode, :meth:`WanWorldSimulator.extract`)::

    frames (N,3,H,W) [0,1] ─fit (whole frame)→ (N,3,height,width) ─×2−1→ [−1,1]
      ─VAE encode (in vae_dtype), one-frame video→ posterior mode (N,16,1,height/8,width/8)
      ─z = (mode − latents_mean) · (1/latents_std)            (Wan's normalisation, float32)
      ─x_t = (1 − σ)·z + σ·ε                                  (σ from flow_noise_level, float32)
      ─cast x_t to the DiT dtype
      ─DiT(t, empty-prompt context of 512 rows), blocks[0..block] only
      → hidden states on the (height/16, width/16) token grid → (N, h, w, C) float32

``block`` is 0-based: ``block=20`` is the output of the 21st of Wan2.1-1.3B's 30 blocks.

Dtypes. The DiT runs in ``dtype`` and the VAE in ``vae_dtype`` (float32 by default, as in
Wan2.1's ``WanVAE`` and diffusers' Wan pipelines). The posterior mode is upcast to float32,
normalised and mixed with ε in float32, and only ``x_t`` is cast to the DiT dtype — the order
of diffusers' ``WanVideoToVideoPipeline`` (float32 latents, ``scale_noise`` in float32, then
``latents.to(transformer_dtype)`` before the transformer).

Noise. Every call draws its noise afresh from ``torch.Generator("cpu").manual_seed(seed)``:
frame ``i`` of the call gets the ``i``-th of ``N`` successive draws of shape
``(16, 1, height/8, width/8)`` (float32, on the CPU, then moved to the device). So the
noise never depends on earlier calls, on the batch size used internally, or on the
device's random generator; it does depend on the frame's position ``i`` in the call
(frames are not given identical noise, which would correlate features at equal pixel
positions across views). Pass ``noise=`` to use your own ε.

Batches. The VAE encodes one frame per call; the DiT runs ``batch_frames`` frames per call —
a number fixed when the simulator is built (given, or derived from the model's estimated
per-frame activation memory and a fixed budget, never from the memory free on the device) and
recorded in :attr:`WanWorldSimulator.config`. On the CPU the features do not depend on it at
all (bit for bit; dit_prefix.py says how); on a GPU they may differ in the last bits between
batch sizes, which is why it is recorded. ``deterministic=True`` switches on deterministic
GPU kernels for the whole process (determinism.py). docs/simulator.md ("Determinism") says
exactly what holds where.

Fast paths (all exact up to float rounding; see dit_prefix.py and vae2d.py): the DiT stops
after ``blocks[block]``; single frames go through a 2-D VAE encoder that skips the causal
zero-padded temporal taps; the DiT runs frames in batches; the timestep and prompt
conditioning are computed once per simulator; optional ``torch.compile`` of the block stack.

Stages. :meth:`WanWorldSimulator.extract` is :meth:`~WanWorldSimulator.encode` (frames → the
normalised latents ``z``, the VAE half) followed by
:meth:`~WanWorldSimulator.features_from_latents` (noise ``z`` and run the DiT); the two
public stages give the same numbers bit for bit and let one VAE pass serve several noise
levels (``timestep=``) and one DiT pass several blocks (``blocks=``) — the ablations of the
paper's Fig. 6 at the cost of one model load (vega3d.probe.sweep).

Clip mode (:meth:`WanWorldSimulator.extract_clip`, beyond the paper): a contiguous clip of
``T = 1 + 4k`` frames is encoded as one video, so the VAE's causal temporal convs and the
DiT's self-attention see across frames. Wan's VAE maps it to ``1 + k`` latent frames:
latent 0 is frame 0 alone; latent ``m >= 1`` summarises frames ``4m−3 .. 4m``.

Geometry and the cell ↔ pixel mapping: see :mod:`vega3d.simulator.geometry`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Int, is_int
from vega3d.devices import dtype_name, parse_dtype
from vega3d.grids import resample_grid
from vega3d.progress import progress as progress_bar
from vega3d.simulator.checks import Options, check, check_tensor
from vega3d.simulator.determinism import enable_deterministic
from vega3d.simulator.dit_prefix import condition, dit_prefix
from vega3d.simulator.geometry import TOKEN_PX, ContentBox, Side, as_float_frames, fit_frames
from vega3d.simulator.noise import Shift, flow_noise_level
from vega3d.simulator.prompt import TEXT_LEN, context_sha256, load_prompt_embedding
from vega3d.simulator.vace import CONTROLS, Control, check_vace_options, control_latents, is_vace

#: Name of the noise recipe recorded in the config (bump if the draw ever changes).
NOISE_RECIPE = "cpu-generator(seed), frame i = i-th draw of (z_dim, 1, height/8, width/8)"
#: What the axes of a given ε mean (error messages).
_NOISE_AXES = " (frames, z_dim, latent frames, height/8, width/8)"
#: DiT activation memory (bytes) the default ``batch_frames`` is sized for: the same on every
#: device, so the default — and with it the features — never depends on the memory free at build time.
DEFAULT_MEMORY_BUDGET = 4 << 30
#: The largest default ``batch_frames``.
MAX_DEFAULT_BATCH = 64


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines the features (JSON-serialisable via :meth:`to_dict`).

    ``timestep`` is the requested value; ``t`` / ``sigma`` are what the DiT and the noise
    actually use (Wan's grid, :func:`flow_noise_level`). ``dtype`` is the DiT's compute dtype,
    ``vae_dtype`` the VAE's. ``mode``: ``"frame"`` (each frame its own one-frame video) or
    ``"clip"`` (one video). ``batch_frames``: frames per DiT call (the DiT's matrix-product
    kernels may round differently for another batch size on a GPU; on the CPU the features do
    not depend on it). ``deterministic``: the simulator switched on deterministic kernels.
    ``vace``: for a Wan2.1-VACE transformer, its control input and hint scale (vace.py); empty,
    and left out of :meth:`to_dict`, for Wan2.1-T2V.
    """

    model: dict
    stand_in: bool
    num_layers: int
    block: int
    timestep: float
    t: int
    sigma: float
    shift: float
    seed: int
    height: int
    width: int
    dtype: str
    vae_dtype: str
    feature_dim: int
    pad: bool = False
    mode: str = "frame"
    noise: str = NOISE_RECIPE
    prompt: dict = field(default_factory=dict)
    batch_frames: int = 1
    deterministic: bool = False
    vace: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        if not out["vace"]:  # Wan2.1-T2V configs stay as they were
            del out["vace"]
        return out


class ClipFeatures(NamedTuple):
    """Output of :meth:`WanWorldSimulator.extract_clip`.

    ``features``: (T_latent, h, w, C) float32. ``latent_frames[m]``: the input frame indices
    latent frame ``m`` summarises — ``(0,)`` for ``m = 0``, ``(4m−3, .., 4m)`` after.
    """

    features: torch.Tensor
    latent_frames: tuple


class FrameLatents(NamedTuple):
    """Output of :meth:`WanWorldSimulator.encode`: what the DiT stage needs from the frames.

    ``latents``: (N, z_dim, 1, height/8, width/8) float32 on the simulator's device — the
    VAE posterior mode normalised with Wan's latent mean/std (before any noise).
    ``box``: the :class:`~vega3d.simulator.geometry.ContentBox` the frames occupy in the
    simulator input (the whole token grid unless ``pad=True``), so that
    :meth:`WanWorldSimulator.features_from_latents` maps the token grid back onto the whole
    frame exactly as :meth:`WanWorldSimulator.extract` does.
    """

    latents: torch.Tensor
    box: ContentBox


def latent_frame_groups(num_frames: int) -> tuple:
    """Input frames behind each latent frame of a ``1 + 4k``-frame clip (Wan's VAE)."""
    below = 1 + 4 * max(0, (num_frames - 1) // 4)
    check(
        num_frames >= 1 and (num_frames - 1) % 4 == 0,
        "frames",
        f"clip of {num_frames} frames",
        f"1 + 4k frames for Wan's VAE (1, 5, 9, 13, ...): use {below} or {below + 4}",
    )
    return ((0,),) + tuple(tuple(range(4 * m - 3, 4 * m + 1)) for m in range(1, 1 + (num_frames - 1) // 4))


def check_blocks(blocks, num_layers: int) -> list[int]:
    """Validate a list of 0-based DiT block indices; returns them sorted, duplicates merged."""
    ok = not isinstance(blocks, (str, bytes)) and hasattr(blocks, "__iter__")
    values = list(blocks) if ok else []
    ok = ok and bool(values) and all(is_int(b, 0, num_layers - 1) for b in values)
    expected = f"a non-empty list of 0-based block indices, integers in 0..{num_layers - 1} (one block: set block=)"
    check(ok, "blocks", f"got {values if values else blocks!r}", expected)
    return sorted({int(b) for b in values})


class SimulatorOptions(Options):
    """The options of :class:`WanWorldSimulator` and :meth:`~WanWorldSimulator.from_pretrained`, declared
    once; :func:`_check_options` adds what depends on the model. ``description``: what an error expects."""

    # requested noise level on Wan's [0, 1000] scale, snapped to its grid (flow_noise_level)
    timestep: float = Field(300.0, ge=0, le=1000, description="a finite number in [0, 1000] (300: the paper's 0.3)")
    shift: Shift = 5.0  # the flow shift
    # the 0-based DiT block read; its range, 0..num_layers-1, is the model's (_check_options)
    block: Int = Field(20, description="an integer (0-based index of a DiT block)")
    height: Side = 480  # the model input's rows
    width: Side = 832  # the model input's columns
    seed: Int = Field(0, description="an integer")  # of the noise draw
    pad: bool = Field(False, description="True or False")  # aspect-preserving pad instead of resize
    # frames per DiT call; None: default_batch_frames of the model and memory_budget
    batch_frames: Int | None = Field(
        None, ge=1, description="None (derived from the model and memory_budget) or an integer >= 1"
    )
    # bytes of DiT activations the default batch_frames is sized for (None: DEFAULT_MEMORY_BUDGET)
    memory_budget: Int | None = Field(None, ge=1, description="None or a positive number of bytes")
    compile: bool = Field(False, description="True or False")  # torch.compile each block run
    deterministic: bool = Field(False, description="True or False")  # process-wide deterministic kernels
    prompt_cache: bool = Field(True, description="True or False")  # from_pretrained: use the prompt-context cache
    vace_control: Control = Field("frames", description=f"one of {list(CONTROLS)}")  # Wan2.1-VACE's control input
    vace_scale: float = Field(1.0, description="a finite number (the hints' scale; 1.0 as the pipeline)")  # VACE


def _check_options(num_layers: int, vace: bool, **options) -> tuple[SimulatorOptions, tuple[int, float]]:
    """The simulator options a user passes (constructor or :meth:`WanWorldSimulator.from_pretrained`),
    checked for a model of ``num_layers`` blocks (``vace``: a Wan2.1-VACE one); returns them and
    ``(t, sigma)`` of ``timestep`` and ``shift``."""
    opts = SimulatorOptions(**options)
    expected = (
        f"an integer in 0..{num_layers - 1} (0-based index into the DiT's {num_layers} blocks; the paper uses 20 of 30)"
    )
    check(0 <= opts.block < num_layers, "block", f"got {options['block']!r}", expected)
    check_vace_options(vace, opts.vace_control, opts.vace_scale)
    return opts, flow_noise_level(opts.timestep, opts.shift)


class WanWorldSimulator:
    """Dense features of a frozen Wan2.1-T2V at one noise level and DiT block.

    Build with :meth:`from_pretrained` (a checkpoint folder) or directly from loaded diffusers
    modules (``WanTransformer3DModel``, ``AutoencoderKLWan``; used as given — device, dtype —
    and expected in eval mode), the (z_dim,) latent mean/std and the empty-prompt context
    (trimmed (k, text_dim) or padded (text_len, text_dim)). ``vae_dtype=None`` uses the VAE
    in its own dtype; a dtype (or name) that differs from it makes the simulator use a cast
    copy of the VAE (the given module is left as it is).

    Arguments: ``timestep`` (0..1000, snapped to Wan's grid) and ``shift`` give ``(t, sigma)``
    via :func:`flow_noise_level`; ``block`` 0-based DiT block; ``height``/``width`` the model
    input (multiples of 16); ``seed`` of the noise draw; ``pad`` aspect-preserving pad instead
    of resize (geometry.py); ``batch_frames`` frames per DiT call, else
    :func:`default_batch_frames` of the model, the size and ``memory_budget`` bytes (default
    :data:`DEFAULT_MEMORY_BUDGET`; never the device's free memory); ``deterministic=True``
    switches on deterministic kernels for the whole process
    (:func:`vega3d.simulator.determinism.enable_deterministic` — a process-wide switch);
    ``compile`` wraps each block that is run in ``torch.compile``; ``identity`` / ``stand_in``
    describe the weights for :attr:`config` (from the loader). A ``WanVACETransformer3DModel``
    (Wan2.1-VACE) runs on the same path with its control branch: ``vace_control`` ("frames" or
    "none") and ``vace_scale`` say what it is fed (:mod:`vega3d.simulator.vace`).

    Each argument is checked once, where it enters: here, or in :meth:`from_pretrained`
    (before any weight is read), which then builds the simulator from the loader's already
    checked outputs without checking them again.
    """

    def __init__(
        self,
        transformer,
        vae,
        latents_mean: torch.Tensor,
        latents_std: torch.Tensor,
        prompt_embedding: torch.Tensor,
        *,
        timestep: float = 300,
        shift: float = 5.0,
        block: int = 20,
        height: int = 480,
        width: int = 832,
        seed: int = 0,
        pad: bool = False,
        batch_frames: int | None = None,
        memory_budget: int | None = None,
        compile: bool = False,
        identity: dict | None = None,
        stand_in: bool = False,
        text_len: int = TEXT_LEN,
        vae_dtype=None,
        deterministic: bool = False,
        vace_control: str = "frames",
        vace_scale: float = 1.0,
    ):
        options = dict(timestep=timestep, shift=shift, block=block, height=height, width=width, seed=seed, pad=pad,
                       batch_frames=batch_frames, memory_budget=memory_budget, compile=compile,
                       deterministic=deterministic, vace_control=vace_control, vace_scale=vace_scale)  # fmt: skip
        opts, noise_level = _check_options(len(transformer.blocks), is_vace(transformer), **options)
        z_dim = int(vae.config.z_dim)
        check_tensor(latents_mean, "latents_mean", (z_dim,))
        check_tensor(latents_std, "latents_std", (z_dim,))
        check(bool((latents_std > 0).all()), "latents_std", "values <= 0", "all values > 0")
        context = load_prompt_embedding(prompt_embedding, int(transformer.config.text_dim), text_len)
        if vae_dtype is not None:
            vae = _vae_in(vae, parse_dtype(vae_dtype, "vae_dtype"))
        source = "tensor" if isinstance(prompt_embedding, torch.Tensor) else str(prompt_embedding)
        prompt = (identity or {}).get("prompt") or {"source": source, "sha256": context_sha256(context)}
        model = {k: v for k, v in (identity or {"source": "in-memory modules"}).items() if k != "prompt"}
        self._build(transformer, vae, latents_mean, latents_std, context, opts, noise_level)
        self.config = self._make_config(model, prompt, stand_in, opts)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        path,
        *,
        timestep: float = 300,
        shift: float = 5.0,
        block: int = 20,
        height: int = 480,
        width: int = 832,
        seed: int = 0,
        dtype=torch.float32,
        device="cpu",
        prompt_embedding=None,
        pad: bool = False,
        batch_frames: int | None = None,
        memory_budget: int | None = None,
        compile: bool = False,
        vae_dtype=torch.float32,
        deterministic: bool = False,
        prompt_cache: bool = True,
        vace_control: str = "frames",
        vace_scale: float = 1.0,
    ) -> WanWorldSimulator:
        """Load a Wan2.1-T2V folder (diffusers or original layout) and build the simulator.

        ``dtype``: torch dtype or name ("float32", "bfloat16") of the DiT. ``vae_dtype``: the
        VAE's, float32 by default whatever ``dtype`` is (Wan's reference keeps the VAE in
        float32). ``prompt_embedding``: tensor or safetensors file of the empty-prompt context (else the
        folder's ``prompt_embedding.safetensors``, else its text encoder's context, read from the
        prompt-context cache or computed once and stored there; ``prompt_cache=False`` bypasses
        the cache: :mod:`vega3d.simulator.prompt_cache`). ``deterministic=True`` is switched on
        before anything is loaded. Other arguments: see the class docstring. Every argument is
        checked before the weights are read.
        """
        from vega3d.simulator.layouts import load_wan_components, open_wan_folder

        dtype, vae_dtype = parse_dtype(dtype), parse_dtype(vae_dtype, "vae_dtype")
        folder = open_wan_folder(path)
        options = dict(timestep=timestep, shift=shift, block=block, height=height, width=width, seed=seed, pad=pad,
                       batch_frames=batch_frames, memory_budget=memory_budget, compile=compile,
                       deterministic=deterministic, prompt_cache=prompt_cache, vace_control=vace_control,
                       vace_scale=vace_scale)  # fmt: skip
        opts, noise_level = _check_options(folder.num_layers, is_vace(folder.dit_config), **options)
        if deterministic:
            enable_deterministic()  # before the first CUDA kernel of the load
        parts = load_wan_components(
            folder, dtype=dtype, vae_dtype=vae_dtype, device=device, prompt_embedding=prompt_embedding,
            prompt_cache=prompt_cache,
        )  # fmt: skip
        assert len(parts.transformer.blocks) == folder.num_layers  # strict loading: the weights match the config
        sim = cls.__new__(cls)  # the parts are checked by the loader: build without checking them again
        sim._build(parts.transformer, parts.vae, parts.latents_mean, parts.latents_std, parts.prompt_embedding,
                   opts, noise_level)  # fmt: skip
        model = {k: v for k, v in parts.identity.items() if k != "prompt"}
        sim.config = sim._make_config(model, parts.identity["prompt"], parts.stand_in, opts)
        return sim

    def _build(self, transformer, vae, latents_mean, latents_std, context, opts: SimulatorOptions, noise_level):
        """Set up from checked parts: ``context`` padded (text_len, text_dim) float32, ``opts`` from
        :func:`_check_options` (whose ``(t, sigma)`` is ``noise_level``)."""
        from vega3d.simulator.vae2d import FrameEncoder, supports_2d

        assert tuple(latents_mean.shape) == (int(vae.config.z_dim),) and context.ndim == 2
        self.deterministic = opts.deterministic
        if self.deterministic:
            enable_deterministic()  # process-wide; before the conditioning's first kernels
        self.transformer, self.vae = transformer, vae
        self.t, self.sigma = noise_level
        self.z_dim = int(vae.config.z_dim)
        self.block, self.height, self.width = opts.block, opts.height, opts.width
        self.seed, self.pad, self.compiled = opts.seed, opts.pad, opts.compile
        self.device = transformer.patch_embedding.weight.device
        self.dtype = transformer.patch_embedding.weight.dtype
        self.vae_dtype = vae.encoder.conv_in.weight.dtype
        self._mean = latents_mean.float().to(self.device).view(1, -1, 1, 1, 1)
        self._inv_std = (1.0 / latents_std.float()).to(self.device).view(1, -1, 1, 1, 1)
        self._tproj, self._context = condition(transformer, self.t, context)
        self._prompt_rows = context  # raw (text_len, text_dim): conditioning at other timesteps
        # Wan2.1-VACE: (control, scale) and the mid-grey frame's latent per latent-frame count (vace.py)
        self._vace = (opts.vace_control, opts.vace_scale) if is_vace(transformer) else None
        self._grey: dict[int, torch.Tensor] = {}
        self._frame_encoder = FrameEncoder(vae) if supports_2d(vae) else None
        self._blocks = [torch.compile(b) for b in transformer.blocks[: self.block + 1]] if self.compiled else None
        batch = opts.batch_frames
        if batch is None:
            batch = default_batch_frames(transformer.config, self.height, self.width, self.dtype, opts.memory_budget)
        self._batch = int(batch)

    def _make_config(self, model: dict, prompt: dict, stand_in: bool, opts: SimulatorOptions) -> SimulatorConfig:
        """:attr:`config`: ``model`` / ``prompt`` describe the weights and the context (the loader's identity)."""
        return SimulatorConfig(
            model=model,
            stand_in=bool(stand_in),
            num_layers=len(self.transformer.blocks),
            block=self.block,
            timestep=opts.timestep,
            t=self.t,
            sigma=self.sigma,
            shift=opts.shift,
            seed=self.seed,
            height=self.height,
            width=self.width,
            dtype=dtype_name(self.dtype),
            vae_dtype=dtype_name(self.vae_dtype),
            feature_dim=self.feature_dim,
            pad=self.pad,
            prompt=prompt,
            batch_frames=self._batch,
            deterministic=self.deterministic,
            vace=self._vace_config(),
        )

    # ------------------------------------------------------------------ properties
    @property
    def feature_dim(self) -> int:
        """C: the DiT width (1536 for Wan2.1-T2V-1.3B)."""
        cfg = self.transformer.config
        return int(cfg.num_attention_heads * cfg.attention_head_dim)

    @property
    def stand_in(self) -> bool:
        """True when the weights are a random-weight stand-in, not Wan2.1."""
        return self.config.stand_in

    @property
    def noise_level(self) -> tuple[int, float]:
        """``(t, sigma)``: the DiT timestep and the noise level actually used."""
        return self.t, self.sigma

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(h, w) = (height // 16, width // 16)``: the returned grid."""
        return self.height // TOKEN_PX, self.width // TOKEN_PX

    @property
    def batch_frames(self) -> int:
        """Frames per DiT call (given, or :func:`default_batch_frames`; recorded in :attr:`config`)."""
        return self._batch

    def __repr__(self) -> str:
        tag = ""
        if self.stand_in:
            from vega3d.standin import stand_in_label

            path = self.config.model.get("path")
            tag = f" — STAND-IN, {stand_in_label(path) if path else 'random weights'}, NOT Wan2.1"
        return (
            f"WanWorldSimulator(block={self.block}/{self.config.num_layers}, t={self.t}, sigma={self.sigma:.8f}, "
            f"{self.height}x{self.width}, C={self.feature_dim}, DiT {self.config.dtype} / VAE {self.config.vae_dtype} "
            f"on {self.device}{tag})"
        )

    # ------------------------------------------------------------------ noise
    def draw_noise(self, num_frames: int) -> torch.Tensor:
        """The ε :meth:`extract` uses for ``num_frames`` frames: (N, z_dim, 1, height/8, width/8) float32, CPU."""
        return self._noise_stream()(num_frames)

    def _noise_stream(self):
        """``draw(k)``: the next ``k`` per-frame draws of :meth:`draw_noise`'s sequence, stacked."""
        gen = torch.Generator("cpu").manual_seed(self.seed)
        shape = (self.z_dim, 1, self.height // 8, self.width // 8)
        return lambda k: torch.stack([torch.randn(shape, generator=gen) for _ in range(k)])

    def _noise_at(self, noise, shape: tuple):
        """``noise_at(s, e)``: the ε of frames ``s..e-1`` — ``noise`` (checked against ``shape``),
        or by default the seeded per-frame draws of :meth:`draw_noise` (batches are taken in order,
        so frame ``i`` gets the ``i``-th draw)."""
        if noise is None:
            draw = self._noise_stream()
            return lambda s, e: draw(e - s)
        eps = check_tensor(noise, "noise", shape, _NOISE_AXES).float()
        return lambda s, e: eps[s:e]

    # ------------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, frames, noise: torch.Tensor | None = None, *, progress: bool = False) -> torch.Tensor:
        """Per-frame features: (N, height//16, width//16, C) float32 on the simulator's device.

        ``frames``: (N, 3, H, W) float in [0, 1] or (N, H, W, 3) uint8 (tensor or numpy), any
        H, W (fitted whole, see geometry.py). Frames go ``batch_frames`` at a time: uint8 frames
        are converted to float one batch at a time, so the float copies of the input take
        ``batch_frames x 3 x H x W x 4`` bytes, not ``N x ...``; the VAE encodes them one by one,
        the DiT runs the batch; the default noise is drawn per batch too. ``noise``: optional ε
        (N, z_dim, 1, height/8, width/8).
        """
        n, frames_at = _frame_batches(frames, self.device)
        noise_at = self._noise_at(noise, (n, self.z_dim, 1, self.height // 8, self.width // 8))
        out = torch.empty((n, *self.grid_size, self.feature_dim), dtype=torch.float32, device=self.device)
        for s in self._starts(n, progress, "simulator"):
            e = min(n, s + self._batch)
            x, box = fit_frames(frames_at(s, e), self.height, self.width, self.pad)
            z = self._normalise(self._encode_frames(x))
            feats = self._noised_features(z, noise_at(s, e).to(self.device), self.sigma, self._tproj, self.block)[:, 0]
            out[s:e] = self._to_full_frame(feats, box)
        return out

    @torch.no_grad()
    def encode(self, frames, *, progress: bool = False) -> FrameLatents:
        """Stage 1 of :meth:`extract`: frames → :class:`FrameLatents` ``(latents, box)``.

        ``latents``: (N, z_dim, 1, height/8, width/8) float32 on the simulator's device, the
        normalised VAE posterior mode ``z = (mode − latents_mean) / latents_std`` of each frame
        fitted whole to ``height x width`` (geometry.py), in the same internal batches as
        :meth:`extract`. ``frames`` as for :meth:`extract`. No noise is involved, so one call
        serves every timestep (:meth:`features_from_latents`). Holds N latents
        (16 x height/8 x width/8 floats each: 0.4 MB per frame at 480x832).
        """
        n, frames_at = _frame_batches(frames, self.device)
        out = torch.empty(
            (n, self.z_dim, 1, self.height // 8, self.width // 8), dtype=torch.float32, device=self.device
        )
        box = None
        for s in self._starts(n, progress, "simulator: VAE"):
            e = min(n, s + self._batch)
            x, box = fit_frames(frames_at(s, e), self.height, self.width, self.pad)
            out[s:e] = self._normalise(self._encode_frames(x))
        return FrameLatents(out, box)

    @torch.no_grad()
    def features_from_latents(
        self,
        latents,
        noise: torch.Tensor | None = None,
        *,
        timestep: float | None = None,
        blocks=None,
        progress: bool = False,
    ):
        """Stage 2 of :meth:`extract`: noise the latents and read the DiT.

        ``latents``: :meth:`encode`'s :class:`FrameLatents`, or a bare (N, z_dim, 1,
        height/8, width/8) float tensor of normalised latents (``pad=False`` only: with
        ``pad=True`` the content box is needed to map the grid back onto the frame).
        ``noise``: optional ε of that shape; by default the same seeded draw as
        :meth:`extract`, so ``features_from_latents(encode(frames))`` equals
        ``extract(frames)`` bit for bit. ``timestep``: another noise level than the
        simulator's (mapped with ``flow_noise_level(timestep, config.shift)``; same ε).
        ``blocks``: a list of 0-based block indices read from ONE DiT pass that stops after
        the deepest of them.

        Returns the (N, height//16, width//16, C) float32 grid of the configured block on the
        simulator's device, or with ``blocks`` a dict ``{block: grid}`` (sorted, duplicates
        merged). With ``compile=True``, blocks deeper than the configured one run uncompiled.
        """
        z, box = self._check_latents(latents)
        wanted = check_blocks(blocks, len(self.transformer.blocks)) if blocks is not None else None
        sigma, tproj = self._conditioning(timestep)
        n = z.shape[0]
        noise_at = self._noise_at(noise, tuple(z.shape))
        keys = wanted if wanted is not None else [self.block]
        grid = (n, *self.grid_size, self.feature_dim)
        out = {b: torch.empty(grid, dtype=torch.float32, device=self.device) for b in keys}
        for s in self._starts(n, progress, "simulator: DiT"):
            e = min(n, s + self._batch)
            eps = noise_at(s, e).to(self.device)
            feats = self._noised_features(z[s:e], eps, sigma, tproj, wanted if wanted is not None else self.block)
            feats = feats if wanted is not None else {self.block: feats}
            for b in keys:
                out[b][s:e] = self._to_full_frame(feats[b][:, 0], box)
        return out if wanted is not None else out[self.block]

    def _conditioning(self, timestep) -> tuple[float, torch.Tensor]:
        """``(sigma, timestep projection)`` at ``timestep`` (None: the simulator's own)."""
        if timestep is None:
            return self.sigma, self._tproj
        t, sigma = flow_noise_level(timestep, self.config.shift)
        return sigma, self._tproj if t == self.t else condition(self.transformer, t, self._prompt_rows)[0]

    @torch.no_grad()
    def extract_clip(self, frames, noise: torch.Tensor | None = None) -> ClipFeatures:
        """Clip-mode features: the ``T = 1 + 4k`` frames encoded as one video.

        Returns :class:`ClipFeatures` ``(features (1 + k, h, w, C) float32, latent_frames)``.
        ``noise``: optional ε (1, z_dim, 1 + k, height/8, width/8); by default one draw of that
        shape from a CPU generator seeded with ``seed``.
        """
        frames = as_float_frames(frames)
        groups = latent_frame_groups(frames.shape[0])
        shape = (1, self.z_dim, len(groups), self.height // 8, self.width // 8)
        if noise is None:
            eps = torch.randn(shape[1:], generator=torch.Generator("cpu").manual_seed(self.seed))[None]
        else:
            eps = check_tensor(noise, "noise", shape, _NOISE_AXES).float()
        x, box = fit_frames(frames.to(self.device), self.height, self.width, self.pad)
        video = (x * 2.0 - 1.0).to(self.vae_dtype).permute(1, 0, 2, 3)[None]  # (1, 3, T, H, W)
        z = self._normalise(self.vae.encode(video).latent_dist.mode())
        feats = self._noised_features(z, eps.to(self.device), self.sigma, self._tproj, self.block)
        return ClipFeatures(self._to_full_frame(feats[0], box), groups)  # feats[0]: (T_lat, h, w, C)

    @property
    def clip_config(self) -> SimulatorConfig:
        """The config recorded for :meth:`extract_clip` outputs (``mode="clip"``)."""
        return replace(self.config, mode="clip")

    # ------------------------------------------------------------------ pieces
    def _encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, height, width) in [0, 1] → posterior mode (B, z_dim, 1, height/8, width/8),
        one frame per VAE call: torch's convolutions pick their algorithm by batch size (on the
        CPU a native kernel for one small input, oneDNN otherwise; cuDNN's choice on a GPU),
        so a batch of one every time keeps a frame's latent independent of its neighbours and
        of ``batch_frames``. (One 480x832 frame already fills the convolutions' work.)"""
        x = (x * 2.0 - 1.0).to(self.vae_dtype)
        if self._frame_encoder is not None:
            return torch.cat([self._frame_encoder(x[i : i + 1]) for i in range(x.shape[0])])[:, :, None]
        return torch.cat([self.vae.encode(x[i : i + 1, :, None]).latent_dist.mode() for i in range(x.shape[0])])

    def _normalise(self, mode: torch.Tensor) -> torch.Tensor:
        """Posterior mode (B, z, F, h8, w8) → normalised latents z, float32 (Wan's mean/std)."""
        # contiguous: the 2-D encoder's output can be channels-last, and the DiT's patch conv
        # rounds differently on another memory format (extract must equal encode + DiT bit for bit)
        return ((mode.float() - self._mean) * self._inv_std).contiguous()

    def _noised_features(self, z: torch.Tensor, eps: torch.Tensor, sigma: float, tproj: torch.Tensor, blocks):
        """Latents z (B, z, F, h8, w8) float32 → DiT features (B, F, h, w, C) float32.

        ``x_t = (1 − sigma)·z + sigma·ε`` in float32, cast to the DiT dtype, conditioned with
        ``tproj`` (:func:`condition` at the matching timestep). ``blocks``: ``self.block``
        (→ its grid) or a sorted list of indices (→ ``{block: grid}``, one pass to the deepest).
        """
        x_t = ((1.0 - sigma) * z + sigma * eps).to(self.dtype)
        control = self._control(z)
        if not isinstance(blocks, list):  # the configured block (extract's path)
            return dit_prefix(self.transformer, x_t, tproj, self._context, self.block, self._blocks, control).float()
        compiled = self._blocks or []
        taps = {}
        stack = []
        for i in range(blocks[-1] + 1):
            fn = compiled[i] if i < len(compiled) else self.transformer.blocks[i]
            stack.append(_Tap(fn, i, taps) if i in blocks else fn)
        last = dit_prefix(self.transformer, x_t, tproj, self._context, blocks[-1], stack, control)
        grid = last.shape[1:4]  # (F, h, w): the other taps are token sequences in the same order
        return {b: (last if b == blocks[-1] else taps[b].unflatten(1, grid)).float() for b in blocks}

    def _control(self, z: torch.Tensor):
        """``(control latents, scale)`` for :func:`dit_prefix` (None for Wan2.1-T2V): vace.py."""
        if self._vace is None:
            return None
        frames = int(z.shape[2])
        if frames not in self._grey:  # the latent of a mid-grey (0 in [-1, 1]) frame or clip, once
            grey = torch.full((1 + 4 * (frames - 1), 3, self.height, self.width), 0.5, device=self.device)
            if frames == 1:
                mode = self._encode_frames(grey)
            else:  # a clip of 1 + 4(F - 1) grey frames, one video
                video = (grey * 2.0 - 1.0).to(self.vae_dtype).permute(1, 0, 2, 3)[None]
                mode = self.vae.encode(video).latent_dist.mode()
            self._grey[frames] = self._normalise(mode)
        return control_latents(z, self._grey[frames], self._vace[0]).to(self.dtype), self._vace[1]

    def _vace_config(self) -> dict:
        if self._vace is None:
            return {}
        layers = [int(v) for v in self.transformer.config.vace_layers]
        return {"control": self._vace[0], "scale": self._vace[1], "layers": layers}

    def _check_latents(self, latents) -> tuple[torch.Tensor, ContentBox]:
        """Check :meth:`features_from_latents`' input: ``(z on the device, float32; box)``."""
        latents, box = latents if isinstance(latents, FrameLatents) else (latents, None)
        shape = (None, self.z_dim, 1, self.height // 8, self.width // 8)
        meaning = " (frames, z_dim, one latent frame, height/8, width/8 of this simulator), or encode()'s FrameLatents"
        check_tensor(latents, "latents", shape, meaning)
        h, w = self.grid_size
        whole = ContentBox(0, 0, h, w)
        box = whole if box is None and not self.pad else box  # pad=False: a bare tensor fills the grid
        fits = isinstance(box, ContentBox) and min(box.top, box.left) >= 0 and min(box.rows, box.cols) >= 1
        fits = fits and box.top + box.rows <= h and box.left + box.cols <= w and (self.pad or box == whole)
        if self.pad:  # the content box maps the token grid back onto the whole frame
            expected = f"encode()'s FrameLatents, with a ContentBox inside the {h}x{w} token grid"
        else:
            expected = f"a ContentBox inside the {h}x{w} token grid covering all of it (the simulator has pad=False; "
            expected += "latents encoded with pad=True need a pad=True simulator)"
        check(fits, "latents.box", "a bare tensor" if box is None else f"got {box!r}", expected)
        return latents.to(device=self.device, dtype=torch.float32), box

    def _starts(self, n: int, progress: bool, desc: str):
        """Start indices of the internal batches, with a progress bar (:mod:`vega3d.progress`) when ``progress``."""
        starts = range(0, n, self._batch)
        return progress_bar(starts, desc=desc, unit="batch") if progress else starts

    def _to_full_frame(self, grid: torch.Tensor, box: ContentBox) -> torch.Tensor:
        """Crop a padded token grid (N, h, w, C) to the frame's box and resample onto (h, w)
        (the identity in resize mode, where the box is the whole grid)."""
        if not self.pad:
            return grid
        return resample_grid(box.crop(grid), self.grid_size)


def dit_bytes_per_frame(transformer_config, height: int, width: int, dtype: torch.dtype) -> int:
    """Estimated DiT activation bytes of one frame: the token activations (8 tensors of width C)
    and the FFN hidden layer in ``dtype``, plus one float32 attention score matrix per head
    (an upper bound: fused attention kernels never hold it). A function of the model and the
    size only; benchmarks/gpu_check.py compares it with the measured peak."""
    cfg = transformer_config
    width_c = int(cfg.num_attention_heads) * int(cfg.attention_head_dim)
    tokens = (height // TOKEN_PX) * (width // TOKEN_PX)
    element = torch.finfo(dtype).bits // 8
    return tokens * (int(cfg.ffn_dim) + 8 * width_c) * element + int(cfg.num_attention_heads) * tokens * tokens * 4


def default_batch_frames(transformer_config, height: int, width: int, dtype: torch.dtype, memory_budget=None) -> int:
    """Frames per DiT call so the estimated activations (:func:`dit_bytes_per_frame`) stay under
    ``memory_budget`` bytes (default :data:`DEFAULT_MEMORY_BUDGET`), between 1 and
    :data:`MAX_DEFAULT_BATCH`. Depends on the model, size and dtype only — not on the device
    or its free memory — so the same settings always give the same batch (and features).
    Wan2.1-1.3B in bf16: 23 frames at 832x480, 5 at 1280x720."""
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    per_frame = dit_bytes_per_frame(transformer_config, height, width, dtype)
    return int(max(1, min(MAX_DEFAULT_BATCH, budget // per_frame)))


def _frame_batches(frames, device):
    """Validate ``frames`` for :meth:`WanWorldSimulator.extract`: ``(N, frames_at)`` with
    ``frames_at(s, e)`` the float32 (e − s, 3, H, W) frames ``s..e-1`` in [0, 1] on ``device``.

    Well-formed uint8 (N, H, W, 3) input is converted one slice at a time where it lies, as
    :func:`as_float_frames` converts it, then moved (the conversion is elementwise, so the
    values equal a whole-array conversion bit for bit; converting on the input's device keeps
    the rounding of ``/ 255`` the same as before, since CUDA may divide by a reciprocal). Anything else
    goes through :func:`as_float_frames` at once: float frames as before (their range check
    needs every value), malformed input to its error message.
    """
    is_uint8 = (isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8) or (
        isinstance(frames, np.ndarray) and frames.dtype == np.uint8
    )
    if is_uint8 and frames.ndim == 4 and frames.shape[-1] == 3 and min(frames.shape) > 0:
        return int(frames.shape[0]), lambda s, e: as_float_frames(frames[s:e]).to(device)
    x = as_float_frames(frames)
    return int(x.shape[0]), lambda s, e: x[s:e].to(device)


def _vae_in(vae, dtype: torch.dtype):
    """``vae`` itself when its weights are already ``dtype``, else a cast copy (same device,
    eval, no gradients; diffusers' ``_keep_in_fp32_modules`` rule)."""
    if vae.encoder.conv_in.weight.dtype == dtype:
        return vae
    import copy

    from vega3d.simulator.layouts import cast_like_diffusers

    return cast_like_diffusers(copy.deepcopy(vae), dtype).eval().requires_grad_(False)


class _Tap:
    """A block callable that also keeps its output in ``store[index]`` (multi-block reads)."""

    def __init__(self, fn, index: int, store: dict):
        self.fn, self.index, self.store = fn, index, store

    def __call__(self, *args):
        out = self.fn(*args)
        self.store[self.index] = out
        return out
