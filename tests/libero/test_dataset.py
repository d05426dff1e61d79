"""LeRobot-format datasets: record -> read round trip (v3.0), appending, the v2.1 and multi-episode-file layouts."""

import json
import shutil

import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.libero.dataset import (
    CAMERA_KEYS,
    LeRobotDataset,
    LeRobotWriter,
    decode_video,
    encode_video,
    stage_episode,
)

pytest.importorskip("pyarrow")
pytest.importorskip("av")

FPS = 20


def _episode(length: int, seed: int, size: int = 32):
    """Smooth moving images (video codecs keep them within a few levels), random state/action."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    frames = {}
    for k, name in enumerate(("agentview", "wrist")):
        f = [np.stack([xx * 4 + t * 5 + k * 40, yy * 4 + seed * 30, np.full_like(xx, 100 + 10 * t % 100)], -1)
             for t in range(length)]  # fmt: skip
        frames[name] = np.asarray(f, np.uint8)
    return frames, rng.normal(size=(length, 8)).astype(np.float32), rng.uniform(-1, 1, (length, 7)).astype(np.float32)


def test_record_then_read_round_trip(tmp_path):
    root = tmp_path / "ds"
    writer = LeRobotWriter(root, fps=FPS)
    data = [_episode(12, 0), _episode(7, 1), _episode(9, 2)]
    tasks = ["open the drawer", "put the bowl on the plate", "open the drawer"]
    for (images, state, action), task in zip(data[:2], tasks[:2]):
        writer.add_episode(images=images, state=state, action=action, task=task, key=task)
    writer.close()
    writer = LeRobotWriter(root, fps=FPS)  # reopen and append
    assert writer.add_episode(images=data[0][0], state=data[0][1], action=data[0][2], task=tasks[0], key=tasks[0]) == 0
    images, state, action = data[2]
    assert writer.add_episode(images=images, state=state, action=action, task=tasks[2], key="third") == 2
    stats = writer.close()

    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["total_episodes"] == 3
    assert info["total_frames"] == 28 and info["total_tasks"] == 2 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["features"]["observation.images.image"]["dtype"] == "video"
    assert (root / "videos" / "observation.images.image2" / "chunk-000" / "file-002.mp4").exists()
    assert not (root / ".staging").exists()

    ds = LeRobotDataset(root, action_dim=7)
    assert len(ds) == 3 and ds.tasks == {0: "open the drawer", 1: "put the bowl on the plate"}
    assert ds.camera_keys == [CAMERA_KEYS["agentview"], CAMERA_KEYS["wrist"]]
    for i, (images, state, action) in enumerate(data):
        ep = ds.episode(i)
        assert ep.index == i and ep.task == tasks[i] and len(ep) == len(state)
        np.testing.assert_array_equal(ep.state, state)
        np.testing.assert_array_equal(ep.action, action)
        np.testing.assert_allclose(ep.timestamps, np.arange(len(state)) / FPS, atol=1e-6)
        for name, key in CAMERA_KEYS.items():
            assert ep.images[key].shape == images[name].shape
            assert np.abs(ep.images[key].astype(int) - images[name]).mean() < 2.0  # H.264 at crf 18
    all_actions = np.concatenate([d[2] for d in data])
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(all_actions, 0.99, axis=0), rtol=1e-5)
    assert stats["observation.state"]["count"] == [28]


def test_action_dimension_mismatch_is_one_clear_line(tmp_path):
    writer = LeRobotWriter(tmp_path, fps=FPS)
    images, state, action = _episode(3, 0)
    writer.add_episode(images=images, state=state, action=action, task="t")
    writer.close()
    with pytest.raises(Vega3DError, match=r"info.json: action has 7 dimensions; expected 14"):
        LeRobotDataset(tmp_path, action_dim=14)
    with pytest.raises(Vega3DError, match="expected one length"):
        writer.add_episode(images=images, state=state[:2], action=action, task="t")
    info = json.loads((tmp_path / "meta" / "info.json").read_text())
    (tmp_path / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(Vega3DError, match=r"info.json: codebase_version: input should be 'v2.0', 'v2.1' or 'v3.0'"):
        LeRobotDataset(tmp_path)


def test_reads_v21_layout(tmp_path):
    src = tmp_path / "v3"
    writer = LeRobotWriter(src, fps=FPS)
    data = [_episode(5, 0), _episode(4, 1)]
    for k, (images, state, action) in enumerate(data):
        writer.add_episode(images=images, state=state, action=action, task=f"task {k}")
    writer.close()
    # the same content in LeRobot v2.1's layout: one file per episode, JSONL metadata
    dst = tmp_path / "v21"
    info = json.loads((src / "meta" / "info.json").read_text())
    info |= {"codebase_version": "v2.1", "total_chunks": 1, "total_videos": 4,
             "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
             "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}  # fmt: skip
    (dst / "meta").mkdir(parents=True)
    (dst / "meta" / "info.json").write_text(json.dumps(info))
    (dst / "meta" / "episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": e, "tasks": [f"task {e}"], "length": len(d[1])}) + "\n" for e, d in enumerate(data)))  # fmt: skip
    (dst / "meta" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": e, "task": f"task {e}"}) + "\n" for e in range(2))
    )
    for e in range(2):
        (dst / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        shutil.copy(src / f"data/chunk-000/file-{e:03d}.parquet", dst / f"data/chunk-000/episode_{e:06d}.parquet")
        for key in CAMERA_KEYS.values():
            (dst / "videos" / "chunk-000" / key).mkdir(parents=True, exist_ok=True)
            shutil.copy(
                src / f"videos/{key}/chunk-000/file-{e:03d}.mp4", dst / f"videos/chunk-000/{key}/episode_{e:06d}.mp4"
            )
    ds = LeRobotDataset(dst)
    assert ds.version == "v2.1" and len(ds) == 2
    ep = ds.episode(1)
    assert ep.task == "task 1" and ep.images[CAMERA_KEYS["wrist"]].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(ep.action, data[1][2])


def test_reads_v30_files_holding_several_episodes(tmp_path):
    # lerobot's own writer concatenates episodes into one data file and one MP4 per camera
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "one"
    writer = LeRobotWriter(src, fps=FPS)
    data = [_episode(6, 0), _episode(5, 1)]
    for k, (images, state, action) in enumerate(data):
        writer.add_episode(images=images, state=state, action=action, task=f"task {k}")
    writer.close()
    dst = tmp_path / "many"
    shutil.copytree(src / "meta", dst / "meta")
    tables = [pq.read_table(src / f"data/chunk-000/file-{e:03d}.parquet") for e in range(2)]
    (dst / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.concat_tables(tables), dst / "data/chunk-000/file-000.parquet")
    episodes = pq.read_table(src / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for key, name in ((v, k) for k, v in CAMERA_KEYS.items()):
        frames = np.concatenate([d[0][name] for d in data])
        encode_video(dst / f"videos/{key}/chunk-000/file-000.mp4", frames, FPS)
        offset = 0.0
        for ep in episodes:
            ep |= {f"videos/{key}/file_index": 0, f"videos/{key}/from_timestamp": offset,
                   f"videos/{key}/to_timestamp": offset + ep["length"] / FPS}  # fmt: skip
            ep["data/file_index"] = 0
            offset += ep["length"] / FPS
    pq.write_table(pa.Table.from_pylist(episodes), dst / "meta/episodes/chunk-000/file-000.parquet")
    ds = LeRobotDataset(dst)
    for e, (images, state, action) in enumerate(data):
        ep = ds.episode(e)
        np.testing.assert_array_equal(ep.state, state)
        np.testing.assert_array_equal(ep.action, action)
        assert np.abs(ep.images[CAMERA_KEYS["agentview"]].astype(int) - images["agentview"]).mean() < 2.0


def test_video_round_trip_keeps_frame_count_and_times(tmp_path):
    frames = _episode(10, 3)[0]["agentview"]
    encode_video(tmp_path / "v.mp4", frames, FPS)
    assert decode_video(tmp_path / "v.mp4").shape == frames.shape
    assert decode_video(tmp_path / "v.mp4", 0.2, 0.4, FPS).shape[0] == 4  # frames 4..7


def test_each_writer_and_reader_failure_has_its_own_line(tmp_path):
    images, state, action = _episode(3, 0)
    with pytest.raises(Vega3DError, match=r"episode 't': cameras \['top'\]; expected some of \['agentview', 'wrist'\]"):
        LeRobotWriter(tmp_path / "a", fps=FPS).add_episode(images={"top": images["wrist"]}, state=state, action=action,
                                                           task="t")  # fmt: skip
    writer = LeRobotWriter(tmp_path, fps=FPS)
    writer.add_episode(images=images, state=state, action=action, task="t")
    with pytest.raises(Vega3DError, match=r"feature 'observation.images.image2' is None in the episode, \{'dtype'"):
        writer.add_episode(images={"agentview": images["agentview"]}, state=state, action=action, task="t")
    staged = stage_episode(tmp_path / "staged", images=images, state=state, action=action, task="t", fps=FPS + 1)
    with pytest.raises(
        Vega3DError, match=rf"staged: episode at {FPS + 1} fps; the dataset \(.*info.json\) is at {FPS} fps"
    ):
        writer.commit(staged)
    writer.close()
    ds = LeRobotDataset(tmp_path)
    with pytest.raises(Vega3DError, match=r"episode 1 asked for; the dataset has 1"):
        ds.episode(1)
    with pytest.raises(Vega3DError, match=r"no camera feature 'wrist'; cameras are observation.images.image, "):
        ds.episode(0, cameras=["wrist"])
    data_file = tmp_path / "data" / "chunk-000" / "file-000.parquet"
    shutil.copy(data_file, tmp_path / "saved.parquet")
    data_file.unlink()
    with pytest.raises(Vega3DError, match=r"file-000.parquet: data file of episode 0 is missing"):
        ds.episode(0)
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(tmp_path / "saved.parquet").slice(0, 2), data_file)
    with pytest.raises(Vega3DError, match=r"file-000.parquet: 2 rows of episode 0; the episode table says 3"):
        ds.episode(0)
