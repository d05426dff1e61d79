"""Loading LLaVA-Video-7B-Qwen2 (and the released Video-3D LLM) into transformers' LLaVA-OneVision.

Two folder layouts, detected from ``config.json``'s ``model_type``:

- ``"llava"`` — the original LLaVA release (``model_type: llava_qwen``; lmms-lab's
  LLaVA-Video-7B-Qwen2 and Video-3D LLM's checkpoints): ``model.embed_tokens`` /
  ``model.layers.*`` / ``model.norm`` / ``lm_head``, ``model.vision_tower.vision_tower.vision_model.*``
  (SigLIP), ``model.mm_projector.{0,2}``, ``model.image_newline``; Video-3D LLM adds
  ``ground_head_obj.*``, ``ground_head_query.*``, ``ground_head_zero_target`` and the
  ``ground_head_type`` / ``ground_token_ids`` / ``coord_token_ids`` config fields. The SigLIP
  config is not in the folder: ``mm_vision_tower`` names it (a SigLIP folder, relative to the
  model folder or absolute, or the known id ``google/siglip-so400m-patch14-384``). LLaVA drops
  SigLIP's last layer (``mm_vision_select_layer -2``), so the tower keeps ``layers - 1``.
- ``"hf"`` — transformers' ``llava_onevision`` (``model_type: llava_onevision``), in any of the
  key spellings transformers writes or reads: the converter's / ``save_pretrained``'s
  (``language_model.model.*``, ``language_model.lm_head``, ``vision_tower[.vision_model].*``,
  ``multi_modal_projector.*``, ``image_newline``) or the module names (``model.language_model.*``, ...).

Every file key maps to a **canonical** name (transformers' module names with SigLIP's
``vision_model`` level: ``model.language_model.*``, ``lm_head.weight``,
``model.vision_tower.vision_model.*``, ``model.multi_modal_projector.linear_{1,2}.*``,
``model.image_newline``, plus ``ground_head_*``); :func:`to_canonical` and
:func:`canonical_to_original` are the key maps. The check is strict and happens on the
safetensors headers, before any weight is read (:func:`inspect_folder`): a key that maps to
nothing or that the architecture lacks, a missing key, a shape that differs — each one line
naming the file and the key. Only two kinds of keys are knowingly ignored: SigLIP layers past
the ones used (the dropped 27th) and SigLIP's pooling head, neither of which LLaVA runs.

The vocabulary: the rows come from the ``embed_tokens`` tensor (not ``config.vocab_size``,
which VEGA-3D's evaluation overrides for Video-3D LLM checkpoints); the tokenizer may not have
more tokens than rows, ``lm_head`` must have as many rows, and recorded ``ground_token_ids`` /
``coord_token_ids`` must be the saved tokenizer's ids of ``<ground>`` / ``<coord>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from vega3d.config import FileRecord, parse
from vega3d.devices import parse_dtype
from vega3d.errors import Vega3DError
from vega3d.files import read_json, read_weight_map

LAYOUTS = ("llava", "hf")
MODEL_TYPES = {"llava_qwen": "llava", "llava_onevision": "hf"}
SO400M_ID = "google/siglip-so400m-patch14-384"
#: google/siglip-so400m-patch14-384's vision config (all 27 layers; LLaVA uses 26).
SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
          "image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6}  # fmt: skip
GROUND_TOKEN, COORD_TOKEN = "<ground>", "<coord>"
INDEX_FILE = "model.safetensors.index.json"
EMBED, LM_HEAD = "model.language_model.embed_tokens.weight", "lm_head.weight"

# (pattern, replacement) applied in order, first match wins.
_ORIGINAL = (
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower.vision_model."),
    (r"^model\.mm_projector\.0\.", "model.multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "model.multi_modal_projector.linear_2."),
    (r"^model\.image_newline$", "model.image_newline"),
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.weight$", "lm_head.weight"),
    (r"^(ground_head_\w+(\.\d+\.(weight|bias))?)$", r"\1"),
)
_HF = (
    (r"^(model\.)?language_model\.model\.", "model.language_model."),
    (r"^model\.language_model\.", "model.language_model."),
    (r"^(language_model\.)?lm_head\.weight$", "lm_head.weight"),
    (r"^(model\.)?vision_tower\.(vision_model\.)?", "model.vision_tower.vision_model."),
    (r"^(model\.)?multi_modal_projector\.", "model.multi_modal_projector."),
    (r"^(model\.)?image_newline$", "model.image_newline"),
    (r"^(ground_head_\w+(\.\d+\.(weight|bias))?)$", r"\1"),
)
_TO_ORIGINAL = (
    (r"^model\.vision_tower\.vision_model\.", "model.vision_tower.vision_tower.vision_model."),
    (r"^model\.multi_modal_projector\.linear_1\.", "model.mm_projector.0."),
    (r"^model\.multi_modal_projector\.linear_2\.", "model.mm_projector.2."),
    (r"^model\.language_model\.", "model."),
    (r"^(model\.image_newline|lm_head\.weight|ground_head_.*)$", r"\1"),
)
_VISION_LAYER = re.compile(r"^model\.vision_tower\.vision_model\.encoder\.layers\.(\d+)\.")
_VISION_HEAD = re.compile(r"^model\.vision_tower\.vision_model\.head\.")
GROUND_HEAD_SHAPES = {f"ground_head_{part}.{i}.{kind}": None for part in ("obj", "query") for i in (0, 2, 3)
                      for kind in ("weight", "bias")} | {"ground_head_zero_target": None}  # fmt: skip


def _apply(rules, key: str) -> str | None:
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    return None


def to_canonical(layout: str, key: str) -> str | None:
    """The canonical name of a file key of ``layout`` ("llava" or "hf"), or None (unknown key)."""
    return _apply(_ORIGINAL if layout == "llava" else _HF, key)


def canonical_to_original(key: str) -> str | None:
    """The original LLaVA release's name of a canonical key (inverse of ``to_canonical("llava", ·)``)."""
    return _apply(_TO_ORIGINAL, key)


