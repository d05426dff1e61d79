"""A tiny random-weight LLaVA-Video-7B-Qwen2 on disk — a STAND-IN, in both layouts.

:func:`save_tiny_llava_video` writes transformers' ``LlavaOnevisionForConditionalGeneration``
architecture (SigLIP tower, ``multi_modal_projector``, Qwen2 LM) at tiny widths with random
weights, in the layout of

- ``"llava"``: the original LLaVA release (lmms-lab/LLaVA-Video-7B-Qwen2): ``config.json`` with
  ``model_type: llava_qwen`` and the ``mm_*`` fields, weights in two safetensors shards with an
  index under the original names (``model.layers.*``, ``model.mm_projector.{0,2}``,
  ``model.vision_tower.vision_tower.vision_model.*``, ...), SigLIP's config in ``siglip/`` (named by
  ``mm_vision_tower``) with one layer more than is saved (LLaVA drops the last;
  ``keep_dropped_layer=True`` saves it too, as a checkpoint that kept it would);
- ``"hf"``: transformers' ``save_pretrained`` of the same model (``model_type: llava_onevision``).

``video3d=True`` makes it a stand-in for the released **Video-3D LLM** checkpoint instead:
``<ground>`` and ``<coord>`` added to the tokenizer one after the other, the vocabulary resized to
the tokenizer's length after each with the new row set to the mean of the rows before it (as
``train_3d.py``'s ``add_tokens_and_resize_embeddings``), a random InfoNCE grounding head
(``ground_head_obj`` / ``ground_head_query``: Linear, ReLU, LayerNorm, Linear; ``ground_head_zero_target``)
and the config fields ``ground_head_type`` / ``ground_token_ids`` / ``coord_token_ids`` /
``world_position_embedding_type`` / ``object_feature_type`` (``vocab_size`` left at the base's
padded value, as the release's config is overridden at evaluation).

The tokenizer is the tiny byte-level BPE of :func:`vega3d.standin.qwen.train_tokenizer` with
Qwen2's three special tokens. Deterministic for a seed. :func:`tiny_llava_video_config` is the
architecture; :func:`real_llava_video_config` the real one (for parameter counts on the meta device).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vega3d.standin import write_marker

QWEN2_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SIGLIP_FOLDER = "siglip"
TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 16384, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "hidden_act": "silu"}  # fmt: skip
#: SigLIP as LLaVA's config names it (3 layers, the last dropped: 2 run).
TINY_SIGLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
               "image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6}  # fmt: skip
#: LLaVA-Video-7B-Qwen2 (Qwen2-7B; SigLIP so400m with 26 of 27 layers): reference §1.2.
REAL_TEXT = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
             "num_key_value_heads": 4, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "hidden_act": "silu", "vocab_size": 152064}  # fmt: skip


def _onevision_config(text: dict, siglip: dict, rows: int):
    from transformers import LlavaOnevisionConfig

    theta = text["rope_theta"]
    text = {k: v for k, v in text.items() if k not in ("rope_theta", "vocab_size")}
    vision = {**siglip, "num_hidden_layers": siglip["num_hidden_layers"] - 1}
    return LlavaOnevisionConfig(
        text_config={**text, "model_type": "qwen2", "vocab_size": rows, "tie_word_embeddings": False,
                     "rope_parameters": {"rope_type": "default", "rope_theta": theta}},
        vision_config={**vision, "model_type": "siglip_vision_model", "vision_use_head": False},
        vision_feature_layer=-1, vision_feature_select_strategy="full", tie_word_embeddings=False,
    )  # fmt: skip


def tiny_llava_video_config(rows: int):
    """The tiny architecture (text 64 wide, 2 layers; SigLIP 32 wide, 2 of 3 layers at 384 px)."""
    return _onevision_config(TINY_TEXT, TINY_SIGLIP, rows)


def real_llava_video_config():
    """LLaVA-Video-7B-Qwen2's architecture as transformers' LlavaOnevisionConfig."""
    from vega3d.mllm.video3d_llm.loading import SO400M

    return _onevision_config(REAL_TEXT, SO400M, REAL_TEXT["vocab_size"])


def _llava_config(model_config, tokenizer, extras: dict) -> dict:
    """config.json of the original LLaVA release (the fields lmms-lab's LLaVA-Video config has that matter)."""
    text = model_config.text_config
    return {
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava_qwen",
        **{k: getattr(text, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                         "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                                         "max_position_embeddings", "hidden_act")},
        "rope_theta": text.rope_parameters["rope_theta"], "vocab_size": int(text.vocab_size),
        "tie_word_embeddings": False, "use_sliding_window": False,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "mm_vision_tower": SIGLIP_FOLDER, "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": TINY_SIGLIP["hidden_size"],
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_patch_merge_type": "spatial_unpad",
        "mm_newline_position": "grid", "mm_spatial_pool_mode": "bilinear", "mm_spatial_pool_stride": 2,
        "image_aspect_ratio": "anyres_max_9", "torch_dtype": "float32",
        **extras,
    }  # fmt: skip


def _add_video3d_tokens(model, tokenizer) -> dict:
    """``<ground>`` then ``<coord>``: add, resize to the tokenizer's length, new row = mean of the rows before it."""
    ids = {}
    for token in ("<ground>", "<coord>"):
        tokenizer.add_tokens([token])
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for w in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
                w[-1] = w[:-1].mean(dim=0)
        ids[token] = tokenizer.convert_tokens_to_ids(token)
    return ids


def _ground_head(hidden: int) -> dict:
    """Random InfoNCE head tensors (the release's nn.Sequential(Linear, ReLU, LayerNorm, Linear) names)."""
    from torch import nn

    out = {"ground_head_zero_target": torch.randn(hidden)}
    for part in ("obj", "query"):
        seq = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.LayerNorm(hidden), nn.Linear(hidden, hidden))
        nn.init.normal_(seq[2].weight, 1.0, 0.1)
        out.update({f"ground_head_{part}.{k}": v.detach().clone() for k, v in seq.state_dict().items()})
    return out


def _write_shards(path: Path, tensors: dict) -> None:
    """Two safetensors shards + ``model.safetensors.index.json`` (the release's sharded layout)."""
    from safetensors.torch import save_file

    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: tensors[k].contiguous() for k in part}, str(path / file), metadata={"format": "pt"})
        weight_map.update({k: file for k in part})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": weight_map}  # fmt: skip
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def save_tiny_llava_video(
    path,
    layout: str = "llava",
    *,
    seed: int = 0,
    video3d: bool = False,
    keep_dropped_layer: bool = False,
    vocab_size: int = 300,
) -> Path:
    """Write the stand-in (module docstring) to ``path``; returns it."""
    from vega3d.standin.qwen import train_tokenizer

    if layout not in ("llava", "hf"):
        raise ValueError(f"layout must be 'llava' or 'hf', got {layout!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer, _, _ = train_tokenizer(vocab_size, QWEN2_SPECIAL_TOKENS, QWEN2_CHAT_TEMPLATE)
    rows = -(-len(tokenizer) // 64) * 64  # Qwen pads its vocabulary
    model, extras, head, dropped = _random_llava_video(rows, tokenizer, seed, video3d, keep_dropped_layer)
    if layout == "hf":
        _save_hf_layout(path, model, extras, head)
    else:
        if video3d:
            extras["vocab_size"] = rows  # stale, as in the release (its evaluation overrides it)
        _save_llava_layout(path, model, tokenizer, extras, {**dropped, **head})
    tokenizer.save_pretrained(path)
    real = "the released Video-3D LLM checkpoint" if video3d else "lmms-lab/LLaVA-Video-7B-Qwen2"
    write_marker(
        path,
        real=f"{real} (tiny widths, a toy tokenizer, {layout} layout)",
        writer="vega3d.standin.llava_video.save_tiny_llava_video",
        recipe={"layout": layout, "seed": seed, "video3d": video3d, "keep_dropped_layer": keep_dropped_layer,
                "vocab_size": vocab_size},
    )  # fmt: skip
    return path


def _random_llava_video(rows: int, tokenizer, seed: int, video3d: bool, keep_dropped_layer: bool):
    """The random model (``torch.manual_seed(seed)`` inside a forked RNG) and, in that draw order,
    with ``video3d`` the ``<ground>`` / ``<coord>`` rows and the grounding head (+ the config fields
    they need), with ``keep_dropped_layer`` the SigLIP layer LLaVA drops. Returns ``(model, config
    extras, head tensors, dropped-layer tensors)``."""
    from transformers import LlavaOnevisionForConditionalGeneration

    extras, head, dropped = {}, {}, {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(tiny_llava_video_config(rows)).eval()
        if video3d:
            ids = _add_video3d_tokens(model, tokenizer)
            head = _ground_head(TINY_TEXT["hidden_size"])
            extras = {"ground_head_type": "infonce", "ground_head_temperature": 0.07,
                      "ground_token_ids": [ids["<ground>"]], "coord_token_ids": [ids["<coord>"]],
                      "world_position_embedding_type": "avg-discrete-sin3d", "object_feature_type": "patch14-pe",
                      "voxel_size": 0.1, "min_xyz_range": [-15, -15, -5], "max_xyz_range": [15, 15, 5]}  # fmt: skip
        if keep_dropped_layer:
            from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

            layer = SiglipEncoderLayer(model.config.vision_config)
            n = model.config.vision_config.num_hidden_layers
            dropped = {
                f"model.vision_tower.vision_model.encoder.layers.{n}.{k}": v for k, v in layer.state_dict().items()
            }
    return model, extras, head, dropped


def _save_hf_layout(path: Path, model, extras: dict, head: dict) -> None:
    """transformers' ``save_pretrained``; a Video-3D LLM's fields added to its config.json and its
    head in ``ground_head.safetensors``."""
    model.save_pretrained(path)
    if head:
        from safetensors.torch import save_file

        data = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**data, **extras}, indent=2))
        save_file(head, str(path / "ground_head.safetensors"))


