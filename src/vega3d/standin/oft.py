"""A tiny random-weight OpenVLA-OFT LIBERO checkpoint on disk, in the released layout — a STAND-IN.

``save_tiny_oft(path)`` writes what ``moojink/openvla-7b-oft-finetuned-libero-*`` holds: a
``config.json`` (``OpenVLAConfig`` fields), the VLA in two safetensors shards + their index in
the prismatic key layout (timm towers, LayerScale as ``scale_factor``, ``language_model.*``)
in bfloat16, ``action_head--<step>_checkpoint.pt`` (bfloat16) and
``proprio_projector--<step>_checkpoint.pt`` (float32) with the DDP ``module.`` prefix,
``dataset_statistics.json``, ``preprocessor_config.json`` and a Llama tokenizer — so everything
that loads the real checkpoint loads this one through the same code. It is NOT OpenVLA-OFT:
tiny towers (3 blocks, widths 16 and 24, still 224² images in 14-px patches, so 16 x 16 patch
grids), a 2-layer Llama of width 32, a character-level toy tokenizer, random weights. Its
``config.json`` names the tiny towers in ``vega3d_towers`` (the real one names timm ids only),
and the folder's ``STAND_IN.md`` says what it is.
"""

from __future__ import annotations

import math
import string
from pathlib import Path

import torch

from vega3d.files import write_json
from vega3d.standin import write_marker

#: The tiny towers: DINOv2-with-registers and SigLIP layouts at 224 px, 14-px patches.
TINY_TOWERS = (
    dict(kind="dinov2_reg", hidden_size=16, depth=3, num_heads=2, mlp_size=64, registers=4),
    dict(kind="siglip", hidden_size=24, depth=3, num_heads=2, mlp_size=96),
)
#: The tiny Llama (OpenVLA's text_config names few fields; the stand-in names its sizes).
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
)
STATS_KEY = "libero_spatial_no_noops"
STEP = 150000


def build_tiny_llama_tokenizer():
    """A Llama tokenizer (transformers' ``LlamaTokenizer``: BPE, byte fallback, Metaspace "▁") over single
    characters, plus OpenVLA's ``<PAD>``: every string encodes (unknown characters as bytes)."""
    from transformers import AddedToken, LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{i:02X}>": 3 + i for i in range(256)}
    for ch in "▁" + string.ascii_letters + string.digits + string.punctuation:
        vocab.setdefault(ch, len(vocab))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True, add_eos_token=False, legacy=False,
                               model_max_length=2048)  # fmt: skip
    tokenizer.add_special_tokens({"pad_token": AddedToken("<PAD>", special=True, normalized=False)})
    return tokenizer


def _statistics(gen: torch.Generator, action_dim: int, proprio_dim: int) -> dict:
    def entry(dim: int, mask: list) -> dict:
        low = -0.5 - torch.rand(dim, generator=gen)
        high = 0.5 + torch.rand(dim, generator=gen)
        if not mask[-1]:  # the gripper: OpenVLA's [0, 1] convention, not normalised
            low[-1], high[-1] = 0.0, 1.0
        mean = (low + high) / 2
        return {"mean": mean.tolist(), "std": ((high - low) / 4).tolist(), "max": (high + 0.1).tolist(),
                "min": (low - 0.1).tolist(), "q01": low.tolist(), "q99": high.tolist(), "mask": mask}  # fmt: skip

    return {STATS_KEY: {"action": entry(action_dim, [True] * (action_dim - 1) + [False]),
                        "proprio": entry(proprio_dim, [True] * proprio_dim),
                        "num_transitions": 1000, "num_trajectories": 10}}  # fmt: skip


def _config(towers, text_config: dict, pad_id: int, stats: dict) -> dict:
    return {
        "architectures": ["OpenVLAForActionPrediction"],
        "auto_map": {"AutoConfig": "configuration_prismatic.OpenVLAConfig",
                     "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
        "model_type": "openvla", "arch_specifier": "no-align+fused-gelu-mlp", "hf_llm_id": "meta-llama/Llama-2-7b-hf",
        "llm_backbone_id": "llama2-7b-pure", "vision_backbone_id": "dinosiglip-vit-so-224px",
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "image_sizes": [224, 224], "use_fused_vision_backbone": True,
        "image_resize_strategy": "resize-naive", "llm_max_length": 2048, "n_action_bins": 256,
        "pad_to_multiple_of": 64, "pad_token_id": pad_id, "norm_stats": stats, "output_projector_states": False,
        "text_config": {"model_type": "llama", "pad_token_id": pad_id, "torch_dtype": "bfloat16", **text_config},
        "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
        "vega3d_towers": [t.to_dict() for t in towers],
    }  # fmt: skip


def _preprocessor(towers) -> dict:
    size = [3, towers[0].image_size, towers[0].image_size]
    return {"image_processor_type": "PrismaticImageProcessor", "processor_class": "PrismaticProcessor",
            "use_fused_vision_backbone": True, "image_resize_strategy": "resize-naive",
            "input_sizes": [size, size], "interpolations": ["bicubic", "bicubic"],
            "means": [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]], "stds": [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]}  # fmt: skip