def module_key(canonical: str, vision_model_level: bool) -> str:
    """The installed transformers' parameter name of a canonical key (transformers 5 drops
    SigLIP's ``vision_model`` level from its module names)."""
    return canonical if vision_model_level else canonical.replace("vision_tower.vision_model.", "vision_tower.", 1)


# ---------------------------------------------------------------------------- folder inspection
@dataclass
class FolderSpec:
    """What a base folder holds, read from its config and safetensors headers (no weights):
    ``layout``; ``config`` the LlavaOnevisionConfig to build; ``keys`` canonical key →
    (file, file key, shape); ``ignored`` file keys knowingly skipped; ``extras`` the Video-3D
    LLM config fields; ``rows`` the vocabulary rows (embed_tokens)."""

    folder: Path
    layout: str
    config: object
    keys: dict
    ignored: list
    extras: dict
    rows: int
    head_keys: list = field(default_factory=list)

    @property
    def has_head(self) -> bool:
        return bool(self.head_keys)


class _FolderConfig(FileRecord):
    """A base folder's ``config.json``: the fields checked here (the rest is read as given)."""

    # the original LLaVA-Video / Video-3D LLM release, or transformers' LLaVA-OneVision
    model_type: Literal[tuple(MODEL_TYPES)]


class _LlavaConfig(_FolderConfig):
    """The original release's ``config.json``: the LLaVA options this implementation reproduces."""

    model_type: Literal["llava_qwen"]
    mm_vision_tower: str = Field(min_length=1)  # the SigLIP tower's folder or id (module docstring)
    mm_projector_type: Literal["mlp2x_gelu"]  # the two-layer GELU projector
    mm_vision_select_layer: Literal[-2]  # SigLIP's last layer dropped
    mm_spatial_pool_mode: Literal["bilinear"] | None = None  # frames pooled 2x2 bilinearly
    ground_head_type: Literal["infonce"] | None = None  # Video-3D LLM's grounding head
    world_position_embedding_type: Literal["avg-discrete-sin3d"] | None = None  # Video-3D LLM's 3D positions
    object_feature_type: Literal["patch14-pe"] | None = None  # Video-3D LLM's object features


class _HFConfig(_FolderConfig):
    """transformers' ``llava_onevision`` ``config.json``: LLaVA-Video's vision feature choice."""

    model_type: Literal["llava_onevision"]
    vision_feature_layer: Literal[-1] = -1  # the tower's last (kept) layer
    vision_feature_select_strategy: Literal["full"] = "full"  # every patch, no CLS dropped


_RECORDS = {"llava_qwen": _LlavaConfig, "llava_onevision": _HFConfig}


