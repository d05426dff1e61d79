"""Tiny stand-ins of the released VEGA-3D folder, in its exact layout, for the release tests only.

What ``Trainer._save`` of the release's custom class writes (transformers 4.50): a flat
(pre-5) Qwen2.5-VL ``config.json`` with the ``generative_*`` attributes, the tokenizer and
processor files of the base, and the whole ``state_dict()`` in safetensors shards + index:
Qwen2.5-VL under its legacy (pre-4.52) names (``visual.*``, ``model.*``, ``lm_head.weight``),
``generative_merger.*``, ``generative_fusion.*`` and the Wan DiT in Wan's ORIGINAL key names under
``generative_encoder.tower.model.*``. The key renames here are written from those layouts
(transformers 5's legacy mapping is ``^visual`` → ``model.visual``, ``^model`` →
``model.language_model``; the Wan names are tests/original_layout.py's), independently of the
library code under test.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.original_layout import to_original_transformer_keys
from vega3d.standin import write_marker

#: The attributes the release's train_qwen.py copies onto the config (scripts/train/train_gen_wan_t2v_7b.sh values).
RELEASE_ATTRIBUTES = {
    "use_generative_encoder": True,
    "generative_encoder_tower_type": "wan_t2v_online",
    "generative_encoder_path": "data/models/Wan2.1-T2V-1.3B",
    "generative_vision_tower_task": "t2v-1.3B",
    "generative_encoder_feature_dim": 2048,
    "generative_encoder_freeze": True,
    "generative_fusion_method": "token_gated_residual",
    "generative_fusion_num_layers": 1,
    "generative_merger_type": "mlp",
}
_BASE_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json",
               "chat_template.json", "generation_config.json")  # fmt: skip


def legacy_qwen_state(qwen_folder) -> dict:
    """The Qwen2.5-VL weights of a folder under the legacy names. (transformers 5.24 already saves
    Qwen2.5-VL in them — it reverts its load-time renaming on save; module names are renamed here
    should a folder hold them.)"""
    sd = load_file(str(Path(qwen_folder) / "model.safetensors"))
    out = {}
    for key, value in sd.items():
        if key.startswith("model.visual."):
            out["visual." + key[len("model.visual.") :]] = value
        elif key.startswith("model.language_model."):
            out["model." + key[len("model.language_model.") :]] = value
        else:
            out[key] = value
    assert all(k.startswith(("visual.", "model.", "lm_head.")) for k in out), sorted(out)[:3]
    assert any(k.startswith("visual.") for k in out) and "lm_head.weight" in out
    return out


def legacy_config(qwen_folder) -> dict:
    """The folder's config in the flat format transformers 4.50 wrote, plus the release's attributes."""
    cfg = json.loads((Path(qwen_folder) / "config.json").read_text())
    text, vision = cfg.pop("text_config"), cfg.pop("vision_config")
    rope = text.pop("rope_parameters")
    flat = {**cfg, **{k: v for k, v in text.items() if k not in ("model_type", "layer_types", "dtype")}}
    flat["rope_theta"] = rope["rope_theta"]
    flat["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    vision.pop("rope_parameters", None)
    vision["model_type"] = "qwen2_5_vl"  # what 4.50 wrote (transformers 5 fixes it on load)
    vision["in_chans"] = vision.pop("in_channels")
    flat["vision_config"] = vision
    flat["torch_dtype"] = flat.pop("dtype", "bfloat16")
    flat["transformers_version"] = "4.50.0"
    flat["architectures"] = ["Qwen2_5_VLForConditionalGenerationWithGenerative"]
    return flat | RELEASE_ATTRIBUTES


def reinitialise_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """What Qwen2_5_VLPreTrainedModel._init_weights does to a module: every nn.Linear / nn.Conv3d
    weight from N(0, 0.02²), its bias zero; everything else untouched."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def dit_state(wan_folder, reinit: bool = False, seed: int = 1) -> dict:
    """The DiT of a diffusers-layout Wan folder in Wan's original names (re-initialised on request)."""
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(Path(wan_folder) / "transformer")
    if reinit:
        reinitialise_(model, torch.Generator().manual_seed(seed))
    return to_original_transformer_keys(model.state_dict())


