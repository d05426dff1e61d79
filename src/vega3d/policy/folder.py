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
file and field) and returns an :class:`OFTFolder`; nothing heavy is read.

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

from dataclasses import dataclass
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.files import read_json

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
            if len(keys) != 1:
                raise Vega3DError(f"{self.path / STATS_FILE}: holds {keys}; name the dataset key (unnorm_key)")
            return self.statistics[keys[0]]
        for k in (key, f"{key}_no_noops"):
            if k in self.statistics:
                return self.statistics[k]
        raise Vega3DError(f"{self.path / STATS_FILE}: no statistics for {key!r} or {key + '_no_noops'!r}; has {keys}")


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


def _weight_files(root: Path) -> tuple:
    index = root / INDEX_FILE
    if index.is_file():
        weight_map = read_json(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise Vega3DError(f"{index}: no 'weight_map'; expected {{tensor name: shard file}}")
        files = sorted({root / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise Vega3DError(f"{index}: names shard(s) {missing} that are not in {root}")
        return tuple(files)
    if (root / "model.safetensors").is_file():
        return (root / "model.safetensors",)
    raise Vega3DError(f"{root}: no {INDEX_FILE} and no model.safetensors; expected the VLA weights there")


def _towers(config: dict, where: Path) -> tuple:
    ids = config.get("timm_model_ids")
    if not config.get("use_fused_vision_backbone") or not isinstance(ids, list) or len(ids) != 2:
        raise Vega3DError(
            f"{where}: use_fused_vision_backbone {config.get('use_fused_vision_backbone')!r}, timm_model_ids {ids!r}; "
            "expected the fused DINOv2 + SigLIP backbone (true, two ids) of OpenVLA-OFT"
        )
    sizes = config.get("image_sizes") or []
    overrides = config.get("timm_override_act_layers") or [None, None]
    explicit = config.get("vega3d_towers")  # written by stand-ins, whose tiny towers have no timm id
    towers = []
    for i, model_id in enumerate(ids):
        if explicit is not None:
            spec = TowerSpec(**explicit[i])
        elif model_id in KNOWN_TOWERS:
            spec = KNOWN_TOWERS[model_id]
        else:
            raise Vega3DError(
                f"{where}: timm_model_ids[{i}] {model_id!r} is not a known tower ({', '.join(KNOWN_TOWERS)})"
            )
        if overrides[i] not in ACT_OVERRIDES:
            raise Vega3DError(
                f"{where}: timm_override_act_layers[{i}] {overrides[i]!r}; expected one of {list(ACT_OVERRIDES)}"
            )
        act = ACT_OVERRIDES[overrides[i]] or spec.act
        size = int(sizes[i]) if i < len(sizes) else spec.image_size
        towers.append(TowerSpec(**{**spec.to_dict(), "act": act, "image_size": size}))
    if [t.kind for t in towers] != ["dinov2_reg", "siglip"] or towers[0].grid != towers[1].grid:
        raise Vega3DError(f"{where}: towers {[t.kind for t in towers]} with grids {[t.grid for t in towers]}; "
                          "expected DINOv2 then SigLIP on one patch grid")  # fmt: skip
    return tuple(towers)


def text_config_of(config: dict, where: Path) -> dict:
    """``config["text_config"]`` as ``LlamaConfig`` keyword arguments, transformers 4.40.1's defaults filled in."""
    text = config.get("text_config")
    if not isinstance(text, dict) or text.get("model_type", "llama") != "llama":
        raise Vega3DError(f"{where}: text_config {text!r}; expected a Llama config (model_type llama)")
    kwargs = {**LLAMA_4401_DEFAULTS, **{k: v for k, v in text.items() if k not in _TEXT_CONFIG_META}}
    theta, scaling = kwargs.pop("rope_theta"), kwargs.pop("rope_scaling")
    if scaling is not None:
        raise Vega3DError(f"{where}: text_config.rope_scaling {scaling!r}; OpenVLA-OFT uses plain RoPE (null)")
    kwargs.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": float(theta)})
    return kwargs


def _statistics(path: Path) -> dict:
    data = read_json(path, "dataset statistics")
    if not isinstance(data, dict) or not data:
        raise Vega3DError(f"{path}: expected {{dataset key: {{action: ..., proprio: ...}}}}, got {type(data).__name__}")
    out = {}
    for key, entry in data.items():
        parts = {}
        for part in ("action", "proprio"):
            s = entry.get(part) if isinstance(entry, dict) else None
            if not isinstance(s, dict) or not all(isinstance(s.get(q), list) for q in ("q01", "q99")):
                raise Vega3DError(f"{path}: {key}.{part} lacks q01/q99 lists (OFT's BOUNDS_Q99 statistics)")
            mask = s.get("mask", [True] * len(s["q01"]))
            if not len(s["q01"]) == len(s["q99"]) == len(mask):
                raise Vega3DError(f"{path}: {key}.{part}: q01, q99, mask of lengths "
                                  f"{len(s['q01'])}, {len(s['q99'])}, {len(mask)}; expected one length")  # fmt: skip
            parts[part] = (list(map(float, s["q01"])), list(map(float, s["q99"])), [bool(m) for m in mask])
        out[key] = Statistics(key, *parts["action"], *parts["proprio"])
    return out


def _preprocessing(root: Path, towers: tuple) -> dict:
    path = root / PREPROCESSOR_FILE
    pre = read_json(path, "image preprocessor config")
    means, stds, sizes = pre.get("means"), pre.get("stds"), pre.get("input_sizes")
    if not all(isinstance(v, list) and len(v) == len(towers) for v in (means, stds, sizes)):
        raise Vega3DError(f"{path}: means/stds/input_sizes must list one entry per tower ({len(towers)})")
    for t, size in zip(towers, sizes):
        if list(size) != [3, t.image_size, t.image_size]:
            raise Vega3DError(f"{path}: input_sizes {sizes}; expected [3, {t.image_size}, {t.image_size}] per tower")
    resize = pre.get("image_resize_strategy", "resize-naive")
    if resize != "resize-naive":
        raise Vega3DError(f"{path}: image_resize_strategy {resize!r}; OpenVLA-OFT uses 'resize-naive'")
    return dict(means=tuple(tuple(map(float, m)) for m in means), stds=tuple(tuple(map(float, s)) for s in stds),
                input_sizes=tuple(tuple(s) for s in sizes), resize=resize)  # fmt: skip


def open_oft_folder(path) -> OFTFolder:
    """Check an OpenVLA-OFT checkpoint folder (module docstring) and describe it; reads no weights."""
    from vega3d.standin import is_stand_in

    root = Path(path).expanduser()
    if not root.is_dir():
        raise Vega3DError(f"{root}: not a folder; expected an OpenVLA-OFT checkpoint folder")
    config = read_json(root / CONFIG_FILE, "OpenVLA-OFT config")
    if not isinstance(config, dict):
        raise Vega3DError(f"{root / CONFIG_FILE}: expected a JSON object")
    towers = _towers(config, root / CONFIG_FILE)
    text = text_config_of(config, root / CONFIG_FILE)
    action_head = _one_file(root, ACTION_HEAD_GLOB, "L1-regression action head")
    proprio = _one_file(root, PROPRIO_GLOB, "proprio projector")
    if not (root / STATS_FILE).is_file():
        raise Vega3DError(f"{root}: no {STATS_FILE}; the policy needs its action/proprio q01/q99 statistics")
    statistics = _statistics(root / STATS_FILE)
    return OFTFolder(root, config, towers, text, _weight_files(root), action_head, proprio, statistics,
                     stand_in=is_stand_in(root), **_preprocessing(root, towers))  # fmt: skip
