"""The Video-3D LLM family's part of training (``family: video3d_llm``).

Its training YAML adds ``model`` (:class:`~vega3d.mllm.video3d_llm.config.Video3DLLMConfig`,
less the fields training records) and ``data`` (:class:`~vega3d.mllm.video3d_llm.data.Video3DDataConfig`)
to the generic sections (:mod:`vega3d.training.config`). The model is a
:class:`~vega3d.mllm.video3d_llm.model.Video3DLLM` with an attached online simulator, or the
feature store's extraction config recorded; the data are the release's ``*_llava_style.json``
records over ``posed_images`` scans. Grounding samples train the InfoNCE head only, the others
the LM loss: a batch can leave the head (or the LM head) without gradient, so multi-GPU DDP
runs need ``train.find_unused_parameters: true``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

from vega3d.errors import Vega3DError
from vega3d.mllm.family import check_feature_source, feature_source
from vega3d.mllm.video3d_llm.config import Video3DLLMConfig
from vega3d.mllm.video3d_llm.data import Video3DDataConfig
from vega3d.training.config import TrainConfig, check_common_paths, check_path
from vega3d.training.families import Family, shuffled_loader


class Video3DTrainConfig(TrainConfig):
    """A training config of the Video-3D LLM family."""

    family: Literal["video3d_llm"] = "video3d_llm"
    model: Video3DLLMConfig  # the model (less the fields training records: Video3DLLMConfig.RECORDED)
    data: Video3DDataConfig


def check(config: Video3DTrainConfig, where, paths: bool = True) -> None:
    """A feature source for the generative branch; with ``paths``, the base folder (config and
    weight headers), the data folder, every annotation file and the feature store exist."""
    check_feature_source(config, where)
    if not paths:
        return
    from vega3d.mllm.video3d_llm.loading import inspect_folder

    try:
        inspect_folder(config.model.base_model)
    except Vega3DError as err:
        raise Vega3DError(f"{where(('model', 'base_model'))}: model.base_model: {err}") from None
    d = config.data
    check_path("data.root", d.root, "folder", where)
    for i, name in enumerate(d.annotations):
        path = Path(name) if Path(name).is_absolute() else Path(d.root) / name
        check_path(f"data.annotations.{i}", str(path), "file", where)
    check_path("data.feature_store", d.feature_store, "folder", where)
    check_common_paths(config, where)


def build_model(config: Video3DTrainConfig, device):
    """The model with its feature source and the preprocessing recorded in its config."""
    from vega3d.mllm.video3d_llm.model import Video3DLLM

    d = config.data
    model = Video3DLLM.from_config(config.model, dtype=config.train.base_dtype, device="cpu")
    recorded = feature_source(config, model, device)
    preprocessing = {"num_frames": d.num_frames, "sampling": d.sampling, "spatial_instruction": d.spatial_instruction}
    model.config = model.config.model_copy(update={"simulator": recorded, "preprocessing": preprocessing})
    return model


def build_loader(config: Video3DTrainConfig, model):
    """The dataset over the annotation files and its shuffled DataLoader."""
    from vega3d.mllm.video3d_llm.data import Video3DDataset, collate

    dataset = Video3DDataset(config.data, model.tokenizer, model.config.strategy,
                             need_frames=model.simulator is not None)  # fmt: skip
    return shuffled_loader(dataset, config.train, partial(collate, pad_token_id=model.tokenizer.pad_token_id))


def to_device(batch: dict, device) -> dict:
    from vega3d.mllm.video3d_llm.data import to_device as move

    return move(batch, device)


FAMILY = Family(
    name="video3d_llm",
    config=Video3DTrainConfig,
    path_fields=(("model", "base_model"), ("data", "root"), ("data", "feature_store")),
    check=check,
    build_model=build_model,
    build_loader=build_loader,
    to_device=to_device,
)
