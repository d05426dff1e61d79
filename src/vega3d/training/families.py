"""Model families: what the one trainer needs from each host model.

A family is a :class:`Family`: the class of its whole training config (a :class:`TrainConfig`
subclass with its own ``model`` and ``data`` sections), which of its fields hold paths, its
domain checks, and three builders. The loop (:mod:`vega3d.training.loop`) never looks inside a
model; it uses:

- ``build_model(config, device)`` → a ``torch.nn.Module`` whose forward on ``to_device(batch)``
  returns an object with ``.loss`` (and optionally ``.gate_means``), and which has
  ``parameter_groups() -> {group: [params]}`` (groups: "llm", "branch", "vision", "head"),
  ``trainable_names()``, ``save_pretrained(folder, state_dict=)``,
  ``gradient_checkpointing_enable()`` and ``stand_in_notice(consequence) -> str | None``
  (optionally ``simulator``: an attached online simulator; its feature cache's ``stats()`` are logged);
- ``build_loader(config, model)`` → a ``DataLoader`` whose batches are dicts with ``ids`` (the
  valid records) and ``num_skipped`` (bad records dropped from it);
- ``to_device(batch, device)`` → the model's keyword arguments;
- optionally ``after_step(run)`` → called after every optimizer step (after its log line, before
  its checkpoint), e.g. a periodic evaluation; it must leave the model and every RNG as it found them.

Families register by name in :data:`FAMILIES` (module path, imported on first use); the
training YAML picks one with its top-level ``family`` key (default ``qwen25vl``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from vega3d.errors import Vega3DError


@dataclass(frozen=True)
class Family:
    """One model family's part of training (see the module docstring)."""

    name: str
    config: type  # its TrainConfig subclass: the YAML's sections
    path_fields: tuple[tuple[str, str], ...]  # (section, key) of fields holding paths (resolved vs the YAML)
    check: Callable  # check(config, where, paths) -> None: consistency (a feature source...), with paths=True also
    #   that paths exist and base folders are of the right kind; where(loc) names the override or file of a field
    build_model: Callable  # build_model(config, device) -> model
    build_loader: Callable  # build_loader(config, model) -> DataLoader
    to_device: Callable  # to_device(batch, device) -> model kwargs
    after_step: Callable | None = None  # after_step(run): after each optimizer step, before its checkpoint


#: name -> "module:attribute" of its Family.
FAMILIES = {
    "qwen25vl": "vega3d.mllm.family:FAMILY",
    "video3d_llm": "vega3d.mllm.video3d_llm.family:FAMILY",
    "openvla_oft": "vega3d.policy.family:FAMILY",
    "world": "vega3d.world.family:FAMILY",
    "world_vae": "vega3d.world.family:VAE_FAMILY",
}
DEFAULT_FAMILY = "qwen25vl"


def get_family(name: str, where: str = "config") -> Family:
    """The registered family ``name``; a one-line error listing the families otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise Vega3DError(f"{where}: family: {name!r} is not a model family; expected one of {', '.join(FAMILIES)}")
    module, attr = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def shuffled_loader(dataset, train, collate_fn):
    """A family's training DataLoader of ``dataset``: shuffled, ``train.batch_size`` / ``train.num_workers``
    (the loop hands it to accelerate, which seeds and resumes it)."""
    import torch

    return torch.utils.data.DataLoader(
        dataset, batch_size=train.batch_size, shuffle=True, num_workers=train.num_workers, collate_fn=collate_fn
    )
