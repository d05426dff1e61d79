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
from dataclasses import dataclass, field
from pathlib import Path

from vega3d.errors import Vega3DError

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
        if self.llm not in LLM_MODES:
            raise Vega3DError(f"Vega3DConfig.llm: expected one of {LLM_MODES}, got {self.llm!r}")
        if int(self.generative_dim) <= 0:
            raise Vega3DError(f"Vega3DConfig.generative_dim must be positive, got {self.generative_dim}")
        unknown = set(self.lora) - {"r", "alpha", "dropout", "target_modules"}
        if unknown:
            raise Vega3DError(f"Vega3DConfig.lora: unknown keys {sorted(unknown)} (r, alpha, dropout, target_modules)")
        object.__setattr__(self, "lora", {**DEFAULT_LORA, **self.lora})  # unspecified keys: defaults

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "Vega3DConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise Vega3DError(f"{where}: unknown model config keys {sorted(unknown)}; valid: {sorted(names)}")
        if "base_model" not in data:
            raise Vega3DError(f"{where}: missing 'base_model' (path of a Qwen2.5-VL folder)")
        return cls(**data)

    def replace(self, **changes) -> "Vega3DConfig":
        return dataclasses.replace(self, **changes)


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
