"""kill -9 at every commit point of the write protocol, then resume: the store equals an uninterrupted one."""

import multiprocessing
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.store.conftest import PatchMeanExtractor
from tests.store.inputs_fixture import build_inputs, write_frame_folder
from vega3d import files
from vega3d.store import FeatureStore, layout
from vega3d.store.extract import extract_to_store
from vega3d.store.inputs import discover_inputs


def extract(inputs, store):
    return extract_to_store(
        discover_inputs([inputs]), PatchMeanExtractor(), store, num_frames=3, precision="bf16", progress=False
    )


def _extract_then_die(inputs: str, store: str, kill_at: int) -> None:
    """Child process: run :func:`extract`, SIGKILLing itself just before its ``kill_at``-th
    ``os.replace`` (every file of the store is committed by one os.replace)."""
    calls = [0]
    real_replace = os.replace

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    files.os = SimpleNamespace(**{**vars(os), "replace": replace})  # every store file is written by vega3d.files
    extract(Path(inputs), Path(store))
    os._exit(3)  # not killed: the test fails on this exit code


def run_killed(inputs, store, kill_at: int) -> int:
    """Run :func:`_extract_then_die` in a fresh child process and return its exit code
    (``-SIGKILL`` when it killed itself). The child comes from a forkserver, not a fork of
    pytest: forking a process whose torch/OpenMP thread pools are running can crash the child."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "vega3d.store.extract"])
    child = ctx.Process(target=_extract_then_die, args=(str(inputs), str(store), kill_at))
    child.start()
    child.join()
    return child.exitcode


def snapshot(store: Path) -> dict:
    """Every file of the store (but the run log) -> its bytes."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != layout.RUN_FILE
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = build_inputs(tmp_path_factory.mktemp("crash_inputs"), with_scans=False)
    write_frame_folder(root / "more", names=("1.png", "2.png", "3.png", "4.png"))
    return root


def test_kill_at_every_commit_point_then_resume(inputs, tmp_path):
    ref = extract(inputs, tmp_path / "ref")
    assert sorted(ref.done) == ["clip", "more", "shots"] and list(ref.failed) == ["broken"]
    reference = snapshot(tmp_path / "ref")
    # os.replace calls: store.json, then per item shard + record, then index.json, last_run.json
    for kill_at in (1, 2, 3, 5, 8, 9):
        store = tmp_path / f"killed{kill_at}"
        code = run_killed(inputs, store, kill_at)
        assert code == -signal.SIGKILL, f"child exit code {code}"
        if (store / layout.STORE_FILE).exists():
            # the killed store is consistent: every entry it lists reads back and checks out
            fs = FeatureStore(store)
            assert fs.verify_all() == []
            for item_id in fs.ids():
                fs.get(item_id)
            assert len(fs.entries()) == {2: 0, 3: 0, 5: 1, 8: 3, 9: 3}[kill_at]
        else:
            assert kill_at == 1
        resumed = extract(inputs, store)
        assert len(resumed.done) + len(resumed.skipped) == 3
        assert snapshot(store) == reference, f"kill at os.replace #{kill_at}: resumed store differs"
