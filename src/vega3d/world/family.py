"""The world model's part of training: families ``world`` (the DiT) and ``world_vae`` (its VAE).

Both run on the one trainer (:mod:`vega3d.training.loop`: accelerate, resume, logging,
checkpoints); the model is :class:`~vega3d.world.model.WorldModel` or
:class:`~vega3d.world.model.WorldVae`, the data :class:`~vega3d.world.data.ClipDataset`. The DiT
trains in parameter group ``llm`` (``train.lr``), the main network's group. ``world`` also probes
the DiT every ``probe.every`` steps (:func:`after_step`, :mod:`vega3d.world.schedule`).
"""

from __future__ import annotations

from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.training.config import check_common_paths, check_path
from vega3d.training.families import Family, shuffled_loader
from vega3d.world.config import WorldTrainConfig, WorldVaeTrainConfig


def _check_common(config, where, paths: bool) -> None:
    """No online simulator; a media source names its folder; with ``paths``: it exists."""
    if config.simulator is not None:
        raise Vega3DError(f"{where(('simulator',))}: simulator: the {config.family} family trains its own model and "
                          "reads no simulator; remove the 'simulator' section")  # fmt: skip
    d = config.data
    if d.source == "media" and not d.media_root:
        raise Vega3DError(f"{where(('data', 'media_root'))}: data.media_root: required with data.source: media "
                          "(a video, frame folder, scan folder or a folder of them)")  # fmt: skip
    if paths:
        if d.source == "media" and not Path(d.media_root).exists():
            raise Vega3DError(f"{where(('data', 'media_root'))}: data.media_root: {d.media_root} does not exist")
        check_common_paths(config, where)


def check(config: WorldTrainConfig, where, paths: bool = True) -> None:
    """Whole frames, probe blocks inside the DiT, probe timesteps on Wan's grid, valid probe options;
    with ``paths``: the VAE folder and the probe's scan folder."""
    from vega3d.probe.result import ProbeOptions
    from vega3d.simulator import flow_noise_level

    _check_common(config, where, paths)
    m, d, p = config.model, config.data, config.probe
    if d.crop:
        raise Vega3DError(f"{where(('data', 'crop'))}: data.crop: the DiT trains on whole frames (crop 0); "
                          "crops are for the world_vae family")  # fmt: skip
    bad = [b for b in p.blocks if not 0 <= b < m.num_layers]
    if bad:
        raise Vega3DError(f"{where(('probe', 'blocks'))}: probe.blocks: {bad} outside the DiT's blocks "
                          f"0..{m.num_layers - 1} (model.num_layers={m.num_layers})")  # fmt: skip
    for t in p.timesteps:
        try:
            flow_noise_level(t, m.shift)
        except Vega3DError as err:
            raise Vega3DError(f"{where(('probe', 'timesteps'))}: probe.timesteps: {err}") from None
    if "seed" in p.options:
        raise Vega3DError(f"{where(('probe', 'options'))}: probe.options: seed is probe.seed")
    try:
        ProbeOptions.from_kwargs(**p.options)
    except Vega3DError as err:
        raise Vega3DError(f"{where(('probe', 'options'))}: probe.options: {err}") from None
    if paths:
        _check_vae_folder(m.vae, where)
        check_path("probe.scan", p.scan, "folder", where)


def _check_vae_folder(path, where) -> None:
    from vega3d.files import read_json
    from vega3d.world.model import vae_folder

    if path is None:
        return
    check_path("model.vae", path, "folder", where)
    config = vae_folder(path) / "config.json"
    name = read_json(config, "VAE config").get("_class_name") if config.is_file() else None
    if name != "AutoencoderKLWan":
        found = f"{config} has _class_name {name!r}" if config.is_file() else f"no {config}"
        raise Vega3DError(f"{where(('model', 'vae'))}: model.vae: {found}; expected an AutoencoderKLWan folder (a "
                          "world_vae run's model/) or a Wan2.1 folder with vae/")  # fmt: skip


