"""The configuration of a vega3d OpenVLA-OFT policy: the training YAML's ``model`` section, and
what a vega3d policy checkpoint records.

The base is a released OpenVLA-OFT folder (:mod:`vega3d.policy.folder`); on top of it: LoRA
adapters (peft), the trainable heads (action head, proprio projector), and optionally the
generative branch (:mod:`vega3d.policy.branch`). Defaults are OpenVLA-OFT's LIBERO recipe
(``vla-scripts/finetune.py``, ``LIBERO.md``): LoRA rank 32, alpha min(32, 16) = 16, dropout 0,
Gaussian init, on every linear layer the forward uses; two images (third person + wrist); proprio.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from vega3d.config import Config, Float
from vega3d.fusion import FUSIONS
from vega3d.fusion.projector import PROJECTOR_NAME, PROJECTORS

#: The policy's cameras, in the order of its image tokens (OFT: the third-person image first, then the wrist).
CAMERAS = ("agentview", "wrist")


def _projector_name(name: str) -> str:
    if not PROJECTOR_NAME.fullmatch(name):
        raise PydanticCustomError("projector", "unknown projector; valid: {valid}", {"valid": PROJECTORS})
    return name


class PolicyLora(Config):
    """peft LoRA adapters (OFT: ``LoraConfig(r=32, lora_alpha=min(32, 16), lora_dropout=0.0,
    target_modules="all-linear", init_lora_weights="gaussian")``)."""

    r: int = Field(32, ge=1)  # rank (OFT LIBERO: 32)
    alpha: Float = Field(16, gt=0)  # scale alpha / r (OFT: min(rank, 16))
    dropout: Float = Field(0.0, ge=0, lt=1)  # on the adapters' input (OFT: 0.0)
    scope: Literal["all_linear", "llm", "none"] = (
        "all_linear"  # all_linear: towers + projector + LLM (OFT); llm: LLM only
    )


class PolicyConfig(Config):
    """What a vega3d OpenVLA-OFT policy is made of (recorded in every policy checkpoint)."""

    base_model: str  # a released OpenVLA-OFT folder (vega3d.policy.folder)
    base_fingerprint: str = ""  # recorded: files.fingerprint over config.json, the safetensors, the head files
    unnorm_key: str | None = (
        None  # dataset_statistics.json key (None: the only one; a suite name also finds <suite>_no_noops)
    )
    chunk: int | None = Field(None, ge=1)  # actions per chunk K (None: OFT's constant for the key's platform, LIBERO 8)
    cameras: list[Literal[CAMERAS]] = Field(default_factory=lambda: list(CAMERAS), min_length=1)  # image order
    lora: PolicyLora = Field(default_factory=PolicyLora)  # adapters on the base ("none": the base frozen)
    train_heads: bool = True  # the action head and proprio projector train (OFT: yes)
    generative: bool = False  # the generative branch (vega3d's design; off = exactly the released policy)
    branch_cameras: list[Literal[CAMERAS]] = Field(default_factory=lambda: ["agentview"], min_length=1)  # fused cams
    fusion: Literal[tuple(FUSIONS)] = "add"  # inner fusion F(P, G) (vega3d.fusion); add: P + g·W·Z
    fusion_kwargs: dict = Field(default_factory=dict)  # options of that fusion
    projector: Annotated[str, AfterValidator(_projector_name)] = "mlp2x_gelu"  # Wan width -> LLM width
    generative_dim: int = Field(1536, ge=1)  # width C of the Wan feature grid (Wan2.1-1.3B: 1536)
    seed: int = Field(0, ge=0)  # initialises the new modules (branch, LoRA) deterministically
    simulator: dict | None = None  # recorded: the simulator's (or feature store's) extraction config
    statistics: dict | None = None  # recorded: the q01/q99 statistics the policy un-normalises with

    #: Fields vega3d records (not set in a YAML config).
    RECORDED: ClassVar[tuple[str, ...]] = ("base_fingerprint", "simulator", "statistics")
    SECTION: ClassVar[str] = "model"

    @field_validator("cameras")
    @classmethod
    def _cameras(cls, value):
        if len(set(value)) != len(value):
            raise PydanticCustomError("cameras", "expected distinct cameras")
        return value

    @field_validator("branch_cameras")
    @classmethod
    def _branch_cameras(cls, value, info):
        cameras = info.data.get("cameras") or list(CAMERAS)
        if not set(value) <= set(cameras) or len(set(value)) != len(value):
            raise PydanticCustomError(
                "cameras", "expected distinct cameras among model.cameras ({cams})", {"cams": cameras}
            )
        return value
