"""``vega3d select-frames SCANS... --out FILE`` and ``vega3d tiny-video3d-data OUT``.

- ``select-frames``: maximum-coverage frame selection of ``posed_images/<scene>/`` folders, written
  in Video-3D LLM's ``scannet_select_frames.json`` format (docs/video3d.md). Every input is checked
  (folders, axis alignment, scene voxels) before the first scan is processed; the file is written
  once, atomically, at the end.
- ``tiny-video3d-data``: the tiny synthetic dataset in the released formats
  (:func:`vega3d.video3d.write_tiny_dataset`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``select-frames`` and ``tiny-video3d-data`` subcommands."""
    p = subparsers.add_parser(
        "select-frames",
        help="maximum-coverage frame selection of ScanNet posed_images scans (Video-3D LLM's scannet_select_frames.json)",
        description="Greedy voxel set cover over each scan's candidate frames (every 2nd frame of its list), "
        "written as Video-3D LLM's scannet_select_frames.json. A folder holding scan folders stands for all of them.",
    )
    p.add_argument("scans", nargs="+", type=Path, metavar="SCAN", help="posed_images/<scene> folders (or their parent)")
    p.add_argument("--out", required=True, type=Path, help="output JSON (the released list format)")
    p.add_argument(
        "--ratio",
        type=float,
        action="append",
        default=None,
        help="report how many frames this coverage ratio keeps per scan (repeatable; default 0.9 and 0.95); "
        "the file keeps the full greedy order, the ratio applies when it is read",
    )
    p.add_argument(
        "--points",
        type=Path,
        help="pcd_discrete_0.1.pkl: the scans' point-cloud voxels (default: count every seen voxel)",
    )
    p.add_argument(
        "--infos",
        type=Path,
        action="append",
        default=[],
        help="embodiedscan_infos_<split>.pkl: axis alignment, depth intrinsics and frame list (repeatable); "
        "default: the scan folder's axis_align_matrix.txt / <scene>.txt, depth_intrinsic.txt and its frames",
    )
    p.add_argument("--max-frames", type=int, default=32, help="frames per scan (default 32)")
    p.add_argument("--stride", type=int, default=2, help="candidates: every STRIDE-th frame of the list (default 2)")
    p.add_argument("--voxel-size", type=float, default=0.1, help="voxel size in metres (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking RNG (default 0)")
    p.add_argument(
        "--prefix",
        default="data/scannet/posed_images",
        help="folder written before <scene>/<frame>.jpg in frame_files (default, as released: data/scannet/posed_images)",
    )
    p.set_defaults(func=run_select_frames)

    t = subparsers.add_parser(
        "tiny-video3d-data",
        help="write a tiny synthetic dataset in Video-3D LLM's released formats (all five tasks)",
        description="Synthetic ScanNet-like scans with posed images, GT and 'predicted' boxes, frame selection and "
        "ScanRefer / Multi3DRefer / Scan2Cap / ScanQA / SQA3D annotations, laid out like the release's data/ folder.",
    )
    t.add_argument("out", type=Path, help="new or empty output folder")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-scenes", type=int, default=2)
    t.add_argument("--val-scenes", type=int, default=2)
    t.add_argument("--frames", type=int, default=40, help="frames per scan (default 40)")
    t.set_defaults(func=run_tiny)


def _scan_folders(paths: list[Path]) -> list[Path]:
    from vega3d.errors import Vega3DError
    from vega3d.media import is_scan_folder

    out = []
    for p in paths:
        inner = [p] if is_scan_folder(p) else []
        if not inner and p.is_dir():  # a folder of scan folders
            inner = sorted(q for q in p.iterdir() if is_scan_folder(q))
        if not inner:
            problem = "neither a posed_images scan folder nor a folder of them" if p.is_dir() else "does not exist"
            raise Vega3DError(f"{p}: {problem}; expected a scan folder (or a folder of them)")
        out.extend(inner)
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise Vega3DError(f"scan(s) {dup} given more than once")
    return out


def _options():
    """The numeric options of ``select-frames``, declared (checked by one :func:`vega3d.config.parse`)."""
    from typing import Annotated

    from pydantic import Field

    from vega3d.config import Config

    class SelectFramesOptions(Config):
        ratios: list[Annotated[float, Field(gt=0, le=1)]] = Field(alias="--ratio")  # coverage ratios to report
        max_frames: int = Field(ge=1, alias="--max-frames")  # frames per scan
        stride: int = Field(ge=1, alias="--stride")  # candidates: every STRIDE-th frame
        voxel_size: float = Field(gt=0, alias="--voxel-size")  # metres

    return SelectFramesOptions


def run_select_frames(args: argparse.Namespace) -> int:
    from vega3d.config import parse
    from vega3d.errors import Vega3DError
    from vega3d.scenes.loaders import read_axis_align
    from vega3d.video3d.data import list_posed_frames, max_coverage_record
    from vega3d.video3d.formats import read_embodiedscan_infos, read_scene_voxels, write_select_frames
    from vega3d.video3d.frames import frames_for_ratio

    ratios = args.ratio or [0.9, 0.95]
    given = {
        "--ratio": ratios,
        "--max-frames": args.max_frames,
        "--stride": args.stride,
        "--voxel-size": args.voxel_size,
    }
    parse(_options(), given, "select-frames")
    scans = _scan_folders(args.scans)
    infos = {}
    for f in args.infos:
        infos.update(read_embodiedscan_infos(f))
    voxels = read_scene_voxels(args.points) if args.points else None
    plan = []
    for scan in scans:  # every check before any work
        video = f"scannet/{scan.name}"
        info = infos.get(video)
        if voxels is not None and scan.name not in voxels:
            raise Vega3DError(f"{args.points}: scene {scan.name!r} is missing from the scene voxel file")
        if info is None and read_axis_align(scan) is None:
            raise Vega3DError(
                f"{scan}: no axis alignment (axis_align_matrix.txt or {scan.name}.txt in the folder, or --infos)"
            )
        ids = list(info.frame_ids) if info is not None else list_posed_frames(scan)
        plan.append((scan, video, info, ids))
    records = []
    for scan, video, info, ids in plan:
        rec = max_coverage_record(
            scan,
            video_id=video,
            frame_ids=ids,
            axis_align=None if info is None else info.axis_align,
            depth_intrinsics=None if info is None else info.depth_intrinsics,
            scene_voxels=None if voxels is None else voxels[scan.name],
            max_frames=args.max_frames,
            stride=args.stride,
            voxel_size=args.voxel_size,
            seed=args.seed,
            prefix=args.prefix,
        )
        kept = ", ".join(f"ratio {r:g}: {len(frames_for_ratio(rec, r, args.max_frames))}" for r in ratios)
        share = rec.num_select_voxels / max(rec.num_all_voxels, 1)
        print(
            f"{video}: {len(rec.frame_files)} of {len(ids)} frames cover {share:.1%} of {rec.num_all_voxels} voxels; frames kept at {kept}"
        )
        records.append(rec)
    write_select_frames(args.out, records)
    print(f"wrote {args.out} ({len(records)} scans)")
    return 0


def run_tiny(args: argparse.Namespace) -> int:
    from vega3d.video3d.tiny import write_tiny_dataset

    config = {
        "seed": args.seed,
        "train_scenes": args.train_scenes,
        "val_scenes": args.val_scenes,
        "num_frames": args.frames,
    }
    out = write_tiny_dataset(args.out, config)
    print(f"wrote the tiny Video-3D LLM dataset to {out} (layout: docs/video3d.md)")
    return 0
