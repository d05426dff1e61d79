"""A vega3d OpenVLA-OFT policy: the network, its inputs, its adapters and branch, its checkpoints.

:class:`VLAPolicy` is what training and inference use:

- :meth:`VLAPolicy.from_config` — a released OpenVLA-OFT folder (:mod:`vega3d.policy.released`)
  + LoRA adapters (:mod:`vega3d.policy.adapters`) + the generative branch when
  ``config.generative`` (:mod:`vega3d.policy.branch`), trainable parts set from the config;
- ``forward(**batch)`` — normalised K x D chunks (``.actions``) and, with targets, OFT's L1 loss on
  them (``.loss``), the branch's mean gate per sample (``.gate_means``);
- :meth:`save_pretrained` / :meth:`from_pretrained` — a small checkpoint: ``vega3d_policy.json``
  (the :class:`~vega3d.policy.config.PolicyConfig`, which names the base folder and its
  fingerprint, and records the statistics and the simulator) + ``trainable.safetensors``
  (only the trainable tensors), like :class:`vega3d.mllm.Vega3DQwen`'s.

The simulator (online Wan features) is a plain attribute: never a submodule, never saved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vega3d.config import FileRecord, parse
from vega3d.devices import parse_dtype
from vega3d.errors import Vega3DError
from vega3d.files import fingerprint, read_json, write_json
from vega3d.policy.config import PolicyConfig
from vega3d.policy.folder import Statistics, chunk_for, open_oft_folder
from vega3d.policy.model import OFTArch
from vega3d.simulator.attached import AttachedSimulator
from vega3d.standin import notice, stand_in_parts

FORMAT = "vega3d-openvla-oft/1"
CONFIG_FILE = "vega3d_policy.json"
WEIGHTS_FILE = "trainable.safetensors"


def base_fingerprint(folder) -> str:
    """:func:`vega3d.files.fingerprint` over config.json, the VLA safetensors, the head files and the statistics."""
    files = [folder.path / "config.json", *folder.weight_files, folder.action_head_file, folder.proprio_file,
             folder.path / "dataset_statistics.json"]  # fmt: skip
    return fingerprint(folder.path, files)


def statistics_of(config: PolicyConfig, folder) -> Statistics:
    """The statistics the policy normalises with: recorded in the config, else the folder's ``unnorm_key`` entry."""
    if config.statistics is not None:
        return Statistics(**config.statistics)
    return folder.stats(config.unnorm_key)


def make_arch(config: PolicyConfig, folder, stats: Statistics, processor) -> OFTArch:
    branch = None
    if config.generative:
        branch = dict(generative_dim=config.generative_dim, fusion=config.fusion, fusion_kwargs=config.fusion_kwargs,
                      projector=config.projector, seed=config.seed,
                      slots=[config.cameras.index(c) for c in config.branch_cameras])  # fmt: skip
    pad = folder.config.get("pad_token_id", folder.text_config.get("pad_token_id"))
    return OFTArch(towers=folder.towers, text_config=folder.text_config, action_dim=stats.action_dim,
                   proprio_dim=stats.proprio_dim, chunk=config.chunk or chunk_for(stats.key),
                   num_images=len(config.cameras), stop_token_id=processor.stop_id,
                   pad_token_id=int(pad if pad is not None else processor.stop_id), branch=branch)  # fmt: skip


