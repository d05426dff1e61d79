"""``wan``: the Wan2.1 latent world simulator's DiT-block features (vega3d.simulator).

One loaded checkpoint serves many settings: :meth:`WanEncoder.at` builds another
simulator on the same modules (no reload) for another timestep or block. For sweeps the
simulator's two public stages are used directly: :meth:`WanEncoder.encode` runs the VAE
once (``WanWorldSimulator.encode``), and :meth:`WanEncoder.from_latents` reads the DiT at
any timestep, or several blocks from ONE pass (``WanWorldSimulator.features_from_latents``).
"""

from __future__ import annotations

import torch

from vega3d.encoders.common import Encoder, check_frames


class WanEncoder(Encoder):
    """Frames -> ``WanWorldSimulator.extract`` grids (N, height/16, width/16, C) float32, CPU.

    Options are ``WanWorldSimulator.from_pretrained``'s (``model`` is the folder); build it with
    :func:`vega3d.encoders.build_encoder`, which checks them (:func:`~vega3d.encoders.check_encoder`).
    """

    name = "wan"

    def __init__(self, model=None, *, simulator=None, components=None, **sim_options):
        from vega3d.simulator import WanWorldSimulator, load_wan_components

        if simulator is None:
            assert model is not None or components is not None, "wan encoder: pass model=<Wan2.1 folder>"
            if components is None:  # vae_dtype: load the VAE in it (else float32, the loader's default)
                load = ("dtype", "device", "prompt_embedding", "vae_dtype")
                components = load_wan_components(model, **{k: sim_options[k] for k in load if k in sim_options})
            build = {k: v for k, v in sim_options.items() if k not in ("dtype", "device", "prompt_embedding")}
            simulator = WanWorldSimulator(
                components.transformer,
                components.vae,
                components.latents_mean,
                components.latents_std,
                components.prompt_embedding,
                identity=components.identity,
                stand_in=components.stand_in,
                text_len=components.text_len,
                **build,
            )
        self.simulator, self.components, self.sim_options = simulator, components, dict(sim_options)
        self.config = {"name": self.name, **simulator.config.to_dict()}

    def at(self, **changes) -> WanEncoder:
        """Another encoder on the same loaded modules with some simulator options changed
        (e.g. ``timestep=500`` or ``block=10``); nothing is reloaded."""
        assert self.components is not None, "at() needs an encoder built from a model folder or components"
        return type(self)(components=self.components, **{**self.sim_options, **changes})

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulator.extract(x).float().cpu()

    @torch.no_grad()
    def encode(self, frames: torch.Tensor):
        """The VAE stage alone: ``WanWorldSimulator.encode`` → ``FrameLatents`` (on the
        simulator's device); reuse it for every timestep or block of a sweep."""
        return self.simulator.encode(check_frames(frames, "wan encoder"))

    @torch.no_grad()
    def from_latents(self, latents, *, timestep: float | None = None, blocks=None):
        """The DiT stage: ``WanWorldSimulator.features_from_latents`` on :meth:`encode`'s
        output, as CPU float32 — one (N, h, w, C) grid, or ``{block: grid}`` for ``blocks``.
        ``timestep=None`` is the encoder's own; the noise ε is the same at every timestep."""
        out = self.simulator.features_from_latents(latents, timestep=timestep, blocks=blocks)
        if isinstance(out, dict):
            return {b: g.float().cpu() for b, g in out.items()}
        return out.float().cpu()

    def config_at(self, *, timestep: float | None = None, block: int | None = None) -> dict:
        """:attr:`config` of the features :meth:`from_latents` gives at ``timestep`` / for ``block``
        (what ``at(timestep=..., block=...).config`` would be, without building a simulator)."""
        from dataclasses import replace

        from vega3d.simulator import flow_noise_level

        cfg = self.simulator.config
        if timestep is not None:
            t, sigma = flow_noise_level(timestep, cfg.shift)
            cfg = replace(cfg, timestep=float(timestep), t=t, sigma=sigma)
        if block is not None:
            cfg = replace(cfg, block=int(block))
        return {"name": self.name, **cfg.to_dict()}

    @torch.no_grad()
    def blocks(self, frames: torch.Tensor, blocks) -> dict[int, torch.Tensor]:
        """Grids of several DiT blocks (0-based) from one VAE and one DiT pass: ``{block: (N, h, w, C)}``.

        The DiT runs to ``max(blocks)`` only. Each grid equals ``at(block=b)(frames)``.
        """
        from vega3d.simulator.simulator import check_blocks

        blocks = check_blocks(blocks, self.simulator.config.num_layers)  # before the VAE pass
        return self.from_latents(self.encode(frames), blocks=blocks)
