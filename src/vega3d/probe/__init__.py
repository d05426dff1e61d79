"""Multi-view correspondence probe: how consistently an encoder describes one 3D point
seen from different views (docs/probe.md).

``score(scene, features, **options) -> ProbeResult`` runs the paper-compatible score and
the rigorous one (reprojection with an occlusion test, far-in-3D negatives, AUROC, the
position-controlled AUROC, nearest-neighbour recall next to the same-location guess).
"""

from vega3d.probe.result import ProbeOptions, ProbeResult, summarize
from vega3d.probe.sampling import auroc
from vega3d.probe.score import score
from vega3d.probe.sweep import sweep_blocks, sweep_timesteps

__all__ = ["ProbeOptions", "ProbeResult", "auroc", "score", "summarize", "sweep_blocks", "sweep_timesteps"]
