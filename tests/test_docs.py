"""The checkpoint paths in the docs are the folders `vega3d train` writes for the shipped configs."""

import re
from pathlib import Path

import pytest

from vega3d.training.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("doc", ["docs/mllm.md", "docs/eval.md"])
def test_doc_checkpoint_paths_are_output_dir_slash_model_of_a_shipped_config(doc):
    # train writes its final model to OUTPUT/model, OUTPUT = train.output_dir resolved against configs/
    written = {
        str((Path(load_train_config(p, check_paths=False).train.output_dir) / "model").relative_to(REPO))
        for p in (REPO / "configs").glob("*.yaml")
    }
    text = (REPO / doc).read_text()
    used = set(re.findall(r"--model (\S+)", text)) | set(re.findall(r'from_checkpoint\("([^"]+)"', text))
    assert used and used <= written, (used - written, written)
