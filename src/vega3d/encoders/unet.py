"""What the diffusion-UNet towers share (``sd21``, ``svd``): block names, reading block outputs
from the stock forward, folder loading, seeded noise, and :class:`UNetEncoder`, their base (the
settings both take, several blocks from one UNet pass, the config at another timestep / block).

Blocks are named in the order the UNet runs them: ``down0 .. down3``, ``mid``, ``up0 .. up3``
(``down_blocks[i]``, ``mid_block``, ``up_blocks[i]`` of diffusers' ``UNet2DConditionModel`` /
``UNetSpatioTemporalConditionModel``). A block's features are its output — for a down block the
hidden states it passes down (not the skip tensors it also returns), for an up block after its
upsampler (DIFT's ``up_ft_index``: ``up1`` is DIFT's default). :func:`read_blocks` runs the
library's own ``forward`` with a forward hook on each requested block and stops it (an exception
raised by the last hook) once the deepest one has run: the numbers are the stock forward's, and the
blocks after it are never computed.

Geometry: the frame is resized whole (no crop) to ``height x width``, multiples of
:data:`MULTIPLE` (VAE factor 8 x three 2x levels), so every block's output grid tiles the frame
exactly: cell (i, j) of an (h, w) grid covers pixels ``[jW/w, (j+1)W/w) x [iH/h, (i+1)H/h)`` of
the original frame (vega3d.grids). Strides (input pixels per cell): down0 16, down1 32, down2 64,
down3 64, mid 64, up0 32, up1 16, up2 8, up3 8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from vega3d.devices import dtype_name, parse_dtype
from vega3d.encoders.common import Encoder
from vega3d.errors import Vega3DError
from vega3d.files import fingerprint, read_json
from vega3d.standin import is_stand_in

#: Block names in execution order.
BLOCKS = ("down0", "down1", "down2", "down3", "mid", "up0", "up1", "up2", "up3")
#: Input sizes must be multiples of this (VAE /8, then three 2x downsamplings).
MULTIPLE = 64


def check_size(height, width, where: str) -> tuple[int, int]:
    """``(height, width)``: positive multiples of :data:`MULTIPLE`."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % MULTIPLE == 0 for v in (height, width))
    if not ok:
        raise Vega3DError(
            f"{where}: height={height!r}, width={width!r}; expected positive multiples of {MULTIPLE} "
            "(VAE factor 8 x the UNet's three 2x levels), so every block's grid tiles the frame exactly"
        )
    return int(height), int(width)


def check_blocks(num_down: int, num_up: int, blocks, where: str) -> list[str]:
    """Block names (one name or a list) of a UNet with ``num_down`` / ``num_up`` blocks,
    de-duplicated, in execution order."""
    names = [blocks] if isinstance(blocks, str) else list(blocks) if isinstance(blocks, (list, tuple)) else [None]
    valid = [f"down{i}" for i in range(num_down)] + ["mid"] + [f"up{i}" for i in range(num_up)]
    bad = [b for b in names if b not in valid]
    if bad or not names:
        raise Vega3DError(
            f"{where}: block {blocks!r}; expected one of {valid} or a non-empty list of them "
            "(in execution order; DIFT reads up1)"
        )
    return sorted(set(names), key=valid.index)


def block_module(unet, name: str) -> torch.nn.Module:
    if name == "mid":
        return unet.mid_block
    kind, index = name[:-1], int(name[-1])
    return (unet.down_blocks if kind == "down" else unet.up_blocks)[index]


class _Stop(Exception):
    """Raised by the last hook: the forward need not go on."""


def read_blocks(unet, names: list[str], run) -> dict[str, torch.Tensor]:
    """``{name: output}`` of the named blocks (in execution order, :func:`check_blocks`) during
    ``run()`` — a call of the stock ``unet(...)`` — which is stopped after the last of them."""
    out: dict[str, torch.Tensor] = {}

    def hook(name):
        def keep(module, args, output):
            out[name] = output[0] if isinstance(output, tuple) else output  # down blocks: (states, skips)
            if name == names[-1]:
                raise _Stop

        return keep

    handles = [block_module(unet, n).register_forward_hook(hook(n)) for n in names]
    try:
        run()
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    assert set(out) == set(names), f"blocks {sorted(set(names) - set(out))} did not run"
    return out


def require_files(root: Path, files: list[str], what: str) -> Path:
    """``root`` when it holds every one of ``files``; else one error listing the missing ones."""
    root = Path(root).expanduser()
    missing = [f for f in files if not (root / f).is_file()]
    if not root.is_dir() or missing:
        found = "does not exist" if not root.is_dir() else f"missing {', '.join(missing)}"
        raise Vega3DError(f"{root}: not a {what} folder in the diffusers layout ({found}); expected {', '.join(files)}")
    return root


def load_part(root: Path, sub: str, cls, dtype: torch.dtype, device, library: str = "diffusers"):
    """``cls.from_pretrained(root/sub)`` loaded strictly (every weight present, none extra), frozen on ``device``."""
    from vega3d.simulator.convert import from_pretrained_strict

    kw = dict(local_files_only=True, output_loading_info=True)
    kw["torch_dtype" if library == "diffusers" else "dtype"] = dtype
    model = from_pretrained_strict(lambda: cls.from_pretrained(root / sub, **kw), root / sub, cls.__name__, library)
    return model.to(device).eval().requires_grad_(False)


