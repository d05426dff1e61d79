"""Small VEGA-3D checkpoints: a reference to the base model + only the trainable tensors.

A checkpoint folder holds

- ``vega3d_config.json``: ``{"format": "vega3d-qwen2.5-vl/1", "config": Vega3DConfig,
  "trainable": [parameter names]}``. The config names the base model folder and its
  fingerprint, and records the simulator's config (its identity, incl. weights hash).
- ``trainable.safetensors``: exactly the parameters that were trainable — projector,
  fusion, and LoRA adapters or the full LLM / vision tower when those were trained.

Never the frozen base weights, never the simulator (it is not part of the model).
Loading rebuilds the base from its folder, checks the fingerprint, recreates the branch
and LoRA layers from the config and copies the tensors in: bit-exact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.mllm.config import Vega3DConfig, check_qwen_folder, fingerprint_folder

FORMAT = "vega3d-qwen2.5-vl/1"
CONFIG_FILE = "vega3d_config.json"
WEIGHTS_FILE = "trainable.safetensors"


def simulator_identity(config: dict) -> dict:
    """What determines a simulator's features: its config without file locations
    (``model.path``, ``prompt.file``) and the compute dtypes (DiT and VAE): precision is a run
    choice, like the device; a rebuilt simulator uses the recorded dtypes unless told otherwise."""
    ident = json.loads(json.dumps(config))
    ident.pop("dtype", None)
    ident.pop("vae_dtype", None)
    ident.pop("device", None)
    if isinstance(ident.get("model"), dict):
        ident["model"].pop("path", None)
    if isinstance(ident.get("prompt"), dict):
        ident["prompt"].pop("file", None)
    return ident


def save_checkpoint(model, directory, state_dict: dict | None = None) -> Path:
    """Write ``model``'s config and trainable tensors to ``directory`` (created).

    ``state_dict``: a full state dict to take the tensors from (e.g.
    ``accelerator.get_state_dict(model)`` under ZeRO-3/FSDP); default: the model's own.
    Files are written under temporary names and renamed, so a crash never leaves a
    half-written checkpoint that looks complete."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = model.trainable_names()
    source = state_dict if state_dict is not None else dict(model.named_parameters())
    missing = [n for n in names if n not in source]
    if missing:
        raise Vega3DError(f"save_pretrained: state dict lacks trainable parameters {missing[:5]}")
    tensors = {n: source[n].detach().to("cpu").clone().contiguous() for n in names}
    meta = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "trainable": names,
        "stand_in": bool(getattr(model, "stand_in", False)),
    }
    tmp_w, tmp_c = directory / (WEIGHTS_FILE + ".tmp"), directory / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"format": FORMAT})
    tmp_c.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp_w, directory / WEIGHTS_FILE)
    os.replace(tmp_c, directory / CONFIG_FILE)
    return directory


def read_checkpoint_config(directory) -> Vega3DConfig:
    """The :class:`Vega3DConfig` stored in a checkpoint folder."""
    return Vega3DConfig.from_dict(read_checkpoint_meta(directory)["config"], where=str(Path(directory) / CONFIG_FILE))


def read_checkpoint_stand_in(directory) -> bool:
    """The checkpoint's top-level ``stand_in`` flag: True when it was trained with a stand-in
    base, simulator or stand-in features (False for checkpoints written before the flag)."""
    return bool(read_checkpoint_meta(directory).get("stand_in", False))


def read_checkpoint_meta(directory) -> dict:
    """The whole ``vega3d_config.json`` (format, config, trainable, stand_in), format-checked."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise Vega3DError(f"{directory}: not a vega3d checkpoint (no {CONFIG_FILE})")
    meta = read_json(path, "vega3d checkpoint config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise Vega3DError(
            f"{path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}"
        )
    if not isinstance(meta.get("config"), dict):
        raise Vega3DError(f"{path}: lacks the 'config' mapping")
    return meta


def _flatten(value, prefix: str = "") -> dict:
    """Nested dicts as ``{"a.b": leaf}``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


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


def load_checkpoint(
    directory,
    base=None,
    simulator=None,
    dtype="float32",
    device="cpu",
    check_base: bool = True,
    check_sim: bool = True,
):
    """Rebuild a :class:`~vega3d.mllm.model.Vega3DQwen` from ``directory``.

    ``base``: None (the folder recorded in the config), another folder path (the same model
    moved elsewhere; its fingerprint must match unless ``check_base=False``), or a loaded
    ``Qwen2_5_VLForConditionalGeneration``. ``simulator``: attached for online features
    (must match the recorded simulator config unless ``check_sim=False``)."""
    from safetensors.torch import load_file

    from vega3d.mllm.model import Vega3DQwen, load_base

    directory = Path(directory)
    config = read_checkpoint_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise Vega3DError(f"{directory}: missing {WEIGHTS_FILE}")
    if base is None or isinstance(base, (str, os.PathLike)):
        base_path = Path(base) if base is not None else Path(config.base_model)
        check_qwen_folder(base_path, "base model" if base is not None else f"base model (recorded in {directory})")
        if check_base and config.base_fingerprint:
            found = fingerprint_folder(base_path)
            if found != config.base_fingerprint:
                raise Vega3DError(
                    f"{directory}: base model {base_path} has fingerprint {found[:12]}…, the checkpoint was "
                    f"trained on {config.base_fingerprint[:12]}… (to use it anyway: vega3d ask --no-check-base, or check_base=False in Python)"
                )
        base = load_base(base_path, dtype=dtype, device="cpu")
    if check_sim:
        check_simulator(config.simulator, simulator, str(directory))
    model = Vega3DQwen(base, config)
    tensors = load_file(str(weights))
    expected = set(model.trainable_names())
    if set(tensors) != expected:
        extra, lacking = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        raise Vega3DError(
            f"{weights}: tensors do not match the trainable parameters of its config "
            f"(unexpected {extra[:5]}, missing {lacking[:5]})"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            if params[name].shape != value.shape:
                raise Vega3DError(
                    f"{weights}: {name} has shape {tuple(value.shape)}, model expects {tuple(params[name].shape)}"
                )
            params[name].copy_(value.to(params[name].dtype))
    model = model.to(device).eval()
    model.recorded_stand_in = read_checkpoint_stand_in(directory)
    model.attach_simulator(simulator)
    return model
