"""The released OpenVLA-OFT weights <-> :class:`~vega3d.policy.model.OpenVLAOFT`, strictly.

Released layout (what the files hold) and the module names here:

| file | released keys | model keys |
|---|---|---|
| ``model*.safetensors`` | ``vision_backbone.featurizer.*`` (timm DINOv2, ``ls*.scale_factor``) | ``vision_backbone.featurizer.*`` (transformers; :mod:`vega3d.policy.vision` maps) |
| | ``vision_backbone.fused_featurizer.*`` (timm SigLIP) | ``vision_backbone.fused_featurizer.*`` |
| | ``projector.fc{1,2,3}.*`` | same |
| | ``language_model.model.*``, ``language_model.lm_head.weight`` | same (stock ``LlamaForCausalLM``) |
| ``action_head--*_checkpoint.pt`` | ``[module.]model.*`` (DDP prefix optional) | ``action_head.model.*`` |
| ``proprio_projector--*_checkpoint.pt`` | ``[module.]fc{1,2}.*`` | ``proprio_projector.fc{1,2}.*`` |

The ``.pt`` files are read with ``torch.load(weights_only=True)``. Every key must match: a
tensor the model lacks, a parameter no file provides or a shape that differs is one
:class:`~vega3d.Vega3DError` naming the file and the key. :func:`load_released` builds the
model on the meta device and assigns the file tensors (cast to the requested dtype), so a 7B
model is never initialised at random first; buffers (RoPE frequencies) are built for real.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_state_dict
from vega3d.policy.vision import hf_to_timm, timm_to_hf

TOWERS = ("featurizer", "fused_featurizer")
#: Model prefix of each ``.pt`` component file.
COMPONENTS = ("action_head", "proprio_projector")


def released_to_model(vla: dict, towers: tuple) -> dict:
    """The VLA safetensors' tensors (released keys) -> model keys."""
    out, rest = {}, dict(vla)
    for name, spec in zip(TOWERS, towers):
        prefix = f"vision_backbone.{name}."
        part = {k[len(prefix) :]: rest.pop(k) for k in list(rest) if k.startswith(prefix)}
        out |= {prefix + k: v for k, v in timm_to_hf(part, spec).items()}
    return out | rest


def model_to_released(state: dict, towers: tuple) -> tuple[dict, dict, dict]:
    """A model state dict (no branch, no adapters) -> (VLA tensors, action head, proprio projector) in the released
    key layout (the ``.pt`` state dicts without the DDP prefix)."""
    rest = dict(state)
    components = {}
    for name in COMPONENTS:
        components[name] = {k[len(name) + 1 :]: rest.pop(k) for k in list(rest) if k.startswith(name + ".")}
    vla = {}
    for name, spec in zip(TOWERS, towers):
        prefix = f"vision_backbone.{name}."
        part = {k[len(prefix) :]: rest.pop(k) for k in list(rest) if k.startswith(prefix)}
        vla |= {prefix + k: v for k, v in hf_to_timm(part, spec).items()}
    return vla | rest, components["action_head"], components["proprio_projector"]


def read_vla(files) -> tuple[dict, dict]:
    """All tensors of the VLA safetensors files: (name -> tensor, name -> file)."""
    from safetensors import SafetensorError, safe_open

    tensors, origin = {}, {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    if k in tensors:
                        raise Vega3DError(f"{f}: tensor {k} is also in {origin[k]}; expected each tensor in one shard")
                    tensors[k], origin[k] = fh.get_tensor(k), Path(f)
        except (SafetensorError, OSError) as err:
            raise Vega3DError(f"{f}: cannot read the safetensors file ({err})") from None
    return tensors, origin


def read_component(path: Path) -> dict:
    """A ``.pt`` state dict (``torch.load(weights_only=True)``), the DDP ``module.`` prefix stripped."""
    return {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}


def _part(key: str) -> str:
    """The part of the model a key belongs to: ``vision_backbone.featurizer``, ``projector``, ``language_model``..."""
    head = key.split(".")
    return ".".join(head[:2]) if head[0] == "vision_backbone" else head[0]


def _check_keys(found: dict, expected: dict, source) -> None:
    """``found`` (model key -> tensor) must have exactly ``expected``'s keys (-> shape); ``source(key)`` names
    the file a key came from (or should have)."""
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    shaped = [k for k, shape in expected.items() if k in found and tuple(found[k].shape) != tuple(shape)]
    if missing or extra or shaped:
        problems = [f"{source(k)}: missing tensor {k} ({len(missing)} missing in all)" for k in missing[:1]]
        problems += [f"{source(k)}: unexpected tensor {k} ({len(extra)} unexpected in all)" for k in extra[:1]]
        problems += [f"{source(k)}: tensor {k} has shape {tuple(found[k].shape)}; the config gives "
                     f"{tuple(expected[k])}" for k in shaped[:1]]  # fmt: skip
        raise Vega3DError("; ".join(problems))


def released_state(folder, model) -> dict:
    """Every base parameter of ``model`` from ``folder``'s files (model keys), strictly checked (module docstring)."""
    expected = {
        k: v.shape for k, v in model.state_dict().items() if not k.startswith(("branch.",)) and "lora_" not in k
    }
    vla, origin = read_vla(folder.weight_files)
    state = released_to_model(vla, folder.towers)

    part_file = {}  # "vision_backbone.featurizer", "projector", ... -> a file holding that part
    for k, f in origin.items():
        part_file.setdefault(_part(k), f)

    def vla_source(key: str) -> str:
        names = ", ".join(sorted({f.name for f in folder.weight_files}))
        return str(origin.get(key) or part_file.get(_part(key)) or f"{folder.path} ({names})")

    files = {"action_head": folder.action_head_file, "proprio_projector": folder.proprio_file}
    for name, path in files.items():
        state |= {f"{name}.{k}": v for k, v in read_component(path).items()}

    def source(key: str) -> str:
        head = key.split(".")[0]
        return str(files[head]) if head in files else vla_source(key)

    _check_keys(state, expected, source)
    return state


def load_released(folder, arch, dtype=torch.float32, device="cpu"):
    """:class:`~vega3d.policy.model.OpenVLAOFT` with ``folder``'s weights (branch, if any, freshly initialised)."""
    from accelerate import init_empty_weights

    from vega3d.policy.model import OpenVLAOFT

    with init_empty_weights(include_buffers=False):
        model = OpenVLAOFT(arch)
    state = {k: v.to(dtype) for k, v in released_state(folder, model).items()}
    result = model.load_state_dict(state, strict=False, assign=True)
    assert not result.unexpected_keys and all(k.startswith("branch.") for k in result.missing_keys), result
    if model.branch is not None:
        model.branch = model.new_branch().to(dtype)
    return model.to(device).eval()