def branch_state(wan_dim: int, llm_dim: int, hidden: int, generator: torch.Generator) -> dict:
    """Random ``generative_merger.*`` / ``generative_fusion.*`` tensors (a "trained" branch)."""

    def r(*shape, scale=0.1):
        return torch.randn(shape, generator=generator) * scale

    return {
        "generative_merger.ln_q.weight": 1 + r(wan_dim),
        "generative_merger.mlp.0.weight": r(hidden, 4 * wan_dim, scale=1 / math.sqrt(4 * wan_dim)),
        "generative_merger.mlp.0.bias": r(hidden),
        "generative_merger.mlp.2.weight": r(llm_dim, hidden, scale=1 / math.sqrt(hidden)),
        "generative_merger.mlp.2.bias": r(llm_dim),
        "generative_fusion.norm1.weight": 1 + r(llm_dim),
        "generative_fusion.norm1.bias": r(llm_dim),
        "generative_fusion.norm2.weight": 1 + r(llm_dim),
        "generative_fusion.norm2.bias": r(llm_dim),
        "generative_fusion.gate_projection.0.weight": r(1, 2 * llm_dim, scale=0.2),
        "generative_fusion.gate_projection.0.bias": r(1),
        "generative_fusion.residual_scale": torch.tensor(0.37),
    }


def write_shards(root: Path, state: dict, shards: int) -> None:
    """``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json`` (keys sorted, split evenly)."""
    keys = sorted(state)
    per = math.ceil(len(keys) / shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * per : (i + 1) * per]}
        save_file(part, str(root / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    total = sum(v.numel() * v.element_size() for v in state.values())
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def write_tiny_release(
    path,
    qwen_folder,
    wan_folder,
    *,
    reinit: bool = False,
    with_dit: bool = True,
    dit_dtype=torch.bfloat16,
    merger_hidden: int = 48,
    shards: int = 3,
    seed: int = 0,
    drop: tuple = (),
    add: dict | None = None,
) -> Path:
    """A tiny release folder at ``path``: the Qwen stand-in ``qwen_folder`` with its LLM weights
    perturbed ("fine-tuned"), a random branch, and the DiT of the diffusers Wan stand-in
    ``wan_folder`` in ``dit_dtype`` (``reinit``: re-initialised as transformers did). ``drop`` /
    ``add``: keys removed / tensors added before writing (bad-input tests)."""
    root = Path(path)
    root.mkdir(parents=True)
    gen = torch.Generator().manual_seed(seed)
    state = legacy_qwen_state(qwen_folder)
    for key in sorted(state):
        if key.startswith("model.layers."):
            state[key] = state[key] + 0.01 * torch.randn(state[key].shape, generator=gen)
    config = legacy_config(qwen_folder)
    wan_cfg = json.loads((Path(wan_folder) / "transformer" / "config.json").read_text())
    wan_dim = wan_cfg["num_attention_heads"] * wan_cfg["attention_head_dim"]
    state |= branch_state(wan_dim, config["hidden_size"], merger_hidden, gen)
    if with_dit:
        dit = dit_state(wan_folder, reinit=reinit, seed=seed + 1)
        state |= {"generative_encoder.tower.model." + k: v.to(dit_dtype) for k, v in dit.items()}
    for key in drop:
        del state[key]
    state |= add or {}
    write_shards(root, state, shards)
    (root / "config.json").write_text(json.dumps(config, indent=2))
    for name in _BASE_FILES:
        if (Path(qwen_folder) / name).is_file():
            shutil.copy(Path(qwen_folder) / name, root / name)
    recipe = {"reinit": reinit, "with_dit": with_dit, "dit_dtype": str(dit_dtype), "seed": seed}
    write_marker(
        root, real="VEGA-3D-Spatial-Reasoning", writer="tests.mllm.release_layout.write_tiny_release", recipe=recipe
    )
    return root
