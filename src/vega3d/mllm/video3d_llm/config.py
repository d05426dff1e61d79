"""The configuration of a VEGA-3D Video-3D LLM model (what its checkpoints record).

:class:`Video3DLLMConfig` names the base folder (LLaVA-Video-7B-Qwen2, or a released Video-3D
LLM checkpoint, in either layout: :mod:`vega3d.mllm.video3d_llm.loading`), the generative
branch (fusion variant, projector, Wan feature width; ``generative: false`` is the baseline),
the frame geometry, the InfoNCE temperature and which parts train. Training records the base
folder's fingerprint, the simulator (or feature store) the features came from, the vocabulary
(rows and the ``<ground>`` / ``<coord>`` ids) and the data preprocessing.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vega3d.config import Config, Float
from vega3d.fusion import FUSIONS
from vega3d.mllm.config import LoraSettings
from vega3d.video3d.geometry import GROUND_TEMPERATURE, STRATEGIES

FORMAT = "vega3d-video3d-llm/1"


class Video3DLLMConfig(Config):
    """What a VEGA-3D Video-3D LLM is made of (recorded in every checkpoint)."""

    base_model: str  # LLaVA-Video-7B-Qwen2 or a Video-3D LLM checkpoint folder ("llava" or "hf" layout)
    base_fingerprint: str = ""  # recorded: vega3d.mllm.config.base_fingerprint of the base folder
    generative: bool = True  # False: the baseline (Video-3D LLM itself): no Wan branch
    fusion: Literal[tuple(FUSIONS)] = "gated"  # vega3d.fusion variant ("gated" = the paper's / VEGA's token_gated)
    fusion_kwargs: dict = Field(default_factory=dict)  # options of that fusion
    projector: str = "mlp2x_gelu"  # generative projector (VEGA: generative_projector mlp2x_gelu)
    generative_dim: int = Field(1536, ge=1)  # Wan feature width (1536: Wan2.1-T2V-1.3B)
    simulator: dict | None = None  # recorded: the simulator's / feature store's extraction config
    strategy: Literal[tuple(STRATEGIES)] = "resize"  # frame geometry: resize (VEGA-3D) or center_crop (Video-3D LLM)
    llm: Literal["frozen", "lora", "full"] = "full"  # the paper trains the whole LLM
    lora: LoraSettings = Field(default_factory=LoraSettings)  # adapters when llm is "lora"
    train_vision: bool = True  # SigLIP trains (at train.vision_lr; the paper: 2e-6)
    train_projector: bool = True  # multi_modal_projector (mm_projector) and the per-row newline
    train_branch: bool = True  # generative projector + fusion
    train_head: bool = True  # the InfoNCE head and the <ground>/<coord> rows (train.head_lr)
    ground_temperature: Float = Field(GROUND_TEMPERATURE, gt=0)  # InfoNCE tau (released: 0.07, fixed)
    seed: int = Field(0, ge=0)  # initialises the new modules (head, projector, fusion, LoRA)
    tokens: dict = Field(default_factory=dict)  # recorded: rows, ground_token_id, coord_token_id, added
    preprocessing: dict = Field(default_factory=dict)  # recorded: num_frames, sampling, spatial_instruction

    RECORDED: ClassVar[tuple[str, ...]] = ("base_fingerprint", "simulator", "tokens", "preprocessing")
    SECTION: ClassVar[str] = "model"
