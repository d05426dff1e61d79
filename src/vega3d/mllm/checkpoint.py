"""The VEGA-3D checkpoint format: a reference to the base model + only the trainable tensors.

A checkpoint folder holds

- ``vega3d_config.json``: ``{"format": "vega3d-qwen2.5-vl/1", "config": Vega3DConfig,
  "trainable": [parameter names], "stand_in": bool}``. The config names the base model folder
  and its fingerprint, and records the simulator's config (its identity, incl. weights hash).
- ``trainable.safetensors``: exactly the parameters that were trainable — projector,
  fusion, and LoRA adapters or the full LLM / vision tower when those were trained.

Never the frozen base weights, never the simulator (it is not part of the model). This
module reads and writes the files and checks what a checkpoint records against what is
given (base fingerprint, simulator); :meth:`vega3d.mllm.model.Vega3DQwen.save_pretrained` /
``from_pretrained`` build on it (this module does not import the model).

Base fingerprints: checkpoints record :func:`~vega3d.mllm.config.base_fingerprint`.
Checkpoints written before it recorded :func:`~vega3d.mllm.config.legacy_base_fingerprint`;
a base folder matching either definition is accepted, so they load as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vega3d.config import parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json
from vega3d.mllm.config import Vega3DConfig, base_fingerprint, legacy_base_fingerprint

FORMAT = "vega3d-qwen2.5-vl/1"
CONFIG_FILE = "vega3d_config.json"
WEIGHTS_FILE = "trainable.safetensors"


def write_checkpoint(directory, config: Vega3DConfig, tensors: dict, stand_in: bool, fmt: str = FORMAT) -> Path:
    """Write ``tensors`` (the trainable parameters by name) and ``config`` to ``directory``
    (created). Each file is written under a temporary name and renamed, the config last, so a
    crash never leaves a half-written checkpoint that looks complete. ``fmt``: the format tag of
    the model family (another family passes its own config and tag, e.g. ``vega3d-video3d-llm/1``)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": fmt})
    os.replace(tmp, directory / WEIGHTS_FILE)
    meta = {"format": fmt, "config": config.to_dict(), "trainable": list(tensors), "stand_in": bool(stand_in)}
    write_json(directory / CONFIG_FILE, meta, sort_keys=True)
    return directory


def read_checkpoint_meta(directory, fmt: str = FORMAT) -> dict:
    """The whole ``vega3d_config.json`` (format, config, trainable, stand_in), checked to be of
    format ``fmt`` (the model family's tag)."""
    from vega3d.mllm.release import is_release_config

    path = Path(directory) / CONFIG_FILE
    what = f"{directory}: not a vega3d checkpoint"
    if not path.is_file() and is_release_config(directory):  # read_json's "does not exist" comes after this
        what = (
            f"{directory} is the released VEGA-3D model, not a vega3d checkpoint: convert it once with "
            f"`vega3d convert-release {directory} --wan WAN2.1_FOLDER --out CHECKPOINT` and load CHECKPOINT"
        )
    meta = read_json(path, what)
    found = meta.get("format") if isinstance(meta, dict) else None
    weights = (Path(directory) / WEIGHTS_FILE).is_file()
    if found != fmt or not isinstance(meta.get("config"), dict) or not weights:
        raise Vega3DError(
            f"{path}: format {found!r}{'' if weights else f', no {WEIGHTS_FILE} beside it'}; expected {fmt!r} "
            f"with a 'config' mapping and {WEIGHTS_FILE}"
        )
    return meta


def checkpoint_format(directory) -> str | None:
    """The format tag of a checkpoint folder (which model family wrote it), or None when it has
    no readable ``vega3d_config.json``."""
    import json

    try:
        meta = json.loads((Path(directory) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("format") if isinstance(meta, dict) else None


def meta_config(meta: dict, directory, config_class=Vega3DConfig):
    """The model config (a :class:`Vega3DConfig`, or ``config_class`` of another family) of a
    checkpoint's meta (:func:`read_checkpoint_meta`)."""
    return parse(config_class, meta["config"], str(Path(directory) / CONFIG_FILE), "config")


def read_checkpoint_config(directory) -> Vega3DConfig:
    """The :class:`Vega3DConfig` stored in a checkpoint folder."""
    return meta_config(read_checkpoint_meta(directory), directory)


def read_checkpoint_stand_in(directory) -> bool:
    """The checkpoint's top-level ``stand_in`` flag: True when it was trained with a stand-in
    base, simulator or stand-in features (False for checkpoints written before the flag)."""
    return bool(read_checkpoint_meta(directory).get("stand_in", False))


def read_trainable(directory) -> dict[str, torch.Tensor]:
    """The tensors of ``trainable.safetensors`` (of a checkpoint :func:`read_checkpoint_meta` accepted)."""
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / WEIGHTS_FILE))


