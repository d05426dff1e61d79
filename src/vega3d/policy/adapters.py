"""LoRA adapters on the policy (peft), placed as OpenVLA-OFT places them.

OFT wraps the whole VLA with ``get_peft_model(LoraConfig(target_modules="all-linear", ...))``:
every ``nn.Linear`` except the output embedding (``lm_head``) — the towers, the projector and
the Llama. Here (``scope: all_linear``) the adapters go on exactly the linear layers the forward
pass runs: the towers' blocks up to the second-to-last (OFT's adapters on the last block and on
SigLIP's pooling head get no gradient, since neither runs), the projector and every Llama
attention and MLP projection. ``scope: llm`` keeps only the Llama's. The action head, the
proprio projector and the generative branch train in full, never through adapters.

One difference in kind: timm fuses q, k, v into one ``qkv`` Linear, transformers' towers keep
three; a rank-r adapter on each of them has more parameters than one on the fused matrix.
"""

from __future__ import annotations

import torch
from torch import nn


def lora_targets(net, scope: str) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``net`` (an OpenVLAOFT) that get adapters for ``scope``."""
    if scope == "none":
        return []
    layers = [f"language_model.model.layers.{i}." for i in range(len(net.language_model.model.layers))]
    if scope == "all_linear":
        layers += ["projector."]
        for name in ("featurizer", "fused_featurizer"):
            tower = getattr(net.vision_backbone, name)
            blocks = tower.encoder.layer if hasattr(tower.encoder, "layer") else tower.encoder.layers
            kind = "layer" if hasattr(tower.encoder, "layer") else "layers"
            layers += [f"vision_backbone.{name}.encoder.{kind}.{i}." for i in range(len(blocks) - 1)]
    prefixes = tuple(layers)
    return [n for n, m in net.named_modules() if isinstance(m, nn.Linear) and n.startswith(prefixes)]


def inject_lora(net, r: int, alpha: float, dropout: float, scope: str, seed: int) -> int:
    """Add peft LoRA adapters (Gaussian init, as OFT) to ``net`` in place, from a forked RNG seeded by ``seed``;
    the adapters are float32 whatever the base dtype. Returns the number of adapted modules."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = lora_targets(net, scope)
    if not targets:
        return 0
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, init_lora_weights="gaussian"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, net)
    params = [p for n, p in net.named_parameters() if "lora_" in n]
    assert params, f"LoRA scope {scope!r}: peft added no adapter to {len(targets)} target modules"
    for p in params:
        p.data = p.data.float()
    return len(targets)
