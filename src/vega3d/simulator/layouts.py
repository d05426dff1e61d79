"""Wan2.1 checkpoint folders: detect the layout, check it is complete, load the parts.

Two on-disk layouts of Wan2.1-T2V are supported (see ``docs/checkpoints.md``):

* ``"diffusers"`` — the Hugging Face diffusers export: ``transformer/`` and ``vae/``
  (``config.json`` + safetensors each), optionally ``text_encoder/`` + ``tokenizer/``.
* ``"original"`` — the Wan2.1 release as published by Wan-AI: ``config.json`` with
  ``_class_name: WanModel``, ``diffusion_pytorch_model*.safetensors`` (one file, or
  shards listed in ``diffusion_pytorch_model.safetensors.index.json``), ``Wan2.1_VAE.pth``,
  and optionally ``models_t5_umt5-xxl-enc-bf16.pth`` + ``google/umt5-xxl/`` (tokenizer).

Either way the result is a :class:`WanComponents` holding diffusers'
``WanTransformer3DModel`` and ``AutoencoderKLWan`` (eval mode, no gradients), the
16-value latent mean/std used to normalise VAE latents, and the empty-prompt context
(``prompt_embedding``, padded to ``text_len`` rows). Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vega3d.errors import Vega3DError
from vega3d.standin import is_stand_in

#: File name of the cached empty-prompt context inside a model folder.
PROMPT_FILE = "prompt_embedding.safetensors"
#: Wan2.1's context length: the DiT always sees ``text_len`` context rows.
TEXT_LEN = 512

ORIGINAL_CONFIG = "config.json"
ORIGINAL_DIT_SINGLE = "diffusion_pytorch_model.safetensors"
ORIGINAL_DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
ORIGINAL_VAE = "Wan2.1_VAE.pth"
ORIGINAL_T5 = "models_t5_umt5-xxl-enc-bf16.pth"
ORIGINAL_TOKENIZER = "google/umt5-xxl"

_LAYOUT_HELP = (
    "expected either the diffusers layout (transformer/ and vae/ with config.json and "
    "*.safetensors each; optional text_encoder/ + tokenizer/) or the original Wan2.1 release "
    f"layout ({ORIGINAL_CONFIG} with _class_name WanModel, diffusion_pytorch_model*.safetensors, "
    f"{ORIGINAL_VAE}; optional {ORIGINAL_T5} + {ORIGINAL_TOKENIZER}/)"
)

# Hash: bytes read from each end of every weight file.
_HASH_CHUNK = 1 << 20


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


# ----------------------------------------------------------------------------- detection


def _missing_shards(folder: Path, prefix: str = "") -> list[str]:
    """Shards named by ``*.safetensors.index.json`` files in ``folder`` that are not there."""
    missing = []
    for index in sorted(folder.glob("*.safetensors.index.json")):
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise Vega3DError(
                f"{index}: not a safetensors index (expected a JSON object with 'weight_map'): {err}"
            ) from None
        missing += [f"{prefix}{n} (listed in {prefix}{index.name})" for n in names if not (folder / n).is_file()]
    return missing


def _diffusers_missing(root: Path) -> list[str]:
    missing = []
    for sub in ("transformer", "vae"):
        d = root / sub
        if not (d / "config.json").is_file():
            missing.append(f"{sub}/config.json")
        if not d.is_dir() or not any(d.glob("*.safetensors")):
            missing.append(f"{sub}/*.safetensors")
        elif d.is_dir():
            missing += _missing_shards(d, f"{sub}/")
    return missing


def _original_missing(root: Path) -> list[str]:
    missing = []
    if not (root / ORIGINAL_CONFIG).is_file():
        missing.append(ORIGINAL_CONFIG)
    if (root / ORIGINAL_DIT_INDEX).is_file():
        missing += _missing_shards(root)
    elif not (root / ORIGINAL_DIT_SINGLE).is_file():
        missing.append("diffusion_pytorch_model*.safetensors")
    if not (root / ORIGINAL_VAE).is_file():
        missing.append(ORIGINAL_VAE)
    return missing


def _is_wan_model_config(root: Path) -> bool:
    cfg = root / ORIGINAL_CONFIG
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("_class_name") == "WanModel"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def detect_layout(path) -> str:
    """Return ``"diffusers"`` or ``"original"`` for a complete Wan2.1 folder.

    Raises one :class:`Vega3DError` listing every missing file when the folder is
    missing, partial, or neither layout.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise Vega3DError(f"{root}: model folder does not exist (or is not a directory); {_LAYOUT_HELP}")
    looks_diffusers = (root / "transformer").is_dir() or (root / "vae").is_dir()
    looks_original = (
        (root / ORIGINAL_CONFIG).is_file()
        or (root / ORIGINAL_VAE).is_file()
        or any(root.glob("diffusion_pytorch_model*.safetensors"))
    )
    if looks_diffusers and not _diffusers_missing(root):
        return "diffusers"
    if looks_original and not _original_missing(root):
        if not _is_wan_model_config(root):
            raise Vega3DError(
                f"{root / ORIGINAL_CONFIG}: expected a Wan2.1 transformer config with "
                f'"_class_name": "WanModel" (original release layout); {_LAYOUT_HELP}'
            )
        return "original"
    if looks_diffusers and not looks_original:
        missing = _diffusers_missing(root)
        kind = " (it looks like the diffusers layout)"
    elif looks_original and not looks_diffusers:
        missing = _original_missing(root)
        kind = " (it looks like the original-release layout)"
    else:
        missing = _original_missing(root) if looks_original else _diffusers_missing(root) + _original_missing(root)
        kind = ""
    raise Vega3DError(
        f"{root} is not a complete Wan2.1 checkpoint folder{kind}: missing {', '.join(missing)}; {_LAYOUT_HELP}"
    )


