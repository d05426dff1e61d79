"""The Qwen2.5-VL family's part of training (``family: qwen25vl``, the default).

Its training YAML adds the sections ``model`` (:class:`~vega3d.mllm.config.Vega3DConfig`, less the
fields training records) and ``data`` (:class:`~vega3d.mllm.data.DataConfig`) to the generic
ones (:mod:`vega3d.training.config`). The model is a :class:`~vega3d.mllm.model.Vega3DQwen`
with an attached online simulator, or the feature store's extraction config recorded; the data
are LLaVA-style conversations over videos, frame folders and scans.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

from vega3d.errors import Vega3DError
from vega3d.mllm.config import Vega3DConfig, check_qwen_folder
from vega3d.mllm.data import DataConfig
from vega3d.training.config import TrainConfig, check_common_paths, check_path
from vega3d.training.families import Family, shuffled_loader


class QwenTrainConfig(TrainConfig):
    """A training config of the Qwen2.5-VL family."""

    family: Literal["qwen25vl"] = "qwen25vl"
    model: Vega3DConfig  # the model (less the fields training records: Vega3DConfig.RECORDED)
    data: DataConfig


def check(config: QwenTrainConfig, where, paths: bool = True) -> None:
    """A feature source for the generative branch; with ``paths``, the paths exist and are of
    the right kind (model.base_model a Qwen2.5-VL folder). ``where(loc)`` names where a field was set."""
    check_feature_source(config, where)
    if not paths:
        return
    check_qwen_folder(config.model.base_model, f"{where(('model', 'base_model'))}: model.base_model")
    check_path("model.branch_init", config.model.branch_init, "folder", where)
    d = config.data
    check_path("data.annotations", d.annotations, "file", where)
    check_path("data.media_root", d.media_root, "folder", where)
    check_path("data.feature_store", d.feature_store, "folder", where)
    check_common_paths(config, where)


def build_model(config: QwenTrainConfig, device):
    """The model with its feature source (an attached simulator, or the feature store's
    extraction config recorded) and the training preprocessing recorded in its config."""
    from vega3d.mllm.model import Vega3DQwen

    d = config.data
    model = Vega3DQwen.from_config(config.model, dtype=config.train.base_dtype, device="cpu")
    recorded = feature_source(config, model, device)
    preprocessing = {
        "num_frames": d.num_frames,
        "frame_fps": d.frame_fps,
        "video_min_pixels": d.video_min_pixels,
        "video_max_pixels": d.video_max_pixels,
        "frames_as": d.frames_as,  # Answerer.from_checkpoint's default
    }
    model.config = model.config.replace(simulator=recorded, preprocessing=preprocessing)
    return model


def build_loader(config: QwenTrainConfig, model):
    """The processor, the dataset (frames only when a simulator is attached) and its shuffled
    DataLoader."""
    from vega3d.mllm.data import ConversationDataset, collate
    from vega3d.mllm.processing import Vega3DProcessor

    d = config.data
    processor = Vega3DProcessor.from_pretrained(config.model.base_model, d.video_min_pixels, d.video_max_pixels)
    dataset = ConversationDataset(d, processor, need_frames=model.simulator is not None)
    return shuffled_loader(dataset, config.train, partial(collate, pad_token_id=processor.tokenizer.pad_token_id))


def to_device(batch: dict, device) -> dict:
    from vega3d.mllm.data import to_device as move

    return move(batch, device)


# -- what the families of vega3d.mllm share (this one and vega3d.mllm.video3d_llm.family) --------
def check_feature_source(config: TrainConfig, where) -> None:
    """The generative branch (``model.generative``) needs a feature source: a ``simulator`` section
    (online features) or ``data.feature_store`` (precomputed)."""
    if config.model.generative and config.simulator is None and not config.data.feature_store:
        raise Vega3DError(
            f"{where(('model', 'generative'))}: the generative branch is on but there is neither a 'simulator' "
            "section (online features) nor data.feature_store (precomputed features)"
        )


def feature_source(config: TrainConfig, model, device) -> dict | None:
    """The simulator record the trained model keeps: with ``data.feature_store`` the store's
    extraction config; else, with the branch on, the online simulator's config (built behind the
    feature cache and attached to ``model``); else ``model.simulator`` as configured."""
    if config.data.feature_store:
        from vega3d.store import FeatureStore

        return FeatureStore(config.data.feature_store).extraction_config
    if config.model.generative:
        simulator = config.simulator.build(device, config.train)
        model.attach_simulator(simulator)
        return simulator.config.to_dict()
    return config.model.simulator


FAMILY = Family(
    name="qwen25vl",
    config=QwenTrainConfig,
    path_fields=(
        ("model", "base_model"),
        ("model", "branch_init"),
        ("data", "annotations"),
        ("data", "media_root"),
        ("data", "feature_store"),
    ),
    check=check,
    build_model=build_model,
    build_loader=build_loader,
    to_device=to_device,
)
