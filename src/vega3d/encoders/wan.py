"""``wan``: the Wan2.1 latent world simulator's DiT-block features (vega3d.simulator).

One loaded checkpoint serves many settings: :meth:`WanEncoder.at` builds another
simulator on the same modules (no reload) for another timestep or block, and
:meth:`WanEncoder.blocks` returns several blocks' grids from ONE DiT pass, by reading
the outputs of ``transformer.blocks[k]`` with forward hooks while the simulator runs to
the deepest requested block.
"""

from __future__ import annotations

import torch

from vega3d.encoders.common import check_frames
from vega3d.errors import Vega3DError


class WanEncoder:
    """Frames -> ``WanWorldSimulator.extract`` grids (N, height/16, width/16, C) float32, CPU.

    Options are ``WanWorldSimulator.from_pretrained``'s (``model`` is the folder).
    """

    name = "wan"

    def __init__(self, model=None, *, simulator=None, components=None, **sim_options):
        import inspect

        from vega3d.simulator import WanWorldSimulator, load_wan_components

        allowed = set(inspect.signature(WanWorldSimulator.from_pretrained).parameters) - {"cls", "path"}
        unknown = sorted(set(sim_options) - allowed)
        if unknown:
            raise Vega3DError(f"wan encoder: unknown option(s) {unknown}; valid: {sorted(allowed)}")
        if simulator is None:
            if model is None and components is None:
                raise Vega3DError("wan encoder: pass model=<Wan2.1 folder> (e.g. --model DIR)")
            if components is None:
                load = {k: sim_options[k] for k in ("dtype", "device", "prompt_embedding") if k in sim_options}
                if "dtype" in load:
                    from vega3d.simulator.simulator import parse_dtype

                    load["dtype"] = parse_dtype(load["dtype"])
                components = load_wan_components(model, **load)
            build = {k: v for k, v in sim_options.items() if k not in ("dtype", "device", "prompt_embedding")}
            simulator = WanWorldSimulator(
                components.transformer, components.vae, components.latents_mean, components.latents_std,
                components.prompt_embedding, identity=components.identity, stand_in=components.stand_in,
                text_len=components.text_len, **build)
        self.simulator, self.components, self.sim_options = simulator, components, dict(sim_options)
        self.config = {"name": self.name, **simulator.config.to_dict()}

    def at(self, **changes) -> "WanEncoder":
        """Another encoder on the same loaded modules with some simulator options changed
        (e.g. ``timestep=500`` or ``block=10``); nothing is reloaded."""
        if self.components is None:
            raise Vega3DError("wan encoder: at() needs an encoder built from a model folder or components")
        return WanEncoder(components=self.components, **{**self.sim_options, **changes})

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        x = check_frames(frames, "wan encoder")
        return self.simulator.extract(x).float().cpu()

    @torch.no_grad()
    def blocks(self, frames: torch.Tensor, blocks) -> dict[int, torch.Tensor]:
        """Grids of several DiT blocks (0-based) from one pass: ``{block: (N, h, w, C)}``.

        Runs the simulator to ``max(blocks)`` and captures each requested block's output
        tokens (frame, row, column order, as the patch embedding flattens them).
        """
        blocks = sorted({int(b) for b in blocks})
        sim = self.simulator
        if sim.pad:
            raise Vega3DError("wan encoder: blocks() supports pad=False (the default) only")
        if sim.compiled:
            raise Vega3DError("wan encoder: blocks() needs the uncompiled block stack (compile=False)")
        deepest = self.at(block=blocks[-1]).simulator if blocks[-1] != sim.block else sim
        h, w = deepest.grid_size
        captured = {b: [] for b in blocks}
        hooks = [deepest.transformer.blocks[b].register_forward_hook(
            lambda _m, _i, out, b=b: captured[b].append(out.float().unflatten(1, (-1, h, w))[:, 0].cpu()))
            for b in blocks]
        try:
            last = deepest.extract(check_frames(frames, "wan encoder")).float().cpu()
        finally:
            for hk in hooks:
                hk.remove()
        result = {b: torch.cat(captured[b]) for b in blocks}
        if not torch.equal(result[blocks[-1]], last):
            raise Vega3DError("wan encoder: captured block outputs do not match the simulator's features; "
                              "the simulator no longer calls transformer.blocks in order")
        return result

