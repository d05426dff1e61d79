"""benchmarks/gpu_check.py: the one GPU command runs end to end (every section at tiny size on the CPU)
and, on a machine without CUDA, says it measured nothing and succeeds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would measure it")
def test_without_a_gpu_it_measures_nothing_and_succeeds(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          env=ENV)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "no GPU: nothing measured"
    assert not (tmp_path / "o").exists()


def test_tiny_run_goes_through_every_section(tmp_path):
    out = tmp_path / "o"
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], capture_output=True, text=True,
                          env=ENV)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((out / "gpu_check.json").read_text())
    sections = result["sections"]
    assert list(sections) == ["simulator", "batching", "determinism", "step", "compile"]
    assert not [name for name, s in sections.items() if "error" in s or "skipped" in s], sections
    assert "5 of 5 sections ok" in done.stdout and "[gpu_check" in done.stdout  # progress lines
    sim = sections["simulator"]["rows"]
    assert [r["size"] for r in sim] == ["96x64", "128x80"]
    assert all(r["max_abs_diff"] <= 1e-4 * max(1.0, r["max_abs_feature"]) for r in sim)  # both ways agree
    det = sections["determinism"]
    assert det["same_batch_twice_identical"] and det["batch_2_vs_1_identical"] and det["batch_5_vs_1_identical"]
    assert sections["compile"]["max_abs_diff"] <= 1e-5 * max(1.0, sections["compile"]["max_abs_feature"])
    steps = sections["step"]["rows"]
    assert [r["variant"] for r in steps] == [
        "no generative branch",
        "features from a feature store",
        "features online",
        "features online, cached",
    ]
    assert sections["step"]["cache_misses"] == 1 and sections["step"]["cache_hits"] >= 2  # computed once, then read
    table = (out / "gpu_check.md").read_text()
    assert "## determinism" in table and "TINY sizes" in table and "| features online, cached |" in table
