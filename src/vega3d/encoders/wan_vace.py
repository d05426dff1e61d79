"""``wan_vace``: Wan2.1-VACE's DiT-block features, through the same simulator as ``wan``.

A Wan2.1-VACE folder (diffusers layout, ``transformer/`` holding a ``WanVACETransformer3DModel``)
loads with :meth:`vega3d.simulator.WanWorldSimulator.from_pretrained` like Wan2.1-T2V; the
simulator runs the base DiT with the VACE hints added after their blocks (vega3d.simulator.vace).
Options are the simulator's, plus ``vace_control`` ("frames": the frames as the control video,
mask all ones — the default; "none": the pipeline's text-to-video input) and ``vace_scale``
(1.0). Everything else — grid, noise, stages (:meth:`encode` / :meth:`from_latents`), sweeps —
is :class:`~vega3d.encoders.wan.WanEncoder`'s.
"""

from __future__ import annotations

from vega3d.encoders.wan import WanEncoder
from vega3d.errors import Vega3DError


class WanVACEEncoder(WanEncoder):
    """:class:`WanEncoder` on a Wan2.1-VACE folder (module docstring)."""

    name = "wan_vace"

    def __init__(self, model=None, *, simulator=None, components=None, **sim_options):
        from vega3d.simulator.vace import is_vace

        if simulator is None and components is None:
            from vega3d.simulator import open_wan_folder

            if not is_vace(open_wan_folder(model).dit_config):  # before any weight is read
                raise Vega3DError(
                    f"wan_vace encoder: {model} holds a Wan2.1-T2V transformer (WanTransformer3DModel), not "
                    "WanVACETransformer3DModel; use the 'wan' encoder for it, or a Wan2.1-VACE folder in the "
                    "diffusers layout (e.g. Wan2.1-VACE-1.3B-diffusers)"
                )
        super().__init__(model, simulator=simulator, components=components, **sim_options)