def original_dit_files(root: Path) -> list[Path]:
    """The transformer safetensors file(s) of an original-layout folder, in shard order.

    With an index file, every shard it names must exist (a :class:`Vega3DError` lists
    the missing shards); without one, the single file.
    """
    index = root / ORIGINAL_DIT_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise Vega3DError(
                f"{index}: not a safetensors index (expected a JSON object with 'weight_map'): {err}"
            ) from None
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise Vega3DError(
                f"{root} is not a complete original-release Wan2.1 checkpoint folder: missing shard(s) "
                f"{', '.join(missing)} listed in {ORIGINAL_DIT_INDEX}"
            )
        return [root / n for n in names]
    single = root / ORIGINAL_DIT_SINGLE
    if single.is_file():
        return [single]
    raise Vega3DError(f"{root}: missing {ORIGINAL_DIT_SINGLE} (or {ORIGINAL_DIT_INDEX} with its shards)")


# ----------------------------------------------------------------------------- identity


def weight_files(root: Path, layout: str) -> list[Path]:
    """The files whose bytes determine the features: the transformer's and the VAE's weights."""
    if layout == "diffusers":
        return sorted((root / "transformer").glob("*.safetensors")) + sorted((root / "vae").glob("*.safetensors"))
    return original_dit_files(root) + [root / ORIGINAL_VAE]


def weights_hash(root: Path, files: list[Path]) -> str:
    """Cheap content hash of weight files (hex sha256).

    Definition: sha256 over, for each file in the given order, the UTF-8 path relative
    to ``root``, a NUL, the file size as decimal ASCII, a NUL, the first MiB and the last
    MiB of the file (the whole file when it is shorter than 2 MiB). Reads at most 2 MiB
    per file, so hashing the 1.3B model takes milliseconds; it detects a different
    checkpoint, a truncated download or a changed header, not a flipped byte mid-file.
    """
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(str(f.relative_to(root)).encode() + b"\0" + str(size).encode() + b"\0")
        with open(f, "rb") as fh:
            if size <= 2 * _HASH_CHUNK:
                h.update(fh.read())
            else:
                h.update(fh.read(_HASH_CHUNK))
                fh.seek(size - _HASH_CHUNK)
                h.update(fh.read(_HASH_CHUNK))
    return h.hexdigest()