def build_model(config: WorldTrainConfig, device):
    """The DiT from ``model.init_seed``, its VAE (``model.vae``, else a fixed random one whose latent
    mean/std are measured on the data's statistics frames) and the fixed context."""
    from vega3d.world.data import statistics_frames
    from vega3d.world.model import WorldModel, build_transformer, build_vae, latent_statistics, load_vae

    m = config.model
    if m.vae is None:
        vae = build_vae(m.vae_base_dim, 2, m.init_seed)
        mean, std = latent_statistics(vae, statistics_frames(config.data, config.data.stats_frames))
        vae.register_to_config(latents_mean=mean, latents_std=std)
        vae_info = {"source": "random", "base_dim": m.vae_base_dim, "seed": m.init_seed}
    else:
        from vega3d.files import fingerprint
        from vega3d.world.model import vae_folder

        vae = load_vae(m.vae)
        folder = vae_folder(m.vae)
        vae_info = {"source": str(folder), "weights_hash": fingerprint(folder, sorted(folder.glob("*.safetensors")))}
    from vega3d.world.model import context_rows

    record = {"family": "world", "model": m.to_dict(), "data": config.data.to_dict(), "vae": vae_info}
    return WorldModel(build_transformer(m, m.init_seed), vae, context_rows(m.text_dim, m.init_seed), record)


def build_loader(config, model):
    """The clips in a shuffled DataLoader (``world``: with noise levels; ``world_vae``: without)."""
    from vega3d.world.data import ClipDataset, collate, noise_level_drawer

    drawer = noise_level_drawer(config.model) if config.family == "world" else None
    return shuffled_loader(ClipDataset(config.data, drawer), config.train, collate)


def to_device(batch: dict, device) -> dict:
    from vega3d.world.data import to_device as move

    return move(batch, device)


def after_step(run) -> None:
    """Every ``probe.every`` optimizer steps and at the last step: the probe schedule (main process)."""
    p = run.config.probe
    step = run.state.step
    if run.main and p.every and (step % p.every == 0 or step >= run.total_steps):
        from vega3d.world.schedule import probe_step

        probe_step(run.config, run.unwrapped, step)


FAMILY = Family(
    name="world",
    config=WorldTrainConfig,
    path_fields=(("model", "vae"), ("data", "media_root"), ("probe", "scan")),
    check=check,
    build_model=build_model,
    build_loader=build_loader,
    to_device=to_device,
    after_step=after_step,
)


# ----------------------------------------------------------------------------- world_vae
def check_vae(config: WorldVaeTrainConfig, where, paths: bool = True) -> None:
    """Crops inside the frame, in whole latent cells."""
    _check_common(config, where, paths)
    d = config.data
    if d.crop and (d.crop % 8 or d.crop > min(d.height, d.width)):
        raise Vega3DError(f"{where(('data', 'crop'))}: data.crop: {d.crop} must be a multiple of 8 no larger than "
                          f"the frame ({d.height}x{d.width}), or 0 (whole frames)")  # fmt: skip


def build_vae_model(config: WorldVaeTrainConfig, device):
    """A random VAE from ``model.init_seed``, with the frames its latent statistics are measured on."""
    from vega3d.world.data import statistics_frames
    from vega3d.world.model import WorldVae, build_vae

    m = config.model
    vae = build_vae(m.base_dim, m.num_res_blocks, m.init_seed)
    record = {"family": "world_vae", "model": m.to_dict(), "data": config.data.to_dict()}
    return WorldVae(vae, m.kl_weight, statistics_frames(config.data, config.data.stats_frames), record)


VAE_FAMILY = Family(
    name="world_vae",
    config=WorldVaeTrainConfig,
    path_fields=(("data", "media_root"),),
    check=check_vae,
    build_model=build_vae_model,
    build_loader=build_loader,
    to_device=to_device,
)
