"""The released VEGA-3D spatial-reasoning folder (``VEGA-3D-Spatial-Reasoning``): its layout, read and checked.

The release is one Hugging Face folder written by transformers 4.50 from the custom class
``Qwen2_5_VLForConditionalGenerationWithGenerative`` (``spatial-reasoning`` branch of
``H-EmbodVis/VEGA-3D``, ``src/qwen_vl/train/train_qwen.py`` → ``Trainer._save``): ``config.json``
(Qwen2.5-VL's, flat pre-5 format, plus the ``generative_*`` attributes), the tokenizer and
processor files, and the full ``state_dict()`` in safetensors shards with an index:

- ``visual.*``, ``model.*``, ``lm_head.weight`` — Qwen2.5-VL in the legacy (pre-4.52) key names,
  which transformers 5 renames on load;
- ``generative_merger.{ln_q.weight, mlp.0.*, mlp.2.*}`` — the 2 x 2 patch merger
  (:class:`vega3d.fusion.WindowMergerMLP`, same names);
- ``generative_fusion.{norm1, norm2, gate_projection.0, residual_scale}`` — the
  ``token_gated_residual`` fusion (:class:`vega3d.fusion.ResidualGatedFusion`; names in
  :data:`FUSION_NAMES`);
- ``generative_encoder.tower.model.*`` — the whole Wan2.1 DiT in the original Wan key names
  (a registered sub-module, so ``state_dict()`` holds it).

The Wan VAE and the empty-prompt context are not in it. :func:`open_release` reads only the
index and the safetensors headers (and checks them); :func:`read_tensors` then reads tensors one
at a time. The DiT verdict is :mod:`vega3d.mllm.release.inspect`'s, the conversion
:mod:`vega3d.mllm.release.convert`'s. See docs/release.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from vega3d.config import FileRecord, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, read_weight_map

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
DIT_PREFIX = "generative_encoder.tower.model."
MERGER_PREFIX = "generative_merger."
FUSION_PREFIX = "generative_fusion."
#: The release's modules that are not Qwen2.5-VL's (the base loader leaves them to the branch and simulator).
RELEASE_EXTRA_PREFIXES = ("generative_encoder.", MERGER_PREFIX, FUSION_PREFIX)
#: Released fusion names → :class:`vega3d.fusion.ResidualGatedFusion` names.
FUSION_NAMES = {
    "norm1.weight": "norm_semantic.weight",
    "norm1.bias": "norm_semantic.bias",
    "norm2.weight": "norm_generative.weight",
    "norm2.bias": "norm_generative.bias",
    "gate_projection.0.weight": "gate.weight",
    "gate_projection.0.bias": "gate.bias",
    "residual_scale": "residual_scale",
}
#: The std of transformers' ``_init_weights`` (Qwen2.5-VL's ``initializer_range``).
REINIT_STD = 0.02
#: bf16 keeps 8 significant bits: rounding moves a value by at most 2^-8 of itself.
BF16_RELATIVE = 2.0**-8
#: Parts of the folder, in report order: (name, key prefixes).
PARTS = (
    ("qwen_vision", ("visual.", "model.visual.")),
    ("qwen_llm", ("model.",)),
    ("lm_head", ("lm_head.",)),
    ("generative_merger", (MERGER_PREFIX,)),
    ("generative_fusion", (FUSION_PREFIX,)),
    ("dit", (DIT_PREFIX,)),
    ("other", ("",)),
)


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor is and what it is, from the safetensors header."""

    file: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ReleaseFolder:
    """A checked release folder: its ``config.json``, its index (None: one ``model.safetensors``)
    and every tensor's header entry."""

    root: Path
    config: dict
    index: str | None
    tensors: dict[str, TensorInfo]

    def part(self, prefix: str) -> dict[str, TensorInfo]:
        """The tensors under ``prefix``, keyed without it."""
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def where(self, key: str) -> str:
        """``FOLDER/SHARD`` holding ``key``."""
        return str(self.root / self.tensors[key].file)


class ReleaseConfig(FileRecord):
    """The release's ``config.json``: the fields checked here (the rest is read as given)."""

    model_type: Literal["qwen2_5_vl"]  # the release is a Qwen2.5-VL folder
    use_generative_encoder: bool = False  # set by the release's training code (a plain Qwen2.5-VL lacks it)


def is_release_config(folder) -> bool:
    """True when ``folder/config.json`` is a Qwen2.5-VL config with ``use_generative_encoder``
    set (cheap; never raises)."""
    try:
        data = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict) and data.get("model_type") == "qwen2_5_vl" and bool(data.get("use_generative_encoder"))
    )


# ----------------------------------------------------------------------------- reading


def _check_folder(root: Path) -> dict:
    """The folder's ``config.json`` once it is known to be a Qwen2.5-VL folder (one line otherwise)."""
    if not root.is_dir():
        raise Vega3DError(f"{root}: {'is a file' if root.exists() else 'does not exist'}; expected the release folder")
    if (root / "vega3d_config.json").is_file():
        raise Vega3DError(
            f"{root} is a vega3d checkpoint (vega3d_config.json), not the released VEGA-3D folder: "
            "load it with Vega3DQwen.from_pretrained or vega3d ask --model"
        )
    if not (root / "config.json").is_file():
        raise Vega3DError(f"{root}: no config.json; expected the released VEGA-3D folder (a Qwen2.5-VL model folder)")
    config = read_json(root / "config.json", "release config")
    parse(ReleaseConfig, config, str(root / "config.json"))
    return config


