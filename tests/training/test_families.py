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
    # the optimizer's groups must match the saved state: the decay rule is fixed (old records: the default)
    hf_rule = {**old, "train": {"lr": 1, "decay_norms_and_biases": False}}
    assert config_differences(old, hf_rule) == ["train.decay_norms_and_biases"]
    assert config_differences(old, {**old, "train": {"decay_norms_and_biases": True}}) == []


def test_step_schedule_warms_up_then_decays_at_the_milestones():
    """ "step" (OpenVLA-OFT: constant LR, x0.1 after 100K steps) against a hand-written table; cosine
    stays transformers' own."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from vega3d.training.config import TrainSettings
    from vega3d.training.loop import make_schedule

    def lrs(settings, total):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_schedule(opt, settings, total)
        out = []
        for _ in range(total):
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return out

    step = TrainSettings(output_dir="x", warmup_ratio=0.2, schedule="step", lr_decay_steps=[6, 8], lr_decay=0.1)
    expected = [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    assert lrs(step, 10) == pytest.approx(expected)
    cosine = TrainSettings(output_dir="x", warmup_ratio=0.2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_cosine_schedule_with_warmup(opt, 2, 10)
    ref = []
    for _ in range(10):
        ref.append(reference.get_last_lr()[0])
        opt.step()
        reference.step()
    assert lrs(cosine, 10) == pytest.approx(ref)
