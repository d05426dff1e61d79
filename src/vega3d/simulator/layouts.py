"""Wan2.1 checkpoint folders: detect the layout, check it is complete, load the parts.

Two on-disk layouts of Wan2.1-T2V are supported (see ``docs/checkpoints.md``):

* ``"diffusers"`` — the Hugging Face diffusers export: ``transformer/`` and ``vae/``
  (``config.json`` + safetensors each), optionally ``text_encoder/`` + ``tokenizer/``.
* ``"original"`` — the Wan2.1 release as published by Wan-AI: ``config.json`` with
  ``_class_name: WanModel``, ``diffusion_pytorch_model*.safetensors`` (one file, or
  shards listed in ``diffusion_pytorch_model.safetensors.index.json``), ``Wan2.1_VAE.pth``,
  and optionally ``models_t5_umt5-xxl-enc-bf16.pth`` + ``google/umt5-xxl/`` (tokenizer);
  read by :mod:`vega3d.simulator.convert`.

:func:`open_wan_folder` checks a folder and reads its DiT config without reading weights;
:func:`load_wan_components` then resolves the empty-prompt context (so a bad one fails before
the big weights are read), loads the modules and records what was loaded. The result is a
:class:`WanComponents` holding diffusers' ``WanTransformer3DModel`` and ``AutoencoderKLWan``
(eval mode, no gradients), the 16-value latent mean/std used to normalise VAE latents, and
the empty-prompt context (``prompt_embedding``, padded to ``text_len`` rows). Nothing here
touches the network, and nothing here writes a checkpoint (the stand-in builders are
:mod:`vega3d.standin.wan`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vega3d.devices import parse_dtype
from vega3d.errors import Vega3DError
from vega3d.files import fingerprint, read_json
from vega3d.simulator.checks import check
from vega3d.simulator.convert import (
    ORIGINAL_CONFIG,
    ORIGINAL_DIT_INDEX,
    ORIGINAL_DIT_SINGLE,
    ORIGINAL_T5,
    ORIGINAL_TOKENIZER,
    ORIGINAL_VAE,
    WAN21_LATENTS_MEAN,
    WAN21_LATENTS_STD,
    from_pretrained_strict,
    index_shards,
    original_dit_files,
)
from vega3d.simulator.prompt import PROMPT_FILE, TEXT_LEN, context_sha256, encode_prompt, load_prompt_embedding
from vega3d.standin import is_stand_in

_LAYOUT_HELP = (
    "either the diffusers layout (transformer/ and vae/ with config.json and "
    "*.safetensors each; optional text_encoder/ + tokenizer/) or the original Wan2.1 release "
    f"layout ({ORIGINAL_CONFIG} with _class_name WanModel, diffusion_pytorch_model*.safetensors, "
    f"{ORIGINAL_VAE}; optional {ORIGINAL_T5} + {ORIGINAL_TOKENIZER}/)"
)
#: The files that hold the text encoder and its tokenizer, per layout.
TEXT_ENCODER_FILES = {"diffusers": "text_encoder/ + tokenizer/", "original": f"{ORIGINAL_T5} + {ORIGINAL_TOKENIZER}/"}


@dataclass
class WanComponents:
    """The loaded parts of a Wan2.1-T2V checkpoint folder.

    ``latents_mean`` / ``latents_std``: (16,) float32, CPU — normalised latent is
    ``(mode - mean) / std`` per channel. ``prompt_embedding``: (text_len, text_dim)
    float32, CPU, the empty-prompt context already zero-padded (None only when no
    source was available and ``require_prompt=False``). ``identity``: JSON-serialisable
    description of what was loaded (path, layout, weights hash, configs, prompt source).
    """

    transformer: Any
    vae: Any
    latents_mean: torch.Tensor
    latents_std: torch.Tensor
    layout: str
    identity: dict
    stand_in: bool
    text_len: int = TEXT_LEN
    prompt_embedding: torch.Tensor | None = None
    text_encoder: Any = None
    tokenizer: Any = None


@dataclass(frozen=True)
class WanFolder:
    """A complete Wan2.1 folder, looked at without reading its weights (:func:`open_wan_folder`).

    ``dit_config``: the ``WanTransformer3DModel`` config (original layout: mapped from
    ``config.json`` and the weights' shapes); ``original_config``: the released ``config.json``
    (original layout only)."""

    root: Path
    layout: str
    dit_config: dict
    text_len: int = TEXT_LEN
    original_config: dict | None = None

    @property
    def num_layers(self) -> int:
        return int(self.dit_config.get("num_layers", 40))  # 40, 4096: WanTransformer3DModel's defaults

    @property
    def text_dim(self) -> int:
        return int(self.dit_config.get("text_dim", 4096))


def open_wan_folder(path) -> WanFolder:
    """Check a Wan2.1 folder (:func:`detect_layout`) and read its DiT config (no weights read).

    A :class:`WanFolder` is returned as it is."""
    if isinstance(path, WanFolder):
        return path
    root = Path(path).expanduser()
    layout = detect_layout(root)
    if layout == "diffusers":
        return WanFolder(root, layout, read_json(root / "transformer" / "config.json", "Wan2.1 transformer config"))
    from vega3d.simulator.convert import original_transformer_config

    config, text_len, original = original_transformer_config(root)
    return WanFolder(root, layout, config, text_len, original)


# ----------------------------------------------------------------------------- detection


def _missing_shards(folder: Path, prefix: str = "") -> list[str]:
    """Shards named by ``*.safetensors.index.json`` files in ``folder`` that are not there."""
    missing = []
    for index in sorted(folder.glob("*.safetensors.index.json")):
        missing += [
            f"{prefix}{n} (listed in {prefix}{index.name})" for n in index_shards(index) if not (folder / n).is_file()
        ]
    return missing


def _absent(root: Path, *names: str) -> list[str]:
    return [n for n in names if not (root / n).is_file()]


def _missing(root: Path, layout: str) -> list[str]:
    """The files a complete ``layout`` folder needs that ``root`` lacks."""
    if layout == "diffusers":
        missing = []
        for sub in ("transformer", "vae"):
            has_weights = any((root / sub).glob("*.safetensors"))
            missing += _absent(root, f"{sub}/config.json")
            missing += _missing_shards(root / sub, f"{sub}/") if has_weights else [f"{sub}/*.safetensors"]
        return missing
    if (root / ORIGINAL_DIT_INDEX).is_file():
        dit = _missing_shards(root)
    else:
        dit = ["diffusion_pytorch_model*.safetensors"] if _absent(root, ORIGINAL_DIT_SINGLE) else []
    return _absent(root, ORIGINAL_CONFIG) + dit + _absent(root, ORIGINAL_VAE)


def _class_name(config_path: Path):
    try:
        return json.loads(config_path.read_text()).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def detect_layout(path) -> str:
    """Return ``"diffusers"`` or ``"original"`` for a complete Wan2.1 folder.

    Raises one :class:`Vega3DError` listing every missing file when the folder is
    missing, partial, or neither layout. (An original-layout ``config.json`` is read, and its
    ``_class_name`` checked, by :func:`vega3d.simulator.convert.original_transformer_config`.)
    """
    root = Path(path).expanduser()
    problem = ": model folder does not exist (or is not a directory)"
    if root.is_dir():
        looks = {
            "diffusers": (root / "transformer").is_dir() or (root / "vae").is_dir(),
            "original": (root / ORIGINAL_CONFIG).is_file()
            or (root / ORIGINAL_VAE).is_file()
            or any(root.glob("diffusion_pytorch_model*.safetensors")),
        }
        for layout, looks_like in looks.items():
            if looks_like and not _missing(root, layout):
                return layout
        problem = _incomplete(root, looks)
    raise Vega3DError(f"{root}{problem}; expected {_LAYOUT_HELP}")


def _incomplete(root: Path, looks: dict) -> str:
    """`` is not a complete Wan2.1 checkpoint folder ...: missing ...``, given which layouts it ``looks`` like."""
    if looks["diffusers"] != looks["original"]:  # one layout it looks like: what it lacks
        missing = _missing(root, "diffusers" if looks["diffusers"] else "original")
        kind = f" (it looks like the {'diffusers' if looks['diffusers'] else 'original-release'} layout)"
    else:
        kind = ""
        if looks["original"]:  # both: the original layout's files
            missing = _missing(root, "original")
        else:  # neither: both layouts' files
            missing = _missing(root, "diffusers") + _missing(root, "original")
    return f" is not a complete Wan2.1 checkpoint folder{kind}: missing {', '.join(missing)}"


def weight_files(root: Path, layout: str) -> list[Path]:
    """The files whose bytes determine the features: the transformer's and the VAE's weights."""
    if layout == "diffusers":
        return sorted((root / "transformer").glob("*.safetensors")) + sorted((root / "vae").glob("*.safetensors"))
    return original_dit_files(root) + [root / ORIGINAL_VAE]


def has_text_encoder(root: Path, layout: str) -> bool:
    """Whether the folder holds the text encoder and its tokenizer."""
    if layout == "diffusers":
        return (root / "text_encoder" / "config.json").is_file() and (root / "tokenizer").is_dir()
    return (root / ORIGINAL_T5).is_file() and (root / ORIGINAL_TOKENIZER).is_dir()


# ----------------------------------------------------------------------------- modules


def cast_like_diffusers(module, dtype):
    """Cast floating tensors to ``dtype`` except those of the model's ``_keep_in_fp32_modules``,
    which stay float32 untouched, as diffusers' ``from_pretrained(torch_dtype=...)`` does
    (same rule: a listed name is one of the dot-separated parts of the tensor's name)."""
    keep = getattr(module, "_keep_in_fp32_modules", None) or []
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point():
                kept = any(k in name.split(".") for k in keep)
                t.data = t.data.to(torch.float32 if kept else dtype)
    return module


def _freeze(module, device):
    """Move to ``device``, eval mode, no gradients, and own every tensor.

    Weights read by safetensors may stay memory-mapped at unaligned addresses; SIMD
    kernels then round differently (~1e-6) than on freshly allocated copies, so the
    same weights loaded from the two layouts would not give bit-identical outputs.
    Copying each tensor into its own allocation makes loading layout-independent.
    """
    module = module.to(device=device)
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.device.type == "cpu":
                t.data = t.data.clone(memory_format=torch.contiguous_format)
    return module.eval().requires_grad_(False)


def _jsonable(config) -> dict:
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}, default=list))


