"""Training the OpenVLA-OFT family through the one trainer (``family: openvla_oft``): LoRA + heads + branch,
online Wan features or a feature store, small checkpoints the harness loads; config errors before any weight."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vega3d.errors import Vega3DError
from vega3d.training.config import load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vega3d.standin.oft import write_tiny_oft_setup

    return write_tiny_oft_setup(tmp_path_factory.mktemp("oft_setup"))


def _overrides(setup, out, *extra):
    return [f"model.base_model={setup['oft']}", f"simulator.path={setup['wan']}", f"data.dataset={setup['data']}",
            f"train.output_dir={out}", *extra]  # fmt: skip


def test_tiny_config_trains_lora_heads_and_branch_and_the_harness_loads_the_result(setup, tmp_path):
    from vega3d.libero.policies import EpisodeInfo, load_policy
    from vega3d.policy.released import read_component
    from vega3d.training.loop import train

    config = load_train_config(
        CONFIGS / "oft_libero_tiny.yaml", _overrides(setup, tmp_path / "run", "train.max_steps=2")
    )
    final = train(config, progress=False)
    saved = load_file(str(final / "trainable.safetensors"))
    assert any("lora_B" in k and saved[k].any() for k in saved)  # adapters moved away from B = 0
    assert any(k.startswith("net.branch.gate") and saved[k].any() for k in saved)  # the gate left zero
    head = read_component(next(setup["oft"].glob("action_head--*")))
    assert not torch.equal(saved["net.action_head.model.fc2.weight"], head["model.fc2.weight"].float())
    assert not any(k.startswith("net.language_model.model.layers") and "lora_" not in k for k in saved)
    policy = load_policy(str(final))
    policy.reset(EpisodeInfo("libero_spatial", 0, "t", "pick up the bowl", 0, 7))
    import numpy as np

    rng = np.random.default_rng(0)
    obs = {c: rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
    chunk = policy.act(obs | {"proprio": np.zeros(8), "language": "pick up the bowl", "step": 0})
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()


def test_training_on_a_feature_store(setup, tmp_path):
    from vega3d.policy.data import PolicyData, extract_features
    from vega3d.policy.folder import open_oft_folder
    from vega3d.policy.processing import OFTProcessor
    from vega3d.simulator import WanWorldSimulator
    from vega3d.store import FeatureStore
    from vega3d.training.loop import train

    folder = open_oft_folder(setup["oft"])
    processor = OFTProcessor.from_folder(folder, folder.stats("libero_spatial"))
    simulator = WanWorldSimulator.from_pretrained(setup["wan"], block=3, height=256, width=256)
    store = extract_features(
        PolicyData(dataset=str(setup["data"])), processor, simulator, tmp_path / "store", ["agentview"]
    )
    assert FeatureStore(store).get("ep000000/agentview")[0].shape == (6, 16, 16, 32)
    extra = [f"data.feature_store={store}", "data.random_crop=false", "data.statistics=dataset", "train.max_steps=1"]
    config = load_train_config(CONFIGS / "oft_libero_tiny.yaml", _overrides(setup, tmp_path / "run", *extra))
    final = train(config, progress=False)
    recorded = json.loads((final / "vega3d_policy.json").read_text())["config"]
    assert recorded["statistics"]["key"] == "lerobot:data" and recorded["chunk"] == 8  # K from the base's platform
    assert recorded["simulator"]["block"] == 3  # the store's extraction config


@pytest.mark.parametrize(
    "extra, message",
    [
        (["data.feature_store=null", "simulator=null"], "neither a 'simulator' section"),
        (["data.random_crop=true", "data.feature_store=."], "data.random_crop moves the patch grid"),
        (["model.unnorm_key=libero_goal"], r"model.base_model: .*no statistics for 'libero_goal'"),
        (["model.cameras=[agentview, agentview]"], "distinct cameras"),
    ],
    ids=["no-feature-source", "store-with-random-crop", "statistics", "cameras"],
)
def test_config_errors_are_one_line_before_any_weight(setup, tmp_path, extra, message):
    with pytest.raises(Vega3DError, match=message) as err:
        load_train_config(CONFIGS / "oft_libero_tiny.yaml", _overrides(setup, tmp_path / "run", *extra))
    assert "\n" not in str(err.value)


def test_dataset_of_another_proprio_width_is_refused_by_the_config_check(setup, tmp_path):
    import json
    import shutil

    data = shutil.copytree(setup["data"], tmp_path / "data")
    info = json.loads((data / "meta" / "info.json").read_text())
    info["features"]["observation.state"]["shape"] = [9]
    (data / "meta" / "info.json").write_text(json.dumps(info))
    overrides = _overrides(setup, tmp_path / "run")[:2] + [f"data.dataset={data}", f"train.output_dir={tmp_path}/run"]
    with pytest.raises(
        Vega3DError, match=r"data.dataset: .*observation.state has 9 dimensions; the policy's proprio has 8"
    ):
        load_train_config(CONFIGS / "oft_libero_tiny.yaml", overrides)


def test_recipe_config_parses():
    config = load_train_config(CONFIGS / "oft_libero_wan13b_lora.yaml", check_paths=False)
    assert config.family == "openvla_oft" and config.model.lora.r == 32 and config.train.lr == 5e-4