class VLAPolicy(AttachedSimulator, nn.Module):
    """OpenVLA-OFT (+ adapters, + the generative branch) with its processor; see the module docstring."""

    def __init__(self, net, config: PolicyConfig, processor, stand_in: bool = False):
        super().__init__()
        self.net, self.config, self.processor = net, config, processor
        self.base_stand_in = stand_in
        self.attach_simulator(None)
        self._set_trainable()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: PolicyConfig, dtype="float32", device="cpu", folder=None) -> VLAPolicy:
        """Load ``config.base_model`` (checked first; no weights read before every file checks out) and add the
        adapters and branch; records the base fingerprint and the statistics in the config."""
        from vega3d.policy.adapters import inject_lora
        from vega3d.policy.processing import OFTProcessor
        from vega3d.policy.released import load_released

        folder = folder or open_oft_folder(config.base_model)
        stats = statistics_of(config, folder)
        processor = OFTProcessor.from_folder(folder, stats)
        arch = make_arch(config, folder, stats, processor)
        net = load_released(folder, arch, dtype=parse_dtype(dtype))
        lora = config.lora
        inject_lora(net, lora.r, lora.alpha, lora.dropout, lora.scope, config.seed)
        for part in ([net.action_head, net.proprio_projector] if config.train_heads else []) + [net.branch]:
            if part is not None:  # trained parts in float32 whatever the base dtype (as the adapters)
                part.float()
        recorded = {"statistics": stats.__dict__}
        if not config.base_fingerprint:
            recorded["base_fingerprint"] = base_fingerprint(folder)
        return cls(net, config.replace(**recorded), processor, stand_in=folder.stand_in).to(device).eval()

    def _set_trainable(self) -> None:
        for name, p in self.net.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
            elif name.startswith(("action_head.", "proprio_projector.")):
                p.requires_grad_(self.config.train_heads)
            else:
                p.requires_grad_(name.startswith("branch."))

    # -- what the trainer uses -------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: ``branch`` (the generative branch), ``head`` (action head + proprio projector),
        ``vision`` (adapters in the towers), ``llm`` (adapters in the Llama and the projector)."""
        groups = {"branch": [], "head": [], "vision": [], "llm": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("net.branch."):
                groups["branch"].append(p)
            elif name.startswith(("net.action_head.", "net.proprio_projector.")):
                groups["head"].append(p)
            elif name.startswith("net.vision_backbone."):
                groups["vision"].append(p)
            else:
                groups["llm"].append(p)
        return groups

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def gradient_checkpointing_enable(self) -> None:
        self.net.gradient_checkpointing_enable()

    def stand_in_parts(self) -> list[str]:
        """``base`` (the OFT folder is a stand-in), ``simulator`` (the attached or recorded simulator is)."""
        sim = self.simulator if self.simulator is not None else self.config.simulator
        return stand_in_parts(base=self.base_stand_in, simulator=sim)

    @property
    def stand_in(self) -> bool:
        return bool(self.stand_in_parts())

    def stand_in_notice(self, consequence: str) -> str | None:
        names = {"base": f"the OpenVLA-OFT base ({self.config.base_model})", "simulator": "the Wan simulator"}
        return notice([names[p] for p in self.stand_in_parts()], consequence)

    # -- generative features (attach_simulator, simulator: vega3d.simulator.attached) --------------
    def simulator_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` (B, m, H, W, 3) uint8 (the branch cameras' policy images) -> (B, m, h, w, C) float32."""
        self._require_simulator("generative_features")
        b, m = frames.shape[:2]
        grids = self._extract(frames.reshape(b * m, *frames.shape[2:]).cpu())
        return grids.reshape(b, m, *grids.shape[1:])

    def forward(self, input_ids, attention_mask, pixel_values, proprio, actions=None, generative_features=None,
                generative_frames=None):  # fmt: skip
        """The network's forward (:class:`~vega3d.policy.model.OFTOutput`: ``actions``, ``loss``, ``gate_means``);
        with the branch, ``generative_features`` (B, m, h, w, C) or ``generative_frames`` for the simulator."""
        if self.net.branch is not None and generative_features is None:
            generative_features = self.simulator_features(generative_frames)
        if generative_features is not None:
            generative_features = generative_features.to(pixel_values.device)
        return self.net(input_ids, attention_mask, pixel_values, proprio, actions, generative_features)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_pretrained(self, directory, state_dict: dict | None = None) -> Path:
        """``vega3d_policy.json`` + ``trainable.safetensors`` (the trainable tensors only), the config last."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = self.trainable_names()
        source = state_dict if state_dict is not None else dict(self.named_parameters())
        tensors = {n: source[n].detach().to("cpu").clone().contiguous() for n in names}
        tmp = directory / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        os.replace(tmp, directory / WEIGHTS_FILE)
        meta = {"format": FORMAT, "config": self.config.to_dict(), "trainable": names, "stand_in": self.stand_in}
        write_json(directory / CONFIG_FILE, meta, sort_keys=True)
        return directory

    @classmethod
    def from_pretrained(cls, directory, dtype="float32", device="cpu", base=None, check_base: bool = True) -> VLAPolicy:
        """A policy saved by :meth:`save_pretrained` (bit-exact). ``base``: another path of the same base folder
        (its fingerprint must match unless ``check_base=False``)."""
        from safetensors.torch import load_file

        from vega3d.mllm.checkpoint import copy_trainable

        meta = read_checkpoint_meta(directory)
        config = parse(PolicyConfig, meta["config"], str(Path(directory) / CONFIG_FILE), "config")
        weights = Path(directory) / WEIGHTS_FILE
        if not weights.is_file():
            raise Vega3DError(f"{directory}: missing {WEIGHTS_FILE}")
        folder = open_oft_folder(base or config.base_model)
        if check_base and config.base_fingerprint and base_fingerprint(folder) != config.base_fingerprint:
            raise Vega3DError(f"{directory}: base {folder.path} has another fingerprint than the one this policy was "
                              "trained on (to use it anyway: check_base=False)")  # fmt: skip
        policy = cls.from_config(config, dtype=dtype, folder=folder)
        copy_trainable(policy, load_file(str(weights)), weights)
        return policy.to(device).eval()


class _CheckpointMeta(FileRecord):
    """A policy checkpoint's ``config.json`` (:meth:`VLAPolicy.save_pretrained`), the fields checked on load."""

    format: Literal[FORMAT]  # this layout's name and version
    config: dict  # the PolicyConfig (parsed by the caller)


def read_checkpoint_meta(directory) -> dict:
    path = Path(directory) / CONFIG_FILE
    meta = read_json(path, f"{directory}: not a vega3d policy checkpoint")
    parse(_CheckpointMeta, meta, path)
    return meta


def is_policy_checkpoint(path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()
