"""VEGA-3D on Qwen2.5-VL: simulator features fused into the visual tokens.

:class:`Vega3DQwen` wraps transformers' ``Qwen2_5_VLForConditionalGeneration`` (``.base``)
and adds two small modules, ``projector`` and ``fusion``. For every video (or image) in a
batch it

1. runs the base model's own vision tower (``base.model.get_video_features``) → semantic
   tokens S, (L, D) in Qwen2.5-VL's merged-token order (L = T*Hp/2*Wp/2);
2. takes the generative feature grid (N, h, w, C) of the same frames — precomputed (a
   :class:`vega3d.store.FeatureStore`) or computed online by a frozen
   :class:`vega3d.simulator.WanWorldSimulator` attached with :meth:`attach_simulator`;
3. aligns it onto the merged-token grid (:func:`vega3d.fusion.align.align_to_qwen_tokens`),
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

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.mllm.config import Vega3DConfig, check_qwen_folder

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise Vega3DError(f"dtype: expected one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def load_base(path, dtype="float32", device="cpu"):
    """``Qwen2_5_VLForConditionalGeneration`` from a local HF folder (no hub access)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    path = check_qwen_folder(path, "base model")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch_dtype(dtype), local_files_only=True)
    return model.to(device)


@dataclass
class VisualOutputs:
    """Fused visual tokens ready for the base model, and the gate per visual input."""

    mm_encoder_outputs: dict
    gate_means: torch.Tensor | None  # (num_videos + num_images,), None for the baseline