# ----------------------------------------------------------------------------- loading


def cast_like_diffusers(module, dtype):
    """Cast floating tensors to ``dtype`` except those of the model's ``_keep_in_fp32_modules``,
    which stay float32 untouched, as diffusers' ``from_pretrained(torch_dtype=...)`` does
    (same rule: a listed name is one of the dot-separated parts of the tensor's name)."""
    keep = getattr(module, "_keep_in_fp32_modules", None) or [] if dtype != torch.float32 else []
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
    module.eval()
    module.requires_grad_(False)
    return module


def _parse_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A floating torch dtype, or its name; ``name`` is the argument named in the error."""
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str):
        short = dtype.removeprefix("torch.")
        aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "float": "float32", "half": "float16"}
        value = getattr(torch, aliases.get(short, short), None)
        if isinstance(value, torch.dtype) and value.is_floating_point:
            return value
    raise Vega3DError(
        f"{name}: got {dtype!r}; expected a floating torch dtype or its name (float32, bfloat16, float16)"
    )


def _load_diffusers(root: Path, dtype, vae_dtype, device):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    transformer = _from_pretrained_strict(WanTransformer3DModel, root / "transformer", dtype)
    vae = _from_pretrained_strict(AutoencoderKLWan, root / "vae", vae_dtype)
    cfg = dict(vae.config)
    for name in ("latents_mean", "latents_std"):
        values = cfg.get(name)
        if values is None or len(values) != cfg["z_dim"]:
            raise Vega3DError(
                f"{root / 'vae' / 'config.json'}: field {name} is {values!r}; expected a list of z_dim={cfg['z_dim']} floats"
            )
    mean = torch.tensor(cfg["latents_mean"], dtype=torch.float32)
    std = torch.tensor(cfg["latents_std"], dtype=torch.float32)
    configs = {"transformer": _jsonable(transformer.config), "vae": _jsonable(vae.config)}
    return _freeze(transformer, device), _freeze(vae, device), mean, std, TEXT_LEN, configs


def _from_pretrained_strict(model_cls, folder: Path, dtype):
    """``model_cls.from_pretrained`` from a local folder; any missing, unexpected or
    mis-shaped weight (which diffusers would only warn about) is a :class:`Vega3DError`."""
    try:
        model, info = model_cls.from_pretrained(
            folder, local_files_only=True, torch_dtype=dtype, output_loading_info=True
        )
    except Vega3DError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, NotImplementedError) as err:
        raise Vega3DError(
            f"{folder}: diffusers could not load {model_cls.__name__}: {type(err).__name__}: {err}"
        ) from None
    problems = []
    for name in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(name) or [])
        if keys:
            problems.append(f"{len(keys)} {name.replace('_', ' ')} (e.g. {', '.join(keys[:5])})")
    if problems:
        raise Vega3DError(
            f"{folder}: weights do not match {model_cls.__name__} from config.json: {'; '.join(problems)}"
        )
    return model


def _jsonable(config) -> dict:
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}, default=list))


def has_text_encoder(root: Path, layout: str) -> bool:
    """Whether the folder holds the text encoder and its tokenizer."""
    if layout == "diffusers":
        return (root / "text_encoder" / "config.json").is_file() and (root / "tokenizer").is_dir()
    return (root / ORIGINAL_T5).is_file() and (root / ORIGINAL_TOKENIZER).is_dir()


def load_text_encoder(path, *, dtype=torch.float32, device="cpu"):
    """Load only the umT5 text encoder and tokenizer of a Wan2.1 folder (either layout).

    Returns ``(text_encoder, tokenizer, identity)``: a transformers ``UMT5EncoderModel``
    (eval, no gradients), its tokenizer, and a dict with the path, layout and a cheap
    hash of the encoder weights (same definition as :func:`weights_hash`).
    """
    root = Path(path).expanduser()
    layout = detect_layout(root)
    dtype = _parse_dtype(dtype)
    if not has_text_encoder(root, layout):
        want = (
            "text_encoder/ (config.json + weights) and tokenizer/"
            if layout == "diffusers"
            else f"{ORIGINAL_T5} and {ORIGINAL_TOKENIZER}/"
        )
        raise Vega3DError(
            f"{root}: no text encoder: missing {want}. It is only needed to compute the empty-prompt context: "
            f"run `vega3d export-prompt --model <the full Wan2.1 folder, with its text encoder> --out {PROMPT_FILE}` "
            f"once, then give that file (CLI: `vega3d extract --prompt-embedding FILE`; Python: "
            f"prompt_embedding=FILE) or put it in this folder as {PROMPT_FILE}."
        )
    from transformers import AutoTokenizer

    if layout == "diffusers":
        from transformers import UMT5EncoderModel

        encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", local_files_only=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        files = sorted((root / "text_encoder").glob("*.safetensors")) + sorted((root / "text_encoder").glob("*.bin"))
    else:
        from vega3d.simulator.convert import load_original_text_encoder

        encoder = load_original_text_encoder(root / ORIGINAL_T5, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(root / ORIGINAL_TOKENIZER, local_files_only=True)
        files = [root / ORIGINAL_T5]
    identity = {"path": str(root.resolve()), "layout": layout, "text_encoder_hash": weights_hash(root, files)}
    return _freeze(encoder, device), tokenizer, identity


def load_wan_components(
    path,
    *,
    dtype=torch.float32,
    vae_dtype=torch.float32,
    device="cpu",
    prompt_embedding=None,
    need_text_encoder: bool = False,
    require_prompt: bool = True,
) -> WanComponents:
    """Load a Wan2.1-T2V folder (either layout) into diffusers modules.

    The empty-prompt context is resolved first (so a bad one fails before the big weights
    are read), in this order: ``prompt_embedding`` (a tensor, trimmed (k, text_dim) or
    padded (text_len, text_dim), or a path to a file written by
    :func:`vega3d.simulator.prompt.save_prompt_embedding`); else the folder's
    ``prompt_embedding.safetensors``; else it is computed with the folder's text encoder
    (on ``device``, float32, then freed). With none of these a :class:`Vega3DError` says
    how to get one (unless ``require_prompt=False``). ``need_text_encoder=True`` also
    returns the text encoder (in ``dtype``) and tokenizer, and requires them.

    ``dtype`` is the DiT's, ``vae_dtype`` the VAE's (default float32, as Wan2.1's own
    ``WanVAE`` and diffusers' Wan pipeline examples keep it); both take a torch dtype or its
    name. In both layouts diffusers' ``_keep_in_fp32_modules`` stay float32.
    """
    from vega3d.simulator.prompt import encode_prompt, load_prompt_embedding

    root = Path(path).expanduser()
    layout = detect_layout(root)
    dtype = _parse_dtype(dtype)
    vae_dtype = _parse_dtype(vae_dtype, "vae_dtype")
    text_dim, text_len = _text_dims(root, layout)
    identity = {"path": str(root.resolve()), "layout": layout, "stand_in": is_stand_in(root)}

    text_encoder = tokenizer = None
    if need_text_encoder:
        text_encoder, tokenizer, te_identity = load_text_encoder(root, dtype=dtype, device=device)
        identity["text_encoder_hash"] = te_identity["text_encoder_hash"]

    context = None
    if prompt_embedding is not None:
        context = load_prompt_embedding(prompt_embedding, text_dim, text_len)
        identity["prompt"] = _prompt_source(prompt_embedding, context)
    elif (root / PROMPT_FILE).is_file():
        context = load_prompt_embedding(root / PROMPT_FILE, text_dim, text_len)
        identity["prompt"] = _prompt_source(root / PROMPT_FILE, context)
    elif has_text_encoder(root, layout):
        enc, tok, te_identity = load_text_encoder(root, dtype=torch.float32, device=device)
        context = load_prompt_embedding(encode_prompt(enc, tok, "", text_len), text_dim, text_len)
        identity["prompt"] = {"source": "text_encoder", "text": "", "sha256": _digest(context), **te_identity}
        del enc, tok
    elif require_prompt:
        raise Vega3DError(
            f"{root}: no empty-prompt context: give a file written by `vega3d export-prompt --model <folder with "
            f"the text encoder> --out {PROMPT_FILE}` (CLI: `vega3d extract --prompt-embedding FILE`; Python: "
            f"prompt_embedding= a tensor or that file), or put {PROMPT_FILE} in the folder, "
            "or use a folder that has the text encoder "
            + ("(text_encoder/ + tokenizer/)" if layout == "diffusers" else f"({ORIGINAL_T5} + {ORIGINAL_TOKENIZER}/)")
        )

    if layout == "diffusers":
        transformer, vae, mean, std, text_len, configs = _load_diffusers(root, dtype, vae_dtype, device)
    else:
        transformer, vae, mean, std, text_len, configs = _load_original(root, dtype, vae_dtype, device)
    if int(transformer.config.text_dim) != text_dim:  # pragma: no cover - _text_dims reads the same source
        raise Vega3DError(f"{root}: text_dim {transformer.config.text_dim} differs from the {text_dim} read earlier")
    identity["weights_hash"] = weights_hash(root, weight_files(root, layout))
    identity["configs"] = configs

    return WanComponents(
        transformer=transformer,
        vae=vae,
        latents_mean=mean,
        latents_std=std,
        layout=layout,
        identity=identity,
        stand_in=identity["stand_in"],
        text_len=text_len,
        prompt_embedding=context,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def _load_original(root: Path, dtype, vae_dtype, device):
    """:func:`vega3d.simulator.convert.load_original` with a separate VAE dtype.

    The release files are read in float32; with two different dtypes both modules come
    back in float32 on ``device`` and each is then cast to its own dtype by the same rule
    (so the peak is the float32 DiT on ``device``; float32 → 16-bit rounding is the same
    on every device, so the result equals casting before the move).
    """
    from vega3d.simulator.convert import load_original

    if dtype == vae_dtype:
        return load_original(root, dtype, device)
    transformer, vae, mean, std, text_len, configs = load_original(root, torch.float32, device)
    return cast_like_diffusers(transformer, dtype), cast_like_diffusers(vae, vae_dtype), mean, std, text_len, configs


def _text_dims(root: Path, layout: str) -> tuple[int, int]:
    """(text_dim, text_len) of the DiT, read cheaply (config / safetensors header) before loading it."""
    if layout == "diffusers":
        cfg_path = root / "transformer" / "config.json"
        try:
            cfg = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise Vega3DError(f"{cfg_path}: not valid JSON ({err})") from None
        return int(cfg.get("text_dim", 4096)), TEXT_LEN  # 4096: WanTransformer3DModel's default
    from safetensors import SafetensorError, safe_open

    cfg_path = root / ORIGINAL_CONFIG
    try:
        text_len = int(json.loads(cfg_path.read_text()).get("text_len", TEXT_LEN))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise Vega3DError(f"{cfg_path}: not a valid WanModel config ({err})") from None
    for f in original_dit_files(root):
        try:
            with safe_open(str(f), "pt") as fh:
                if "text_embedding.0.weight" in fh.keys():
                    return int(fh.get_slice("text_embedding.0.weight").get_shape()[1]), text_len
        except (SafetensorError, OSError) as err:
            raise Vega3DError(f"{f}: not a readable safetensors file ({err})") from None
    raise Vega3DError(
        f"{root}: no tensor text_embedding.0.weight in diffusion_pytorch_model*.safetensors (expected a Wan2.1 DiT)"
    )


def _digest(context: torch.Tensor) -> str:
    return hashlib.sha256(context.contiguous().numpy().tobytes()).hexdigest()


def _prompt_source(src, context: torch.Tensor) -> dict:
    digest = _digest(context)
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
