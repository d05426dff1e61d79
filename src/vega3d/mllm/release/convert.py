"""``vega3d convert-release``: the released folder → a vega3d checkpoint + a Wan folder for its simulator.

The release cannot be loaded as it is: its branch has the release's module names, its DiT sits
inside the model in Wan's original key names, and the VAE and the empty-prompt context are not
in it. :func:`convert_release` writes, once, into ``OUT``:

- ``OUT/wan/`` — a Wan2.1 folder in the diffusers layout that
  :class:`vega3d.simulator.WanWorldSimulator` loads: ``transformer/`` = the release's own DiT
  (``dit="release"``, the default: what was trained and evaluated) or the ``--wan`` folder's
  (``dit="wan"``), ``vae/`` from the ``--wan`` folder, ``prompt_embedding.safetensors`` from
  ``prompt_embedding=`` (a vega3d file, or the release's ``wan_prompt_embedding.pt``), else the
  ``--wan`` folder's file, else its text encoder;
- ``OUT/vega3d_config.json`` + ``OUT/trainable.safetensors`` — a normal vega3d checkpoint whose
  base model is the release folder itself (its Qwen2.5-VL weights load with transformers' legacy
  renaming; the extra modules are skipped), projector ``merger_mlp`` and fusion ``residual_gated``
  holding the release's tensors, ``generative_interpolation: bilinear``, and the simulator of
  ``OUT/wan`` at the release's tower settings (:data:`RELEASE_TOWER`, block = the last) recorded.
  ``config.origin`` records the release, the DiT used and the inspect verdict;
- ``OUT/release_inspect.json`` — :func:`vega3d.mllm.release.inspect.inspect_release`'s report.

Every check runs before anything is written (keys named with their shard, shapes, the Wan
folder, the prompt); a failure while writing removes ``OUT``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_torch_file
from vega3d.mllm.release.folder import (
    DIT_PREFIX,
    FUSION_NAMES,
    FUSION_PREFIX,
    MERGER_PREFIX,
    ReleaseFolder,
    open_release,
    read_tensors,
)

#: The released tower's settings (SR ``wan_vace_encoder.py`` class defaults): 832x480, timestep 300 with
#: shift 5, bf16; ``block`` is the DiT's last (``feat_block_idx = -1``: block 29 of Wan2.1-1.3B's 30).
RELEASE_TOWER = {"timestep": 300, "shift": 5.0, "height": 480, "width": 832, "seed": 0, "dtype": "bfloat16"}
#: The merger keys that fix its widths.
_MERGER_SHAPE_KEYS = ("ln_q.weight", "mlp.0.weight", "mlp.2.weight")


# ----------------------------------------------------------------------------- the branch


def _expect_keys(folder: ReleaseFolder, present: dict, expected: dict, what: str, needs: str = "") -> None:
    """``present`` (name → (the folder's key, shape)) must be exactly ``expected`` (name → shape): a
    missing name, an unexpected key (named with its shard) or another shape is one line naming
    ``what`` (``needs``: what fixes the shapes, default ``what``)."""
    missing = sorted(set(expected) - set(present))
    if missing:
        raise Vega3DError(f"{folder.root}: missing {missing[0]} ({len(missing)} key(s) of {what} absent)")
    extra = sorted(set(present) - set(expected))
    if extra:
        key = present[extra[0]][0]
        raise Vega3DError(f"{folder.where(key)}: unexpected {key} (not a tensor of {what})")
    for name, (key, shape) in sorted(present.items()):
        if tuple(shape) != tuple(expected[name]):
            raise Vega3DError(
                f"{folder.where(key)}: {key} has shape {tuple(shape)}, {needs or what} needs {tuple(expected[name])}"
            )


def release_branch(folder: ReleaseFolder):
    """``(projector, fusion, options)``: a :class:`vega3d.fusion.WindowMergerMLP` and a
    :class:`vega3d.fusion.ResidualGatedFusion` built at the release's widths, holding its
    ``generative_merger.*`` / ``generative_fusion.*`` tensors (loaded strictly: a missing or extra
    key is an error naming it and its shard), and the :class:`Vega3DConfig` fields they stand for."""
    from vega3d.fusion import build_fusion, build_projector

    merger = folder.part(MERGER_PREFIX)
    lacking = [MERGER_PREFIX + k for k in _MERGER_SHAPE_KEYS if k not in merger]
    if lacking:
        raise Vega3DError(f"{folder.root}: missing {lacking[0]} (the released merger, generative_merger_type 'mlp')")
    dim = merger["ln_q.weight"].shape[0]
    hidden, window_dim = merger["mlp.0.weight"].shape
    out_dim = merger["mlp.2.weight"].shape[0]
    merge = math.isqrt(window_dim // dim) if window_dim % dim == 0 else 0
    llm = folder.config.get("hidden_size", (folder.config.get("text_config") or {}).get("hidden_size"))
    if merge * merge * dim != window_dim or out_dim != llm:
        raise Vega3DError(
            f"{folder.where(MERGER_PREFIX + 'mlp.0.weight')}: merger widths ln_q {dim}, mlp.0 {window_dim}→{hidden}, "
            f"mlp.2 →{out_dim} do not make a square patch window merged to the LLM width {llm}"
        )
    options = {"hidden": int(hidden), "merge_size": merge}
    projector = build_projector("merger_mlp", dim, out_dim, init_std=None, **options)
    fusion = build_fusion("residual_gated", out_dim)
    ours = {v: k for k, v in FUSION_NAMES.items()}
    expected = {MERGER_PREFIX + k: v.shape for k, v in projector.state_dict().items()}
    expected |= {FUSION_PREFIX + ours[k]: v.shape for k, v in fusion.state_dict().items()}
    present = {k: (k, v.shape) for k, v in folder.tensors.items() if k.startswith((MERGER_PREFIX, FUSION_PREFIX))}
    _expect_keys(folder, present, expected, "the released merger (mlp) and fusion (token_gated_residual)")
    tensors = dict(read_tensors(folder, sorted(expected)))
    with torch.no_grad():
        projector.load_state_dict({k[len(MERGER_PREFIX) :]: v for k, v in tensors.items() if k in expected
                                   and k.startswith(MERGER_PREFIX)}, strict=True)  # fmt: skip
        fusion.load_state_dict(
            {FUSION_NAMES[k[len(FUSION_PREFIX) :]]: v for k, v in tensors.items() if k.startswith(FUSION_PREFIX)},
            strict=True,
        )
    fields = {"projector": "merger_mlp", "projector_kwargs": options, "fusion": "residual_gated",
              "generative_dim": int(dim), "generative_interpolation": "bilinear"}  # fmt: skip
    return projector, fusion, fields


# ----------------------------------------------------------------------------- the DiT


def check_release_dit(folder: ReleaseFolder, dit_config: dict) -> None:
    """The release's DiT (renamed by diffusers' converter) must be exactly a
    ``WanTransformer3DModel(dit_config)``: every key, every shape (from headers, nothing read)."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    from vega3d.mllm.release.inspect import to_diffusers_key

    dit = folder.part(DIT_PREFIX)
    if not dit:
        raise Vega3DError(f"{folder.root}: no {DIT_PREFIX}* tensors: the release's DiT is missing (use --dit wan)")
    with init_empty_weights():
        model = WanTransformer3DModel.from_config(dit_config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    present = {to_diffusers_key(k): (DIT_PREFIX + k, v.shape) for k, v in dit.items()}
    _expect_keys(folder, present, expected, "the Wan2.1 DiT (diffusers names)", "the --wan folder's DiT config")


def _write_release_dit(folder: ReleaseFolder, dit_config: dict, out: Path) -> None:
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from vega3d.simulator.convert import load_converted

    keys = sorted(k for k in folder.tensors if k.startswith(DIT_PREFIX))
    tensors = {k[len(DIT_PREFIX) :]: v for k, v in read_tensors(folder, keys)}
    converted = convert_wan_transformer_to_diffusers(tensors)
    model = load_converted(lambda: WanTransformer3DModel.from_config(dit_config), converted, folder.root, "the DiT")
    model.save_pretrained(out)


def _write_wan_part(wan, part: str, out: Path) -> None:
    """``transformer`` or ``vae`` of the ``--wan`` folder into ``out`` (diffusers layout: the files
    copied; original layout: converted by vega3d's loader and saved)."""
    from vega3d.simulator.convert import ORIGINAL_VAE, load_original_transformer, load_original_vae

    if wan.layout == "diffusers":
        shutil.copytree(wan.root / part, out)
        return
    module = load_original_transformer(wan.root, wan.dit_config) if part == "transformer" else None
    module = module if module is not None else load_original_vae(wan.root / ORIGINAL_VAE)
    module.save_pretrained(out)


# ----------------------------------------------------------------------------- the prompt


def resolve_prompt(wan, given=None) -> tuple[torch.Tensor, str]:
    """``(context (k or 512, text_dim), source)``: ``given`` (a vega3d prompt file, or the release's
    ``wan_prompt_embedding.pt``: a tensor or a dict with ``context``/``embedding``), else the
    ``--wan`` folder's prompt file, else its text encoder (computed now)."""
    from vega3d.simulator.layouts import has_text_encoder, load_text_encoder
    from vega3d.simulator.prompt import PROMPT_FILE, encode_prompt, load_prompt_embedding

    dims = (wan.text_dim, wan.text_len)
    if given is not None and Path(given).suffix in (".pt", ".pth"):
        return _release_prompt(Path(given), *dims), f"file {Path(given).resolve()}"
    if given is not None or (wan.root / PROMPT_FILE).is_file():
        path = Path(given) if given is not None else wan.root / PROMPT_FILE
        return load_prompt_embedding(path, *dims), f"file {path.resolve()}"
    if not has_text_encoder(wan.root, wan.layout):
        raise Vega3DError(
            f"--wan {wan.root}: no empty-prompt context: give --prompt-embedding FILE (the release's "
            "wan_prompt_embedding.pt, or a file from vega3d export-prompt), or a Wan folder with "
            f"{PROMPT_FILE} or its text encoder"
        )
    encoder, tokenizer, _ = load_text_encoder(wan)
    return encode_prompt(encoder, tokenizer, "", wan.text_len), f"text encoder of {wan.root.resolve()}"


def _release_prompt(path: Path, text_dim: int, text_len: int) -> torch.Tensor:
    """The release's ``wan_prompt_embedding.pt`` (read weights-only) as a padded context."""
    from vega3d.simulator.prompt import load_prompt_embedding

    value = read_torch_file(path)
    if isinstance(value, dict):
        value = value.get("context", value.get("embedding"))
    if isinstance(value, torch.Tensor) and value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise Vega3DError(
            f"{path}: expected a tensor (or a dict with 'context' or 'embedding'): the empty-prompt context"
        )
    try:
        return load_prompt_embedding(value, text_dim, text_len)
    except Vega3DError as err:
        raise Vega3DError(f"{path}: {err}") from None


# ----------------------------------------------------------------------------- everything


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Vega3DError(f"--out {out}: exists and is not an empty folder; give a new folder")


@dataclass
class _Plan:
    """Everything :func:`convert_release` writes, checked and read before anything is written."""

    folder: ReleaseFolder
    wan: object  # vega3d.simulator.layouts.WanFolder
    dit: str
    projector: torch.nn.Module
    fusion: torch.nn.Module
    fields: dict  # the branch's Vega3DConfig fields (release_branch)
    tower: dict  # WanWorldSimulator.from_pretrained options
    context: torch.Tensor
    prompt_source: str
    report: dict  # inspect_release's
    stand_in: bool


def _plan(src, wan, dit: str, prompt_embedding, tower: dict | None) -> _Plan:
    """Every check of :func:`convert_release` (one-line errors), the branch and prompt read."""
    from vega3d.mllm.release.inspect import inspect_release
    from vega3d.simulator.layouts import open_wan_folder
    from vega3d.standin import is_stand_in

    if dit not in ("release", "wan"):
        raise Vega3DError(f"--dit: {dit!r}; expected 'release' (the release's own DiT) or 'wan' (the --wan folder's)")
    folder, wan_folder = open_release(src), open_wan_folder(wan)
    projector, fusion, fields = release_branch(folder)
    if dit == "release":
        check_release_dit(folder, wan_folder.dit_config)
    width = int(wan_folder.dit_config["num_attention_heads"]) * int(wan_folder.dit_config["attention_head_dim"])
    if width != fields["generative_dim"]:
        raise Vega3DError(
            f"--wan {wan_folder.root}: its DiT is {width} wide, the release's merger takes {fields['generative_dim']}"
        )
    context, source = resolve_prompt(wan_folder, prompt_embedding)
    options = {**RELEASE_TOWER, "block": wan_folder.num_layers - 1, **(tower or {})}
    report = inspect_release(folder.root, wan=wan_folder.root)
    stand_in = is_stand_in(folder.root) or is_stand_in(wan_folder.root)
    return _Plan(folder, wan_folder, dit, projector, fusion, fields, options, context, source, report, stand_in)


def _write_wan_folder(plan: _Plan, dst: Path) -> None:
    """``dst``: a diffusers-layout Wan folder with the chosen DiT, --wan's VAE and the prompt."""
    from vega3d.simulator.prompt import PROMPT_FILE, save_prompt_embedding
    from vega3d.standin import write_marker

    if plan.dit == "release":
        _write_release_dit(plan.folder, plan.wan.dit_config, dst / "transformer")
    else:
        _write_wan_part(plan.wan, "transformer", dst / "transformer")
    _write_wan_part(plan.wan, "vae", dst / "vae")
    save_prompt_embedding(plan.context, dst / PROMPT_FILE, metadata={"source": plan.prompt_source, "text": ""})
    if plan.stand_in:
        recipe = {"release": str(plan.folder.root), "wan": str(plan.wan.root), "dit": plan.dit}
        write_marker(dst, real="Wan2.1-T2V-1.3B", writer="vega3d.mllm.release.convert_release", recipe=recipe)


def _write_checkpoint(plan: _Plan, out: Path) -> None:
    """The vega3d checkpoint (config last) and the inspect report, with ``out/wan``'s simulator recorded."""
    from vega3d.files import write_json
    from vega3d.mllm.checkpoint import write_checkpoint
    from vega3d.mllm.config import Vega3DConfig, base_fingerprint
    from vega3d.simulator import WanWorldSimulator

    simulator = WanWorldSimulator.from_pretrained(out / "wan", **plan.tower)
    root = plan.folder.root.resolve()
    origin = {"release": str(root), "dit": plan.dit, "wan": str(plan.wan.root.resolve()), "prompt": plan.prompt_source,
              "dit_reinitialised": plan.report["dit_reinitialised"], "verdict": plan.report["verdict"]}  # fmt: skip
    config = Vega3DConfig(base_model=str(root), base_fingerprint=base_fingerprint(root), **plan.fields,
                          simulator=simulator.config.to_dict(), origin=origin,
                          preprocessing={"frames_as": "images"})  # fmt: skip  # the release's input: one image per frame
    write_json(out / "release_inspect.json", plan.report)
    tensors = {f"projector.{k}": v for k, v in plan.projector.state_dict().items()}
    tensors |= {f"fusion.{k}": v for k, v in plan.fusion.state_dict().items()}
    write_checkpoint(out, config, {k: v.contiguous() for k, v in tensors.items()}, stand_in=plan.stand_in)


def convert_release(src, out, wan, *, dit: str = "release", prompt_embedding=None, tower: dict | None = None) -> Path:
    """Convert the release folder ``src`` into ``out`` (see the module docstring); returns ``out``.

    ``wan``: a Wan2.1-T2V folder (either layout) — the VAE, the prompt context when
    ``prompt_embedding`` is None, the DiT config, and the DiT itself with ``dit="wan"``.
    ``tower``: overrides of :data:`RELEASE_TOWER` (and ``block``), e.g. a smaller size for tests.
    Everything is checked before anything is written; a failure while writing removes what was written."""
    out = Path(out).expanduser()
    _check_out(out)
    plan = _plan(src, wan, dit, prompt_embedding, tower)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write_wan_folder(plan, out / "wan")
        _write_checkpoint(plan, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return out