def copy_trainable(model, tensors: dict, source) -> None:
    """Copy ``tensors`` (read from the file ``source``) into ``model``'s trainable parameters;
    the names and shapes must match."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    _copy_exactly(params, tensors, f"{source}: tensors do not match the trainable parameters of its config")


def _copy_exactly(params: dict, tensors: dict, mismatch: str) -> None:
    """Copy ``tensors`` into ``params`` (name -> parameter) when both have the same names and
    shapes; else one error, ``mismatch`` followed by what differs."""
    wrong = sorted(n for n in set(tensors) & set(params) if tensors[n].shape != params[n].shape)
    if set(tensors) != set(params) or wrong:
        extra, lacking = sorted(set(tensors) - set(params)), sorted(set(params) - set(tensors))
        shapes = [f"{n} {tuple(tensors[n].shape)} vs {tuple(params[n].shape)}" for n in wrong[:3]]
        raise Vega3DError(f"{mismatch} (unexpected {extra[:5]}, missing {lacking[:5]}, other shape {shapes})")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].dtype))


#: The parameters of the generative branch in a checkpoint (what ``model.branch_init`` copies).
BRANCH_PREFIXES = ("projector.", "fusion.")


def read_branch(directory, config: Vega3DConfig) -> dict[str, torch.Tensor]:
    """The projector and fusion tensors of the checkpoint ``directory``, for a model built from
    ``config`` (``model.branch_init``): its projector, fusion and generative width must be the
    config's. Checked before any model is built."""
    where = f"model.branch_init {directory}"
    if not config.generative:
        raise Vega3DError(f"{where}: the generative branch is off (model.generative: false), nothing to initialise")
    source = read_checkpoint_config(directory)
    fields = ("projector", "fusion", "generative_dim")
    diff = [f"{f}: {getattr(source, f)!r} there, {getattr(config, f)!r} here" for f in fields
            if getattr(source, f) != getattr(config, f)]  # fmt: skip
    if diff:
        raise Vega3DError(f"{where}: its branch is not this config's ({'; '.join(diff)})")
    tensors = {k: v for k, v in read_trainable(directory).items() if k.startswith(BRANCH_PREFIXES)}
    lacking = [p for p in BRANCH_PREFIXES if not any(k.startswith(p) for k in tensors)]
    if lacking:
        raise Vega3DError(f"{where}: {WEIGHTS_FILE} holds no {' / '.join(lacking)} tensors (were they trained?)")
    return tensors


def copy_branch(model, tensors: dict, source) -> None:
    """Copy :func:`read_branch`'s tensors into ``model``'s projector and fusion (names and shapes
    must be exactly theirs)."""
    params = {n: p for n, p in model.named_parameters() if n.startswith(BRANCH_PREFIXES)}
    what = "its branch tensors do not match this model's projector and fusion"
    _copy_exactly(params, tensors, f"model.branch_init {source}: {what}")


def check_base_fingerprint(recorded: str, base_path: Path, directory) -> None:
    """Raise unless the base folder matches the fingerprint the checkpoint recorded (either
    definition; nothing recorded: nothing to check)."""
    found = base_fingerprint(base_path) if recorded else ""
    if found == recorded or legacy_base_fingerprint(base_path) == recorded:
        return
    raise Vega3DError(
        f"{directory}: base model {base_path} has fingerprint {found[:12]}…, the checkpoint "
        f"was trained on {recorded[:12]}… (to use it anyway: vega3d ask --no-check-base, or check_base=False in Python)"
    )


def simulator_identity(config: dict) -> dict:
    """What determines a simulator's features: its config without file locations
    (``model.path``, ``prompt.file``), the compute dtypes (DiT and VAE) and the last-bit settings
    (``batch_frames``, ``deterministic``: GPU rounding; absent from records made before them):
    like the device, run choices; a rebuilt simulator uses the recorded ones unless told otherwise."""
    ident = json.loads(json.dumps(config))
    for key in ("dtype", "vae_dtype", "device", "batch_frames", "deterministic"):
        ident.pop(key, None)
    if isinstance(ident.get("model"), dict):
        ident["model"].pop("path", None)
    if isinstance(ident.get("prompt"), dict):
        ident["prompt"].pop("file", None)
    return ident


def _flatten(value, prefix: str = "") -> dict:
    """Nested dicts as ``{"a.b": leaf}``."""
    if not isinstance(value, dict):
        return {prefix[:-1]: value}
    return {k: v for key, sub in value.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}


def _short(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:24] + "…"


def simulator_differences(recorded: dict, given: dict) -> list[str]:
    """Readable differences of two simulator configs' identities, one per differing leaf
    field: ``"block: checkpoint 1 vs given 3"`` (long values such as hashes shortened)."""
    a, b = _flatten(simulator_identity(recorded)), _flatten(simulator_identity(given))
    return [
        f"{k}: checkpoint {_short(a.get(k, '(absent)'))} vs given {_short(b.get(k, '(absent)'))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def check_simulator(recorded: dict | None, simulator, where: str) -> None:
    """Raise unless ``simulator``'s config matches the one recorded in a checkpoint; the
    message lists every differing field."""
    if recorded is None or simulator is None:
        return
    diff = simulator_differences(recorded, simulator.config.to_dict())
    if diff:
        raise Vega3DError(
            f"{where}: the simulator differs from the one this model was trained with "
            f"({len(diff)} field(s): {'; '.join(diff)})"
        )
