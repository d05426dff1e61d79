"""Every training-config field is type- and range-checked when the YAML + overrides load,
and paths are checked before any work: one-line Vega3DErrors naming the field."""

import json
from pathlib import Path

import pytest

from vega3d.errors import Vega3DError
from vega3d.mllm.train import load_train_config

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "configs" / "tiny.yaml"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=abc", r"train\.lr: expected a number, got 'abc'"),
        ("train.lr=0", r"train\.lr: expected > 0, got 0\.0"),
        ("train.lr=-1.0e-4", r"train\.lr: expected > 0"),
        ("train.branch_lr=0", r"train\.branch_lr: expected > 0"),
        ("train.batch_size=0", r"train\.batch_size: expected >= 1, got 0"),
        ("train.batch_size=2.5", r"train\.batch_size: expected an integer, got 2\.5"),
        ("train.epochs=-1", r"train\.epochs: expected >= 1, got -1"),
        ("train.grad_accum=0", r"train\.grad_accum: expected >= 1"),
        ("train.max_steps=0", r"train\.max_steps: expected >= 1"),
        ("train.warmup_ratio=1.5", r"train\.warmup_ratio: expected a value in \[0, 1\]"),
        ("train.weight_decay=-0.1", r"train\.weight_decay: expected >= 0"),
        ("train.log_every=0", r"train\.log_every: expected >= 1"),
        ("train.save_every=true", r"train\.save_every: expected an integer, got True"),
        ("train.gradient_checkpointing=maybe", r"train\.gradient_checkpointing: expected true or false"),
        ("train.mixed_precision=fp8", r"train\.mixed_precision: expected one of no, bf16, fp16"),
        ("train.base_dtype=float64", r"train\.base_dtype: expected one of float32, bfloat16, float16"),
        ("train.output_dir=[a]", r"train\.output_dir: expected a string"),
        ("model.llm=qlora", r"model\.llm: expected one of frozen, lora, full"),
        ("model.fusion=magic", r"model\.fusion: expected one of gated, add"),
        ("model.projector=mlp0x_gelu", r"model\.projector: expected linear or mlpNx_gelu"),
        ("model.generative_dim=0", r"model\.generative_dim: expected >= 1"),
        ("model.generative=1", r"model\.generative: expected true or false, got 1"),
        ("model.lora={r: 0}", r"model\.lora\.r: expected an integer >= 1, got 0"),
        ("model.lora={dropout: 1.0}", r"model\.lora\.dropout: expected a number in \[0, 1\)"),
        ("model.base_model=3", r"model\.base_model: expected a string, got 3"),
        ("simulator.block=-1", r"simulator\.block: expected >= 0"),
        ("simulator.timestep=2000", r"simulator\.timestep: expected a value in \[0, 1000\]"),
        ("simulator.dtype=float8", r"simulator\.dtype: expected one of float32"),
        ("simulator.height=8", r"simulator\.height: expected >= 16"),
        ("data.num_frames=0", r"data\.num_frames: expected >= 1"),
        ("data.frame_fps=0", r"data\.frame_fps: expected > 0"),
        ("data.store_key=name", r"data\.store_key: expected one of video_name, id"),
        ("data.video_max_pixels=100", r"data\.video_max_pixels: expected >= data\.video_min_pixels"),
        ("data.skip_bad_records=sometimes", r"data\.skip_bad_records: expected true or false"),
    ],
)
def test_bad_field_values_name_the_field(override, message):
    with pytest.raises(Vega3DError, match=message) as err:
        load_train_config(TINY_YAML, [override], check_paths=False)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(TINY_YAML))


def test_good_values_and_yaml_quirks_are_accepted():
    cfg = load_train_config(
        TINY_YAML,
        ["train.lr=1e-4", "train.mixed_precision=no", "train.max_steps=3", "train.branch_lr=null"],
        check_paths=False,
    )
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)  # PyYAML reads 1e-4 as a string
    assert cfg.train.mixed_precision == "no"  # PyYAML reads an unquoted no as false
    assert cfg.train.max_steps == 3 and cfg.train.branch_lr is None


def test_cli_reports_a_bad_value_as_one_line_exit_2(capsys):
    from vega3d.cli import main

    assert main(["train", str(TINY_YAML), "train.lr=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.lr: expected a number, got 'abc'" in err


def test_paths_are_checked_before_any_work(tiny, tmp_path):
    def load(*extra):
        return load_train_config(
            TINY_YAML,
            [
                f"model.base_model={tiny['qwen']}",
                f"simulator.path={tiny['wan']}",
                f"data.annotations={tiny['annotations']}",
                *extra,
            ],
        )

    load()  # all present
    with pytest.raises(Vega3DError, match=r"model\.base_model: .*nowhere does not exist"):
        load(f"model.base_model={tmp_path / 'nowhere'}")
    with pytest.raises(
        Vega3DError,
        match=r"model\.base_model: .*no config\.json \(it has transformer, vae: a "
        r"diffusers pipeline such as Wan2\.1",
    ):
        load(f"model.base_model={tiny['wan']}")
    wan_original = tmp_path / "wan_original"  # Wan's original layout: a config.json without model_type
    wan_original.mkdir()
    (wan_original / "config.json").write_text(json.dumps({"_class_name": "WanModel", "dim": 1536}))
    with pytest.raises(
        Vega3DError,
        match=r"model\.base_model: .* is not a Qwen2\.5-VL model: its config\.json has "
        r"no model_type \(_class_name 'WanModel'\), expected model_type 'qwen2_5_vl'",
    ):
        load(f"model.base_model={wan_original}")
    (wan_original / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(Vega3DError, match=r"has model_type 'llava', expected model_type 'qwen2_5_vl'"):
        load(f"model.base_model={wan_original}")
    with pytest.raises(Vega3DError, match=r"data\.annotations: .*missing\.json does not exist"):
        load(f"data.annotations={tmp_path / 'missing.json'}")
    with pytest.raises(Vega3DError, match=r"data\.annotations: .* is a folder, expected a file"):
        load(f"data.annotations={tmp_path}")
    with pytest.raises(Vega3DError, match=r"simulator\.path: .*nowan does not exist"):
        load(f"simulator.path={tmp_path / 'nowan'}")
    with pytest.raises(Vega3DError, match=r"data\.feature_store: .*nostore does not exist"):
        load(f"data.feature_store={tmp_path / 'nostore'}")


def test_load_base_and_checkpoints_name_a_wrong_base_folder(tiny, tmp_path):
    from vega3d.mllm.model import load_base

    with pytest.raises(Vega3DError, match=r"base model: .*gone does not exist"):
        load_base(tmp_path / "gone")
    with pytest.raises(Vega3DError, match="not a Hugging Face model folder: no config.json .*Wan2.1"):
        load_base(tiny["wan"])
