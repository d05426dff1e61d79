"""Probe figures (matplotlib, Agg): similarity heatmaps, PCA colouring, sweep curves."""

from __future__ import annotations

from pathlib import Path

import torch

from vega3d.probe.geometry import invert_poses
from vega3d.probe.result import ProbeOptions
from vega3d.probe.rigorous import sample_points, visibility
from vega3d.probe.sampling import bilinear_sample, normalize


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi: int, title: str = "", tight: bool = True) -> Path:
    """Title (``suptitle``), lay out, write ``fig`` as a PNG at ``path`` and close it."""
    if title:
        fig.suptitle(title, fontsize=10)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return Path(path)


def pick_pairs(result, count: int = 3) -> list[tuple[int, int]]:
    """Scene positions of ``count`` scored pairs spread over the rotation range."""
    pairs = sorted(result.pairs, key=lambda p: p["rotation_deg"])
    if not pairs:
        return []
    idx = sorted({round(k * (len(pairs) - 1) / max(1, count - 1)) for k in range(count)})
    return [tuple(pairs[i]["positions"]) for i in idx]


def similarity_heatmaps(scene, features, result, path, count: int = 3, title: str = "", dpi: int = 80) -> Path:
    """For a few scored pairs (i, j): a query point in frame i and the cosine similarity of
    its feature to every cell of frame j, with the true reprojection (green +) and the
    best match (red o). Writes a PNG to ``path``."""
    plt = _plt()
    opts = ProbeOptions.from_kwargs(**result.options)
    height, width = scene.image_size
    feats = features.float()
    pairs = pick_pairs(result, count)
    fig, axes = plt.subplots(len(pairs), 2, figsize=(8, 3.2 * len(pairs)), squeeze=False)
    frames = sorted({f for p in pairs for f in p})
    world, xy, valid = sample_points(
        scene, scene.poses.double(), frames, opts.points_per_frame, torch.Generator().manual_seed(opts.seed)
    )
    w2c = torch.zeros(len(feats), 4, 4, dtype=torch.float64)
    w2c[frames] = invert_poses(scene.poses[frames])
    for row, (i, j) in enumerate(pairs):
        xy_b, vis, _ = visibility(scene, w2c, torch.tensor([i]), torch.tensor([j]), world, valid, opts)
        cand = vis[0].nonzero().flatten()
        if len(cand) == 0:  # (cannot happen for a scored pair with the same samples; be safe)
            for ax in axes[row]:
                ax.axis("off")
            continue
        centre = torch.tensor([width / 2, height / 2], dtype=torch.float64)
        s = int(cand[(xy[i, cand] - centre).norm(dim=-1).argmin()])  # the visible sample nearest the centre
        _heatmap_row(fig, axes[row], scene, feats, (i, j), xy[i, s], xy_b[0, s])
    return _save(fig, path, dpi, title)