def _random_net(arch, seed: int):
    from vega3d.policy.model import OpenVLAOFT
    from vega3d.standin.wan import randomize_

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = OpenVLAOFT(arch)
    randomize_(net, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # timm's DINOv2 adds no position to the class token
        net.vision_backbone.featurizer.embeddings.position_embeddings[:, 0] = 0
    return net


def _write_weights(root: Path, net, towers) -> None:
    from safetensors.torch import save_file

    from vega3d.policy.released import model_to_released

    vla, head, proprio = model_to_released(net.state_dict(), towers)
    shards = [{k: v for k, v in vla.items() if not k.startswith("language_model.")},
              {k: v for k, v in vla.items() if k.startswith("language_model.")}]  # fmt: skip
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in shard.items()}, str(root / name), {"format": "pt"})
        weight_map |= dict.fromkeys(shard, name)
    total = sum(v.numel() * 2 for v in vla.values())
    write_json(root / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    torch.save(
        {f"module.{k}": v.to(torch.bfloat16) for k, v in head.items()}, root / f"action_head--{STEP}_checkpoint.pt"
    )
    torch.save(
        {f"module.{k}": v.float() for k, v in proprio.items()}, root / f"proprio_projector--{STEP}_checkpoint.pt"
    )


def save_tiny_branch_policy(path, base, wan, *, fusion: str = "add", block: int = 3, seed: int = 0,
                            lora_scope: str = "all_linear") -> Path:  # fmt: skip
    """A vega3d policy checkpoint on the stand-in ``base`` (:func:`save_tiny_oft`) with the generative branch
    (untrained: its gate is zero, so it acts exactly as the base), LoRA adapters of ``lora_scope`` (B = 0) and the
    stand-in Wan folder ``wan`` recorded as its simulator (256² inputs, 16 x 16 grid)."""
    from vega3d.policy.config import PolicyConfig
    from vega3d.policy.vla import VLAPolicy
    from vega3d.simulator import WanWorldSimulator

    simulator = WanWorldSimulator.from_pretrained(wan, block=block, height=256, width=256, seed=seed)
    config = PolicyConfig(base_model=str(base), generative=True, generative_dim=simulator.feature_dim, fusion=fusion,
                          seed=seed, simulator=simulator.config.to_dict(), lora={"scope": lora_scope})  # fmt: skip
    root = VLAPolicy.from_config(config).save_pretrained(path)
    write_marker(root, real="a trained vega3d OpenVLA-OFT + Wan policy", writer="vega3d.standin.oft.save_tiny_branch_policy",
                 recipe={"fusion": fusion, "block": block, "seed": seed})  # fmt: skip
    return root


def save_tiny_oft(path, seed: int = 0, action_dim: int = 7, proprio_dim: int = 8) -> Path:
    """Write the tiny OpenVLA-OFT stand-in (module docstring) to ``path``; same arguments -> same weights."""
    from vega3d.policy.folder import TowerSpec, text_config_of
    from vega3d.policy.model import OFTArch

    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_llama_tokenizer()
    tokenizer.save_pretrained(root)
    pad_id = tokenizer.pad_token_id
    towers = tuple(TowerSpec(**t) for t in TINY_TOWERS)
    text = {**TINY_TEXT, "vocab_size": 64 * math.ceil(len(tokenizer) / 64)}
    stats = _statistics(torch.Generator().manual_seed(seed + 1), action_dim, proprio_dim)
    config = _config(towers, text, pad_id, stats)
    arch = OFTArch(towers, text_config_of(config, root / "config.json"), action_dim, proprio_dim, chunk=8,
                   num_images=2, stop_token_id=tokenizer.eos_token_id, pad_token_id=pad_id)  # fmt: skip
    _write_weights(root, _random_net(arch, seed), towers)
    write_json(root / "config.json", config)
    write_json(root / "dataset_statistics.json", stats)
    write_json(root / "preprocessor_config.json", _preprocessor(towers))
    write_marker(root, real="OpenVLA-OFT LIBERO (moojink/openvla-7b-oft-finetuned-libero-*)",
                 writer="vega3d.standin.oft.save_tiny_oft",
                 recipe={"seed": seed, "towers": TINY_TOWERS, "text": TINY_TEXT, "tokenizer": "characters"})  # fmt: skip
    return root


def write_tiny_libero_dataset(root, episodes: int = 2, length: int = 6, size: int = 128, seed: int = 0) -> Path:
    """A tiny LeRobot-format (v3.0) LIBERO dataset of random frames, states and actions (LIBERO's gripper
    convention, ±1), written with the harness's :class:`vega3d.libero.dataset.LeRobotWriter`; marked a stand-in."""
    import numpy as np

    from vega3d.libero.dataset import LeRobotWriter

    rng = np.random.default_rng(seed)
    writer = LeRobotWriter(root, fps=20)
    tasks = ("pick up the black bowl and place it on the plate", "open the top drawer of the cabinet")
    for e in range(episodes):
        images = {c: rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
        action = np.concatenate([rng.uniform(-0.9, 0.9, (length, 6)), rng.choice([-1.0, 1.0], (length, 1))], axis=1)
        writer.add_episode(images=images, state=rng.normal(0, 0.3, (length, 8)), action=action, task=tasks[e % 2])
    writer.close()
    write_marker(root, real="a recorded LIBERO dataset", writer="vega3d.standin.oft.write_tiny_libero_dataset",
                 recipe={"episodes": episodes, "length": length, "size": size, "seed": seed})  # fmt: skip
    return Path(root)


def write_tiny_oft_setup(root) -> dict:
    """Everything ``configs/oft_libero_tiny.yaml`` reads, under ``root``: ``oft`` (:func:`save_tiny_oft`), ``wan``
    (a 4-block Wan stand-in of width 32) and ``data`` (:func:`write_tiny_libero_dataset`). Returns the paths."""
    from vega3d.standin.wan import save_tiny_wan

    root = Path(root)
    return {"oft": save_tiny_oft(root / "oft"), "wan": save_tiny_wan(root / "wan", num_layers=4, dim=32),
            "data": write_tiny_libero_dataset(root / "data"), "root": root}  # fmt: skip