def noise_draws(seed: int, count: int, shape: tuple) -> torch.Tensor:
    """``count`` successive N(0, 1) draws of ``shape`` from ``torch.Generator("cpu").manual_seed(seed)``:
    (count, *shape) float32 — draw k never depends on the batch sizes used or on earlier calls."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    return torch.stack([torch.randn(shape, generator=gen) for _ in range(count)]) if count else torch.empty(0, *shape)


def vp_noise(alphas_cumprod: torch.Tensor, timestep, where: str) -> tuple[int, float, float]:
    """``(t, sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))`` for an integer DDPM timestep ``t``, in
    float32 as diffusers' ``add_noise`` computes them."""
    timestep = check_timestep(timestep, len(alphas_cumprod), where)
    a = alphas_cumprod.float()[timestep]
    return timestep, float(a**0.5), float((1 - a) ** 0.5)


def check_timestep(timestep, n: int, where: str) -> int:
    """An integer DDPM training step in ``[0, n)`` (bools refused)."""
    if isinstance(timestep, bool) or not isinstance(timestep, int) or not 0 <= timestep < n:
        raise Vega3DError(f"{where}: timestep {timestep!r}; expected an integer in [0, {n - 1}] (DDPM training step)")
    return int(timestep)


def to_grid(features: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) block output → (N, h, w, C) float32 on the CPU."""
    return features.permute(0, 2, 3, 1).float().cpu().contiguous()


def check_int(value, name: str, low: int, where: str) -> int:
    """An integer ``>= low`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise Vega3DError(f"{where}: {name}={value!r}; expected an integer >= {low}")
    return int(value)


class UNetEncoder(Encoder):
    """Base of the UNet towers. A subclass calls :meth:`_settings` first in ``__init__``, keeps the
    parts it loads in ``unet`` (and ``vae``), and defines ``encode(frames)`` (the VAE stage),
    ``from_latents(latents, *, timestep=None, blocks=None)`` (the UNet stage, through :meth:`_read`),
    ``_latents(x)`` (``encode`` of checked frames) and ``_noise_config(timestep)`` (the config
    fields that name a noise level)."""

    def _settings(self, model, files, what, block, height, width, seed, dtype, vae_dtype, device) -> tuple[Path, dict]:
        """Check and keep what every UNet tower takes (``block``, ``height``/``width``, ``seed``,
        dtypes, device) before any weight is read; returns the model folder (holding ``files``) and
        its UNet config."""
        where = f"{self.name} encoder"
        root = require_files(model, files, what)
        unet = read_json(root / "unet" / "config.json", f"{self.name} UNet config")
        if not isinstance(block, str):
            raise Vega3DError(f"{where}: block={block!r}; expected one block name (several: use blocks())")
        self.block = check_blocks(len(unet["down_block_types"]), len(unet["up_block_types"]), block, where)[0]
        self.height, self.width = check_size(height, width, where)
        self.seed = check_int(seed, "seed", 0, where)
        self.dtype = parse_dtype(dtype, f"{where}: dtype")
        self.vae_dtype = parse_dtype(vae_dtype, f"{where}: vae_dtype")
        self.device = torch.device(device)
        return root, unet

    def _identity(self, root: Path, parts: Iterable[str]) -> dict:
        """The first fields of :attr:`config`: name, model (path + hash of the ``parts``' weights), stand-in, block."""
        weights = [p for sub in parts for p in sorted((root / sub).glob("*.safetensors"))]
        model = {"path": str(root.resolve()), "weights_hash": fingerprint(root, weights)}
        return {"name": self.name, "model": model, "stand_in": is_stand_in(root), "block": self.block}

    def _dtypes(self) -> dict:
        """The last fields of :attr:`config`."""
        return {"dtype": dtype_name(self.dtype), "vae_dtype": dtype_name(self.vae_dtype)}

    def _block_names(self, blocks) -> list[str]:
        """``blocks`` (or the encoder's block) checked against the loaded UNet, in execution order."""
        unet = self.unet
        return check_blocks(len(unet.down_blocks), len(unet.up_blocks), blocks or self.block, f"{self.name} encoder")

    def _read(self, names: list[str], passes: Iterable[Callable], blocks, reduce=None):
        """The grids of ``names`` over ``passes`` (calls of the stock UNet forward, one per batch or
        clip, in frame order; ``reduce`` maps a block output first): the grid of the encoder's block,
        or ``{block: grid}`` when ``blocks`` was given."""
        out = {name: [] for name in names}
        for run in passes:
            feats = read_blocks(self.unet, names, run)
            for name in names:
                out[name].append(to_grid(feats[name] if reduce is None else reduce(feats[name])))
        grids = {name: torch.cat(g) for name, g in out.items()}
        return grids if blocks is not None else grids[self.block]

    def blocks(self, frames: torch.Tensor, blocks) -> dict[str, torch.Tensor]:
        """Grids of several blocks from one VAE pass and one UNet pass (per batch or clip)."""
        return self.from_latents(self.encode(frames), blocks=blocks)

    def config_at(self, *, timestep: int | None = None, block: str | None = None) -> dict:
        """:attr:`config` of the features :meth:`from_latents` gives at ``timestep`` / for ``block``."""
        cfg = dict(self.config)
        if timestep is not None:
            cfg.update(self._noise_config(timestep))
        if block is not None:
            cfg["block"] = block
        return cfg

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_latents(self._latents(x))