class Vega3DQwen(nn.Module):
    """Qwen2.5-VL + the VEGA-3D generative branch. See the module docstring.

    Build with :meth:`from_config` (loads the base folder) or directly from a loaded base
    model. Trainable parameters are set from the config; everything else is frozen.
    """

    def __init__(self, base, config: Vega3DConfig):
        super().__init__()
        self.config = config
        self.base = base
        hidden = base.config.text_config.hidden_size
        self.projector = None
        self.fusion = None
        fork = torch.random.fork_rng(devices=[])
        with fork:  # deterministic init of the new modules, without touching the caller's RNG
            torch.manual_seed(int(config.seed))
            if config.generative:
                from vega3d.fusion import build_fusion, build_projector

                self.projector = build_projector(config.projector, int(config.generative_dim), hidden)
                self.fusion = build_fusion(config.fusion, hidden, **dict(config.fusion_kwargs))
            if config.llm == "lora":
                self._inject_lora()
        self.__dict__["_simulator"] = None  # plain attribute: never a submodule
        self.recorded_stand_in = False  # a loaded checkpoint's top-level stand_in flag
        self._set_trainable()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Vega3DConfig, dtype="float32", device="cpu", base=None) -> Vega3DQwen:
        """Load ``config.base_model`` (or use the given loaded ``base``) and add the branch."""
        from vega3d.mllm.config import fingerprint_folder

        if base is None:
            base = load_base(config.base_model, dtype=dtype, device=device)
        if not config.base_fingerprint:
            config = config.replace(base_fingerprint=fingerprint_folder(config.base_model))
        model = cls(base, config)
        return model.to(device).eval()

    def _inject_lora(self):
        from peft import LoraConfig, inject_adapter_in_model

        lora = dict(self.config.lora)
        cfg = LoraConfig(
            r=int(lora.get("r", 16)),
            lora_alpha=int(lora.get("alpha", 32)),
            lora_dropout=float(lora.get("dropout", 0.0)),
            target_modules=lora.get("target_modules"),
        )
        inject_adapter_in_model(cfg, self.base)
        lora_params = [p for n, p in self.base.named_parameters() if "lora_" in n]
        if not lora_params:
            raise Vega3DError(f"lora.target_modules={cfg.target_modules!r} matched no module of the base model")
        for p in lora_params:  # adapters train in float32 even on a bf16 base (as peft's get_peft_model does)
            p.data = p.data.float()

    def _set_trainable(self):
        c = self.config
        for name, p in self.base.named_parameters():
            if "lora_" in name:
                p.requires_grad_(c.llm == "lora")
            elif name.startswith("model.visual."):
                p.requires_grad_(bool(c.train_vision))
            else:  # language model, embeddings, lm_head
                p.requires_grad_(c.llm == "full")
        if self.projector is not None:
            self.projector.requires_grad_(bool(c.train_projector))
        if self.fusion is not None:
            self.fusion.requires_grad_(bool(c.train_fusion))

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

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    # -- simulator ------------------------------------------------------------------------
    @property
    def stand_in(self) -> bool:
        """True when the base, the attached simulator or the features the model was trained
        on are random-weight stand-ins (see :func:`vega3d.standin.qwen.model_stand_in_parts`)."""
        from vega3d.standin.qwen import model_stand_in_parts

        return bool(model_stand_in_parts(self))

    def attach_simulator(self, simulator) -> None:
        """Use ``simulator`` (a frozen WanWorldSimulator, any device) for online features.
        It is stored as a plain attribute: not a submodule, never saved, never moved."""
        if simulator is not None and int(simulator.feature_dim) != int(self.config.generative_dim):
            raise Vega3DError(
                f"simulator feature_dim={simulator.feature_dim} but the model expects "
                f"generative_dim={self.config.generative_dim}"
            )
        self.__dict__["_simulator"] = simulator

    @property
    def simulator(self):
        return self.__dict__["_simulator"]

    @torch.no_grad()
    def simulator_features(self, frames) -> torch.Tensor:
        """Frames (N,3,H,W) float [0,1] or (N,H,W,3) uint8 → (N,h,w,C) from the attached simulator."""
        if self.simulator is None:
            raise Vega3DError(
                "the generative branch needs simulator features: pass video_features/image_features "
                "(precomputed, e.g. from a FeatureStore) or attach a WanWorldSimulator with attach_simulator()"
            )
        device = torch.device(self.simulator.device)
        with torch.autocast(device_type=device.type, enabled=False):  # the simulator keeps its own dtype
            return self.simulator.extract(frames)

    # -- the fused visual tokens ----------------------------------------------------------
    def _fuse_one(self, semantic, grid, thw) -> tuple[torch.Tensor, torch.Tensor]:
        """semantic (L,D), grid (N,h,w,C), thw (3,) → fused (L,D), gate scalar."""
        from vega3d.fusion.align import align_to_qwen_tokens

        if grid.ndim != 4 or grid.shape[-1] != int(self.config.generative_dim):
            raise Vega3DError(
                f"generative features must be (N,h,w,C={self.config.generative_dim}), got {tuple(grid.shape)}"
            )
        vc = self.base.config.vision_config
        t, hp, wp = (int(x) for x in thw)
        proj_dtype = next(self.projector.parameters()).dtype
        fusion_params = list(self.fusion.parameters())
        fusion_dtype = fusion_params[0].dtype if fusion_params else semantic.dtype
        aligned = align_to_qwen_tokens(
            grid.to(semantic.device, torch.float32),
            (t, hp, wp),
            spatial_merge_size=int(vc.spatial_merge_size),
            temporal_patch_size=int(vc.temporal_patch_size),
        )
        if aligned.shape[0] != semantic.shape[0]:
            raise Vega3DError(
                f"aligned generative tokens {tuple(aligned.shape)} do not match the {semantic.shape[0]} visual tokens"
            )
        gen = self.projector(aligned.to(proj_dtype)).to(fusion_dtype)
        m = int(vc.spatial_merge_size)
        fused, gate = self.fusion(semantic.to(fusion_dtype)[None], gen[None], grid_thw=(t, hp // m, wp // m))
        return fused[0].to(semantic.dtype), gate.reshape(-1)[0]

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
            n = len(semantic)
            if feats is None:
                if frames is None or len(frames) != n:
                    raise Vega3DError(
                        f"{kind}: the generative branch needs {n} {kind}_features grids or {kind}_frames "
                        f"(one per {kind}), got {'none' if frames is None else len(frames)}"
                    )
                feats = [self.simulator_features(f) for f in frames]
            if len(feats) != n:
                raise Vega3DError(f"{kind}_features: expected {n} grids (one per {kind}), got {len(feats)}")
            fused = []
            for sem, grid, g in zip(semantic, feats, thw):
                f, gate = self._fuse_one(sem, grid, g)
                fused.append(f)
                gates.append(gate)
            outputs[kind] = BaseModelOutputWithPooling(pooler_output=tuple(fused))
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

    # -- checkpoints ----------------------------------------------------------------------
    def save_pretrained(self, directory, state_dict: dict | None = None) -> Path:
        """Write the config and ONLY the trainable tensors; see :mod:`vega3d.mllm.checkpoint`."""
        from vega3d.mllm.checkpoint import save_checkpoint

        return save_checkpoint(self, directory, state_dict=state_dict)

    @classmethod
    def from_pretrained(cls, directory, base=None, simulator=None, dtype="float32", device="cpu", **kw):
        """Load a checkpoint written by :meth:`save_pretrained`; see :mod:`vega3d.mllm.checkpoint`."""
        from vega3d.mllm.checkpoint import load_checkpoint

        return load_checkpoint(directory, base=base, simulator=simulator, dtype=dtype, device=device, **kw)
