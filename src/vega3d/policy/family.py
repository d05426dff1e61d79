"""The OpenVLA-OFT family's part of training (``family: openvla_oft`` in a ``vega3d train`` YAML).

Its YAML adds ``model`` (:class:`~vega3d.policy.config.PolicyConfig`: the released OFT folder,
LoRA, heads, the generative branch) and ``data`` (:class:`~vega3d.policy.data.PolicyData`: a
LeRobot-format LIBERO dataset) to the generic sections (:mod:`vega3d.training.config`). The loop
is the one trainer (:mod:`vega3d.training.loop`); the objective is OFT's L1 loss on the
normalised K x 7 chunk. Parameter groups: ``llm`` (adapters in the Llama and the projector, at
``train.lr``), ``vision`` (adapters in the towers, ``train.vision_lr``), ``head`` (action head +
proprio projector, ``train.head_lr``), ``branch`` (``train.branch_lr``).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

from vega3d.errors import Vega3DError
from vega3d.policy.config import PolicyConfig
from vega3d.policy.data import PolicyData
from vega3d.training.config import TrainConfig, check_common_paths, check_path
from vega3d.training.families import Family, shuffled_loader


class PolicyTrainConfig(TrainConfig):
    """A training config of the OpenVLA-OFT family."""

    family: Literal["openvla_oft"] = "openvla_oft"
    model: PolicyConfig  # the policy (less the fields training records: PolicyConfig.RECORDED)
    data: PolicyData


def check(config: PolicyTrainConfig, where, paths: bool = True) -> None:
    """A feature source for the branch, a store only with the centre crop; with ``paths``, the base folder
    (every file, no weights read) and the dataset's action/state widths and cameras against the policy."""
    m, d = config.model, config.data
    if m.generative and config.simulator is None and not d.feature_store:
        raise Vega3DError(f"{where(('model', 'generative'))}: the generative branch is on but there is neither a "
                          "'simulator' section (online features) nor data.feature_store (precomputed features)")  # fmt: skip
    if d.feature_store and d.random_crop:
        raise Vega3DError(f"{where(('data', 'random_crop'))}: data.random_crop moves the patch grid, but the feature "
                          "store holds the centre crop's Wan grids; set data.random_crop: false or use the simulator")  # fmt: skip
    if not paths:
        return
    from vega3d.policy.data import open_dataset
    from vega3d.policy.folder import open_oft_folder
    from vega3d.policy.vla import statistics_of

    try:
        stats = statistics_of(m, open_oft_folder(m.base_model))
    except Vega3DError as err:
        raise Vega3DError(f"{where(('model', 'base_model'))}: model.base_model: {err}") from None
    check_path("data.dataset", d.dataset, "folder", where)
    check_path("data.feature_store", d.feature_store, "folder", where)
    try:
        open_dataset(d, stats.action_dim, stats.proprio_dim, m.cameras)
    except Vega3DError as err:
        raise Vega3DError(f"{where(('data', 'dataset'))}: data.dataset: {err}") from None
    check_common_paths(config, where)


def build_model(config: PolicyTrainConfig, device):
    """The policy (base + adapters + branch), the statistics it trains with recorded, and its feature source
    (an attached simulator, or the store's extraction config recorded)."""
    from vega3d.policy.vla import VLAPolicy

    m, d = config.model, config.data
    recorded = {}
    if d.statistics == "dataset":  # the dataset's q01/q99; K still the base's platform constant (or model.chunk)
        from vega3d.libero.dataset import LeRobotDataset
        from vega3d.policy.data import dataset_statistics
        from vega3d.policy.folder import chunk_for, open_oft_folder

        stats = dataset_statistics(LeRobotDataset(d.dataset, state_key=d.state_key, action_key=d.action_key), d)
        recorded["statistics"] = stats.__dict__
        recorded["chunk"] = m.chunk or chunk_for(open_oft_folder(m.base_model).stats(m.unnorm_key).key)
    simulator = None
    if m.generative and d.feature_store:
        from vega3d.store import FeatureStore

        recorded["simulator"] = FeatureStore(d.feature_store).extraction_config
    elif m.generative:
        simulator = config.simulator.build(device, config.train)
        recorded["simulator"] = simulator.config.to_dict()
    model = VLAPolicy.from_config(m.replace(**recorded), dtype=config.train.base_dtype)
    model.attach_simulator(simulator)
    return model


def build_loader(config: PolicyTrainConfig, model):
    """The samples (module docstring of :mod:`vega3d.policy.data`) in a shuffled DataLoader."""
    from vega3d.policy.data import PolicyDataset, collate

    m, d, t = model.config, config.data, config.train
    store = None
    if m.generative and d.feature_store:
        from vega3d.store import FeatureStore

        store = FeatureStore(d.feature_store)
    dataset = PolicyDataset(d, model.processor, chunk=model.net.arch.chunk, cameras=m.cameras,
                            branch_cameras=m.branch_cameras if m.generative else None,
                            need_frames=model.simulator is not None, store=store)  # fmt: skip
    return shuffled_loader(dataset, t, partial(collate, processor=model.processor))


def to_device(batch: dict, device) -> dict:
    from vega3d.policy.data import to_device as move

    return move(batch, device)


FAMILY = Family(
    name="openvla_oft",
    config=PolicyTrainConfig,
    path_fields=(("model", "base_model"), ("data", "dataset"), ("data", "feature_store")),
    check=check,
    build_model=build_model,
    build_loader=build_loader,
    to_device=to_device,
)