def _load_diffusers(root: Path, dtype, vae_dtype):
    """``(transformer, vae, latents_mean, latents_std)`` of a diffusers-layout folder."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel, WanVACETransformer3DModel

    def load(model_cls, folder: Path, torch_dtype):
        kw = dict(local_files_only=True, torch_dtype=torch_dtype, output_loading_info=True)
        return from_pretrained_strict(
            lambda: model_cls.from_pretrained(folder, **kw), folder, model_cls.__name__, "diffusers"
        )

    # Wan2.1-VACE's diffusers folder holds a WanVACETransformer3DModel (vega3d.simulator.vace)
    vace = _class_name(root / "transformer" / "config.json") == "WanVACETransformer3DModel"
    transformer = load(WanVACETransformer3DModel if vace else WanTransformer3DModel, root / "transformer", dtype)
    vae = load(AutoencoderKLWan, root / "vae", vae_dtype)
    z_dim, stats = vae.config.z_dim, {}
    for name in ("latents_mean", "latents_std"):
        values = vae.config.get(name)
        ok = values is not None and len(values) == z_dim
        check(ok, str(root / "vae" / "config.json"), f"field {name} is {values!r}", f"a list of z_dim={z_dim} floats")
        stats[name] = torch.tensor(values, dtype=torch.float32)
    return transformer, vae, stats["latents_mean"], stats["latents_std"]


def _load_modules(folder: WanFolder, dtype, vae_dtype, device):
    """``(transformer in dtype, vae in vae_dtype, latents_mean, latents_std, configs)``, the
    modules frozen on ``device``. Original layout: read in float32, then each module is cast on
    the CPU by diffusers' rule (:func:`cast_like_diffusers`) and moved, so both layouts give
    the same tensors bit for bit."""
    if folder.layout == "diffusers":
        transformer, vae, mean, std = _load_diffusers(folder.root, dtype, vae_dtype)
        configs = {}
    else:
        from vega3d.simulator.convert import load_original

        transformer, vae = load_original(folder.root, folder.dit_config)
        transformer, vae = cast_like_diffusers(transformer, dtype), cast_like_diffusers(vae, vae_dtype)
        mean = torch.tensor(WAN21_LATENTS_MEAN, dtype=torch.float32)
        std = torch.tensor(WAN21_LATENTS_STD, dtype=torch.float32)
        configs = {"original": folder.original_config}
    configs.update(transformer=_jsonable(transformer.config), vae=_jsonable(vae.config))
    return _freeze(transformer, device), _freeze(vae, device), mean, std, configs


# ----------------------------------------------------------------------------- text encoder and prompt


def load_text_encoder(path, *, dtype=torch.float32, device="cpu"):
    """Load only the umT5 text encoder and tokenizer of a Wan2.1 folder (either layout).

    Returns ``(text_encoder, tokenizer, identity)``: a transformers ``UMT5EncoderModel``
    (eval, no gradients), its tokenizer, and a dict with the path, layout and a cheap
    hash of the encoder weights (:func:`vega3d.files.fingerprint`).
    """
    from transformers import AutoTokenizer, UMT5EncoderModel

    root, layout = (path.root, path.layout) if isinstance(path, WanFolder) else (Path(path).expanduser(), None)
    layout = layout or detect_layout(root)
    dtype = parse_dtype(dtype)
    check_text_encoder(WanFolder(root, layout, {}))
    if layout == "diffusers":
        encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", local_files_only=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    else:
        from vega3d.simulator.convert import load_original_text_encoder

        encoder = load_original_text_encoder(root / ORIGINAL_T5, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(root / ORIGINAL_TOKENIZER, local_files_only=True)
    return _freeze(encoder, device), tokenizer, _text_encoder_identity(root, layout)


def check_text_encoder(folder: WanFolder) -> None:
    """A folder without the text encoder: one error saying how to get the context without it."""
    root, layout = folder.root, folder.layout
    check(
        has_text_encoder(root, layout),
        str(root),
        f"no text encoder: missing {TEXT_ENCODER_FILES[layout]}, which is only needed to compute the empty-prompt "
        "context",
        f"a folder with it; or run `vega3d export-prompt --model <the full Wan2.1 folder, with its text encoder> "
        f"--out {PROMPT_FILE}` once, then give that file (CLI: `vega3d extract --prompt-embedding FILE`; "
        f"Python: prompt_embedding=FILE) or put it in this folder as {PROMPT_FILE}",
    )


def text_encoder_files(root: Path, layout: str) -> tuple[list[Path], list[Path], list[Path]]:
    """``(weight files, config files, tokenizer files)`` of a folder's text encoder: what its
    contexts depend on (tokenizer: every file of its folder but hidden ones, sorted)."""
    if layout == "diffusers":
        te = root / "text_encoder"
        weights = sorted(te.glob("*.safetensors")) + sorted(te.glob("*.bin"))
        configs, tokenizer = [te / "config.json"], root / "tokenizer"
    else:
        weights, configs, tokenizer = [root / ORIGINAL_T5], [], root / ORIGINAL_TOKENIZER
    tokenizer_files = sorted(p for p in tokenizer.iterdir() if p.is_file() and not p.name.startswith("."))
    return weights, configs, tokenizer_files


def _text_encoder_identity(root: Path, layout: str) -> dict:
    """Path, layout and the text encoder's weights hash (:func:`vega3d.files.fingerprint`)."""
    return {"path": str(root.resolve()), "layout": layout,
            "text_encoder_hash": fingerprint(root, text_encoder_files(root, layout)[0])}  # fmt: skip


