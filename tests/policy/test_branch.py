"""The generative branch: exactly the base policy at step 0 for every fusion variant, gradients reach the gate,
the Wan grid lands on the 16 x 16 patch grid of the right camera, online features from the simulator."""

import numpy as np
import pytest
import torch

from vega3d.fusion import FUSIONS, align_to_grid
from vega3d.policy.config import PolicyConfig
from vega3d.policy.vla import VLAPolicy

C = 32  # the tiny Wan's feature width


@pytest.fixture(scope="module")
def base(tiny_oft):
    return VLAPolicy.from_config(PolicyConfig(base_model=str(tiny_oft), lora={"scope": "none"}))


def _branch(tiny_oft, **kw):
    config = PolicyConfig(base_model=str(tiny_oft), lora={"scope": "none"}, generative=True, generative_dim=C, **kw)
    return VLAPolicy.from_config(config)


def _inputs(policy, batch=2, grid=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    proc = policy.processor
    ids, mask = proc.batch([proc.prompt_ids("pick up the bowl"), proc.prompt_ids("open the drawer")][:batch])
    pixels = torch.randn(batch, 12, 224, 224, generator=g)
    proprio = torch.rand(batch, 8, generator=g) * 2 - 1
    features = torch.randn(batch, 1, grid, grid, C, generator=g)
    return ids, mask, pixels, proprio, features


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_actions_are_bit_identical_to_the_base_policy_at_step_zero(tiny_oft, base, fusion):
    policy = _branch(tiny_oft, fusion=fusion)
    ids, mask, pixels, proprio, features = _inputs(policy)
    with torch.no_grad():
        expected = base(ids, mask, pixels, proprio).actions
        out = policy(ids, mask, pixels, proprio, generative_features=features)
    assert torch.equal(out.actions, expected)
    assert torch.equal(out.gate_means, torch.zeros(2))
    # the branch itself is live: a non-zero gate changes the actions
    with torch.no_grad():
        policy.net.branch.gate.bias.fill_(0.5)
        moved = policy(ids, mask, pixels, proprio, generative_features=features).actions
    assert (moved - expected).abs().max() > 1e-4


def test_gradients_reach_the_gate_at_step_zero_then_the_whole_branch(tiny_oft):
    policy = _branch(tiny_oft, fusion="gated").train()
    ids, mask, pixels, proprio, features = _inputs(policy)
    target = torch.zeros(2, 8, 7)
    policy(ids, mask, pixels, proprio, actions=target, generative_features=features).loss.backward()
    branch = policy.net.branch
    assert branch.gate.weight.grad.abs().sum() > 0 and branch.gate.bias.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in branch.projector.parameters())  # g = 0 blocks them
    policy.zero_grad()
    with torch.no_grad():
        branch.gate.bias.fill_(0.1)  # as after a first optimizer step
    policy(ids, mask, pixels, proprio, actions=target, generative_features=features).loss.backward()
    assert all(p.grad is not None and p.grad.any() for p in branch.projector.parameters())
    assert all(p.grad is not None for p in branch.fusion.parameters())


def test_only_the_branch_cameras_tokens_change(tiny_oft):
    policy = _branch(tiny_oft, branch_cameras=["wrist"])
    ids, mask, pixels, proprio, features = _inputs(policy)
    with torch.no_grad():
        policy.net.branch.gate.bias.fill_(0.5)
        plain = policy.net.projector(policy.net.vision_backbone(pixels))
        fused, _ = policy.net.branch(plain, features, [1])
    assert torch.equal(fused[:, :256], plain[:, :256])  # agentview untouched
    assert (fused[:, 256:] - plain[:, 256:]).abs().max() > 1e-4  # wrist fused


def test_a_14x14_wan_grid_is_resampled_onto_the_16x16_patch_grid(tiny_oft):
    """A 224-px Wan input gives 14 x 14 tokens; the branch resamples them onto the patch grid
    (vega3d.fusion.align_to_grid), so its output equals that of the aligned 16 x 16 grid."""
    policy = _branch(tiny_oft)
    ids, mask, pixels, proprio, coarse = _inputs(policy, grid=14)
    aligned = align_to_grid(coarse[:, 0], (16, 16)).reshape(2, 1, 16, 16, C)
    with torch.no_grad():
        policy.net.branch.gate.bias.fill_(0.5)
        a = policy(ids, mask, pixels, proprio, generative_features=coarse).actions
        b = policy(ids, mask, pixels, proprio, generative_features=aligned).actions
    torch.testing.assert_close(a, b)


def test_online_features_come_from_the_simulator_on_the_policy_images(tiny_oft, tiny_wan):
    from vega3d.simulator import WanWorldSimulator

    policy = _branch(tiny_oft)
    simulator = WanWorldSimulator.from_pretrained(tiny_wan, block=3, height=256, width=256)
    policy.attach_simulator(simulator)
    ids, mask, pixels, proprio, _ = _inputs(policy)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 1, 224, 224, 3), dtype=np.uint8))
    expected = simulator.extract(frames[:, 0]).reshape(2, 1, 16, 16, C)
    torch.testing.assert_close(policy.simulator_features(frames), expected)
    with torch.no_grad():
        policy.net.branch.gate.bias.fill_(0.5)
        online = policy(ids, mask, pixels, proprio, generative_frames=frames).actions
        given = policy(ids, mask, pixels, proprio, generative_features=expected).actions
    torch.testing.assert_close(online, given)


def test_branch_is_deterministic_from_its_seed(tiny_oft):
    a, b = _branch(tiny_oft, seed=3), _branch(tiny_oft, seed=3)
    c = _branch(tiny_oft, seed=4)
    sa, sb, sc = (m.net.branch.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
