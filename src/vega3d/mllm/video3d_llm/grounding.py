"""Video-3D LLM's grounding pieces: the ``<ground>`` / ``<coord>`` tokens and the InfoNCE head.

- :func:`add_grounding_tokens` — ``<ground>`` then ``<coord>`` added to the tokenizer as ordinary
  tokens; after each, the vocabulary is resized to the tokenizer's length (shrinking Qwen's
  padded rows, as released) and the new embedding and ``lm_head`` rows set to the mean of the
  rows before them (``train_3d.py``: ``add_tokens_and_resize_embeddings``).
- :class:`GroundingHead` — ``ground_head_type infonce`` of ``llava_qwen.py``: object and query
  MLPs (Linear → ReLU → LayerNorm → Linear, width D), a learned zero-target slot appended last,
  cosine scores (both sides L2-normalised). Its parameter names map one-to-one onto the
  release's (:func:`head_state_from_release`).
- :func:`info_nce` — ``-log(Σ_pos e^{s/τ} / Σ_all e^{s/τ})``; no positive → the zero target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.mllm.video3d_llm.loading import COORD_TOKEN, GROUND_TOKEN


def add_grounding_tokens(model, tokenizer) -> dict:
    """Add ``<ground>`` and ``<coord>`` to ``tokenizer`` and ``model``'s vocabulary (module
    docstring); returns ``{"rows", "ground_token_id", "coord_token_id"}``. Mutates both."""
    for token in (GROUND_TOKEN, COORD_TOKEN):
        if tokenizer.convert_tokens_to_ids(token) not in (None, tokenizer.unk_token_id):
            raise Vega3DError(f"the tokenizer already has {token}; add_grounding_tokens expects a base without it")
        tokenizer.add_tokens([token])
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for w in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
                w[-1] = w[:-1].float().mean(dim=0).to(w.dtype)
    return {
        "rows": len(tokenizer),
        "ground_token_id": tokenizer.convert_tokens_to_ids(GROUND_TOKEN),
        "coord_token_id": tokenizer.convert_tokens_to_ids(COORD_TOKEN),
    }


def _mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.LayerNorm(width), nn.Linear(width, width))


class GroundingHead(nn.Module):
    """``scores = cos(obj_mlp([objects; zero_target]), query_mlp(query))`` → (P + 1,), zero target last.

    Initialisation as released: default ``nn.Linear`` / ``nn.LayerNorm``, ``zero_target ~ N(0, 1)``
    (draws from the global RNG: build it under a seeded ``torch.random.fork_rng``).
    """

    def __init__(self, width: int):
        super().__init__()
        self.obj = _mlp(width)
        self.query = _mlp(width)
        self.zero_target = nn.Parameter(torch.randn(width))

    def forward(self, objects: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``objects`` (P, D), ``query`` (D,) → scores (P + 1,) in [-1, 1] (float32)."""
        dtype = self.zero_target.dtype
        slots = torch.cat([objects.to(dtype), self.zero_target[None]], dim=0)
        o = F.normalize(self.obj(slots).float(), dim=-1)
        q = F.normalize(self.query(query.to(dtype)[None]).float(), dim=-1)
        return (o * q).sum(dim=-1)


def info_nce(scores: torch.Tensor, positives: Sequence[int], temperature: float) -> torch.Tensor:
    """InfoNCE over one query's scores (P + 1,): ``positives`` index the real proposals (GT
    objects in training); empty → the zero-target slot (last) is the target."""
    idx = list(positives) if len(positives) else [scores.shape[0] - 1]
    logits = scores.float() / temperature
    return torch.logsumexp(logits, dim=0) - torch.logsumexp(logits[idx], dim=0)


def head_state_from_release(state: dict) -> dict:
    """The release's tensor names (``ground_head_obj.0.weight``, ``ground_head_zero_target``) →
    :class:`GroundingHead`'s (``obj.0.weight``, ``zero_target``)."""
    out = {}
    for key, value in state.items():
        if key == "ground_head_zero_target":
            out["zero_target"] = value
        else:
            part, rest = key.removeprefix("ground_head_").split(".", 1)
            out[f"{part}.{rest}"] = value
    return out
