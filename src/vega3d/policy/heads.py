"""OpenVLA-OFT's small modules, with the released state-dict names.

- :class:`PrismaticProjector`: the fused-backbone projector ``fc1`` (2176 -> 4·2176) -> GELU ->
  ``fc2`` (-> LLM width) -> GELU -> ``fc3`` (OFT ``PrismaticProjector``, ``use_fused_vision_backbone``).
- :class:`ProprioProjector`: ``fc1`` (proprio -> LLM width) -> GELU -> ``fc2`` (OFT ``prismatic/models/projectors.py``).
- :class:`L1RegressionActionHead`: OFT's MLPResNet (``prismatic/models/action_heads.py``): the
  hidden states of the K·D action positions, reshaped to K rows of D·width, go through
  LayerNorm -> ``fc1`` -> ReLU -> 2 pre-norm residual blocks (LayerNorm -> Linear -> ReLU, + x) ->
  LayerNorm -> ``fc2`` (-> D): one normalised D-vector per chunk step.
"""

from __future__ import annotations

import torch
from torch import nn


class PrismaticProjector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1, self.act_fn2 = nn.GELU(), nn.GELU()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(patches)))))


class ProprioProjector(nn.Module):
    def __init__(self, llm_dim: int, proprio_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn1(self.fc1(proprio)))


class MLPResNetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList([MLPResNetBlock(hidden_dim) for _ in range(num_blocks)])
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


class L1RegressionActionHead(nn.Module):
    """``predict_action(hidden (B, K·D, W)) -> (B, K, D)`` normalised actions."""

    def __init__(self, llm_dim: int, action_dim: int):
        super().__init__()
        self.action_dim = action_dim
        self.model = MLPResNet(num_blocks=2, input_dim=llm_dim * action_dim, hidden_dim=llm_dim, output_dim=action_dim)

    def predict_action(self, actions_hidden_states: torch.Tensor) -> torch.Tensor:
        batch, positions, width = actions_hidden_states.shape
        assert positions % self.action_dim == 0, (positions, self.action_dim)
        return self.model(actions_hidden_states.reshape(batch, positions // self.action_dim, self.action_dim * width))
