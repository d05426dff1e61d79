"""VEGA-3D on Qwen2.5-VL: simulator features fused into the visual tokens.

:class:`Vega3DQwen` wraps transformers' ``Qwen2_5_VLForConditionalGeneration`` (``.base``)
and adds two small modules, ``projector`` and ``fusion``. For every video (or image) in a
batch it

1. runs the base model's own vision tower (``base.model.get_video_features``) → semantic
   tokens S, (L, D) in Qwen2.5-VL's merged-token order (L = T*Hp/2*Wp/2);
2. takes the generative feature grid (N, h, w, C) of the same frames — precomputed (a
   :class:`vega3d.store.FeatureStore`) or computed online by a frozen
   :class:`vega3d.simulator.WanWorldSimulator` attached with :meth:`attach_simulator`;
3. aligns it onto the merged-token grid (:func:`vega3d.fusion.align.align_to_qwen_tokens`;
   for a patch merger such as the released ``merger_mlp``: onto the patch grid, each token's
   2 x 2 window concatenated; ``config.generative_interpolation`` picks the resampling),
   projects it to D (``projector``) → G, (L, D);
4. fuses: ``fused, gate_mean = fusion(S, G)``;

and hands the fused tokens to the base model as ``mm_encoder_outputs`` — transformers'
own entry point for pre-encoded visual features, which the base model scatters into the
``<|video_pad|>`` / ``<|image_pad|>`` positions of ``inputs_embeds``. Nothing in the base
model is patched, so ``forward``, the loss, 3-D RoPE and ``generate`` are transformers'.

The simulator is frozen, is not a submodule (it never appears in ``state_dict`` or in a
checkpoint) and may sit on another device. ``config.generative=False`` (or
``forward(..., generative=False)``) is the baseline switch: pixels go straight to the base
model, so the logits are exactly the base model's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vega3d.devices import parse_dtype
from vega3d.errors import Vega3DError
from vega3d.mllm import checkpoint
from vega3d.mllm.config import Vega3DConfig, base_fingerprint, check_qwen_folder
from vega3d.mllm.host import HostLLM

#: How a stand-in notice names each part of :meth:`Vega3DQwen.stand_in_parts`.
_TRAINED_ON = "the generative features (extracted by a stand-in Wan simulator)"


def load_base(path, dtype="float32", device="cpu", what: str = "base model"):
    """``Qwen2_5_VLForConditionalGeneration`` from a local HF folder (no hub access); ``what``
    names the folder in errors.

    Strict: a weight the model needs that the folder lacks, or one of the wrong shape, is an
    error, and so is any weight the model does not use — except, in the released VEGA-3D folder
    (:mod:`vega3d.mllm.release`), its own extra modules (merger, fusion, DiT), which the branch
    and the simulator take instead. Legacy (pre-4.52) key names load through transformers' own
    renaming."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from vega3d.mllm.release import RELEASE_EXTRA_PREFIXES, is_release_config

    path = check_qwen_folder(path, what)
    release = is_release_config(path)
    verbosity = hf_logging.get_verbosity()
    if release:  # its 1.4B-parameter DiT would fill the log with "unexpected key" lines
        hf_logging.set_verbosity_error()
    try:
        model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path, dtype=parse_dtype(dtype), local_files_only=True, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    allowed = RELEASE_EXTRA_PREFIXES if release else ()
    problems = {
        "missing": sorted(info.get("missing_keys") or []),
        "of another shape": sorted(str(k) for k in info.get("mismatched_keys") or []),
        "unused": sorted(k for k in info.get("unexpected_keys") or [] if not k.startswith(allowed)),
    }
    if any(problems.values()):
        found = "; ".join(f"{len(v)} weight(s) {k} (e.g. {', '.join(v[:3])})" for k, v in problems.items() if v)
        raise Vega3DError(f"{what} {path}: its weights do not match Qwen2.5-VL's: {found}")
    return model.to(device)


@dataclass
class VisualOutputs:
    """Fused visual tokens ready for the base model, and the gate per visual input."""

    mm_encoder_outputs: dict
    gate_means: torch.Tensor | None  # (num_videos + num_images,), None for the baseline


