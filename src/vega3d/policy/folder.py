"""What an OpenVLA-OFT checkpoint folder says about the policy, read without loading weights.

A released OpenVLA-OFT LIBERO folder (``moojink/openvla-7b-oft-finetuned-libero-*``) holds

- ``config.json`` (``OpenVLAConfig``): ``timm_model_ids``, ``image_sizes``,
  ``use_fused_vision_backbone``, ``timm_override_act_layers``, ``text_config`` (a sparse Llama
  config), ``pad_token_id``;
- ``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json`` (or one
  ``model.safetensors``): the merged VLA in the prismatic key layout;
- ``action_head--<step>_checkpoint.pt`` and ``proprio_projector--<step>_checkpoint.pt``;
- ``dataset_statistics.json``: per dataset key, ``action`` and ``proprio`` q01/q99 (and mask);
- ``preprocessor_config.json`` (per-tower means/stds, input sizes) and the Llama tokenizer files.

:func:`open_oft_folder` checks all of it (one :class:`~vega3d.Vega3DError` line naming the
file and field; the JSON files' records are pydantic models read with :func:`vega3d.config.parse`)
and returns an :class:`OFTFolder`; nothing heavy is read.

**Constants.** OpenVLA-OFT picks its constants by sniffing ``sys.argv`` for "libero",
"aloha" or "bridge" (``prismatic/vla/constants.py``). Here they come from the checkpoint:
the action and proprio widths from ``dataset_statistics.json`` (checked against the head
weights when they load), the chunk length K from the platform of the statistics key
(:data:`PLATFORM_CHUNK`: a ``libero_*`` key is OFT's LIBERO platform, K = 8), unless given.
The released folders do not record K anywhere else.

**The text config.** OpenVLA's ``text_config`` names only a few fields and leaves the rest to
the ``LlamaConfig`` defaults of transformers 4.40.1 (e.g. ``rms_norm_eps`` 1e-6, not Llama-2's
1e-5). :data:`LLAMA_4401_DEFAULTS` fills them in explicitly, so the model does not change when
transformers changes its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from vega3d.config import FileRecord, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, read_weight_map

#: OFT's prompt; ``{instruction}`` is the task text, lower-cased (``get_vla_action``, ``RLDSBatchTransform``).
PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
#: The token OFT appends after "Out:" when absent (id 29871 in Llama-2's vocabulary, "▁"), as at training.
PROMPT_SUFFIX_TOKEN = "▁"
#: Chunk length K per robot platform (OFT ``prismatic/vla/constants.py``), keyed by the statistics key's prefix.
PLATFORM_CHUNK = {"libero": 8, "calvin": 8, "aloha": 25, "bridge": 5}

#: ``LlamaConfig`` defaults of transformers 4.40.1, which OpenVLA's sparse ``text_config`` relies on.
LLAMA_4401_DEFAULTS = dict(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
    rms_norm_eps=1e-6, pretraining_tp=1, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
    attention_bias=False, attention_dropout=0.0, bos_token_id=1, eos_token_id=2,
)  # fmt: skip
#: ``text_config`` keys that describe the file, not the model.
_TEXT_CONFIG_META = ("model_type", "torch_dtype", "dtype", "_name_or_path", "architectures", "transformers_version")


@dataclass(frozen=True)
class TowerSpec:
    """One vision tower: a timm ViT id's architecture, as transformers' modules build it."""

    kind: str  # "dinov2_reg" (Dinov2WithRegistersModel) or "siglip" (SiglipVisionModel)
    hidden_size: int
    depth: int
    num_heads: int
    mlp_size: int
    patch_size: int = 14
    image_size: int = 224
    registers: int = 0  # DINOv2: register tokens after the class token
    act: str = "gelu"  # transformers' ACT2FN name; timm's default GELU is the exact (erf) one
    eps: float = 1e-6  # LayerNorm eps (timm's ViTs)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: The towers of the released checkpoints (timm 0.9.10 definitions; at ``image_sizes`` 224 both
#: give a 16 x 16 patch grid). SigLIP uses timm's default GELU (erf): OpenVLA's
#: ``timm_override_act_layers`` is [null, null].
KNOWN_TOWERS = {
    "vit_large_patch14_reg4_dinov2.lvd142m": TowerSpec("dinov2_reg", 1024, 24, 16, 4096, registers=4),
    "vit_so400m_patch14_siglip_224": TowerSpec("siglip", 1152, 27, 16, 4304),
}
#: ``timm_override_act_layers`` values -> transformers' activation names.
ACT_OVERRIDES = {None: None, "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "quick_gelu": "quick_gelu"}


@dataclass(frozen=True)
class Statistics:
    """BOUNDS_Q99 statistics of one dataset key: ``action``/``proprio`` q01, q99 and masks (lists)."""

    key: str
    action_q01: list
    action_q99: list
    action_mask: list
    proprio_q01: list
    proprio_q99: list
    proprio_mask: list

    @property
    def action_dim(self) -> int:
        return len(self.action_q01)

    @property
    def proprio_dim(self) -> int:
        return len(self.proprio_q01)


@dataclass(frozen=True)
class OFTFolder:
    """A checked OpenVLA-OFT checkpoint folder (:func:`open_oft_folder`); no weights read."""

    path: Path
    config: dict  # config.json as read
    towers: tuple  # TowerSpec per featurizer (DINOv2 first, as prismatic's timm_model_ids)
    text_config: dict  # LlamaConfig kwargs, defaults filled in
    weight_files: tuple  # the safetensors files of the VLA
    action_head_file: Path
    proprio_file: Path
    statistics: dict  # key -> Statistics
    means: tuple  # per tower, (3,) normalisation mean
    stds: tuple
    input_sizes: tuple  # per tower, (3, H, W)
    resize: str  # prismatic image_resize_strategy
    stand_in: bool = False

    @property
    def llm_dim(self) -> int:
        return int(self.text_config["hidden_size"])

    def stats(self, key: str | None) -> Statistics:
        """The statistics for ``key``: the key itself, else ``<key>_no_noops`` (OFT's evaluation rule); None: the
        only key. A :class:`Vega3DError` naming the keys otherwise."""
        keys = sorted(self.statistics)
        if key is None:
            found = keys if len(keys) == 1 else []
        else:
            found = [k for k in (key, f"{key}_no_noops") if k in self.statistics]
        if not found:
            noops = f"{key}_no_noops"
            problem = "name the dataset key (unnorm_key)" if key is None else f"no statistics for {key!r} or {noops!r}"
            raise Vega3DError(f"{self.path / STATS_FILE}: {problem}; has {keys}")
        return self.statistics[found[0]]


STATS_FILE = "dataset_statistics.json"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
INDEX_FILE = "model.safetensors.index.json"
ACTION_HEAD_GLOB = "action_head--*_checkpoint.pt"
PROPRIO_GLOB = "proprio_projector--*_checkpoint.pt"


def chunk_for(key: str) -> int:
    """OFT's chunk length K for a statistics key (``libero_spatial_no_noops`` -> LIBERO -> 8)."""
    for prefix, k in PLATFORM_CHUNK.items():
        if key.lower().startswith(prefix):
            return k
    raise Vega3DError(
        f"statistics key {key!r}: cannot tell its robot platform ({', '.join(PLATFORM_CHUNK)}), so not its action "
        "chunk length; give chunk= explicitly"
    )


def _one_file(root: Path, pattern: str, what: str) -> Path:
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        state = "no" if not found else f"{len(found)} ({', '.join(p.name for p in found)}) instead of one"
        raise Vega3DError(f"{root}: {state} {pattern} file; an OpenVLA-OFT checkpoint folder holds its {what} there")
    return found[0]


def _two(item):
    """A list of two ``item``\\ s, one per tower (DINOv2 first)."""
    return Annotated[list[item], Field(min_length=2, max_length=2)]


#: An RGB mean or std; a (3, H, W) input size.
_RGB, _SIZE = (
    Annotated[list[float], Field(min_length=3, max_length=3)],
    Annotated[list[int], Field(min_length=3, max_length=3)],
)


class _TextConfig(FileRecord):
    """``config.json``'s ``text_config``: a sparse Llama config (the rest: :data:`LLAMA_4401_DEFAULTS`)."""

    model_type: Literal["llama"] = "llama"  # OpenVLA-OFT's LLM is Llama-2
    rope_scaling: None = None  # OpenVLA-OFT uses plain RoPE


class _OFTConfigFile(FileRecord):
    """``config.json`` (``OpenVLAConfig``), the fields vega3d reads."""

    use_fused_vision_backbone: Literal[True]  # OpenVLA-OFT's fused DINOv2 + SigLIP backbone
    timm_model_ids: _two(str)  # DINOv2 then SigLIP (KNOWN_TOWERS, unless vega3d_towers is given)
    image_sizes: _two(int) | None = None  # per tower (None: the tower's own, 224)
    timm_override_act_layers: _two(Literal[tuple(ACT_OVERRIDES)]) | None = None  # per tower (None: timm's GELU)
    vega3d_towers: _two(dict) | None = None  # TowerSpec fields, written by stand-ins (tiny towers, no timm id)
    text_config: _TextConfig  # the Llama LLM


class _Bounds(FileRecord):
    """One part (``action``/``proprio``) of a key in ``dataset_statistics.json`` (mean, std, ...: not read)."""

    q01: list[float]  # 1st percentile per dimension (OFT's BOUNDS_Q99 normalisation)
    q99: list[float]  # 99th percentile per dimension
    mask: list[bool] | None = None  # dimensions that are normalised (None: all)

    @model_validator(mode="after")
    def _one_length(self):
        lengths = (len(self.q01), len(self.q99), len(self.q01 if self.mask is None else self.mask))
        if len(set(lengths)) != 1:
            message = "q01, q99, mask of lengths {lengths}; expected one length"
            raise PydanticCustomError("lengths", message, {"lengths": ", ".join(map(str, lengths))})
        return self


class _StatisticsEntry(FileRecord):
    """A dataset key of ``dataset_statistics.json`` (num_transitions, ...: not read)."""

    action: _Bounds
    proprio: _Bounds


class _StatisticsFile(FileRecord):
    """``dataset_statistics.json``: dataset key -> its statistics."""

    model_config = ConfigDict(extra="allow")  # every key is a dataset's
    __pydantic_extra__: dict[str, _StatisticsEntry]


class _Preprocessor(FileRecord):
    """``preprocessor_config.json`` (``PrismaticImageProcessor``), the fields vega3d reads."""

    means: _two(_RGB)  # per tower, RGB mean
    stds: _two(_RGB)  # per tower, RGB std
    input_sizes: _two(_SIZE)  # per tower, (3, H, W)
    image_resize_strategy: Literal["resize-naive"] = "resize-naive"  # OpenVLA-OFT's


def _weight_files(root: Path) -> tuple:
    index = root / INDEX_FILE
    if index.is_file():
        return tuple(sorted({root / f for f in read_weight_map(index).values()}))
    if (root / "model.safetensors").is_file():
        return (root / "model.safetensors",)
    raise Vega3DError(f"{root}: no {INDEX_FILE} and no model.safetensors; expected the VLA weights there")


def _towers(config: _OFTConfigFile, where: Path) -> tuple:
    ids, sizes = config.timm_model_ids, config.image_sizes or [None, None]
    overrides = config.timm_override_act_layers or [None, None]
    specs = [TowerSpec(**t) for t in config.vega3d_towers] if config.vega3d_towers else map(KNOWN_TOWERS.get, ids)
    towers = [
        spec and replace(spec, act=ACT_OVERRIDES[act] or spec.act, image_size=size or spec.image_size)
        for spec, act, size in zip(specs, overrides, sizes)
    ]  # None: an unknown timm id
    kinds, grids = [t and t.kind for t in towers], [t and t.grid for t in towers]
    if kinds != ["dinov2_reg", "siglip"] or grids[0] != grids[1]:
        raise Vega3DError(f"{where}: timm_model_ids {ids} give towers {kinds} with grids {grids}; expected DINOv2 "
                          f"then SigLIP on one patch grid (known towers: {', '.join(KNOWN_TOWERS)})")  # fmt: skip
    return tuple(towers)


def text_config_of(config: dict, where: Path) -> dict:
    """``config["text_config"]`` as ``LlamaConfig`` keyword arguments, transformers 4.40.1's defaults filled in."""
    text = config.get("text_config")
    parse(_TextConfig, text, where, "text_config")
    kwargs = {**LLAMA_4401_DEFAULTS, **{k: v for k, v in text.items() if k not in _TEXT_CONFIG_META}}
    theta = kwargs.pop("rope_theta")
    del kwargs["rope_scaling"]
    kwargs.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": float(theta)})
    return kwargs


def _statistics(root: Path) -> dict:
    path = root / STATS_FILE
    data = parse(_StatisticsFile, read_json(path, "dataset statistics"), path) if path.is_file() else None
    if not data or not data.model_extra:
        raise Vega3DError(f"{root}: no {STATS_FILE} or no dataset key in it; the policy needs its action/proprio "
                          "q01/q99 statistics")  # fmt: skip
    out = {}
    for key, entry in data.model_extra.items():
        parts = [
            (b.q01, b.q99, [True] * len(b.q01) if b.mask is None else b.mask) for b in (entry.action, entry.proprio)
        ]
        out[key] = Statistics(key, *parts[0], *parts[1])
    return out


def _preprocessing(root: Path, towers: tuple) -> dict:
    path = root / PREPROCESSOR_FILE
    pre = parse(_Preprocessor, read_json(path, "image preprocessor config"), path)
    if pre.input_sizes != [[3, t.image_size, t.image_size] for t in towers]:
        raise Vega3DError(f"{path}: input_sizes {pre.input_sizes}; expected [3, {towers[0].image_size}, "
                          f"{towers[0].image_size}] per tower (config.json's image_sizes)")  # fmt: skip
    return dict(means=tuple(map(tuple, pre.means)), stds=tuple(map(tuple, pre.stds)),
                input_sizes=tuple(map(tuple, pre.input_sizes)), resize=pre.image_resize_strategy)  # fmt: skip


def open_oft_folder(path) -> OFTFolder:
    """Check an OpenVLA-OFT checkpoint folder (module docstring) and describe it; reads no weights."""
    from vega3d.standin import is_stand_in

    root = Path(path).expanduser()
    config = read_json(root / CONFIG_FILE, "OpenVLA-OFT config")
    towers = _towers(parse(_OFTConfigFile, config, root / CONFIG_FILE), root / CONFIG_FILE)
    text = text_config_of(config, root / CONFIG_FILE)
    action_head = _one_file(root, ACTION_HEAD_GLOB, "L1-regression action head")
    proprio = _one_file(root, PROPRIO_GLOB, "proprio projector")
    return OFTFolder(root, config, towers, text, _weight_files(root), action_head, proprio, _statistics(root),
                     stand_in=is_stand_in(root), **_preprocessing(root, towers))  # fmt: skip