def prompt_cache_inputs(folder: WanFolder) -> dict:
    """The content hashes in a context's cache key (:func:`vega3d.simulator.prompt_cache.prompt_cache_key`):
    ``text_encoder`` (its weights), ``text_encoder_config`` and ``tokenizer`` (its files), each
    :func:`vega3d.files.fingerprint` — milliseconds, no weights loaded."""
    root = folder.root
    weights, configs, tokenizer = text_encoder_files(root, folder.layout)
    return {"text_encoder": fingerprint(root, weights), "text_encoder_config": fingerprint(root, configs),
            "tokenizer": fingerprint(root, tokenizer)}  # fmt: skip


def text_encoder_context(path, *, text: str = "", device="cpu", cache: bool = True):
    """The padded (text_len, text_dim) float32 CPU context of ``text`` from the folder's text
    encoder: read from the prompt-context cache (:mod:`vega3d.simulator.prompt_cache`), else
    computed (encoder loaded in float32 on ``device``, then freed) and stored. ``cache=False``
    computes it without the cache. Returns ``(context, source, status)``: the identity recorded
    as ``identity["prompt"]`` (the same whether read or computed; ``file`` is the cache entry)
    and the cache's status (``"hit"``, ``"computed"``, ``"uncached"``)."""
    from vega3d.simulator.prompt_cache import CachedContext, cached_prompt_context, prompt_cache_key

    folder = open_wan_folder(path)
    check_text_encoder(folder)
    root, dims = folder.root, dict(text_dim=folder.text_dim, text_len=folder.text_len)
    identity = _text_encoder_identity(root, folder.layout)

    def compute() -> torch.Tensor:
        encoder, tokenizer, _ = load_text_encoder(folder, dtype=torch.float32, device=device)
        return encode_prompt(encoder, tokenizer, text, folder.text_len)

    if cache:
        inputs = prompt_cache_inputs(folder)
        meta = {**inputs, "text": text, "text_len": folder.text_len, "model": identity["path"], "device": str(device),
                "layout": folder.layout, "torch": torch.__version__, "stand_in": str(is_stand_in(root)).lower()}  # fmt: skip
        key = prompt_cache_key(**inputs, text=text, text_len=folder.text_len)
        got = cached_prompt_context(key, compute, **dims, metadata=meta)
    else:
        got = CachedContext(compute(), None, "uncached")
    context = load_prompt_embedding(got.embedding, folder.text_dim, folder.text_len)
    source = {"source": "text_encoder", "text": text, "sha256": context_sha256(context), **identity}
    if got.file is not None:
        source["file"] = str(got.file)  # a location: left out of config comparisons
    return context, source, got.status