class Vega3DQwen(HostLLM, nn.Module):
    """Qwen2.5-VL + the VEGA-3D generative branch. See the module docstring.

    Build with :meth:`from_config` (loads the base folder) or directly from a loaded base
    model. Trainable parameters are set from the config; everything else is frozen.
    """

    def __init__(self, base, config: Vega3DConfig):
        super().__init__()
        self.config = config
        self.base = base
        hidden = base.config.text_config.hidden_size
        self.projector = self.fusion = None
        fork = torch.random.fork_rng(devices=[])
        with fork:  # deterministic init of the new modules, without touching the caller's RNG
            torch.manual_seed(config.seed)
            if config.generative:
                from vega3d.fusion import build_fusion, build_projector

                self.projector = build_projector(
                    config.projector, config.generative_dim, hidden, **config.projector_kwargs
                )
                self.fusion = build_fusion(config.fusion, hidden, **config.fusion_kwargs)
                window, merge = (
                    getattr(self.projector, "merge_window", None),
                    base.config.vision_config.spatial_merge_size,
                )
                if window is not None and int(window) != int(merge):
                    raise Vega3DError(
                        f"model.projector_kwargs: merge_size={window} but the base model merges {merge} x {merge} "
                        "patches per token (vision_config.spatial_merge_size)"
                    )
            if config.llm == "lora":
                self._inject_lora()
        self.attach_simulator(None)
        self.recorded_stand_in = False  # a loaded checkpoint's top-level stand_in flag
        self._set_trainable()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Vega3DConfig, dtype="float32", device="cpu", base=None) -> Vega3DQwen:
        """Load ``config.base_model`` (or use the given loaded ``base``) and add the branch;
        records the base folder's fingerprint when the config has none."""
        init = checkpoint.read_branch(config.branch_init, config) if config.branch_init else None
        if base is None:
            base = load_base(config.base_model, dtype=dtype, device=device)
        if not config.base_fingerprint:
            config = config.replace(base_fingerprint=base_fingerprint(config.base_model))
        model = cls(base, config)
        if init is not None:
            checkpoint.copy_branch(model, init, config.branch_init)
        return model.to(device).eval()

    def _inject_lora(self):
        from peft import LoraConfig, inject_adapter_in_model

        lora = self.config.lora
        cfg = LoraConfig(
            r=lora.r, lora_alpha=int(lora.alpha), lora_dropout=lora.dropout, target_modules=lora.target_modules
        )
        inject_adapter_in_model(cfg, self.base)
        lora_params = [p for n, p in self.base.named_parameters() if "lora_" in n]
        if not lora_params:
            raise Vega3DError(f"model.lora.target_modules={cfg.target_modules!r} matched no module of the base model")
        for p in lora_params:  # adapters train in float32 even on a bf16 base (as peft's get_peft_model does)
            p.data = p.data.float()

    def _set_trainable(self):
        c = self.config
        for name, p in self.base.named_parameters():
            if "lora_" in name:
                p.requires_grad_(c.llm == "lora")
            elif name.startswith("model.visual."):
                p.requires_grad_(c.train_vision)
            else:  # language model, embeddings, lm_head
                p.requires_grad_(c.llm == "full")
        if self.projector is not None:
            self.projector.requires_grad_(c.train_projector)
        if self.fusion is not None:
            self.fusion.requires_grad_(c.train_fusion)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group: ``"branch"`` (projector + fusion), ``"llm"``
        (LoRA or full LLM) and ``"vision"`` — so each group can get its own LR."""
        groups = {"branch": [], "llm": [], "vision": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith(("projector.", "fusion.")):
                groups["branch"].append(p)
            elif name.startswith("base.model.visual.") and "lora_" not in name:
                groups["vision"].append(p)
            else:
                groups["llm"].append(p)
        return groups

    # -- stand-ins and the simulator (vega3d.mllm.host) ------------------------------------
    def _stand_in_names(self) -> dict[str, str]:
        sim = self.simulator
        sim_path = getattr(getattr(sim, "config", None), "model", {}).get("path")
        return {
            "base": f"the Qwen2.5-VL base ({self.config.base_model})",
            "simulator": "the Wan simulator" + (f" ({sim_path})" if sim_path else "")
            if sim is not None
            else _TRAINED_ON,
            "features": _TRAINED_ON,
            "model": f"the checkpoint (its {checkpoint.CONFIG_FILE} records stand_in: true)",
        }

    def simulator_features(self, frames) -> torch.Tensor:
        """Frames (N,3,H,W) float [0,1] or (N,H,W,3) uint8 → (N,h,w,C) from the attached simulator."""
        self._require_simulator("video_features / image_features")
        return self._extract(frames)

    # -- the fused visual tokens ----------------------------------------------------------
    def _fuse_one(self, semantic, grid, thw) -> tuple[torch.Tensor, torch.Tensor]:
        """semantic (L,D), grid (N,h,w,C), thw (3,) → fused (L,D), gate scalar."""
        from vega3d.fusion.align import align_to_qwen_tokens

        vc = self.base.config.vision_config
        t, hp, wp = (int(x) for x in thw)
        proj_dtype = next(self.projector.parameters()).dtype
        fusion_dtype = next(self.fusion.parameters(), semantic).dtype
        aligned = align_to_qwen_tokens(  # (L, C), or (L, m*m*C) windows for a patch merger (merger_mlp)
            grid.to(semantic.device, torch.float32),
            (t, hp, wp),
            spatial_merge_size=int(vc.spatial_merge_size),
            temporal_patch_size=int(vc.temporal_patch_size),
            keep_merge_window=getattr(self.projector, "merge_window", None) is not None,
            interpolation=self.config.generative_interpolation,
        )
        assert aligned.shape[0] == semantic.shape[0], (aligned.shape, semantic.shape)
        gen = self.projector(aligned.to(proj_dtype)).to(fusion_dtype)
        m = int(vc.spatial_merge_size)
        fused, gate = self.fusion(semantic.to(fusion_dtype)[None], gen[None], grid_thw=(t, hp // m, wp // m))
        return fused[0].to(semantic.dtype), gate.reshape(-1)[0]

    def _grids(self, kind: str, n: int, features, frames) -> list[torch.Tensor]:
        """The generative grids of ``n`` videos/images: ``features`` as given (checked), else
        the attached simulator's over ``frames``."""
        c = self.config.generative_dim
        given = frames if features is None else features
        fits = features is None or all(g.ndim == 4 and g.shape[-1] == c for g in features)
        if given is None or len(given) != n or not fits:
            got = (
                f"{kind}_features {[tuple(g.shape) for g in features]}" if features is not None
                else f"{len(frames)} {kind}_frames" if frames is not None else "none"
            )  # fmt: skip
            raise Vega3DError(
                f"{kind}: the generative branch needs {n} {kind}_features grid(s) (N,h,w,C={c}) or {kind}_frames, "
                f"one per {kind}; got {got}"
            )
        if features is None:
            return [self.simulator_features(f) for f in frames]
        return features

    def visual_outputs(
        self,
        pixel_values_videos=None,
        video_grid_thw=None,
        video_features=None,
        video_frames=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        image_frames=None,
    ) -> VisualOutputs:
        """Semantic tokens from the vision tower, fused with the generative stream.

        ``*_features``: list (one per video/image, in batch order) of (N,h,w,C) grids;
        ``*_frames``: list of frames for the attached simulator (used when features are
        not given). Returns ``mm_encoder_outputs`` for the base model and the gates."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        outputs, gates = {}, []
        for kind, pixels, thw, feats, frames in (
            ("video", pixel_values_videos, video_grid_thw, video_features, video_frames),
            ("image", pixel_values, image_grid_thw, image_features, image_frames),
        ):
            if pixels is None:
                continue
            getter = self.base.model.get_video_features if kind == "video" else self.base.model.get_image_features
            semantic = getter(pixels, thw, return_dict=True).pooler_output  # tuple of (L_i, D)
            grids = self._grids(kind, len(semantic), feats, frames)
            fused = [self._fuse_one(sem, grid, g) for sem, grid, g in zip(semantic, grids, thw)]
            outputs[kind] = BaseModelOutputWithPooling(pooler_output=tuple(f for f, _ in fused))
            gates += [gate for _, gate in fused]
        return VisualOutputs(outputs, torch.stack(gates) if gates else None)

    # -- forward / generate ---------------------------------------------------------------
    def _base_inputs(self, generative, visual_kwargs):
        """(kwargs for the base model, gates). Baseline: raw pixels, no fusion."""
        use = self.config.generative if generative is None else bool(generative)
        if use and not self.config.generative:
            raise Vega3DError("generative=True but this model was built with the generative branch off")
        pv, pvv = visual_kwargs.get("pixel_values"), visual_kwargs.get("pixel_values_videos")
        if not use or (pv is None and pvv is None):
            return {"pixel_values": pv, "pixel_values_videos": pvv}, None
        vis = self.visual_outputs(**visual_kwargs)
        return {"mm_encoder_outputs": vis.mm_encoder_outputs}, vis.gate_means

    def forward(
        self,
        input_ids,
        attention_mask=None,
        labels=None,
        mm_token_type_ids=None,
        pixel_values_videos=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
        video_features=None,
        video_frames=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        image_frames=None,
        generative: bool | None = None,
        **kwargs,
    ):
        """Qwen2.5-VL forward with fused visual tokens. Returns transformers' output with
        an extra ``gate_means`` attribute ((num visual inputs,) or None)."""
        visual = dict(
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            video_features=video_features,
            video_frames=video_frames,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
            image_frames=image_frames,
        )
        base_kwargs, gates = self._base_inputs(generative, visual)
        out = self.base(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            mm_token_type_ids=mm_token_type_ids,
            video_grid_thw=video_grid_thw,
            image_grid_thw=image_grid_thw,
            second_per_grid_ts=second_per_grid_ts,
            **base_kwargs,
            **kwargs,
        )
        out.gate_means = gates
        return out

    @torch.no_grad()
    def generate(
        self,
        input_ids,
        attention_mask=None,
        mm_token_type_ids=None,
        pixel_values_videos=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
        video_features=None,
        video_frames=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        image_frames=None,
        generative: bool | None = None,
        **generate_kwargs,
    ):
        """``base.generate`` with the fused visual tokens (transformers' generation loop)."""
        visual = dict(
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            video_features=video_features,
            video_frames=video_frames,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
            image_frames=image_frames,
        )
        base_kwargs, _ = self._base_inputs(generative, visual)
        base_kwargs = {k: v for k, v in base_kwargs.items() if v is not None}
        return self.base.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            mm_token_type_ids=mm_token_type_ids,
            video_grid_thw=video_grid_thw,
            image_grid_thw=image_grid_thw,
            second_per_grid_ts=second_per_grid_ts,
            **base_kwargs,
            **generate_kwargs,
        )

    def gradient_checkpointing_enable(self):
        """Activation checkpointing in the base model's LLM and vision blocks (non-reentrant)."""
        if hasattr(self.base, "activation_checkpointing_enable"):  # transformers >= 5.x name
            self.base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # -- checkpoints (the format: vega3d.mllm.checkpoint) -----------------------------------
    def save_pretrained(self, directory, state_dict: dict | None = None) -> Path:
        """Write the config and ONLY the trainable tensors to ``directory``.

        ``state_dict``: a full state dict to take the tensors from (e.g.
        ``accelerator.get_state_dict(model)`` under ZeRO-3/FSDP); default: the model's own."""
        names = self.trainable_names()
        source = state_dict if state_dict is not None else dict(self.named_parameters())
        tensors = {n: source[n].detach().to("cpu").clone().contiguous() for n in names}
        return checkpoint.write_checkpoint(directory, self.config, tensors, stand_in=self.stand_in)

    @classmethod
    def from_pretrained(
        cls, directory, base=None, simulator=None, dtype="float32", device="cpu", check_base=True, check_sim=True
    ) -> Vega3DQwen:
        """Rebuild a model saved by :meth:`save_pretrained` (bit-exact).

        ``base``: None (the folder recorded in the config), another folder path (the same model
        moved elsewhere; its fingerprint must match unless ``check_base=False``), or a loaded
        ``Qwen2_5_VLForConditionalGeneration``. ``simulator``: attached for online features
        (must match the recorded simulator config unless ``check_sim=False``)."""
        meta = checkpoint.read_checkpoint_meta(directory)
        config = checkpoint.meta_config(meta, directory)
        tensors = checkpoint.read_trainable(directory)
        if base is None or isinstance(base, (str, os.PathLike)):
            given = base is not None
            base_path = check_qwen_folder(
                base if given else config.base_model, "base model" if given else f"base model (recorded in {directory})"
            )
            if check_base:
                checkpoint.check_base_fingerprint(config.base_fingerprint, base_path, directory)
            base = load_base(base_path, dtype=dtype)
        if check_sim:
            checkpoint.check_simulator(config.simulator, simulator, str(directory))
        model = cls(base, config)
        checkpoint.copy_trainable(model, tensors, Path(directory) / checkpoint.WEIGHTS_FILE)
        model = model.to(device).eval()
        model.recorded_stand_in = bool(meta.get("stand_in", False))
        model.attach_simulator(simulator)
        return model
