"""The trainer's model families: chosen by the YAML's `family`, one loop for all."""

import pytest
import yaml

from tests.mllm.test_config_checks import TINY_YAML
from vega3d import Vega3DError
from vega3d.mllm.family import QwenTrainConfig
from vega3d.training.config import config_differences, load_train_config
from vega3d.training.families import FAMILIES, get_family


def test_family_defaults_to_qwen_and_unknown_names_list_the_families(tmp_path):
    config = load_train_config(TINY_YAML, check_paths=False)
    assert isinstance(config, QwenTrainConfig) and config.family == "qwen25vl"
    assert get_family("qwen25vl").config is QwenTrainConfig
    with pytest.raises(
        Vega3DError, match=r"override 'family=llava': family: 'llava' is not a model family; expected one of qwen25vl"
    ):
        load_train_config(TINY_YAML, ["family=llava"], check_paths=False)
    tree = yaml.safe_load(TINY_YAML.read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**tree, "family": 3}))
    with pytest.raises(Vega3DError, match=r"c\.yaml: family: 3 is not a model family"):
        load_train_config(path, check_paths=False)
    assert set(FAMILIES) >= {"qwen25vl"}


def test_resume_refuses_another_family_and_old_records_are_qwen():
    old = {"model": {"a": 1}, "data": {}, "train": {"lr": 1}}  # written before families existed
    assert config_differences(old, {**old, "family": "qwen25vl", "train": {"lr": 2}}) == []
    assert config_differences(old, {**old, "family": "other"}) == ["family"]