def _resolve_prompt(folder: WanFolder, prompt_embedding, device, require_prompt: bool, prompt_cache: bool):
    """``(context, source)``: the padded empty-prompt context (float32, CPU) and where it came
    from, in the order of :func:`load_wan_components`; ``(None, None)`` when there is none and
    ``require_prompt`` is False."""
    root, dims = folder.root, (folder.text_dim, folder.text_len)
    if prompt_embedding is None and (root / PROMPT_FILE).is_file():
        prompt_embedding = root / PROMPT_FILE
    if prompt_embedding is not None:
        context = load_prompt_embedding(prompt_embedding, *dims)
        return context, _prompt_source(prompt_embedding, context)
    if has_text_encoder(root, folder.layout):
        return text_encoder_context(folder, device=device, cache=prompt_cache)[:2]
    check(
        not require_prompt,
        str(root),
        "no empty-prompt context",
        f"a file written by `vega3d export-prompt --model <folder with the text encoder> --out {PROMPT_FILE}` "
        "(CLI: `vega3d extract --prompt-embedding FILE`; Python: prompt_embedding= a tensor or that file), "
        f"or {PROMPT_FILE} in the folder, or a folder that has the text encoder "
        f"({TEXT_ENCODER_FILES[folder.layout]})",
    )
    return None, None


