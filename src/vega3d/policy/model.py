"""OpenVLA-OFT as plain modules: fused ViTs -> projector -> Llama with parallel decoding -> L1 action head.

:class:`OpenVLAOFT` holds the released checkpoint's parts under their released names
(``vision_backbone``, ``projector``, ``language_model``, ``proprio_projector``, ``action_head``)
and optionally the generative ``branch``. No prismatic code, no ``trust_remote_code``: the
language model is transformers' stock ``LlamaForCausalLM``.

The sequence (OFT ``predict_action`` and ``finetune.py``)::

    [BOS] [patches, 256 per image] [proprio] [prompt tokens, ending "▁"] [K·D zero embeddings] [EOS] [pad...]

with a **bidirectional** 4-D attention mask: every position attends to every non-pad position
(OFT's transformers fork changes only this mask; transformers 5 passes a 4-D mask to the
attention unchanged, ``masking_utils._preprocess_mask_arguments``). The action embeddings are
zeros (the placeholder ids' embeddings multiplied by 0, as OFT). The action head reads the
final-norm hidden states one position *before* each action placeholder (OFT's slice
``NUM_PATCHES + NUM_PROMPT_TOKENS : ... + K·D``, the causal-LM alignment it was trained with):
from the prompt's last token to the second-to-last placeholder. Right padding keeps every
sample's positions as if it were alone (pads are masked as keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vega3d.policy.branch import GenerativeBranch
from vega3d.policy.heads import L1RegressionActionHead, PrismaticProjector, ProprioProjector
from vega3d.policy.vision import FusedVisionBackbone


@dataclass(frozen=True)
class OFTArch:
    """Everything that shapes the modules and the sequence (from the folder and the policy config)."""

    towers: tuple  # folder.TowerSpec per featurizer
    text_config: dict  # LlamaConfig kwargs
    action_dim: int
    proprio_dim: int
    chunk: int  # K
    num_images: int
    stop_token_id: int  # EOS after the placeholders
    pad_token_id: int
    branch: dict | None = None  # GenerativeBranch kwargs (generative_dim, fusion, ...) and "slots"

    @property
    def llm_dim(self) -> int:
        return int(self.text_config["hidden_size"])

    @property
    def num_action_tokens(self) -> int:
        return self.chunk * self.action_dim


@dataclass
class OFTOutput:
    """``actions`` (B, K, D) normalised; ``loss`` the L1 loss when targets were given; ``gate_means`` (B,) or None."""

    actions: torch.Tensor
    loss: torch.Tensor | None = None
    gate_means: torch.Tensor | None = None


def bidirectional_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) bool keys that may be attended -> additive (B, 1, L, L) mask: 0 where allowed, the dtype's min
    elsewhere (what transformers' eager and sdpa attention add to the scores)."""
    blocked = torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(~valid, torch.finfo(dtype).min)
    return blocked[:, None, None, :].expand(valid.shape[0], 1, valid.shape[1], valid.shape[1])


class OpenVLAOFT(nn.Module):
    """The policy network. ``forward(input_ids, attention_mask, pixel_values, proprio, actions=None,
    generative_features=None)``: ``input_ids`` (B, T) right-padded prompts (BOS ... "▁"),
    ``pixel_values`` (B, 6·n, H, W), ``proprio`` (B, P) normalised, ``actions`` (B, K, D) normalised
    targets, ``generative_features`` (B, m, h, w, C) Wan grids of the branch cameras."""

    def __init__(self, arch: OFTArch):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        self.arch = arch
        self.vision_backbone = FusedVisionBackbone(arch.towers)
        self.projector = PrismaticProjector(self.vision_backbone.embed_dim, arch.llm_dim)
        self.language_model = LlamaForCausalLM(LlamaConfig(**arch.text_config, attn_implementation="sdpa"))
        self.proprio_projector = ProprioProjector(arch.llm_dim, arch.proprio_dim)
        self.action_head = L1RegressionActionHead(arch.llm_dim, arch.action_dim)
        self.branch = self.new_branch() if arch.branch is not None else None

    def new_branch(self) -> GenerativeBranch:
        """A freshly initialised generative branch of ``arch.branch`` (seeded by its ``seed``, the caller's RNG untouched)."""
        kwargs = {k: v for k, v in self.arch.branch.items() if k not in ("slots", "seed")}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.arch.branch.get("seed", 0))
            return GenerativeBranch(llm_dim=self.arch.llm_dim, grid=self.arch.towers[0].grid, **kwargs)

    # -- the sequence ---------------------------------------------------------------------------
    def visual_tokens(self, pixel_values, proprio, generative_features=None):
        """Projected patch tokens (+ the branch) and the proprio token: ((B, 256·n + 1, W), gate_means or None)."""
        tokens = self.projector(self.vision_backbone(pixel_values))
        gates = None
        if self.branch is not None:
            assert generative_features is not None, "the generative branch needs generative_features"
            tokens, gates = self.branch(tokens, generative_features, self.arch.branch["slots"])
        proprio_token = self.proprio_projector(proprio.to(self.proprio_projector.fc1.weight.dtype))[:, None]
        return torch.cat([tokens, proprio_token.to(tokens.dtype)], dim=1), gates

    def sequence(self, input_ids, attention_mask, visual):
        """(inputs_embeds (B, L, W), key-valid (B, L), index (B, K·D) of the hidden states the head reads)."""
        b, t = input_ids.shape
        n_act = self.arch.num_action_tokens
        lengths = attention_mask.sum(dim=1, keepdim=True)  # prompt tokens incl. BOS (right padded)
        pos = torch.arange(t + n_act + 1, device=input_ids.device)[None]
        prompt, action, stop = pos < lengths, (pos >= lengths) & (pos < lengths + n_act), pos == lengths + n_act
        ids = torch.full((b, pos.shape[1]), self.arch.pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
        ids[:, :t] = torch.where(attention_mask.bool(), input_ids, ids[:, :t])
        ids = torch.where(stop, self.arch.stop_token_id, ids)
        embeds = self.language_model.get_input_embeddings()(ids)
        embeds = embeds.masked_fill(action[..., None], 0).to(visual.dtype)
        valid = prompt | action | stop
        n_vis = visual.shape[1]
        embeds = torch.cat([embeds[:, :1], visual, embeds[:, 1:]], dim=1)
        valid = torch.cat([valid[:, :1], valid.new_ones(b, n_vis), valid[:, 1:]], dim=1)
        index = n_vis + lengths - 1 + torch.arange(n_act, device=input_ids.device)[None]
        return embeds, valid, index

    def forward(self, input_ids, attention_mask, pixel_values, proprio, actions=None, generative_features=None):
        visual, gates = self.visual_tokens(pixel_values, proprio, generative_features)
        embeds, valid, index = self.sequence(input_ids, attention_mask, visual)
        hidden = self.language_model.model(
            inputs_embeds=embeds, attention_mask=bidirectional_mask(valid, embeds.dtype), use_cache=False
        ).last_hidden_state
        picked = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        head_dtype = self.action_head.model.fc1.weight.dtype
        predicted = self.action_head.predict_action(picked.to(head_dtype))
        loss = None
        if actions is not None:
            loss = torch.nn.functional.l1_loss(predicted.float(), actions.float())
        return OFTOutput(predicted, loss, gates)

    def gradient_checkpointing_enable(self) -> None:
        """Activation checkpointing in the Llama and both towers' blocks (non-reentrant)."""
        kwargs = {"use_reentrant": False}
        for module in (self.language_model, self.vision_backbone.featurizer, self.vision_backbone.fused_featurizer):
            if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x name
                module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
