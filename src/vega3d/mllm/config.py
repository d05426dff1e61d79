"""The configuration of a VEGA-3D Qwen2.5-VL model (what a checkpoint records) and its base folder.

:class:`Vega3DConfig` is a frozen pydantic model (:class:`vega3d.config.Config`) that
serialises to JSON. It names the frozen base model (a local Qwen2.5-VL folder, with a
fingerprint of its files), the generative branch (fusion variant, projector, generative
feature width, and the identity of the simulator or feature store the features come from)
and which parts are trainable. :func:`check_qwen_folder` and :func:`base_fingerprint` are
the checks of the base folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from vega3d.config import Config, Float
from vega3d.errors import Vega3DError
from vega3d.files import fingerprint, read_json
from vega3d.fusion import FUSIONS
from vega3d.fusion.align import INTERPOLATIONS
from vega3d.fusion.projector import PROJECTOR_NAME, PROJECTORS

QWEN_MODEL_TYPE = "qwen2_5_vl"

# LoRA on every attention and MLP projection of the language model (not the vision tower).
DEFAULT_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def _projector_name(name: str) -> str:
    if not PROJECTOR_NAME.fullmatch(name):
        raise PydanticCustomError("projector", "unknown projector; valid: {valid}", {"valid": PROJECTORS})
    return name


def _target_modules(value):
    names = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    if not (isinstance(value, str) or names):
        raise PydanticCustomError("target_modules", "expected a regular expression or a non-empty list of module names")
    return value


class LoraSettings(Config):
    """peft LoRA on the LLM (``llm: lora``); unspecified keys take these defaults."""

    r: int = Field(16, ge=1)  # rank of the adapters
    alpha: Float = Field(32, gt=0)  # scale: the adapter output is multiplied by alpha / r (read as an integer)
    dropout: Float = Field(0.05, ge=0, lt=1)  # dropout on the adapters' input
    target_modules: Annotated[str | list[str], BeforeValidator(_target_modules)] = (
        DEFAULT_LORA_TARGETS  # regex or names
    )


class Vega3DConfig(Config):
    """What a VEGA-3D model is made of (recorded in every checkpoint). Build it with keywords
    (``Vega3DConfig(base_model=..., llm="lora")``); a bad value is a one-line
    :class:`Vega3DError` naming ``model.<field>``."""

    base_model: str  # the Qwen2.5-VL folder (HF layout)
    base_fingerprint: str = ""  # recorded: base_fingerprint(base_model) ("" = not recorded yet)
    generative: bool = True  # False: the baseline — no projector, no fusion, exactly the base model
    fusion: Literal[tuple(FUSIONS)] = "gated"  # a vega3d.fusion.build_fusion variant
    fusion_kwargs: dict = Field(default_factory=dict)  # options of that fusion (e.g. gate_bias)
    projector: Annotated[str, AfterValidator(_projector_name)] = "mlp2x_gelu"  # vega3d.fusion.build_projector
    projector_kwargs: dict = Field(default_factory=dict)  # options of that projector (merger_mlp: hidden, init_std)
    generative_dim: int = Field(1536, ge=1)  # width C of the simulator's feature grid (1536: Wan2.1-1.3B)
    generative_interpolation: Literal[INTERPOLATIONS] = "area"  # grid → tokens: "area" averages; release: "bilinear"
    branch_init: str | None = None  # a vega3d checkpoint (e.g. a converted release): projector + fusion start from it
    simulator: dict | None = None  # recorded: the simulator's (or feature store's) config, its identity
    train_fusion: bool = True  # the fusion's parameters are trainable
    train_projector: bool = True  # the projector's parameters are trainable
    llm: Literal["frozen", "lora", "full"] = "frozen"  # how the language model trains
    lora: LoraSettings = Field(default_factory=LoraSettings)  # adapters when llm is "lora"
    train_vision: bool = False  # the vision tower trains (at train.vision_lr)
    seed: int = Field(0, ge=0)  # initialises the new modules (projector, fusion, LoRA) deterministically
    preprocessing: dict = Field(default_factory=dict)  # recorded: num_frames, frame_fps, pixel budget, frames_as
    origin: dict | None = None  # recorded by vega3d convert-release: the release folder, its DiT verdict, the DiT used

    #: Fields ``vega3d train`` (or ``convert-release``) records (not set in a YAML config).
    RECORDED: ClassVar[tuple[str, ...]] = ("base_fingerprint", "simulator", "preprocessing", "origin")

    SECTION: ClassVar[str] = "model"


def check_qwen_folder(path, field: str = "base model") -> Path:
    """Raise unless ``path`` is a folder whose ``config.json`` declares a Qwen2.5-VL model
    (``model_type`` ``qwen2_5_vl``); ``field`` names the setting in the message. Returns it."""
    path = Path(path).expanduser()
    config = path / "config.json"
    data = read_json(config, field) if config.is_file() else None
    data = data if isinstance(data, dict) else {}
    if data.get("model_type") != QWEN_MODEL_TYPE:
        raise Vega3DError(f"{field}: {path} {_not_qwen(path, data)}")
    return path


def _not_qwen(path: Path, config: dict) -> str:
    """What ``path`` is instead of a Qwen2.5-VL folder (its ``config.json`` read as ``config``)."""
    if not path.is_dir():
        return f"{'is a file' if path.exists() else 'does not exist'} (expected a Qwen2.5-VL model folder)"
    if not (path / "config.json").is_file():
        pipeline = [n for n in ("model_index.json", "transformer", "vae") if (path / n).exists()]
        hint = (
            f" (it has {', '.join(pipeline)}: a diffusers pipeline such as Wan2.1, not Qwen2.5-VL)" if pipeline else ""
        )
        return f"is not a Hugging Face model folder: no config.json{hint}"
    found = config.get("model_type")
    what = f"model_type {found!r}" if found else "no model_type"
    if not found and config.get("_class_name"):
        what += f" (_class_name {config['_class_name']!r})"
    return f"is not a Qwen2.5-VL model: its config.json has {what}, expected model_type {QWEN_MODEL_TYPE!r}"


def base_fingerprint(path) -> str:
    """The base folder's fingerprint: :func:`vega3d.files.fingerprint` over its ``config.json``
    and its ``*.safetensors`` files (sorted). Cheap (2 MiB per file); changes when the
    weights or the config are replaced."""
    path = Path(path)
    files = sorted(path.glob("*.safetensors"))
    if not files or not (path / "config.json").is_file():
        raise Vega3DError(f"{path}: not a model folder (expected config.json and *.safetensors weights)")
    return fingerprint(path, [path / "config.json", *files])


def legacy_base_fingerprint(path) -> str:
    """The fingerprint older checkpoints recorded, before :func:`base_fingerprint`: sha256 over ``config.json``'s bytes, then per ``*.safetensors`` file
    ``name:size`` and its first and last MiB. Only compared, never written."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read(1 << 20))
    return h.hexdigest()