def _save_llava_layout(path: Path, model, tokenizer, extras: dict, more: dict) -> None:
    """The LLaVA repository's layout: its key names (+ ``more`` tensors: the dropped SigLIP layer,
    the grounding head) in two shards, its config.json, and the SigLIP folder's config."""
    from vega3d.mllm.video3d_llm.loading import canonical_to_original

    canonical = {}
    for k, v in model.state_dict().items():
        canonical[
            k if ".vision_model." in k else k.replace("model.vision_tower.", "model.vision_tower.vision_model.")
        ] = v
    canonical.update(more)
    tensors = {canonical_to_original(k): v.detach().clone() for k, v in canonical.items()}
    _write_shards(path, tensors)
    (path / "config.json").write_text(json.dumps(_llava_config(model.config, tokenizer, extras), indent=2))
    (path / SIGLIP_FOLDER).mkdir(exist_ok=True)
    siglip = {"model_type": "siglip_vision_model", "architectures": ["SiglipVisionModel"], **TINY_SIGLIP}
    (path / SIGLIP_FOLDER / "config.json").write_text(json.dumps(siglip, indent=2))


def write_tiny_video3d_setup(root, *, frames_per_scan: int = 12) -> dict:
    """A tiny Video-3D LLM training setup under ``root`` — STAND-INS only: ``llava_video`` (original
    layout), ``wan`` (a 2-block random Wan), ``data`` (:func:`vega3d.video3d.write_tiny_dataset`,
    one train and one val scan of ``frames_per_scan`` frames) and ``store`` (the Wan stand-in's
    features of every frame, block 1 at 32x48, as ``vega3d extract`` writes them). Returns the paths."""
    from vega3d.simulator import WanWorldSimulator
    from vega3d.standin.wan import save_tiny_wan
    from vega3d.store import discover_inputs, extract_to_store
    from vega3d.video3d import write_tiny_dataset

    root = Path(root)
    small = {"seed": 3, "train_scenes": 1, "val_scenes": 1, "num_frames": frames_per_scan, "height": 48,
             "width": 64, "depth_height": 30, "depth_width": 40, "select_frames": 8}  # fmt: skip
    paths = {
        "llava_video": save_tiny_llava_video(root / "llava_video", "llava"),
        "wan": save_tiny_wan(root / "wan", num_layers=2, dim=32, seed=0),
        "data": write_tiny_dataset(root / "data", small),
    }
    simulator = WanWorldSimulator.from_pretrained(paths["wan"], block=1, height=32, width=48, dtype="float32")
    items = discover_inputs([paths["data"] / "scannet" / "posed_images"])
    extract_to_store(items, simulator, root / "store", num_frames=frames_per_scan, precision="fp32", progress=False)
    paths["store"] = root / "store"
    return paths
