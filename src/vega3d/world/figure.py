"""The probe-schedule figure: auroc_local and NN recall vs training step, with the baselines.

One column per scene set (held-out synthetic rooms, averaged; the scan), one row per metric. Each
probed (block, timestep) setting is a coloured line over training steps (step 0 is the run's own
random init); the shaded band of the same colour spans its random inits (min to max over seeds).
Black dashed: pixels (mean RGB per DiT token); grey dotted: the VAE latents the DiT is given.
"""

from __future__ import annotations

from pathlib import Path

METRICS = (("auroc_local", "AUROC, position-controlled"), ("nn_recall", "NN recall @{radius} px"))
SET_TITLES = {"synthetic": "held-out synthetic rooms ({names})", "scan": "scan: {names}"}


def _nan(values) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def probe_figure(report: dict, path, dpi: int = 110) -> Path:
    """Write the figure of a :func:`vega3d.world.schedule.aggregate` report to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(report["curves"])
    fig, axes = plt.subplots(2, len(sets), figsize=(5.2 * len(sets) + 2.2, 6.4), squeeze=False, layout="constrained")
    for col, s in enumerate(sets):
        names = ", ".join(report["sets"][s])
        axes[0, col].set_title(SET_TITLES[s].format(names=names if len(names) < 40 else f"{len(report['sets'][s])}"),
                               fontsize=9)  # fmt: skip
        for row, (key, label) in enumerate(METRICS):
            _panel(axes[row, col], report, s, key)
            axes[row, col].set_ylabel(label.format(radius=report["radius_px"]), fontsize=9)
        axes[1, col].set_xlabel("training step (0: random init)", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="shaded: random inits\n(min-max over seeds)",
               title_fontsize=8)  # fmt: skip
    fig.suptitle("small Wan DiT trained by vega3d (a stand-in,\nnot Wan2.1): probe vs training step", fontsize=10)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def _panel(ax, report: dict, set_name: str, key: str) -> None:
    """One metric of one scene set: a line per setting, its random-init band, the input baselines."""
    for k, c in enumerate(report["curves"][set_name]):
        colour = f"C{k}"
        label = f"block {c['block']}, timestep {c['timestep']:g}"
        ax.plot(c["steps"], _nan(c[key]), "o-", ms=3, color=colour, label=label)
        inits = [v for v in _nan(c["random_init"][key]) if v == v]
        if inits:
            ax.axhspan(min(inits), max(inits), color=colour, alpha=0.15, lw=0)
    inputs = report["inputs"][set_name]
    ax.axhline(_nan([inputs["pixels"][key]])[0], color="k", ls="--", lw=1, label="pixels (mean RGB per token)")
    ax.axhline(_nan([inputs["vae_latents"][key]])[0], color="0.5", ls=":", lw=1.5, label="VAE latents (DiT input)")
    if key == "auroc_local":
        ax.axhline(0.5, color="0.8", lw=0.8)
    ax.grid(alpha=0.3)
