"""Tiny inputs of every kind for the extraction tests (written once per test session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
from PIL import Image

H, W = 32, 48


def write_video(path: Path, num_frames: int = 7, seed: int = 0) -> list[np.ndarray]:
    """An MPEG-4 video whose frame k is a flat colour ramp; returns the frames as decoded by PyAV."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for k in range(num_frames):
            img = np.full((H, W, 3), 20 + 30 * k, np.uint8)
            img[: H // 2] = rng.integers(0, 255, (H // 2, W, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def write_frame_folder(path: Path, names=("f1.png", "f2.png", "f10.png")) -> None:
    """Flat grey images, level 10 x (the digits of the name) mod 256: f1 -> 10, f2 -> 20, f10 -> 100."""
    path.mkdir(parents=True)
    for name in names:
        level = (10 * int("".join(c for c in name if c.isdigit()))) % 256
        Image.fromarray(np.full((H, W, 3), level, np.uint8)).save(path / name)


def build_inputs(root: Path, with_scans: bool = True) -> Path:
    """``root/inputs`` holding: scan_a (SensReader, 6 frames), scan_b (posed_images, 5 frames),
    scan_nodepth (SensReader without depth/), clip.mp4 (7 frames), broken.mp4 (garbage),
    shots/ (3 images)."""
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    if with_scans:
        from vega3d.scenes import synthetic_scene, write_scene

        write_scene(synthetic_scene(6, H, W, seed=1), inputs / "scan_a", layout="sensreader")
        write_scene(synthetic_scene(5, H, W, seed=2), inputs / "scan_b", layout="posed_images")
        write_scene(synthetic_scene(3, H, W, seed=3), inputs / "scan_nodepth", layout="sensreader")
        shutil.rmtree(inputs / "scan_nodepth" / "depth")
    write_video(inputs / "clip.mp4")
    (inputs / "broken.mp4").write_bytes(b"this is not a video" * 50)
    write_frame_folder(inputs / "shots")
    return inputs