def _config(folder: Path) -> tuple[str, dict]:
    """``(layout, config.json's data)``, its declared fields checked (:class:`_LlavaConfig`, :class:`_HFConfig`)."""
    path = folder / "config.json"
    if not folder.is_dir():
        raise Vega3DError(f"{folder}: base model folder does not exist")
    data = read_json(path, f"{folder}: not a model folder (config.json)")
    found = data.get("model_type") if isinstance(data, dict) else None
    record = parse(_RECORDS.get(found, _FolderConfig), data, str(path))
    return MODEL_TYPES[record.model_type], data


def weight_files(folder: Path) -> dict[str, Path]:
    """File key → safetensors file: the index's weight map, else every ``*.safetensors``."""
    index = folder / INDEX_FILE
    if index.is_file():
        return {k: folder / v for k, v in read_weight_map(index).items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        bins = sorted(p.name for p in folder.glob("*.bin"))
        hint = f" (found {bins[:3]}: convert PyTorch .bin weights to safetensors)" if bins else ""
        raise Vega3DError(f"{folder}: no *.safetensors weights and no {INDEX_FILE}{hint}")
    from safetensors import safe_open

    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            out.update({k: f for k in h.keys()})
    return out


def _shapes(files: dict[str, Path]) -> dict[str, tuple]:
    from safetensors import SafetensorError, safe_open

    shapes = {}
    for f in sorted(set(files.values())):
        try:
            with safe_open(str(f), framework="pt") as h:
                names = set(h.keys())
                for k in [k for k, v in files.items() if v == f]:
                    if k not in names:
                        raise Vega3DError(f"{f}: the index names tensor {k!r} in this file, but it is not there")
                    shapes[k] = tuple(h.get_slice(k).get_shape())
        except SafetensorError as err:
            raise Vega3DError(f"{f}: not a readable safetensors file ({err})") from None
    return shapes


def _siglip_config(folder: Path, data: dict) -> dict:
    """The SigLIP vision config ``mm_vision_tower`` names (module docstring)."""
    name, where = data["mm_vision_tower"], f"{folder / 'config.json'} field mm_vision_tower"  # checked: _LlavaConfig
    for cand in (folder / name, Path(name)):
        if (cand / "config.json").is_file():
            cfg = read_json(cand / "config.json", "SigLIP config")
            cfg = cfg.get("vision_config", cfg) if isinstance(cfg, dict) else {}
            if not isinstance(cfg, dict) or "hidden_size" not in cfg:
                raise Vega3DError(f"{cand / 'config.json'}: not a SigLIP (vision) config")
            keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
                    "patch_size", "hidden_act", "layer_norm_eps")  # fmt: skip
            return {k: cfg[k] for k in keys if k in cfg}
    if name.rstrip("/") == SO400M_ID:
        return dict(SO400M)
    raise Vega3DError(
        f"{where}: {name!r} is neither a SigLIP folder (with config.json; relative to the model folder or absolute) "
        f"nor the known id {SO400M_ID!r}"
    )


