"""Every training-config field is type- and range-checked when the YAML + overrides load,
and paths are checked before any work: one-line Vega3DErrors naming the field."""

import json
from pathlib import Path

import pytest

from vega3d.errors import Vega3DError
from vega3d.training.config import load_train_config

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "configs" / "tiny.yaml"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=abc", r"train\.lr: input should be a valid number.*got 'abc'"),
        ("train.lr=0", r"train\.lr: input should be greater than 0, got 0"),
        ("train.lr=-1.0e-4", r"train\.lr: input should be greater than 0"),
        ("train.branch_lr=0", r"train\.branch_lr: input should be greater than 0"),
        ("train.batch_size=0", r"train\.batch_size: input should be greater than or equal to 1, got 0"),
        ("train.batch_size=2.5", r"train\.batch_size: input should be a valid integer, got 2\.5"),
        ("train.epochs=-1", r"train\.epochs: input should be greater than or equal to 1, got -1"),
        ("train.grad_accum=0", r"train\.grad_accum: input should be greater than or equal to 1"),
        ("train.max_steps=0", r"train\.max_steps: input should be greater than or equal to 1"),
        ("train.warmup_ratio=1.5", r"train\.warmup_ratio: input should be less than or equal to 1, got 1\.5"),
        ("train.weight_decay=-0.1", r"train\.weight_decay: input should be greater than or equal to 0"),
        ("train.log_every=0", r"train\.log_every: input should be greater than or equal to 1"),
        ("train.save_every=true", r"train\.save_every: input should be a valid integer, got True"),
        ("train.gradient_checkpointing=maybe", r"train\.gradient_checkpointing: input should be a valid boolean"),
        ("train.mixed_precision=fp8", r"train\.mixed_precision: input should be 'no', 'bf16' or 'fp16', got 'fp8'"),
        ("train.base_dtype=float64", r"train\.base_dtype: input should be 'float32', 'bfloat16' or 'float16'"),
        ("train.output_dir=[a]", r"train\.output_dir: input should be a valid string"),
        ("model.llm=qlora", r"model\.llm: input should be 'frozen', 'lora' or 'full', got 'qlora'"),
        ("model.fusion=magic", r"model\.fusion: input should be 'gated', 'add', 'concat'"),
        ("model.projector=mlp0x_gelu", r"model\.projector: unknown projector; valid: linear, mlp2x_gelu, mlpNx_gelu"),
        ("model.generative_dim=0", r"model\.generative_dim: input should be greater than or equal to 1"),
        ("model.generative=1", r"model\.generative: input should be a valid boolean, got 1"),
        ("model.lora={r: 0}", r"model\.lora\.r: input should be greater than or equal to 1, got 0"),
        ("model.lora={dropout: 1.0}", r"model\.lora\.dropout: input should be less than 1, got 1\.0"),
        ("model.lora={target_modules: []}", r"model\.lora\.target_modules: expected a regular expression or a"),
        ("model.base_model=3", r"model\.base_model: input should be a valid string, got 3"),
        ("simulator.block=-1", r"simulator\.block: input should be greater than or equal to 0"),
        ("simulator.timestep=2000", r"simulator\.timestep: input should be less than or equal to 1000"),
        ("simulator.dtype=float8", r"simulator\.dtype: input should be 'float32', 'bfloat16' or 'float16'"),
        ("simulator.height=8", r"simulator\.height: input should be greater than or equal to 16"),
        ("data.num_frames=0", r"data\.num_frames: input should be greater than or equal to 1"),
        ("data.frame_fps=0", r"data\.frame_fps: input should be greater than 0"),
        ("data.store_key=name", r"data\.store_key: input should be 'video_name' or 'id', got 'name'"),
        ("data.video_max_pixels=100", r"data\.video_max_pixels: expected >= data\.video_min_pixels \(3136\), got 100"),
        ("data.skip_bad_records=sometimes", r"data\.skip_bad_records: input should be a valid boolean"),
        ("train.learnin_rate=1", r"train\.learnin_rate: unknown key; valid: output_dir, epochs, max_steps"),
    ],
)
def test_bad_field_values_name_the_field_and_the_override(override, message):
    with pytest.raises(Vega3DError, match=message) as err:
        load_train_config(TINY_YAML, [override], check_paths=False)
    text = str(err.value)  # one line, attributed to the override (not to the YAML file)
    assert "\n" not in text and text.startswith(f"override {override!r}: ")


def test_bad_yaml_values_name_the_file(tmp_path):
    import yaml

    tree = yaml.safe_load(TINY_YAML.read_text())
    tree["train"]["lr"] = "abc"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(Vega3DError, match=r"train\.lr: input should be a valid number") as err:
        load_train_config(path, ["train.max_steps=3"], check_paths=False)
    assert str(err.value).startswith(f"{path}: ")


def test_valid_keys_omit_what_training_records():
    with pytest.raises(Vega3DError, match=r"model\.seeed: unknown key; valid: base_model, generative") as err:
        load_train_config(TINY_YAML, ["model.seeed=1"], check_paths=False)
    assert not any(k in str(err.value) for k in ("base_fingerprint", "preprocessing", "simulator,"))
    with pytest.raises(Vega3DError, match=r"model\.simulator: recorded by vega3d train, not set in a config"):
        load_train_config(TINY_YAML, ["model.simulator={block: 1}"], check_paths=False)


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
    assert len(err.splitlines()) == 1 and "override 'train.lr=abc': train.lr: input should be a valid number" in err


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


def test_ask_refuses_a_missing_video_before_loading_anything(tmp_path, capsys):
    from vega3d.cli import main

    missing = tmp_path / "missing.mp4"  # the checkpoint does not exist either: the video is checked first
    assert main(["ask", "--model", str(tmp_path / "nothing"), "--video", str(missing), "q"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--video: {missing} does not exist; expected a video file, frame folder or scan folder" in err
    assert len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main(["ask", "--model", str(tmp_path / "nothing"), "--video", str(tmp_path / "empty"), "q"]) == 2
    assert "is a folder without images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "longest answer, in tokens" in help_text and "torch device of the model and simulator" in help_text
