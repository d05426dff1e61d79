"""``vega3d.media``: the one reader of videos, frame folders and scans (store, MLLM data, eval).

The frame-count rule (a video has as many frames as PyAV decodes), natural order of frame
folders, explicit indices, errors that name the file, scan folders, and that the feature
store and the MLLM data read the same pixels for the same index.
"""

import os

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vega3d import Vega3DError
from vega3d.media import count_frames, list_frames, load_media, media_kind, read_frames, write_frame_folder
from vega3d.scenes import load_scene, synthetic_scene, write_scene
from vega3d.store.inputs import InputItem, load_frames

H, W = 32, 48


def _write_video(path, num_frames=7, seed=0, codec="mpeg4", rate=5):
    """Frames with a noisy top half (so each frame differs), encoded with PyAV."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for k in range(num_frames):
            img = np.full((H, W, 3), (20 + 30 * k) % 256, np.uint8)
            img[: H // 2] = rng.integers(0, 255, (H // 2, W, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def _decoded(path):
    """Every frame as PyAV itself decodes it (the reference for the count and the pixels)."""
    with av.open(str(path)) as f:
        return [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return _write_video(tmp_path_factory.mktemp("media") / "clip.mp4")


def test_count_is_the_number_of_decoded_frames(video, tmp_path):
    decoded = _decoded(video)
    assert count_frames(video) == len(decoded) == 7
    media = load_media(video, num_frames=50)  # more than exist: every frame once
    assert media.total == 7 and media.indices == list(range(7)) and media.fps == 5.0
    assert np.array_equal(media.frames, np.stack(decoded))
    if "libx264" in av.codecs_available:  # another codec, with B-frames: still what the decoder yields
        h264 = _write_video(tmp_path / "b.mp4", num_frames=11, codec="libx264")
        assert count_frames(h264) == len(_decoded(h264)) == 11
    # the count is remembered per file, and forgotten when the file is replaced
    replaced = _write_video(tmp_path / "c.mp4", num_frames=3)
    assert count_frames(replaced) == 3
    _write_video(tmp_path / "c.mp4", num_frames=9, seed=1)
    os.utime(replaced, ns=(1, 1))  # another mtime even on a coarse clock
    assert count_frames(replaced) == 9


def test_indices_any_order_with_repeats(video):
    decoded = _decoded(video)
    got = read_frames(video, [5, 1, 5, 0])
    assert got.dtype == np.uint8 and got.shape == (4, H, W, 3)
    assert np.array_equal(got, np.stack([decoded[i] for i in (5, 1, 5, 0)]))
    media = load_media(video, indices=[6, 2])
    assert media.indices == [6, 2] and np.array_equal(media.frames, np.stack([decoded[6], decoded[2]]))


def test_frame_folder_is_in_natural_order(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for name, level in [("f10.png", 100), ("f2.png", 20), ("f1.png", 10), (".hidden.png", 7)]:
        Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frames(folder)] == ["f1.png", "f2.png", "f10.png"]
    assert media_kind(folder) == "frames" and count_frames(folder) == 3
    assert [int(f.mean()) for f in read_frames(folder, [2, 0, 1])] == [100, 10, 20]
    media = load_media(folder, num_frames=2)
    assert media.indices == [0, 2] and media.total == 3 and media.fps is None


def test_errors_name_the_file_and_what_was_expected(video, tmp_path):
    with pytest.raises(Vega3DError, match=r"missing\.mp4: no such video file"):
        count_frames(tmp_path / "missing.mp4")
    with pytest.raises(Vega3DError, match=r"missing\.mp4: no such video file, frame folder or scan folder"):
        load_media(tmp_path / "missing.mp4", num_frames=2)
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"this is not a video" * 50)
    with pytest.raises(Vega3DError, match=r"notes\.mp4: cannot read video"):
        read_frames(text, [0])
    with pytest.raises(
        Vega3DError, match=r"clip\.mp4: frames \[9, -1\] out of range for 7 frames; expected positions in 0\.\.6"
    ):
        read_frames(video, [0, 9, -1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Vega3DError, match=r"empty: frame folder holds no images"):
        read_frames(tmp_path / "empty", [0])
    mixed = write_frame_folder(tmp_path / "mixed", np.zeros((2, 32, 48, 3), np.uint8), pattern="a{}.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "a11.png")
    with pytest.raises(Vega3DError, match=r"a11\.png: image is 8x8, but a0\.png is 48x32; expected one size"):
        load_media(mixed, num_frames=3)
    (mixed / "a11.png").write_bytes(b"not an image")
    with pytest.raises(Vega3DError, match=r"a11\.png: cannot read image"):
        read_frames(mixed, [2])


def test_scan_folders_are_read_by_frame_id(tmp_path):
    scene = synthetic_scene(6, H, W, seed=3)
    for layout in ("sensreader", "posed_images"):
        root = write_scene(scene.select([0, 2, 3, 5]), tmp_path / layout, layout=layout)  # frame ids 0, 2, 3, 5
        assert media_kind(root) == "scan"
        media = load_media(root, num_frames=2)
        reference = load_scene(root, frames=2)
        assert media.indices == [int(i) for i in reference.frame_ids] and media.total == 4
        assert np.array_equal(media.frames, reference.color.numpy()) and media.frames.dtype == np.uint8
        explicit = load_media(root, indices=[5, 2])
        assert explicit.indices == [5, 2]
        assert np.array_equal(explicit.frames, load_scene(root, frames=[5, 2]).color.numpy())
    # digits-named images alone are a frame folder; a pose file makes it a scan
    digits = write_frame_folder(tmp_path / "digits", np.zeros((2, 8, 8, 3), np.uint8), pattern="{:05d}.png")
    assert media_kind(digits) == "frames"
    (digits / "00000.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    assert media_kind(digits) == "scan"
    # a file is a video; inside a collection only with a video extension
    assert media_kind(tmp_path / "digits" / "00000.txt") == "video"
    assert media_kind(tmp_path / "digits" / "00000.txt", videos_by_extension=True) is None
    (tmp_path / "nothing").mkdir()
    assert media_kind(tmp_path / "nothing") is None


def test_store_and_mllm_data_read_the_same_frames(video, tmp_path):
    """The feature store keys features by the indices the MLLM data then reads pixels at: both
    go through vega3d.media, so the same index is the same frame."""
    from vega3d.mllm.data import load_video

    folder = write_frame_folder(tmp_path / "shots", np.stack(_decoded(video)))
    scan = write_scene(synthetic_scene(5, H, W, seed=4), tmp_path / "scan", layout="posed_images")
    for path, kind in [(video, "video"), (folder, "frames"), (scan, "scan")]:
        item = InputItem(path.stem, path, kind)
        stored = load_frames(item, num_frames=3)  # what `vega3d extract` feeds the simulator
        media = load_media(path, num_frames=3)
        frames, indices, _ = load_video(path, 3)  # what training and the eval runners feed the MLLM
        assert stored.frame_indices == media.indices == list(indices)
        assert stored.num_available == media.total
        as_float = torch.from_numpy(media.frames).permute(0, 3, 1, 2).float() / 255
        assert torch.equal(stored.frames, as_float) and np.array_equal(frames, media.frames)
        again = load_frames(item, frames=stored.frame_indices[::-1])  # explicit indices: the same frames
        assert torch.equal(again.frames, stored.frames.flip(0))
