"""The paper's Figure 3 numbers and the Figure-3-style bar chart of ``vega3d probe-compare``.

VEGA-3D's central evidence (Figure 3b) ranks ten visual towers by its Multi-view Correspondence
Score. The numbers below are copied into the package (the package never reads ``../shared`` at
run time), as the evaluation tables copy Table 1 (vega3d.eval.table.PAPER_ROWS); a test checks
them against ``shared/reference/paper_numbers.json`` where that file is present.
"""

from __future__ import annotations

from pathlib import Path

#: Where :data:`PAPER_FIGURE3` comes from.
PAPER_SOURCE = (
    "VEGA-3D (arXiv 2603.19235), Figure 3b: Multi-view Correspondence Score (%), read from the published "
    "figure (approximate, +-2); paper-compatible score, not the rigorous one"
)
#: The paper's Figure 3b: tower → score (%).
PAPER_FIGURE3 = {
    "SVD": 18,
    "SD2.1": 24,
    "DINOv3": 62,
    "Vmem": 67,
    "V-JEPA 2": 72,
    "SEVA": 76,
    "VGGT": 77,
    "Wan VAE": 80,
    "Wan2.1-T2V": 97,
    "Wan2.1-VACE": 97,
}
#: The Figure-3 tower each encoder is (a compare spec entry's default ``paper``).
TOWER_OF_ENCODER = {
    "svd": "SVD",
    "sd21": "SD2.1",
    "dinov3": "DINOv3",
    "vjepa2": "V-JEPA 2",
    "vggt": "VGGT",
    "wan_vae": "Wan VAE",
    "wan": "Wan2.1-T2V",
    "wan_vace": "Wan2.1-VACE",
}
#: Towers of the figure that no encoder covers, and why (docs/towers.md).
NOT_COVERED = {
    "SEVA": "Stable Virtual Camera: released as its own code base (no diffusers or transformers model class)",
    "Vmem": "Vmem (surfel-indexed view memory): research code only, no diffusers or transformers implementation",
}


def bar_chart(rows: list[dict], path, title: str = "", dpi: int = 110) -> Path:
    """Per row: the rigorous headline (position-controlled AUROC), our paper-compatible score (both
    x100, with their bootstrap 95% intervals) and the paper's Figure-3 number where the tower has
    one. ``rows``: compare rows (``label``, ``summary``, ``paper_figure3``). Writes a PNG."""
    from vega3d.probe.figures import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2), layout="constrained")
    xs = range(len(rows))
    width = 0.27
    series = [
        ("auroc_local", "rigorous: AUROC, position-controlled", 0),
        ("paper_score", "ours: paper-compatible score", 1),
    ]
    for field, label, k in series:
        vals = [_pct(r["summary"][field]["value"]) for r in rows]
        # a percentile interval need not contain the point value: clip the bar's whiskers at it
        err = [[max(0.0, v - _pct(r["summary"][field]["low"])) for v, r in zip(vals, rows)],
               [max(0.0, _pct(r["summary"][field]["high"]) - v) for v, r in zip(vals, rows)]]  # fmt: skip
        ax.bar([x + (k - 1) * width for x in xs], vals, width, yerr=err, capsize=3, label=label)
        for x, v in zip(xs, vals):
            if v != v:  # not measurable (e.g. the paper score when no adjacent pair shares a voxel)
                ax.text(x + (k - 1) * width, 1, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
    paper = [r.get("paper_figure3") for r in rows]
    ax.bar([x + width for x in xs], [p if p is not None else 0 for p in paper], width, color="0.75", hatch="//",
           edgecolor="0.4", label="paper Fig. 3 (approx.)")  # fmt: skip
    for x, p in zip(xs, paper):
        if p is None:
            ax.text(x + width, 1, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
    ax.axhline(50, ls="--", lw=1, color="k", alpha=0.5)
    ax.set_xticks(list(xs), [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score x100 (dashed: AUROC chance)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi, tight=False)


def _pct(value) -> float:
    return float("nan") if value is None else 100.0 * value
