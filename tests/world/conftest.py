"""One tiny world-model run shared by the tests of this folder (configs/world_tiny.yaml, one thread)."""

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "world_tiny.yaml"
TINY_VAE = REPO / "configs" / "world_vae_tiny.yaml"


def read_log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def train_tiny(out, *overrides, config=TINY) -> int:
    """``vega3d train-world`` on a tiny config with one intra-op thread (runs compared bit for bit)."""
    from vega3d.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(["train-world", str(config), f"train.output_dir={out}", *overrides, "--no-progress"])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The uninterrupted tiny run: its output folder (model/, probe/, log.jsonl, checkpoints/)."""
    out = tmp_path_factory.mktemp("world_tiny") / "run"
    assert train_tiny(out) == 0
    return out
