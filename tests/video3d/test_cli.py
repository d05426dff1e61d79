"""``vega3d select-frames`` and ``vega3d tiny-video3d-data`` through their argparse registration."""

import argparse
import pickle
import shutil

import pytest

from tests.video3d.conftest import SMALL
from vega3d.errors import Vega3DError
from vega3d.video3d import read_select_frames
from vega3d.video3d.cli import register


def run(argv):
    parser = argparse.ArgumentParser(prog="vega3d")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_select_frames_reproduces_the_datasets_file(tiny_data, tmp_path, capsys):
    meta, emb = tiny_data / "metadata", tiny_data / "embodiedscan"
    out = tmp_path / "select.json"
    argv = [
        "select-frames",
        tiny_data / "scannet" / "posed_images",
        "--out",
        out,
        "--points",
        meta / "pcd_discrete_0.1.pkl",
    ]
    argv += ["--infos", emb / "embodiedscan_infos_train.pkl", "--infos", emb / "embodiedscan_infos_val.pkl"]
    argv += ["--max-frames", SMALL["select_frames"], "--seed", SMALL["seed"], "--ratio", 0.9]
    assert run(argv) == 0
    assert read_select_frames(out) == read_select_frames(meta / "scannet_select_frames.json")
    text = capsys.readouterr().out
    assert "scannet/scene0000_00" in text and "ratio 0.9:" in text and "wrote" in text


def test_select_frames_from_scan_folders_alone(tiny_data, tmp_path):
    out = tmp_path / "select.json"
    scan = tiny_data / "scannet" / "posed_images" / "scene0001_00"
    assert run(["select-frames", scan, "--out", out, "--max-frames", 3, "--stride", 3, "--prefix", "posed"]) == 0
    (rec,) = read_select_frames(out).values()
    assert len(rec.frame_files) == 3 and rec.frame_files[0].startswith("posed/scene0001_00/")


def test_select_frames_checks_everything_before_any_work(tiny_data, tmp_path):
    scan = tmp_path / "scene0005_00"
    shutil.copytree(tiny_data / "scannet" / "posed_images" / "scene0000_00", scan)
    (scan / "axis_align_matrix.txt").unlink()
    good = tiny_data / "scannet" / "posed_images" / "scene0000_00"
    out = tmp_path / "select.json"
    with pytest.raises(Vega3DError, match="scene0005_00: no axis alignment"):
        run(["select-frames", good, scan, "--out", out])
    voxels = tmp_path / "pcd.pkl"
    voxels.write_bytes(pickle.dumps({"scene0001_00": [(0, 0, 0)]}))
    with pytest.raises(Vega3DError, match="'scene0000_00' is missing from the scene voxel file"):
        run(["select-frames", good, "--out", out, "--points", voxels])
    with pytest.raises(Vega3DError, match="given more than once"):
        run(["select-frames", good, good, "--out", out])
    with pytest.raises(Vega3DError, match="--ratio"):
        run(["select-frames", good, "--out", out, "--ratio", 1.5])
    with pytest.raises(Vega3DError, match="select-frames: --stride: input should be greater than or equal to 1, got 0"):
        run(["select-frames", good, "--out", out, "--stride", 0])
    assert not out.exists()


def test_tiny_dataset_command(tmp_path, capsys):
    out = tmp_path / "data"
    assert run(["tiny-video3d-data", out, "--train-scenes", 1, "--val-scenes", 1, "--frames", 4]) == 0
    assert (out / "processed" / "scan2cap_val_llava_style.json").is_file()
    assert "docs/video3d.md" in capsys.readouterr().out
