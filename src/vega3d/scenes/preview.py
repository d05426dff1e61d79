"""A PNG preview of a scene: a few frames' colour over their depth, plus the camera path from above.

python -m vega3d.scenes.preview                      # the synthetic scene -> docs/figures/scenes_synthetic.png
python -m vega3d.scenes.preview --scene PATH --out preview.png --frames 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from vega3d.scenes.sampling import sample_frames  # noqa: E402
from vega3d.scenes.scene import Scene  # noqa: E402


def preview_figure(scene: Scene, path: str | Path, num_frames: int = 4) -> Path:
    """Write a PNG with ``num_frames`` uniformly sampled frames (colour row, depth row) and a
    top view of the camera centres and viewing directions. Returns the path."""
    picks = sample_frames(len(scene), num_frames)
    n = len(picks)
    fig = plt.figure(figsize=(3.0 * n + 3.4, 5.0))
    grid = fig.add_gridspec(2, n + 1, width_ratios=[1] * n + [1.1])
    _frame_rows(fig, grid, scene, picks)
    _top_view(fig.add_subplot(grid[:, n]), scene)
    fig.suptitle(
        f"{scene.name}: {len(scene)} frames, colour {scene.image_size[1]}x{scene.image_size[0]}, "
        f"depth {scene.depth_size[1]}x{scene.depth_size[0]}",
        fontsize=10,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _frame_rows(fig, grid, scene: Scene, picks: list[int]) -> None:
    """Colour (top row) and depth (bottom row, one colour scale) of the frames at ``picks``."""
    valid_depth = scene.depth[scene.depth > 0]
    vmax = float(valid_depth.quantile(0.99)) if valid_depth.numel() else 1.0
    for col, k in enumerate(picks):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(scene.color[k].numpy())
        ax.set_title(f"frame {scene.frame_ids[k]}", fontsize=9)
        ax.axis("off")
        ax = fig.add_subplot(grid[1, col])
        im = ax.imshow(scene.depth[k].numpy(), cmap="turbo", vmin=0, vmax=vmax)
        ax.axis("off")
    fig.colorbar(im, ax=fig.axes[1::2], shrink=0.8, label="depth (m), 0 = invalid")


def _top_view(ax, scene: Scene) -> None:
    """The camera centres and optical axes from above, over the room and its objects when the
    scene is synthetic (``extras["objects"]``)."""
    valid = scene.pose_valid
    eye = scene.poses[valid][:, :3, 3]
    forward = scene.poses[valid][:, :3, 2]
    objects = scene.extras.get("objects") if isinstance(scene.extras, dict) else None
    if objects:
        _draw_objects(ax, objects)
    ax.plot(eye[:, 0].numpy(), eye[:, 1].numpy(), "-o", ms=3, color="tab:blue", label="camera centres")
    if objects:
        lo_xy, hi_xy = torch.tensor(objects["room_lo"][:2]), torch.tensor(objects["room_hi"][:2])
    else:
        lo_xy, hi_xy = eye[:, :2].min(0).values.float(), eye[:, :2].max(0).values.float()
    centre, half = (lo_xy + hi_xy) / 2, float(((hi_xy - lo_xy) / 2).max()) + 0.3
    arrow = half / 4  # arrow length in metres
    ax.quiver(
        eye[:, 0].numpy(),
        eye[:, 1].numpy(),
        forward[:, 0].numpy(),
        forward[:, 1].numpy(),
        angles="xy",
        scale_units="xy",
        scale=1 / arrow,
        width=0.006,
        color="tab:red",
        label="optical axis",
    )
    ax.set_xlim(float(centre[0]) - half, float(centre[0]) + half)
    ax.set_ylim(float(centre[1]) - half, float(centre[1]) + half)
    ax.set_aspect("equal")
    ax.set_title("top view (world x, y; m)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")


def _draw_objects(ax, objects: dict) -> None:
    lo, hi = objects["room_lo"], objects["room_hi"]
    ax.add_patch(plt.Rectangle((lo[0], lo[1]), hi[0] - lo[0], hi[1] - lo[1], fill=False, color="0.4"))
    for b in objects["boxes"]:
        size = (b["hi"][0] - b["lo"][0], b["hi"][1] - b["lo"][1])
        ax.add_patch(plt.Rectangle((b["lo"][0], b["lo"][1]), *size, color="tab:brown", alpha=0.6))
    for s in objects["spheres"]:
        ax.add_patch(plt.Circle((s["center"][0], s["center"][1]), s["radius"], color="tab:purple", alpha=0.5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", help="scan folder (SensReader or posed_images); default: the synthetic scene")
    parser.add_argument("--out", default="docs/figures/scenes_synthetic.png")
    parser.add_argument("--frames", type=int, default=4, help="frames to show (uniformly sampled)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    args = parser.parse_args(argv)
    if args.scene:
        from vega3d.scenes.loaders import load_scene

        scene = load_scene(args.scene)
    else:
        from vega3d.scenes.synthetic import synthetic_scene

        scene = synthetic_scene(num_frames=16, seed=args.seed)
    with torch.no_grad():
        print(preview_figure(scene, args.out, args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
