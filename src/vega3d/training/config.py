"""The training config of every model family, and the one place it is loaded and checked.

A training YAML names its model family (``family:``, default ``qwen25vl``;
:mod:`vega3d.training.families`) and has the sections ``train`` (:class:`TrainSettings`),
optionally ``simulator`` (:class:`SimulatorSpec`, online features), and the family's own
``model`` and ``data`` sections (its :class:`TrainConfig` subclass).
:func:`load_train_config` reads the YAML, applies ``section.key=value`` overrides, resolves
relative paths against the YAML's folder, validates every field (one-line errors naming the
field, and the override or the file it came from) and runs the family's domain checks.
:func:`check_feature_store` compares a feature store with the ``simulator`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError

from vega3d.config import Config, Float, describe, resolve_path
from vega3d.errors import Vega3DError
from vega3d.training.families import DEFAULT_FAMILY, Family, get_family

Dtype = Literal["float32", "bfloat16", "float16"]


class SimulatorSpec(Config):
    """How to build the online :class:`vega3d.simulator.WanWorldSimulator` (its ``from_pretrained``)."""

    path: str = Field(min_length=1)  # the Wan2.1 folder (diffusers or original layout)
    timestep: Float = Field(300, ge=0, le=1000)  # diffusion timestep of the noised latents
    shift: Float = Field(5.0, gt=0)  # the flow-matching schedule's shift
    block: int = Field(20, ge=0)  # DiT block whose output is the feature grid
    height: int = Field(480, ge=16)  # frames are resized to height x width
    width: int = Field(832, ge=16)
    seed: int = Field(0, ge=0)  # the noise draw
    dtype: Dtype = "bfloat16"  # the DiT's compute dtype
    device: str | None = None  # None: the training process's device
    batch_frames: int | None = Field(None, ge=1)  # frames per DiT call (None: from the model's memory need)
    deterministic: bool = False  # deterministic GPU kernels: a switch for the whole training process

    def build(self, device, train: TrainSettings | None = None):
        """The online simulator (on ``device`` unless ``self.device`` says otherwise), behind the
        feature cache that ``train`` sizes (each input's features computed once, then read)."""
        from vega3d.simulator import WanWorldSimulator
        from vega3d.store.online import with_feature_cache

        kwargs = self.model_dump(exclude={"path", "device"})
        simulator = WanWorldSimulator.from_pretrained(self.path, device=self.device or device, **kwargs)
        return (
            simulator
            if train is None
            else with_feature_cache(simulator, train.feature_cache_bytes, train.feature_cache_dir)
        )


def _no_is_false(value):
    """YAML 1.1 reads an unquoted ``no`` as false."""
    return "no" if value is False else value


class TrainSettings(Config):
    """Optimisation and bookkeeping (see :mod:`vega3d.training.loop`)."""

    output_dir: str = Field(min_length=1)  # checkpoints, log.jsonl and the final model/
    epochs: int = Field(1, ge=1)  # passes over the data (max_steps, when set, overrides it)
    max_steps: int | None = Field(None, ge=1)  # optimizer steps in all (as many epochs as it takes)
    batch_size: int = Field(1, ge=1)  # records per process per micro-batch
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    lr: Float = Field(1e-5, gt=0)  # the LLM's (LoRA or full)
    branch_lr: Float | None = Field(None, gt=0)  # projector + fusion (None: lr)
    vision_lr: Float = Field(2e-6, gt=0)  # the vision tower's
    head_lr: Float | None = Field(None, gt=0)  # task heads a family adds (grounding, actions; None: branch LR)
    weight_decay: Float = Field(0.0, ge=0)  # AdamW's
    decay_norms_and_biases: bool = True  # false: biases and LayerNorm weights undecayed (HF Trainer's rule)
    warmup_ratio: Float = Field(0.03, ge=0, le=1)  # linear warmup, as a share of the steps, then the schedule
    schedule: Literal["cosine", "step"] = (
        "cosine"  # after warmup: cosine to 0, or constant x lr_decay at lr_decay_steps
    )
    lr_decay_steps: list[int] = Field(default_factory=list)  # "step": optimizer steps at which the LR is multiplied
    lr_decay: Float = Field(0.1, gt=0, le=1)  # "step": the factor (OpenVLA-OFT: x0.1 after 100K steps)
    max_grad_norm: Float = Field(1.0, ge=0)  # gradient clipping (0: none)
    mixed_precision: Annotated[Literal["no", "bf16", "fp16"], BeforeValidator(_no_is_false)] = "bf16"  # accelerate's
    base_dtype: Dtype = "bfloat16"  # the dtype the frozen base is loaded in
    gradient_checkpointing: bool = True  # activation checkpointing in the LLM and vision blocks
    save_every: int = Field(500, ge=0)  # steps between checkpoints (0: only at the end)
    keep_last: int = Field(2, ge=0)  # complete checkpoints kept (0: all)
    log_every: int = Field(1, ge=1)  # steps between log.jsonl lines
    seed: int = Field(0, ge=0)  # data order and the global RNGs (dropout)
    num_workers: int = Field(2, ge=0)  # DataLoader workers per process
    find_unused_parameters: bool = False  # DDP: needed when a batch may leave the branch unused (text-only records)
    feature_cache_bytes: int = Field(4 << 30, ge=0)  # RAM per process for online simulator features (0: none)
    feature_cache_dir: str | None = None  # the feature cache's disk tier, shared by runs (vega3d.store.online)


class TrainConfig(Config):
    """The sections every family has; a family's subclass adds its ``model`` and ``data``."""

    family: str = DEFAULT_FAMILY  # the model family (vega3d.training.families.FAMILIES)
    train: TrainSettings
    simulator: SimulatorSpec | None = None  # online features; None: the data's feature store


#: The generic fields holding paths (a family adds its own: Family.path_fields).
PATH_FIELDS = (("simulator", "path"), ("train", "output_dir"), ("train", "feature_cache_dir"))


class _Source:
    """Where each value of a config came from: an override, else the YAML file."""

    def __init__(self, path: Path, overrides):
        self.path, self.overrides = path, list(overrides)

    def of(self, loc) -> str:
        """The override that set ``loc`` (a field's path, or one above it), else the file."""
        loc = tuple(str(p) for p in loc)
        for o in reversed(self.overrides):
            key = tuple(o.split("=", 1)[0].split("."))
            if loc[: len(key)] == key or key[: len(loc)] == loc:
                return f"override {o!r}"
        return str(self.path)


def apply_override(tree: dict, override: str) -> None:
    """Set ``section.key=value`` in ``tree`` (the value read as YAML)."""
    key, sep, value = override.partition("=")
    *sections, name = key.split(".")
    node = tree
    for p in sections:
        node = node.setdefault(p, {}) if isinstance(node, dict) else None
    if not sep or not isinstance(node, dict):
        raise Vega3DError(f"override {override!r}: expected section.key=value (e.g. train.max_steps=10)")
    node[name] = yaml.safe_load(value)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise Vega3DError(f"{path}: training config not found")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise Vega3DError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(tree, dict):
        raise Vega3DError(f"{path}: expected a mapping with sections model, data, train[, simulator]")
    return tree


def _is_config(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, Config)


def _section_class(root: type, loc: tuple) -> type:
    """The config class of the section at ``loc`` inside ``root`` (None: a section read as given)."""
    cls = root
    for name in loc:
        annotation = cls.model_fields[name].annotation
        cls = next((a for a in (annotation, *getattr(annotation, "__args__", ())) if _is_config(a)), None)
    return cls


def _user_keys(root: type, loc: tuple) -> list[str]:
    """The keys a user may write at ``loc``: the section's fields less those training records."""
    cls = _section_class(root, loc)
    return [k for k in cls.model_fields if k not in getattr(cls, "RECORDED", ())]


def _validate(family: Family, tree: dict, source: _Source) -> TrainConfig:
    """The family's config from the tree, errors naming the field and where it was set."""
    for section, value in tree.items():
        if not isinstance(value, dict) or section not in family.config.model_fields:
            continue
        recorded = getattr(_section_class(family.config, (section,)), "RECORDED", ())
        found = sorted(set(value) & set(recorded))
        if found:
            loc = (section, found[0])
            raise Vega3DError(
                f"{source.of(loc)}: {section}.{found[0]}: recorded by vega3d train, not set in a config; "
                f"valid: {', '.join(_user_keys(family.config, loc[:1]))}"
            )
    try:
        return family.config.model_validate(tree)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = first["loc"]
        message = describe(err)
        if first["type"] == "extra_forbidden":
            message += f"; valid: {', '.join(_user_keys(family.config, loc[:-1]))}"
        raise Vega3DError(f"{source.of(loc)}: {message}") from None


def load_train_config(path, overrides=(), check_paths: bool = True) -> TrainConfig:
    """Read a YAML training config; ``overrides`` are ``section.key=value`` strings.

    The ``family`` key picks the model family. Relative paths (:data:`PATH_FIELDS` and the
    family's) resolve against the YAML file's folder. Every field's type and range is checked;
    ``check_paths``: also the family's domain checks (paths exist, base folders, a feature
    source). Errors name the field and the override or file that set it."""
    path = Path(path)
    tree = _read_yaml(path)
    for o in overrides:
        apply_override(tree, o)
    source = _Source(path, overrides)
    family = get_family(tree.setdefault("family", DEFAULT_FAMILY), source.of(("family",)))
    for section, key in PATH_FIELDS + family.path_fields:
        if isinstance(tree.get(section), dict) and isinstance(tree[section].get(key), str):
            tree[section][key] = resolve_path(tree[section][key], path.resolve().parent)
    config = _validate(family, tree, source)
    family.check(config, source.of, check_paths)
    return config


def check_path(field: str, value: str | None, kind: str, where, missing_ok: bool = False) -> None:
    """``value`` (a path) exists (unless ``missing_ok``) and is a ``kind`` ("file" or "folder");
    None/"" pass. ``where(loc)`` names the source of the field in the error."""
    p = Path(value or "")
    if not value or (missing_ok and not p.exists()):
        return
    found = "does not exist" if not p.exists() else f"is a {'folder' if p.is_dir() else 'file'}"
    if not p.exists() or (kind == "file") != p.is_file():
        raise Vega3DError(f"{where(tuple(field.split('.')))}: {field}: {p} {found}, expected a {kind}")


def check_common_paths(config: TrainConfig, where) -> None:
    """The generic sections' paths: the simulator folder, and an output folder that is not a file."""
    if config.simulator is not None:
        check_path("simulator.path", config.simulator.path, "folder", where)
    check_path("train.output_dir", config.train.output_dir, "folder", where, missing_ok=True)


# -- the feature store against the simulator section -----------------------------------------
SIMULATOR_KEYS = ("timestep", "shift", "block", "height", "width", "seed")


def _describe_extraction(ext: dict) -> str:
    model = ext.get("model") if isinstance(ext.get("model"), dict) else {}
    items = [f"{k}={ext[k]}" for k in SIMULATOR_KEYS if k in ext]
    items += [f"mode={ext.get('mode', 'frame')}", f"dtype={ext.get('dtype')}"]
    if model.get("path"):
        items.append(f"model={model['path']}")
    if model.get("weights_hash"):
        items.append(f"weights {str(model['weights_hash'])[:12]}")
    if ext.get("stand_in"):
        items.append("STAND-IN weights")
    return ", ".join(items)


def _store_differences(ext: dict, spec: SimulatorSpec) -> list[str]:
    """How a store's extraction config differs from the ``simulator`` section."""
    from vega3d.files import fingerprint
    from vega3d.simulator.layouts import detect_layout, weight_files

    diffs = [
        f"{key}: store {ext.get(key)} vs simulator section {getattr(spec, key)}"
        for key in SIMULATOR_KEYS
        if ext.get(key) is None or float(ext[key]) != float(getattr(spec, key))
    ]
    if ext.get("mode", "frame") != "frame":
        diffs.append(f"mode: store {ext.get('mode')!r} vs simulator section 'frame' (online features are per frame)")
    stored_hash = (ext.get("model") or {}).get("weights_hash") if isinstance(ext.get("model"), dict) else None
    if stored_hash:
        root = Path(spec.path).expanduser()
        given_hash = fingerprint(root, weight_files(root, detect_layout(root)))  # the store's weights_hash
        if given_hash != stored_hash:
            diffs.append(
                f"model.weights_hash: store {stored_hash[:12]}… vs simulator section {given_hash[:12]}… ({spec.path})"
            )
    return diffs


def check_feature_store(config: TrainConfig) -> str | None:
    """With ``data.feature_store``: compare the store's extraction config with the
    ``simulator`` section when both are given (timestep, shift, block, height, width, seed,
    frame mode and the Wan weights hash; the compute dtype is a run choice, as for
    checkpoints) and raise listing the differing fields. Returns a line saying which simulator
    config the features come from (None without a store)."""
    store_path = getattr(config.data, "feature_store", None)
    if not store_path:
        return None
    from vega3d.store import FeatureStore

    ext = FeatureStore(store_path).extraction_config
    line = f"simulator: features from data.feature_store {store_path}, extracted with {_describe_extraction(ext)}"
    if config.simulator is None:
        return line + " (no 'simulator' section to compare with)"
    diffs = _store_differences(ext, config.simulator)
    if diffs:
        raise Vega3DError(
            f"data.feature_store {store_path} was extracted with another simulator config than the "
            f"'simulator' section ({'; '.join(diffs)}); use a store extracted with these settings, or drop the "
            "'simulator' section to train on the store as it was extracted"
        )
    return line + " (matches the 'simulator' section)"


#: Train-section fields a resumed run must keep (with their defaults, for records made before them):
#: they shape the optimizer's parameter groups, which the saved optimizer state must match.
RESUME_FIXED_TRAIN = {"decay_norms_and_biases": True}


def config_differences(old: dict, new: dict) -> list[str]:
    """The ``section.key`` fields of the family, model, data and simulator sections in which two
    recorded training configs (``train_config.json``) differ, and :data:`RESUME_FIXED_TRAIN`'s;
    the rest of the train section is free (a resumed run may change e.g. max_steps). A record
    without ``family`` is a qwen25vl run."""
    old, new = {"family": DEFAULT_FAMILY, **old}, {"family": DEFAULT_FAMILY, **new}
    if old["family"] != new["family"]:
        return ["family"]
    train = [old.get("train") or {}, new.get("train") or {}]
    return [
        f"{sec}.{k}"
        for sec in ("model", "data", "simulator")
        for k in sorted(set(old.get(sec) or {}) | set(new.get(sec) or {}))
        if (old.get(sec) or {}).get(k) != (new.get(sec) or {}).get(k)
    ] + [
        f"train.{k}"
        for k, default in RESUME_FIXED_TRAIN.items()
        if train[0].get(k, default) != train[1].get(k, default)
    ]
