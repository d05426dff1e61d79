import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from vega3d.errors import Vega3DError
from vega3d.training.config import load_train_config
from vega3d.training.loop import train

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "configs" / "tiny.yaml"


def overrides(tiny, out, *extra):
    return [
        f"model.base_model={tiny['qwen']}",
        f"simulator.path={tiny['wan']}",
        f"data.annotations={tiny['annotations']}",
        f"train.output_dir={out}",
        *extra,
    ]


def read_log(out):
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def test_loss_falls_when_overfitting(tiny, tmp_path):
    cfg = load_train_config(
        TINY_YAML,
        overrides(
            tiny,
            tmp_path / "run",
            "train.epochs=100",
            "train.max_steps=20",
            "train.lr=0.01",
            "train.branch_lr=0.01",
            "train.warmup_ratio=0.0",
            "train.save_every=0",
            "train.batch_size=4",
            "train.gradient_checkpointing=false",
            "model.llm=full",
        ),
    )
    final = train(cfg, progress=False)
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 21))
    losses = [r["loss"] for r in log]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses
    assert all(0.0 <= r["gate_min"] <= r["gate_mean"] <= r["gate_max"] <= 1.0 for r in log)
    assert (final / "trainable.safetensors").is_file()


def test_max_steps_overrides_epochs_and_sizes_the_schedule(tiny, tmp_path, capsys):
    """As in HF Trainer: max_steps=6 with epochs=1 and 2 steps per epoch runs 6 steps over 3
    epochs, and the cosine schedule (sized for 6) reaches 0 at the last step."""
    out = tmp_path / "run"
    train(
        load_train_config(
            TINY_YAML,
            overrides(tiny, out, "train.max_steps=6", "train.epochs=1", "train.save_every=0", "train.warmup_ratio=0.0"),
        ),
        progress=False,
    )
    assert "max_steps=6 overrides train.epochs=1" in capsys.readouterr().err
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in log] == [0, 0, 1, 1, 2, 2]
    assert log[2]["lr"] == pytest.approx(0.5e-3)  # cos schedule over 6 steps: half way after step 3
    assert log[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # fewer steps than the epochs give: stops at max_steps, schedule still ends at 0
    train(
        load_train_config(
            TINY_YAML, overrides(tiny, tmp_path / "short", "train.max_steps=3", "train.epochs=5", "train.save_every=0")
        ),
        progress=False,
    )
    log = read_log(tmp_path / "short")
    assert [r["step"] for r in log] == [1, 2, 3] and log[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_cli_train_checkpoints_and_resumes_bit_exactly(tiny, tmp_path, one_thread, capsys):
    """Crash mid-epoch (with gradient accumulation), rerun the same command: identical result."""
    from vega3d.cli import main

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    extra = ["train.batch_size=1", "train.grad_accum=2", "train.save_every=1", "train.keep_last=3"]
    assert main(["train", str(TINY_YAML), *overrides(tiny, full, *extra), "--no-progress"]) == 0
    assert "STAND-IN" in capsys.readouterr().err  # the tiny base says what it is
    steps = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert steps == ["step-0000002", "step-0000003", "step-0000004"]  # 4 records / 2 per step, 2 epochs, keep 3
    state = full / "checkpoints" / "step-0000004" / "state"
    saved = load_file(str(state / "model.safetensors"))
    assert saved and all(k.startswith(("projector.", "fusion.")) or "lora_" in k for k in saved)  # no frozen base
    assert (state / "optimizer.bin").is_file() and (state / "scheduler.bin").is_file()
    assert list(state.glob("random_states_*.pkl"))
    assert json.loads((full / "checkpoints" / "step-0000003" / "trainer_state.json").read_text()) == {
        "step": 3,
        "epoch": 1,
        "batches_done": 2,
        "skipped": 0,
    }

    # Simulate a crash after step 3 (mid-epoch): drop what came later, rerun the same command.
    shutil.copytree(full, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-0000004")
    shutil.rmtree(resumed / "model")
    assert main(["train", str(TINY_YAML), *overrides(tiny, resumed, *extra), "--no-progress"]) == 0
    a = load_file(str(full / "model" / "trainable.safetensors"))
    b = load_file(str(resumed / "model" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(full)] == [r["loss"] for r in read_log(resumed)]
    assert [r["step"] for r in read_log(resumed)] == [1, 2, 3, 4]
    with pytest.raises(Vega3DError, match="different configuration.*model.fusion"):
        train(load_train_config(TINY_YAML, overrides(tiny, resumed, *extra, "model.fusion=add")), progress=False)

    from vega3d.mllm.model import Vega3DQwen

    model = Vega3DQwen.from_pretrained(full / "model", check_sim=False)
    assert model.config.simulator["model"]["weights_hash"]


def test_train_refuses_bad_configs(tiny, tmp_path):
    base = yaml.safe_load(TINY_YAML.read_text())

    def write(tree):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(tree))
        return path

    with pytest.raises(Vega3DError, match=r"c\.yaml: train\.learning_rate: unknown key; valid: output_dir, epochs"):
        load_train_config(write({**base, "train": {**base["train"], "learning_rate": 1}}))
    with pytest.raises(Vega3DError, match=r"c\.yaml: data: required, missing"):
        load_train_config(write({k: v for k, v in base.items() if k != "data"}))
    with pytest.raises(Vega3DError, match="neither a 'simulator'"):
        load_train_config(write({k: v for k, v in base.items() if k != "simulator"}), check_paths=False)
    with pytest.raises(Vega3DError, match="mixed_precision"):
        load_train_config(TINY_YAML, ["train.mixed_precision=fp8"], check_paths=False)
    with pytest.raises(Vega3DError, match="section.key=value"):
        load_train_config(TINY_YAML, ["train.max_steps"])
    with pytest.raises(Vega3DError, match="not found"):
        load_train_config(tmp_path / "none.yaml")
    cfg = load_train_config(TINY_YAML, check_paths=False)
    assert Path(cfg.model.base_model).is_absolute() and cfg.model.lora.r == 4
    assert cfg.model.lora.target_modules  # defaults fill what the YAML leaves out


def test_bad_record_stops_training_with_its_name(tiny, tmp_path):
    records = json.loads(Path(tiny["annotations"]).read_text())
    records[1] = {**records[1], "id": "broken", "video": "missing_folder"}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(records))
    args = overrides(tiny, tmp_path / "run", "train.max_steps=2", f"data.media_root={Path(tiny['annotations']).parent}")
    args[2] = f"data.annotations={ann}"
    with pytest.raises(Vega3DError, match="'broken'.*missing_folder"):
        train(load_train_config(TINY_YAML, args), progress=False)
    cfg = load_train_config(
        TINY_YAML,
        [
            *args[:-1],
            "data.skip_bad_records=true",
            "train.batch_size=4",
            f"data.media_root={Path(tiny['annotations']).parent}",
            "train.output_dir=" + str(tmp_path / "skip"),
        ],
    )
    train(cfg, progress=False)
    log = read_log(tmp_path / "skip")
    assert log[-1]["skipped_records"] >= 1

    # Every record bad: with max_steps (epochs unbounded) an epoch without a step is an error, not a hang.
    ann.write_text(json.dumps([{**r, "video": "missing_folder"} for r in records]))
    cfg = load_train_config(
        TINY_YAML,
        [
            *args[:-1],
            "data.skip_bad_records=true",
            "train.max_steps=3",
            f"data.media_root={Path(tiny['annotations']).parent}",
            "train.output_dir=" + str(tmp_path / "none_good"),
        ],
    )
    with pytest.raises(Vega3DError, match=r"epoch 0 made no optimizer step \(skipped records: 4\)"):
        train(cfg, progress=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training_matches_gradient_accumulation(tiny, tmp_path, one_thread):
    """DDP over gloo on CPU through accelerate (torchrun launcher, ACCELERATE_USE_CPU): 2
    processes x 1 sample per step must train like 1 process accumulating 2 samples per step
    (the same samples per step, the gradients averaged the same way)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "vega3d.cli",
        "train",
        str(TINY_YAML),
        *overrides(tiny, out, "train.batch_size=1"),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = read_log(out)
    # 4 records, 1 per process per step, 2 processes -> 2 steps per epoch, 2 epochs; one logger
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert (out / "checkpoints" / "step-0000004" / "trainer_state.json").is_file()

    single = train(
        load_train_config(TINY_YAML, overrides(tiny, tmp_path / "single", "train.batch_size=1", "train.grad_accum=2")),
        progress=False,
    )
    a = load_file(str(out / "model" / "trainable.safetensors"))
    b = load_file(str(single / "trainable.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in read_log(tmp_path / "single")], rel=1e-5)


def test_training_from_a_feature_store_equals_online_features(tiny, tmp_path, simulator, one_thread):
    """A store written by the extraction pipeline (``vega3d extract``'s extract_to_store, fp32)
    gives the same training run as the simulator online: same frames, same keys, same features."""
    from vega3d.store import FeatureStore
    from vega3d.store.extract import extract_to_store
    from vega3d.store.inputs import discover_inputs

    records = json.loads(Path(tiny["annotations"]).read_text())
    media = [Path(tiny["annotations"]).parent / r["video"] for r in records]
    extract_to_store(
        discover_inputs(media), simulator, tmp_path / "store", num_frames=4, precision="fp32", progress=False
    )
    assert len(FeatureStore(tmp_path / "store")) == len(records)

    common = ["train.max_steps=2", "train.save_every=0"]
    online = train(load_train_config(TINY_YAML, overrides(tiny, tmp_path / "online", *common)), progress=False)
    stored = train(
        load_train_config(
            TINY_YAML, overrides(tiny, tmp_path / "stored", *common, f"data.feature_store={tmp_path / 'store'}")
        ),
        progress=False,
    )
    a, b = load_file(str(online / "trainable.safetensors")), load_file(str(stored / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(tmp_path / "online")] == [r["loss"] for r in read_log(tmp_path / "stored")]
    meta = json.loads((stored / "vega3d_config.json").read_text())
    assert meta["stand_in"] is True and meta["config"]["simulator"]["block"] == 1


def test_feature_store_must_match_the_simulator_section(tiny, tmp_path, simulator, capsys):
    """A store extracted at another block / with other weights than the 'simulator' section
    says is an error listing the differences; a store alone says what it was extracted with."""
    from vega3d.standin.wan import save_tiny_wan
    from vega3d.store.extract import extract_to_store
    from vega3d.store.inputs import discover_inputs
    from vega3d.training.config import check_feature_store

    records = json.loads(Path(tiny["annotations"]).read_text())
    media = [Path(tiny["annotations"]).parent / r["video"] for r in records]
    store = tmp_path / "store"
    extract_to_store(discover_inputs(media), simulator, store, num_frames=4, precision="fp32", progress=False)
    common = ["train.max_steps=1", "train.save_every=0", f"data.feature_store={store}"]

    assert "matches the 'simulator' section" in check_feature_store(
        load_train_config(TINY_YAML, overrides(tiny, tmp_path / "ok", *common))
    )
    with pytest.raises(
        Vega3DError,
        match=r"extracted with another simulator config than the 'simulator' section "
        r"\(timestep: store 300.0 vs simulator section 500.0; block: store 1 vs "
        r"simulator section 0\)",
    ):
        train(
            load_train_config(
                TINY_YAML, overrides(tiny, tmp_path / "a", *common, "simulator.block=0", "simulator.timestep=500")
            ),
            progress=False,
        )
    assert not (tmp_path / "a").exists()  # refused before any work
    other_wan = save_tiny_wan(tmp_path / "wan_seed1", num_layers=2, dim=32, seed=1)
    with pytest.raises(Vega3DError, match=r"model\.weights_hash: store [0-9a-f]{12}… vs simulator section"):
        train(
            load_train_config(TINY_YAML, overrides(tiny, tmp_path / "b", *common, f"simulator.path={other_wan}")),
            progress=False,
        )

    # Only the store: train says which simulator config the features come from, and that it is a stand-in.
    tree = yaml.safe_load(TINY_YAML.read_text())
    del tree["simulator"]
    tree["model"]["base_model"], tree["data"]["annotations"] = str(tiny["qwen"]), str(tiny["annotations"])
    tree["data"]["feature_store"], tree["train"]["output_dir"] = str(store), str(tmp_path / "c")
    tree["train"].update(max_steps=1, save_every=0)
    yaml_path = tmp_path / "store_only.yaml"
    yaml_path.write_text(yaml.safe_dump(tree))
    capsys.readouterr()
    final = train(load_train_config(yaml_path), progress=False)
    err = capsys.readouterr().err
    assert f"simulator: features from data.feature_store {store}, extracted with timestep=300.0" in err
    assert "block=1" in err and "STAND-IN weights" in err
    assert "the generative features (extracted by a stand-in Wan simulator)" in err
    assert json.loads((final / "vega3d_config.json").read_text())["stand_in"] is True


def test_ask_cli_answers_with_a_trained_checkpoint(tiny, tmp_path, capsys):
    from vega3d.cli import main

    final = train(load_train_config(TINY_YAML, overrides(tiny, tmp_path / "run", "train.max_steps=1")), progress=False)
    video = str(Path(tiny["annotations"]).parent / "video_0.mp4")
    capsys.readouterr()
    assert main(["ask", "--model", str(final), "--video", video, "--max-new-tokens", "4", "How many chairs?"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "STAND-IN" in captured.err and "Qwen2.5-VL base" in captured.err and "Wan simulator" in captured.err
    from vega3d.mllm.infer import Answerer

    answerer = Answerer.from_checkpoint(final)
    assert answerer.stand_in is True
    assert answerer.num_frames == 4 and answerer.processor.video_max_pixels == 12544  # recorded at training
    assert printed == answerer.answer(["How many chairs?"], [video], max_new_tokens=4)[0] + "\n"
    assert (
        main(
            ["ask", "--model", str(final), "--video", video, "--max-new-tokens", "4", "--baseline", "How many chairs?"]
        )
        == 0
    )
    baseline = answerer.answer(["How many chairs?"], [video], max_new_tokens=4, generative=False)[0]
    assert capsys.readouterr().out == baseline + "\n"
    assert main(["ask", "--model", str(tmp_path / "nothing"), "--video", video, "q"]) == 2
    assert "not a vega3d checkpoint" in capsys.readouterr().err

    # Bad arguments are refused up front, naming the flag (the model folder here does not even exist).
    for args, message in (
        (["--max-new-tokens", "0", "q"], "--max-new-tokens: got 0; expected an integer >= 1"),
        (["--num-frames", "0", "q"], "--num-frames: got 0; expected an integer >= 1"),
        (["  \t "], "question: expected a non-empty question"),
    ):
        assert main(["ask", "--model", str(tmp_path / "nothing"), "--video", video, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    with pytest.raises(Vega3DError, match="max_new_tokens: got 0; expected an integer >= 1"):
        answerer.answer(["q"], [video], max_new_tokens=0)
    with pytest.raises(Vega3DError, match="question #1: expected a non-empty question"):
        answerer.answer(["q", " "], [video, video], max_new_tokens=1)
    with pytest.raises(Vega3DError, match="num_frames: got 0; expected an integer >= 1"):
        Answerer.from_checkpoint(final, num_frames=0)


def test_example_configs_parse():
    from vega3d.training.families import get_family

    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_train_config(path, check_paths=False)  # real-size configs name folders that are not here
        assert isinstance(cfg, get_family(cfg.family).config) and cfg.train.output_dir, path
    for path in sorted((REPO / "configs" / "accelerate").glob("*.yaml")):
        tree = yaml.safe_load(path.read_text())
        assert tree["distributed_type"] in ("MULTI_GPU", "DEEPSPEED", "FSDP"), path
        if tree["distributed_type"] == "DEEPSPEED":
            assert tree["deepspeed_config"]["zero_stage"] in (2, 3)


def test_each_parameter_group_gets_its_own_learning_rate(tiny, tmp_path):
    """branch_lr / lr (LoRA) / vision_lr act on their own groups: a group at LR 1e-9 barely
    moves (AdamW steps are ~LR per step) while one at 1e-2 moves."""
    from vega3d.mllm.model import load_base

    base = dict(load_base(tiny["qwen"]).named_parameters())
    common = ["train.max_steps=2", "train.save_every=0", "train.warmup_ratio=0.0", "model.train_vision=true"]
    small = "1.0e-9"
    moving_branch = train(
        load_train_config(
            TINY_YAML,
            overrides(
                tiny, tmp_path / "a", *common, f"train.lr={small}", f"train.vision_lr={small}", "train.branch_lr=0.01"
            ),
        ),
        progress=False,
    )
    moving_vision = train(
        load_train_config(
            TINY_YAML,
            overrides(
                tiny, tmp_path / "b", *common, f"train.lr={small}", "train.vision_lr=0.01", f"train.branch_lr={small}"
            ),
        ),
        progress=False,
    )
    a, b = (
        load_file(str(moving_branch / "trainable.safetensors")),
        load_file(str(moving_vision / "trainable.safetensors")),
    )
    vision = [k for k in a if k.startswith("base.model.visual.")]
    lora_b = [k for k in a if "lora_B" in k]
    branch = [k for k in a if k.startswith(("projector.", "fusion."))]
    assert vision and lora_b and branch

    def moved(x, y):
        return max(float((x[k] - y[k]).abs().max()) for k in x)

    init_vision = {k: base[k.removeprefix("base.")].detach() for k in vision}
    assert moved({k: a[k] for k in vision}, init_vision) < 1e-7  # vision_lr tiny in a
    assert max(float(a[k].abs().max()) for k in lora_b) < 1e-7  # lr tiny: LoRA B stays near its zero init
    assert moved({k: a[k] for k in branch}, {k: b[k] for k in branch}) > 1e-4  # branch moved only in a
    assert moved({k: b[k] for k in vision}, init_vision) > 1e-4  # vision_lr=0.01 in b