def _text_config(data: dict, rows: int) -> dict:
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "rms_norm_eps", "max_position_embeddings", "hidden_act", "attention_dropout", "sliding_window",
            "use_sliding_window", "max_window_layers", "bos_token_id", "eos_token_id")  # fmt: skip
    text = {k: data[k] for k in keys if k in data and data[k] is not None}
    theta = data.get("rope_theta") or (data.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    text.update(model_type="qwen2", vocab_size=rows, tie_word_embeddings=bool(data.get("tie_word_embeddings", False)),
                rope_parameters={"rope_type": "default", "rope_theta": float(theta)})  # fmt: skip
    return text


def _embed_rows(folder: Path, files: dict, layout: str) -> int:
    key = next((k for k in files if to_canonical(layout, k) == EMBED), None)
    if key is None:
        raise Vega3DError(
            f"{folder}: no embed_tokens weight among the safetensors keys (expected {EMBED!r} or its spelling)"
        )
    return int(_shapes({key: files[key]})[key][0])


def inspect_folder(folder) -> FolderSpec:
    """Read and check a base folder's config and weight headers (module docstring); no weights loaded."""
    from transformers import LlavaOnevisionConfig

    folder = Path(folder).expanduser()
    layout, data = _config(folder)
    files = weight_files(folder)
    rows = _embed_rows(folder, files, layout)
    if layout == "llava":
        vision = _siglip_config(folder, data)
        vision["num_hidden_layers"] = int(vision["num_hidden_layers"]) - 1  # mm_vision_select_layer -2
        config = LlavaOnevisionConfig(
            text_config=_text_config(data, rows),
            vision_config={**vision, "model_type": "siglip_vision_model", "vision_use_head": False},
            vision_feature_layer=-1, vision_feature_select_strategy="full", projector_hidden_act="gelu",
            multimodal_projector_bias=True, tie_word_embeddings=bool(data.get("tie_word_embeddings", False)),
        )  # fmt: skip
        extras = {k: data[k] for k in ("ground_head_type", "ground_head_temperature", "ground_token_ids",
                                         "coord_token_ids", "world_position_embedding_type", "object_feature_type",
                                         "voxel_size", "min_xyz_range", "max_xyz_range") if k in data}  # fmt: skip
    else:
        config = LlavaOnevisionConfig.from_pretrained(folder, local_files_only=True)
        config.text_config.vocab_size = rows
        extras = {k: data[k] for k in ("ground_head_type", "ground_token_ids", "coord_token_ids") if k in data}
    keys, ignored = _map_keys(folder, files, layout, config)
    head = sorted(k for k in keys if k.startswith("ground_head_"))
    return FolderSpec(folder, layout, config, keys, ignored, extras, rows, head)


def _map_keys(folder: Path, files: dict, layout: str, config) -> tuple[dict, list]:
    used_layers = int(config.vision_config.num_hidden_layers)
    keys, ignored = {}, []
    for fk, f in files.items():
        canon = to_canonical(layout, fk)
        if canon is None:
            raise Vega3DError(f"{f}: unexpected tensor {fk!r} for the {layout!r} layout of LLaVA-Video")
        m = _VISION_LAYER.match(canon)
        if (m and int(m.group(1)) >= used_layers) or _VISION_HEAD.match(canon):
            ignored.append(fk)  # the SigLIP layer LLaVA drops / SigLIP's pooling head: never run
            continue
        if canon in keys:
            raise Vega3DError(f"{f}: tensor {fk!r} and {keys[canon][1]!r} ({keys[canon][0]}) are the same weight")
        keys[canon] = (f, fk)
    return keys, ignored


def expected_shapes(config) -> tuple[dict, bool]:
    """Canonical key → shape of the architecture (built on the meta device), and whether the
    installed transformers names SigLIP's ``vision_model`` level."""
    from transformers import LlavaOnevisionForConditionalGeneration

    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    sd = model.state_dict()
    level = any(k.startswith("model.vision_tower.vision_model.") for k in sd)
    out = {}
    for k, v in sd.items():
        canon = k if level else k.replace("model.vision_tower.", "model.vision_tower.vision_model.", 1)
        out[canon] = tuple(v.shape)
    if config.tie_word_embeddings:
        out.pop(LM_HEAD, None)
    return out, level


def check_folder(spec: FolderSpec) -> bool:
    """Strict key and shape check of ``spec`` against the architecture; returns the
    ``vision_model`` level flag (:func:`expected_shapes`)."""
    expected, level = expected_shapes(spec.config)
    found = {k: v for k, v in spec.keys.items() if not k.startswith("ground_head_")}
    file_shapes = _shapes({fk: f for f, fk in spec.keys.values()})
    missing = sorted(set(expected) - set(found))
    if missing:
        where = spec.folder / INDEX_FILE if (spec.folder / INDEX_FILE).is_file() else spec.folder
        raise Vega3DError(f"{where}: missing {len(missing)} weight(s) of LLaVA-Video's architecture: {missing[:4]}")
    for canon, (f, fk) in found.items():
        if canon not in expected:
            raise Vega3DError(f"{f}: tensor {fk!r} is not part of the architecture its config.json describes")
        if file_shapes[fk] != expected[canon]:
            raise Vega3DError(f"{f}: tensor {fk!r} has shape {list(file_shapes[fk])}, expected {list(expected[canon])}")
    _check_head(spec, file_shapes)
    return level


def _check_head(spec: FolderSpec, shapes: dict) -> None:
    d = int(spec.config.text_config.hidden_size)
    if spec.extras.get("ground_head_type") == "infonce" or spec.head_keys:
        want = {k: (d,) if k.endswith(("bias", "target")) or ".2." in k else (d, d) for k in GROUND_HEAD_SHAPES}
        have = {k: shapes[spec.keys[k][1]] for k in spec.head_keys}
        if set(have) != set(want):
            lacking, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            raise Vega3DError(
                f"{spec.folder}: the InfoNCE grounding head's weights are incomplete (missing {lacking[:3]}, unexpected "
                f"{extra[:3]}); expected ground_head_obj/query.{{0,2,3}}.weight/bias and ground_head_zero_target"
            )
        bad = [k for k in want if have[k] != want[k]]
        if bad:
            k = bad[0]
            raise Vega3DError(f"{spec.keys[k][0]}: tensor {k!r} has shape {list(have[k])}, expected {list(want[k])}")


def check_vocabulary(spec: FolderSpec, tokenizer) -> dict:
    """The vocabulary against the tokenizer (module docstring); returns ``{"rows", "ground_token_id",
    "coord_token_id"}`` (ids None when the tokenizer lacks the tokens)."""
    embed_file = spec.keys[EMBED][0]
    n = len(tokenizer)
    if n > spec.rows:
        raise Vega3DError(
            f"{spec.folder}: the tokenizer has {n} tokens but {embed_file} record {spec.keys[EMBED][1]!r} has "
            f"{spec.rows} rows; the vocabulary does not match the tokenizer"
        )
    if LM_HEAD in spec.keys:
        lm_rows = _shapes({spec.keys[LM_HEAD][1]: spec.keys[LM_HEAD][0]})[spec.keys[LM_HEAD][1]][0]
        if lm_rows != spec.rows:
            raise Vega3DError(
                f"{spec.keys[LM_HEAD][0]}: record {spec.keys[LM_HEAD][1]!r} has {lm_rows} rows but embed_tokens has "
                f"{spec.rows}; the vocabulary is inconsistent"
            )
    ids = {}
    for token, field_name in ((GROUND_TOKEN, "ground_token_ids"), (COORD_TOKEN, "coord_token_ids")):
        tid = tokenizer.convert_tokens_to_ids(token)
        tid = (
            None
            if tid is None or tid == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(tid) != token
            else tid
        )
        recorded = spec.extras.get(field_name)
        if recorded is not None and [tid] != list(recorded):
            raise Vega3DError(
                f"{spec.folder / 'config.json'} field {field_name}: {recorded!r}, but the saved tokenizer gives {token} "
                f"the id {tid}; the vocabulary does not match the tokenizer"
            )
        if tid is not None and tid >= spec.rows:
            raise Vega3DError(f"{spec.folder}: the tokenizer's {token} has id {tid} >= {spec.rows} embedding rows")
        ids[field_name.replace("_ids", "_id")] = tid
    if spec.has_head and ids["ground_token_id"] is None:
        raise Vega3DError(f"{spec.folder}: has grounding-head weights but its tokenizer has no {GROUND_TOKEN} token")
    return {"rows": spec.rows, **ids}


def load_tokenizer(folder):
    """The folder's saved tokenizer (transformers' AutoTokenizer, local files only)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()  # AutoTokenizer reads config.json and warns about model_type llava_qwen
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise Vega3DError(f"{folder}: cannot load its tokenizer ({err})") from None
    finally:
        logging.set_verbosity(level)


@dataclass
class LoadedBase:
    """A base folder loaded: the stock ``model``, its ``tokenizer``, the ``spec``, the vocabulary
    (:func:`check_vocabulary`) and the grounding head's tensors (None without)."""

    model: object
    tokenizer: object
    spec: FolderSpec
    vocab: dict
    head_state: dict | None


def load_base(folder, dtype="float32", device="cpu") -> LoadedBase:
    """Check the folder (config, headers, vocabulary vs tokenizer — all before reading any
    weight), then load it into ``LlavaOnevisionForConditionalGeneration`` (transformers' own
    ``from_pretrained`` on the renamed state dict)."""
    from safetensors import safe_open
    from transformers import LlavaOnevisionForConditionalGeneration

    spec = inspect_folder(folder)
    level = check_folder(spec)
    tokenizer = load_tokenizer(spec.folder)
    vocab = check_vocabulary(spec, tokenizer)
    by_file: dict[Path, list] = {}
    for canon, (f, fk) in spec.keys.items():
        by_file.setdefault(f, []).append((canon, fk))
    state, head = {}, {}
    for f, items in by_file.items():
        with safe_open(str(f), framework="pt") as h:
            for canon, fk in items:
                target = head if canon.startswith("ground_head_") else state
                target[canon if target is head else module_key(canon, level)] = h.get_tensor(fk)
    model, info = LlavaOnevisionForConditionalGeneration.from_pretrained(
        None, config=spec.config, state_dict=state, dtype=parse_dtype(dtype), output_loading_info=True
    )
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    return LoadedBase(model.to(device).eval(), tokenizer, spec, vocab, head or None)
