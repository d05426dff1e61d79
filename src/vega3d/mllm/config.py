"""The configuration of a VEGA-3D Qwen2.5-VL model (what a checkpoint records).

:class:`Vega3DConfig` is a frozen dataclass that serialises to JSON. It names the frozen
base model (a local Qwen2.5-VL folder, with a fingerprint of its files), the generative
branch (fusion variant, projector, generative feature width, and the identity of the
simulator or feature store the features come from) and which parts are trainable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.files import read_json

LLM_MODES = ("frozen", "lora", "full")
DTYPES = ("float32", "bfloat16", "float16")

# LoRA on every attention and MLP projection of the language model (not the vision tower).
DEFAULT_LORA = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.05,
    "target_modules": r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)",
}


@dataclass(frozen=True)
class Vega3DConfig:
    """What a VEGA-3D model is made of.

    - ``base_model``: path of the Qwen2.5-VL folder (HF layout); ``base_fingerprint``: see
      :func:`fingerprint_folder` ("" = not recorded yet).
    - ``generative``: False is the baseline switch — no projector, no fusion: exactly the
      base model. ``fusion`` / ``fusion_kwargs``: a :func:`vega3d.fusion.build_fusion`
      variant; ``projector``: a :func:`vega3d.fusion.build_projector` name;
      ``generative_dim``: width C of the simulator's feature grid (1536 for Wan2.1-1.3B).
    - ``simulator``: the simulator's (or feature store's) config dict, recorded for identity.
    - trainable parts: ``train_fusion``, ``train_projector``, ``llm`` in
      ``("frozen", "lora", "full")`` with ``lora`` options, ``train_vision``.
    - ``seed``: initialises the new modules (projector, fusion, LoRA) deterministically.
    - ``preprocessing``: how training videos were prepared (``num_frames``, ``frame_fps``,
      ``video_min_pixels``, ``video_max_pixels``), recorded by ``vega3d train`` so inference
      uses the same by default.
    """

    base_model: str
    base_fingerprint: str = ""
    generative: bool = True
    fusion: str = "gated"
    fusion_kwargs: dict = field(default_factory=dict)
    projector: str = "mlp2x_gelu"
    generative_dim: int = 1536
    simulator: dict | None = None
    train_fusion: bool = True
    train_projector: bool = True
    llm: str = "frozen"
    lora: dict = field(default_factory=lambda: dict(DEFAULT_LORA))
    train_vision: bool = False
    seed: int = 0
    preprocessing: dict = field(default_factory=dict)

    def __post_init__(self):
        from vega3d.fusion import FUSIONS
        from vega3d.mllm.fields import at_least, check_fields, one_of

        check_fields(
            self,
            "model",
            {"llm": one_of(*LLM_MODES), "fusion": one_of(*FUSIONS), "generative_dim": at_least(1), "seed": at_least(0)},
        )
        if not re.fullmatch(r"linear|mlp[1-9]\d*x_gelu", self.projector):
            raise Vega3DError(
                f"model.projector: expected linear or mlpNx_gelu (N >= 1, e.g. mlp2x_gelu), got {self.projector!r}"
            )
        unknown = set(self.lora) - {"r", "alpha", "dropout", "target_modules"}
        if unknown:
            raise Vega3DError(f"model.lora: unknown keys {sorted(unknown)} (r, alpha, dropout, target_modules)")
        lora = {**DEFAULT_LORA, **self.lora}  # unspecified keys: defaults
        number = (int, float)
        checks = (
            ("r", isinstance(lora["r"], int) and not isinstance(lora["r"], bool) and lora["r"] >= 1, "an integer >= 1"),
            (
                "alpha",
                isinstance(lora["alpha"], number) and not isinstance(lora["alpha"], bool) and lora["alpha"] > 0,
                "a number > 0",
            ),
            (
                "dropout",
                isinstance(lora["dropout"], number)
                and not isinstance(lora["dropout"], bool)
                and 0 <= lora["dropout"] < 1,
                "a number in [0, 1)",
            ),
            (
                "target_modules",
                isinstance(lora["target_modules"], str)
                or (
                    isinstance(lora["target_modules"], (list, tuple))
                    and lora["target_modules"]
                    and all(isinstance(t, str) for t in lora["target_modules"])
                ),
                "a regular expression or a non-empty list of module names",
            ),
        )
        for key, ok, expected in checks:
            if not ok:
                raise Vega3DError(f"model.lora.{key}: expected {expected}, got {lora[key]!r}")
        object.__setattr__(self, "lora", lora)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> Vega3DConfig:
        if not isinstance(data, dict):
            raise Vega3DError(f"{where}: section 'model' must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise Vega3DError(f"{where}: unknown model config keys {sorted(unknown)}; valid: {sorted(names)}")
        if "base_model" not in data:
            raise Vega3DError(f"{where}: missing 'base_model' (path of a Qwen2.5-VL folder)")
        try:
            return cls(**data)
        except Vega3DError as exc:
            raise Vega3DError(f"{where}: {exc}") from None

    def replace(self, **changes) -> Vega3DConfig:
        return dataclasses.replace(self, **changes)


QWEN_MODEL_TYPE = "qwen2_5_vl"


def check_qwen_folder(path, field: str = "base model") -> Path:
    """Raise unless ``path`` is a folder whose ``config.json`` declares a Qwen2.5-VL model
    (``model_type`` ``qwen2_5_vl``); ``field`` names the setting in the message. Returns it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise Vega3DError(f"{field}: {path} does not exist (expected a Qwen2.5-VL model folder)")
    if not path.is_dir():
        raise Vega3DError(f"{field}: {path} is a file, expected a Qwen2.5-VL model folder")
    config = path / "config.json"
    if not config.is_file():
        pipeline = [n for n in ("model_index.json", "transformer", "vae") if (path / n).exists()]
        hint = (
            f" (it has {', '.join(pipeline)}: a diffusers pipeline such as Wan2.1, not Qwen2.5-VL)" if pipeline else ""
        )
        raise Vega3DError(f"{field}: {path} is not a Hugging Face model folder: no config.json{hint}")
    data = read_json(config, field)
    found = data.get("model_type") if isinstance(data, dict) else None
    if found != QWEN_MODEL_TYPE:
        what = (
            f"model_type {found!r}"
            if found
            else (
                f"no model_type (_class_name {data.get('_class_name')!r})"
                if isinstance(data, dict) and data.get("_class_name")
                else "no model_type"
            )
        )
        raise Vega3DError(
            f"{field}: {path} is not a Qwen2.5-VL model: its config.json has {what}, "
            f"expected model_type {QWEN_MODEL_TYPE!r}"
        )
    return path


def fingerprint_folder(path) -> str:
    """sha256 over a model folder's ``config.json`` and, for every ``*.safetensors`` file,
    its name, size, header and first/last MiB of data. Cheap (reads a few MiB even for a
    7B model) and changes when the weights are replaced; not a full content hash."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise Vega3DError(f"{path}: not a model folder (no config.json)")
    h = hashlib.sha256()
    h.update((path / "config.json").read_bytes())
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise Vega3DError(f"{path}: no *.safetensors weights")
    mib = 1 << 20
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(mib))
            fh.seek(max(0, size - mib))
            h.update(fh.read(mib))
    return h.hexdigest()


def config_json(config: Vega3DConfig) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