def _shard_names(root: Path) -> tuple[str | None, dict[str, str]]:
    """``(index name or None, {key: shard})`` from the index; ``{}`` for a single file (read later)."""
    if not (root / INDEX).is_file():
        if not (root / SINGLE).is_file():
            raise Vega3DError(f"{root}: no {INDEX} and no {SINGLE}; expected the release's safetensors weights")
        return None, {}
    return INDEX, read_weight_map(root / INDEX)


def read_headers(root: Path, files: list[str]) -> dict[str, TensorInfo]:
    """Every tensor's header entry in ``files`` (no tensor data read)."""
    from safetensors import SafetensorError, safe_open

    out = {}
    for name in files:
        try:
            with safe_open(str(root / name), "pt") as fh:
                for key in fh.keys():
                    sl = fh.get_slice(key)
                    out[key] = TensorInfo(name, tuple(int(s) for s in sl.get_shape()), str(sl.get_dtype()))
        except (SafetensorError, OSError, ValueError) as err:
            raise Vega3DError(f"{root / name}: not a readable safetensors file ({err})") from None
    return out


def open_release(path) -> ReleaseFolder:
    """Check a release folder and read its index and safetensors headers (no weights read).

    One :class:`Vega3DError` line for: not a folder, a vega3d checkpoint, no ``config.json``, not
    Qwen2.5-VL, no weights, an index naming a missing shard, an unreadable (e.g. truncated)
    shard, an index key its shard lacks, and a plain Qwen2.5-VL (neither ``use_generative_encoder``
    in the config nor any ``generative_*`` tensor)."""
    root = Path(path).expanduser()
    config = _check_folder(root)
    index, weight_map = _shard_names(root)
    tensors = read_headers(root, sorted(set(weight_map.values())) if index else [SINGLE])
    lost = sorted(k for k, shard in weight_map.items() if tensors.get(k, TensorInfo("", (), "")).file != shard)
    if lost:
        raise Vega3DError(f"{root / INDEX} maps {lost[0]} to {weight_map[lost[0]]}, which holds no such tensor")
    generative = [k for k in tensors if k.startswith(RELEASE_EXTRA_PREFIXES)]
    if not config.get("use_generative_encoder") and not generative:
        raise Vega3DError(
            f"{root} is a plain Qwen2.5-VL model (config.json has no use_generative_encoder and its weights no "
            "generative_* tensors), not the released VEGA-3D model"
        )
    return ReleaseFolder(root, config, index, tensors)


def read_tensors(folder: ReleaseFolder, keys) -> Iterator[tuple[str, torch.Tensor]]:
    """``(key, tensor)`` for ``keys``, read one at a time, each shard opened once."""
    from safetensors import safe_open

    by_file: dict[str, list[str]] = {}
    for key in keys:
        by_file.setdefault(folder.tensors[key].file, []).append(key)
    for name, names in by_file.items():
        with safe_open(str(folder.root / name), "pt") as fh:
            for key in names:
                yield key, fh.get_tensor(key)


# ----------------------------------------------------------------------------- what is there


def parts(folder: ReleaseFolder) -> dict[str, dict]:
    """Tensors, parameters and dtypes per part (:data:`PARTS`); absent parts have 0 tensors."""
    out = {name: {"tensors": 0, "parameters": 0, "dtypes": []} for name, _ in PARTS}
    for key, info in folder.tensors.items():
        name = next(n for n, prefixes in PARTS if key.startswith(prefixes))
        entry = out[name]
        entry["tensors"] += 1
        entry["parameters"] += info.numel
        if info.dtype not in entry["dtypes"]:
            entry["dtypes"].append(info.dtype)
    return out


def release_attributes(config: dict) -> dict:
    """The config attributes that describe the release: identity, widths and every ``generative_*``."""
    keys = ("model_type", "architectures", "torch_dtype", "transformers_version", "hidden_size", "tie_word_embeddings")
    out = {k: config[k] for k in keys if k in config}
    out.update({k: v for k, v in sorted(config.items()) if k.startswith(("use_generative", "generative_"))})
    return out


def branch_summary(folder: ReleaseFolder) -> dict:
    """Shapes of the merger and fusion tensors, and the learned residual scale and gate bias."""
    merger, fusion = folder.part(MERGER_PREFIX), folder.part(FUSION_PREFIX)
    out = {
        "merger": {k: list(v.shape) for k, v in sorted(merger.items())},
        "fusion": {k: list(v.shape) for k, v in sorted(fusion.items())},
    }
    scalars = [FUSION_PREFIX + k for k in ("residual_scale", "gate_projection.0.bias") if k in fusion]
    for key, value in read_tensors(folder, scalars):
        out[key[len(FUSION_PREFIX) :]] = [round(float(v), 6) for v in value.float().reshape(-1)]
    return out