def _heatmap_row(fig, axes, scene, feats, pair, query_xy, true_xy) -> None:
    """Frame i with the query point; frame j under the cosine of every cell to the query's
    feature, with the true reprojection (green +) and the best match (red o)."""
    (i, j), (height, width), (h, w) = pair, scene.image_size, feats.shape[1:3]
    q = normalize(bilinear_sample(feats, torch.tensor([i]), query_xy.unsqueeze(0), (height, width)))[0]
    sim = (normalize(feats[j]) @ q).reshape(h, w)
    best = int(sim.argmax())
    ax0, ax1 = axes
    ax0.imshow(scene.color[i].numpy())
    ax0.plot(*query_xy.tolist(), "c*", ms=14, mec="k")
    ax0.set_title(f"frame {scene.frame_ids[i]}: query", fontsize=9)
    ax1.imshow(scene.color[j].float().mean(-1).numpy(), cmap="gray", vmin=0, vmax=255)
    lo, hi = float(sim.min()), float(sim.max())
    im = ax1.imshow(
        sim.numpy(),
        extent=(0, width, height, 0),
        cmap="inferno",
        alpha=0.75,
        vmin=lo,
        vmax=max(hi, lo + 1e-6),
        interpolation="nearest",
    )
    ax1.plot(*true_xy.tolist(), "g+", ms=16, mew=3)
    ax1.plot((best % w + 0.5) * width / w, (best // w + 0.5) * height / h, "ro", ms=9, mfc="none", mew=2)
    ax1.set_title(f"frame {scene.frame_ids[j]}: cosine to query (+ true, o best)", fontsize=9)
    fig.colorbar(im, ax=ax1, fraction=0.035)
    for ax in (ax0, ax1):
        ax.axis("off")


def pca_colours(features: torch.Tensor, frames: list[int], max_cells: int = 20000, seed: int = 0) -> torch.Tensor:
    """First 3 principal components of the L2-normalised features of ``frames``, fitted
    jointly across them, scaled to [0, 1] (1st-99th percentile): (F, h, w, 3)."""
    f = normalize(features[frames].float())
    flat = f.reshape(-1, f.shape[-1])
    g = torch.Generator().manual_seed(seed)
    fit = flat[torch.randperm(len(flat), generator=g)[:max_cells]]
    mean = fit.mean(0)
    _, _, v = torch.linalg.svd(fit - mean, full_matrices=False)
    proj = (flat - mean) @ v[:3].T
    lo, hi = torch.quantile(proj, 0.01, dim=0), torch.quantile(proj, 0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    return rgb.reshape(*f.shape[:3], 3)


def pca_figure(scene, features, path, count: int = 4, title: str = "", dpi: int = 80) -> Path:
    """Frames (top row) and a PCA colouring of their features fitted across views (bottom row),
    each row labelled: a 3D-consistent encoder paints one surface the same colour in every view."""
    plt = _plt()
    valid = scene.pose_valid.nonzero().flatten().tolist() or list(range(len(scene)))
    frames = [valid[round(k * (len(valid) - 1) / max(1, count - 1))] for k in range(min(count, len(valid)))]
    frames = sorted(set(frames))
    rgb = pca_colours(features, frames)
    fig, axes = plt.subplots(2, len(frames), figsize=(2.6 * len(frames), 4.4), squeeze=False)
    for k, f in enumerate(frames):
        axes[0, k].imshow(scene.color[f].numpy())
        axes[0, k].set_title(f"frame {scene.frame_ids[f]}", fontsize=9)
        axes[1, k].imshow(rgb[k].numpy(), interpolation="nearest")
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
    axes[0, 0].set_ylabel("frames", fontsize=9)
    axes[1, 0].set_ylabel("features: PCA,\n3 components as RGB", fontsize=9)
    return _save(fig, path, dpi, title)


def sweep_plot(rows: list[dict], key: str, control=None, title: str = ""):
    """The sweep figure (matplotlib Figure, not saved): scores vs the swept value (``key``:
    "block" or "timestep"), one x tick per swept value (blocks are integers), the legend
    outside the axes so it never covers a line; dashed: position-only control."""
    plt = _plt()
    xs = [r[key] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    series = [
        ("auroc_local", "AUROC, position-controlled"),
        ("auroc", "AUROC, random negatives"),
        ("paper_score", "paper score"),
    ]
    for field, label in series:
        ys = [getattr(r["result"], field) for r in rows]
        (line,) = ax.plot(xs, ys, "o-", label=label)
        if control is not None:
            ax.axhline(getattr(control, field), ls="--", lw=1, color=line.get_color())
    radius = list(rows[0]["result"].nn_recall)[len(rows[0]["result"].nn_recall) // 2]
    ax.plot(xs, [r["result"].nn_recall[radius] for r in rows], "s-", label=f"NN recall @{radius}px")
    ax.set_xticks(xs, [f"{int(x)}" if key == "block" else f"{x:g}" for x in xs])
    ax.set_xlabel("DiT block (0-based)" if key == "block" else "timestep")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        title="dashed: position-only\ncontrol" if control is not None else None,
        title_fontsize=8,
    )
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def sweep_figure(rows: list[dict], key: str, path, control=None, title: str = "", dpi: int = 110) -> Path:
    """:func:`sweep_plot` written as a PNG to ``path``."""
    return _save(sweep_plot(rows, key, control, title), path, dpi, tight=False)
