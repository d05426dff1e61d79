"""A tiny random-weight Qwen2.5-VL on disk — a STAND-IN for tests and demos.

``save_tiny_qwen25vl(path)`` writes a folder in the layout of the real
``Qwen/Qwen2.5-VL-7B-Instruct`` repository (``config.json``, ``generation_config.json``,
``model.safetensors``, ``tokenizer.json`` / ``tokenizer_config.json`` / ``vocab.json`` /
``merges.txt``, ``preprocessor_config.json``, ``chat_template.json``), so everything that
loads the real model loads this one through the same code path. It is NOT the real model:
the weights are random, the widths are tiny, and the tokenizer is a small byte-level BPE
trained offline on a handful of sentences, wrapped as transformers' ``Qwen2Tokenizer``
with Qwen's special tokens. A ``STAND_IN.md`` file in the folder says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vega3d.standin import write_marker

# Qwen2.5-VL's special tokens, in the order the real tokenizer numbers them.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat format of Qwen2.5-VL-Instruct (default system prompt, vision blocks inline).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = (
    "You are a helpful assistant.",
    "How many chairs are in the room? There are three chairs.",
    "What is the distance between the table and the sofa? About 2.5 meters.",
    "Which object is closer to the camera, the lamp or the bed? The lamp.",
    "Describe the video. A camera moves slowly through a room with boxes and spheres.",
    "What is the size of the largest object in centimeters? 120",
    "The answer is yes. The answer is no. Left, right, front, behind, above, below.",
    "system user assistant 0 1 2 3 4 5 6 7 8 9 A B C D",
)


def train_tokenizer(vocab_size: int, special_tokens=QWEN_SPECIAL_TOKENS, chat_template: str = CHAT_TEMPLATE):
    """Train a byte-level BPE on ``_CORPUS`` and wrap it as a Qwen2Tokenizer with ``special_tokens``
    (Qwen2.5-VL's by default; the first is the pad token) and ``chat_template``.
    Returns ``(tokenizer, vocab dict, merges list)``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens], special_tokens=True)
    tokenizer.chat_template = chat_template
    return tokenizer, state["vocab"], merges


def tiny_qwen25vl_config(vocab_size: int, token_ids: dict[str, int]):
    """A Qwen2.5-VL config with the real architecture and tiny widths (text 64, vision 32)."""
    from transformers import Qwen2_5_VLConfig

    text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
    )
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=112,
        fullatt_block_indexes=[1],
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def save_tiny_qwen25vl(path, seed: int = 0, vocab_size: int = 384) -> Path:
    """Write a tiny random-weight Qwen2.5-VL (a stand-in) to ``path`` in the HF layout.

    Deterministic: the same ``seed`` gives byte-identical weights. Returns the folder.
    Image/video preprocessing is configured for small inputs (min 56*56 pixels,
    max 112*112 pixels per frame) so tests stay fast.
    """
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab, merges = train_tokenizer(vocab_size)
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = tiny_qwen25vl_config(len(tokenizer), token_ids)
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids["<|im_end|>"], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # The slow-tokenizer files the real repository also ships (BPE vocabulary without the
    # added special tokens, and the merges).
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    processor.save_pretrained(path)
    (path / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2))
    write_marker(
        path,
        real="Qwen/Qwen2.5-VL-7B-Instruct (tiny widths, a toy tokenizer)",
        writer="vega3d.standin.qwen.save_tiny_qwen25vl",
        recipe={"seed": seed, "vocab_size": vocab_size},
    )
    return path