def _prompt_source(src, context: torch.Tensor) -> dict:
    digest = context_sha256(context)
    if isinstance(src, torch.Tensor):
        return {"source": "tensor", "sha256": digest}
    info = {"source": "file", "file": str(Path(src).resolve()), "sha256": digest}
    try:
        from safetensors import safe_open

        with safe_open(str(src), "pt") as fh:
            info["metadata"] = dict(fh.metadata() or {})
    except Exception:  # noqa: BLE001 — metadata is informational only
        pass
    return info


# ----------------------------------------------------------------------------- everything


def load_wan_components(
    path,
    *,
    dtype=torch.float32,
    vae_dtype=torch.float32,
    device="cpu",
    prompt_embedding=None,
    need_text_encoder: bool = False,
    require_prompt: bool = True,
    prompt_cache: bool = True,
) -> WanComponents:
    """Load a Wan2.1-T2V folder (either layout, or a :class:`WanFolder`) into diffusers modules.

    The empty-prompt context is resolved first (so a bad one fails before the big weights
    are read), in this order: ``prompt_embedding`` (a tensor, trimmed (k, text_dim) or
    padded (text_len, text_dim), or a path to a file written by
    :func:`vega3d.simulator.prompt.save_prompt_embedding`); else the folder's
    ``prompt_embedding.safetensors``; else the folder's text encoder's context, read from the
    prompt-context cache or computed (on ``device``, float32, then freed) and stored there
    (:mod:`vega3d.simulator.prompt_cache`; ``prompt_cache=False`` computes it without the
    cache). With none of these a :class:`Vega3DError` says
    how to get one (unless ``require_prompt=False``). ``need_text_encoder=True`` also
    returns the text encoder (in ``dtype``) and tokenizer, and requires them.

    ``dtype`` is the DiT's, ``vae_dtype`` the VAE's (default float32, as Wan2.1's own
    ``WanVAE`` and diffusers' Wan pipeline examples keep it); both take a torch dtype or its
    name (:func:`vega3d.devices.parse_dtype`). In both layouts diffusers'
    ``_keep_in_fp32_modules`` stay float32.
    """
    dtype, vae_dtype = parse_dtype(dtype), parse_dtype(vae_dtype, "vae_dtype")
    folder = open_wan_folder(path)
    root = folder.root
    identity = {"path": str(root.resolve()), "layout": folder.layout, "stand_in": is_stand_in(root)}
    text_encoder = tokenizer = None
    if need_text_encoder:
        text_encoder, tokenizer, te_identity = load_text_encoder(folder, dtype=dtype, device=device)
        identity["text_encoder_hash"] = te_identity["text_encoder_hash"]
    context, source = _resolve_prompt(folder, prompt_embedding, device, require_prompt, prompt_cache)
    if source is not None:
        identity["prompt"] = source
    transformer, vae, mean, std, configs = _load_modules(folder, dtype, vae_dtype, device)
    identity["weights_hash"] = fingerprint(root, weight_files(root, folder.layout))
    identity["configs"] = configs
    return WanComponents(
        transformer=transformer,
        vae=vae,
        latents_mean=mean,
        latents_std=std,
        layout=folder.layout,
        identity=identity,
        stand_in=identity["stand_in"],
        text_len=folder.text_len,
        prompt_embedding=context,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )
