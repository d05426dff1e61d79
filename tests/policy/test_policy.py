"""OFTPolicy for the LIBERO harness (the Policy protocol, un-normalisation, statistics per suite, the
``--policy FOLDER`` hook) and vega3d's small policy checkpoints."""

import json

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.libero.policies import EpisodeInfo, check_policy, check_policy_spec, load_policy
from vega3d.policy.config import PolicyConfig
from vega3d.policy.policy import OFTPolicy
from vega3d.policy.vla import CONFIG_FILE, VLAPolicy


def _observation(seed=0):
    rng = np.random.default_rng(seed)
    return {"agentview": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
            "proprio": rng.normal(size=8), "language": "Pick up the black bowl", "step": 0}  # fmt: skip


def _episode(suite="libero_spatial"):
    return EpisodeInfo(suite, 0, "task", "pick up the black bowl", 0, 7)


@pytest.fixture(scope="module")
def oft_policy(tiny_oft):
    return OFTPolicy.from_pretrained(tiny_oft)


def test_policy_protocol_and_unnormalised_chunk(oft_policy, tiny_oft):
    policy = check_policy(oft_policy, "tiny")
    assert (policy.image_size, policy.center_crop, policy.action_format) == (224, True, "openvla")
    policy.reset(_episode())
    obs = _observation()
    chunk = policy.act(obs)
    assert chunk.shape == (8, 7) and chunk.dtype == np.float64
    np.testing.assert_array_equal(chunk, policy.act(obs))  # deterministic
    # BOUNDS_Q99 by hand: 0.5 (a + 1) (q99 - q01 + 1e-8) + q01 where mask; the gripper (mask false) as predicted
    stats = json.loads((tiny_oft / "dataset_statistics.json").read_text())["libero_spatial_no_noops"]["action"]
    proc = policy.vla.processor
    ids, mask = proc.batch([proc.prompt_ids(obs["language"])])
    pixels = proc.pixel_values([obs["agentview"], obs["wrist"]])[None]
    proprio = torch.tensor(proc.normalize_proprio(obs["proprio"]), dtype=torch.float32)[None]
    with torch.no_grad():
        raw = policy.vla(ids, mask, pixels, proprio).actions[0].double().numpy()
    q01, q99 = np.array(stats["q01"]), np.array(stats["q99"])
    expected = 0.5 * (raw + 1) * (q99 - q01 + 1e-8) + q01
    np.testing.assert_allclose(chunk[:, :6], expected[:, :6], rtol=1e-12)
    np.testing.assert_allclose(chunk[:, 6], raw[:, 6], rtol=1e-12)


def test_statistics_follow_the_suite_and_a_missing_suite_is_refused_before_any_episode(oft_policy, tiny_oft):
    oft_policy.reset(_episode("libero_spatial"))
    assert oft_policy.vla.processor.statistics.key == "libero_spatial_no_noops"
    with pytest.raises(Vega3DError, match="no statistics for 'libero_goal'"):
        oft_policy.reset(_episode("libero_goal"))
    assert check_policy_spec(str(tiny_oft), "libero_spatial") == "checkpoint"
    with pytest.raises(Vega3DError, match=r"--policy .*: .*no statistics for 'libero_goal' or 'libero_goal_no_noops'"):
        check_policy_spec(str(tiny_oft), "libero_goal")


def test_harness_loads_a_folder_spec(tiny_oft):
    policy = load_policy(str(tiny_oft))
    assert isinstance(policy, OFTPolicy) and policy.name == "openvla-oft"


def test_observation_without_a_camera_is_one_line(oft_policy):
    obs = _observation()
    del obs["wrist"]
    with pytest.raises(Vega3DError, match=r"observation lacks \['wrist'\]"):
        oft_policy.act(obs)


def test_checkpoint_round_trip_holds_only_trainable_tensors_and_is_bit_exact(tiny_oft, tmp_path):
    config = PolicyConfig(base_model=str(tiny_oft), generative=True, generative_dim=32, lora={"r": 4}, fusion="gated")
    policy = VLAPolicy.from_config(config)
    with torch.no_grad():  # as after training: adapters, heads and branch away from their initial values
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    folder = policy.save_pretrained(tmp_path / "ckpt")
    from safetensors.torch import load_file

    saved = load_file(str(folder / "trainable.safetensors"))
    assert set(saved) == set(policy.trainable_names())
    assert any("lora_" in k for k in saved) and any(k.startswith("net.branch.") for k in saved)
    assert not any(k.startswith("net.language_model.") and "lora_" not in k for k in saved)  # no base weights
    loaded = VLAPolicy.from_pretrained(folder)
    features = torch.randn(1, 1, 16, 16, 32, generator=torch.Generator().manual_seed(0))
    obs = _observation()
    proc = policy.processor
    ids, mask = proc.batch([proc.prompt_ids(obs["language"])])
    args = (ids, mask, proc.pixel_values([obs["agentview"], obs["wrist"]])[None], torch.zeros(1, 8))
    with torch.no_grad():
        assert torch.equal(
            loaded(*args, generative_features=features).actions, policy(*args, generative_features=features).actions
        )
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert meta["stand_in"] is True and meta["config"]["statistics"]["key"] == "libero_spatial_no_noops"
    assert meta["config"]["base_fingerprint"]


def test_checkpoint_refuses_another_base(tiny_oft, tmp_path):
    import shutil

    folder = VLAPolicy.from_config(PolicyConfig(base_model=str(tiny_oft), lora={"scope": "none"})).save_pretrained(
        tmp_path / "c"
    )
    other = shutil.copytree(tiny_oft, tmp_path / "other")
    (other / "dataset_statistics.json").write_text((other / "dataset_statistics.json").read_text() + " ")
    with pytest.raises(Vega3DError, match="another fingerprint"):
        VLAPolicy.from_pretrained(folder, base=other)


def test_branch_checkpoint_acts_exactly_as_its_base_until_trained(tiny_oft, tiny_wan, tmp_path, oft_policy):
    from vega3d.standin.oft import save_tiny_branch_policy

    folder = save_tiny_branch_policy(tmp_path / "branch", tiny_oft, tiny_wan)
    policy = load_policy(str(folder))  # the harness hook: simulator rebuilt from the recorded config
    assert policy.name == "openvla-oft+wan" and policy.vla.simulator is not None
    policy.reset(_episode())
    oft_policy.reset(_episode())
    obs = _observation(3)
    np.testing.assert_array_equal(policy.act(obs), oft_policy.act(obs))
