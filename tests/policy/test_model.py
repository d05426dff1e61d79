"""The network: OFT's sequence and parallel decoding against a literal re-enactment of OFT's predict_action on
transformers' own bidirectional mask; padding, bidirectionality, the L1 loss."""

import copy

import numpy as np
import pytest
import torch

from vega3d.policy.config import PolicyConfig
from vega3d.policy.model import bidirectional_mask
from vega3d.policy.vla import VLAPolicy


@pytest.fixture(scope="module")
def policy(tiny_oft):
    return VLAPolicy.from_config(PolicyConfig(base_model=str(tiny_oft), lora={"scope": "none"}))


def _inputs(policy, instructions, seed=0):
    rng = np.random.default_rng(seed)
    proc = policy.processor
    ids, mask = proc.batch([proc.prompt_ids(t) for t in instructions])
    images = [[rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(2)] for _ in instructions]
    pixels = torch.stack([proc.pixel_values(ims) for ims in images])
    proprio = torch.tensor(
        np.stack([proc.normalize_proprio(rng.normal(size=8)) for _ in instructions]), dtype=torch.float32
    )
    return ids, mask, pixels, proprio


def _oft_predict_action(net, prompt, pixels, proprio, causal=False):
    """OFT's ``predict_action`` step by step (modeling_prismatic.py): K·D placeholder ids (1) and the stop token
    appended, their embeddings zeroed by the action mask, patches + proprio inserted after BOS, the LLM run with a
    2-D all-ones mask (OFT's transformers fork makes it bidirectional; here transformers' own
    ``create_bidirectional_mask`` via ``config.is_causal = False``, eager attention), hidden states sliced at
    ``NUM_PATCHES + NUM_PROMPT_TOKENS`` and fed to the action head."""
    k, d = net.arch.chunk, net.arch.action_dim
    ids = torch.tensor([prompt + [1] * (k * d) + [net.arch.stop_token_id]])
    actions_mask = torch.zeros_like(ids, dtype=torch.bool)
    actions_mask[0, len(prompt) : len(prompt) + k * d] = True
    embeddings = net.language_model.get_input_embeddings()(ids) * ~actions_mask[..., None]
    patches = net.projector(net.vision_backbone(pixels))
    patches = torch.cat([patches, net.proprio_projector(proprio)[:, None]], dim=1)
    sequence = torch.cat([embeddings[:, :1], patches, embeddings[:, 1:]], dim=1)
    llm = copy.deepcopy(net.language_model.model)
    llm.set_attn_implementation("eager")
    llm.config.is_causal = causal
    hidden = llm(
        inputs_embeds=sequence, attention_mask=torch.ones(sequence.shape[:2], dtype=torch.long)
    ).last_hidden_state
    start = patches.shape[1] + len(prompt) - 1  # NUM_PATCHES + NUM_PROMPT_TOKENS
    return net.action_head.predict_action(hidden[:, start : start + k * d])


def test_actions_equal_a_literal_reenactment_of_ofts_predict_action(policy):
    ids, mask, pixels, proprio = _inputs(policy, ["put the bowl on the plate"])
    with torch.no_grad():
        ours = policy(ids, mask, pixels, proprio).actions
        reference = _oft_predict_action(policy.net, ids[0].tolist(), pixels, proprio)
        causal = _oft_predict_action(policy.net, ids[0].tolist(), pixels, proprio, causal=True)
    assert ours.shape == (1, 8, 7)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    assert (ours - causal).abs().max() > 1e-3  # a causal mask would give other actions: the test can tell


def test_right_padded_batch_equals_each_sample_alone(policy):
    texts = ["open the top drawer of the cabinet and put the bowl inside", "pick up the ketchup"]
    ids, mask, pixels, proprio = _inputs(policy, texts)
    assert mask.sum(1).tolist()[0] > mask.sum(1).tolist()[1]  # different prompt lengths: the second is padded
    with torch.no_grad():
        batch = policy(ids, mask, pixels, proprio).actions
        for i in range(2):
            n = int(mask[i].sum())
            alone = policy(ids[i : i + 1, :n], mask[i : i + 1, :n], pixels[i : i + 1], proprio[i : i + 1]).actions
            torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-4, atol=1e-5)


def test_sequence_layout(policy):
    net = policy.net
    ids, mask, pixels, proprio = _inputs(policy, ["pick up the ketchup", "open the drawer now please"])
    visual = torch.randn(2, 513, 32)
    embeds, valid, index = net.sequence(ids, mask, visual)
    table = net.language_model.get_input_embeddings().weight
    n = mask.sum(1)
    kd = 56
    assert embeds.shape[1] == 1 + 513 + ids.shape[1] - 1 + kd + 1
    for b in range(2):
        length = int(n[b])
        torch.testing.assert_close(embeds[b, 0], table[ids[b, 0]])  # BOS
        torch.testing.assert_close(embeds[b, 1:514], visual[b])  # patches x cameras, then the proprio token
        torch.testing.assert_close(embeds[b, 514 : 513 + length], table[ids[b, 1:length]])  # the prompt
        assert not embeds[b, 513 + length : 513 + length + kd].any()  # K·D zero embeddings
        torch.testing.assert_close(embeds[b, 513 + length + kd], table[net.arch.stop_token_id])  # EOS
        assert valid[b].sum() == 1 + 513 + length - 1 + kd + 1 and not valid[b, 513 + length + kd + 1 :].any()
        assert index[b].tolist() == list(range(513 + length - 1, 513 + length - 1 + kd))  # one before each action


def test_mask_is_bidirectional_over_valid_keys():
    valid = torch.tensor([[True, True, False]])
    mask = bidirectional_mask(valid, torch.float32)
    assert mask.shape == (1, 1, 3, 3)
    assert (mask[0, 0, :, :2] == 0).all() and (mask[0, 0, :, 2] == torch.finfo(torch.float32).min).all()


def test_l1_loss_on_the_normalised_chunk(policy):
    ids, mask, pixels, proprio = _inputs(policy, ["pick up the ketchup"])
    target = torch.zeros(1, 8, 7)
    with torch.no_grad():
        out = policy(ids, mask, pixels, proprio, actions=target)
    torch.testing.assert_close(out.loss, out.actions.abs().mean())
    assert out.gate_means is None


def test_gradient_checkpointing_keeps_loss_and_gradients(tiny_oft):
    a, b = (VLAPolicy.from_config(PolicyConfig(base_model=str(tiny_oft), lora={"r": 2})).train() for _ in range(2))
    b.gradient_checkpointing_enable()
    ids, mask, pixels, proprio = _inputs(a, ["pick up the ketchup"])
    target = torch.zeros(1, 8, 7)
    losses = [m(ids, mask, pixels, proprio, actions=target).loss for m in (a, b)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[0], losses[1])
    grads = [{n: p.grad for n, p in m.named_parameters() if p.grad is not None} for m in (a, b)]
    assert grads[0].keys() == grads[1].keys() and any("lora_B" in n for n in grads[0])
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)
