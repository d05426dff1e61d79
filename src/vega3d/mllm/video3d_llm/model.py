"""VEGA-3D on Video-3D LLM: LLaVA-Video-7B-Qwen2 (transformers' LLaVA-OneVision modules) with
per-token 3D positions, the Wan feature stream fused into the visual tokens, and the InfoNCE head.

:class:`Video3DLLM` holds the stock ``LlavaOnevisionForConditionalGeneration`` (``.base``;
no vendored LLaVA code) and adds ``projector`` + ``fusion`` (the generative branch),
``ground_head`` and the ``<ground>`` / ``<coord>`` rows (``token_in`` / ``token_out``). Per
sample, its visual tokens are built as Video-3D LLM builds them (reference §1.3–§1.5, §5):

    pixels (F, 3, 384, 384) ─► SigLIP ``hidden_states[-1]`` ─► multi_modal_projector
        ─► PRE-POOL (F, 729, D)  [kept: object features]
        ─► apply_pooling (bilinear 27x27 → 14x14) (F, 196, D)
        ─► fusion(·, projector(Wan grid area-resampled onto the 14x14 token cells))  [generative]
        ─► + sin3d(discretised token world position, D)
        ─► a learned newline after every row ─► (F·14·15, D)

and written into the ``F·210`` placeholder positions (``IMAGE_INDEX`` in ``input_ids``) of
``inputs_embeds``; ``<coord>`` gets ``sin3d(discretised box centre)`` added. The LLM runs on
``inputs_embeds`` (``base.model.language_model``, transformers' Qwen2). A grounding sample
(one with object cells) is scored by the head at the ``<ground>`` hidden state and trained with
InfoNCE only; every other sample gets the LM loss on its answer tokens. The batch loss is the
mean of the per-sample losses (a per-sample token mean for the LM loss).

The ``<ground>`` / ``<coord>`` rows are separate parameters (so they train at ``head_lr`` with
the LLM frozen or in LoRA): they replace the base's rows at the embedding and the
``lm_head`` logit columns, and are copied into the base before generation.
``generative=False`` (config or per call) is the baseline: then ``inputs_embeds`` and logits
are exactly the stock model's on the same embeddings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.mllm.host import HostLLM
from vega3d.mllm.video3d_llm.config import FORMAT, Video3DLLMConfig
from vega3d.mllm.video3d_llm.grounding import GroundingHead, add_grounding_tokens, head_state_from_release, info_nce
from vega3d.video3d.geometry import PATCH_GRID, TOKEN_GRID, TOKENS_PER_FRAME, sin3d

#: Placeholder id of a visual token in ``input_ids`` (LLaVA's IMAGE_TOKEN_INDEX); never embedded.
IMAGE_INDEX = -200
IGNORE_INDEX = -100


@dataclass
class VisualTokens:
    """Per sample: ``tokens`` (F·210, D) for the LLM, ``pre_pool`` (F, 729, D) for object
    features; ``gates`` (B,) mean fusion gate per sample (None without the branch)."""

    tokens: list
    pre_pool: list
    gates: torch.Tensor | None


@dataclass
class Video3DOutput:
    """``loss`` (mean of per-sample losses, or None), ``gate_means`` (B,) or None, ``scores``
    per sample ((P + 1,) for grounding samples, else None), ``logits`` (B, L, V) when asked."""

    loss: torch.Tensor | None
    gate_means: torch.Tensor | None
    scores: list
    logits: torch.Tensor | None = None


def area_weights(cells: int, intervals: torch.Tensor) -> torch.Tensor:
    """(T, cells) weights: the share of target interval t ([a, b) in frame fractions) covered by each
    of ``cells`` equal source cells over [0, 1) — exact area averaging of a piecewise-constant grid."""
    edges = torch.linspace(0, 1, cells + 1, dtype=torch.float64)
    lo = torch.maximum(intervals[:, :1], edges[None, :-1])
    hi = torch.minimum(intervals[:, 1:], edges[None, 1:])
    w = (hi - lo).clamp(min=0)
    return w / w.sum(dim=1, keepdim=True)


def token_intervals(strategy: str, aspect: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column intervals (14, 2) in full-frame fractions of the 14 x 14 token cells: token j
    covers SigLIP input pixels [27j, 27(j+1)) of 384 (the 378 px its patches see); ``center_crop``
    maps SigLIP columns into the centre of the ``int(384·aspect)``-wide resized frame (aspect = W/H)."""
    j = torch.arange(TOKEN_GRID, dtype=torch.float64)
    px = torch.stack([27 * j, 27 * (j + 1)], dim=1)
    rows = px / 384
    if strategy == "resize":
        return rows, rows.clone()
    width = int(384 * aspect)
    left = (width - 384) // 2
    return rows, (px + left) / width


def align_generative(grid: torch.Tensor, strategy: str = "resize", aspect: float = 4 / 3) -> torch.Tensor:
    """A full-frame generative grid (F, h, w, C) onto the 14 x 14 token cells (F, 196, C): each
    token is the area-weighted mean of the grid cells its pixels cover (:func:`token_intervals`)."""
    rows, cols = token_intervals(strategy, aspect)
    wr = area_weights(grid.shape[1], rows).to(grid.device, torch.float32)
    wc = area_weights(grid.shape[2], cols).to(grid.device, torch.float32)
    out = torch.einsum("ih,fhwc,jw->fijc", wr, grid.float(), wc)
    return out.reshape(grid.shape[0], TOKEN_GRID * TOKEN_GRID, grid.shape[-1])


def add_row_newlines(tokens: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """(F, 196, D) → (F·210, D): rows of 14 tokens, each followed by ``newline`` (``add_token_per_grid``)."""
    f, _, d = tokens.shape
    grid = tokens.reshape(f, TOKEN_GRID, TOKEN_GRID, d)
    nl = newline.to(tokens.dtype).expand(f, TOKEN_GRID, 1, d)
    return torch.cat([grid, nl], dim=2).reshape(f * TOKENS_PER_FRAME, d)


class Video3DLLM(HostLLM, nn.Module):
    """See the module docstring. Build with :meth:`from_config` or :meth:`from_pretrained`."""

    def __init__(self, base, tokenizer, config: Video3DLLMConfig, head_state: dict | None = None):
        super().__init__()
        self.base = base
        self.tokenizer = tokenizer
        self.config = config
        tok = config.tokens
        self.ground_token_id, self.coord_token_id = int(tok["ground_token_id"]), int(tok["coord_token_id"])
        hidden = int(base.config.text_config.hidden_size)
        ids = torch.tensor([self.ground_token_id, self.coord_token_id])
        self.register_buffer("new_token_ids", ids, persistent=False)
        with torch.no_grad():
            rows_in = base.get_input_embeddings().weight[ids].float().clone()
            rows_out = base.get_output_embeddings().weight[ids].float().clone()
        self.token_in, self.token_out = nn.Parameter(rows_in), nn.Parameter(rows_out)
        self.projector = self.fusion = None
        with torch.random.fork_rng(devices=[]):  # deterministic new modules, caller's RNG untouched
            torch.manual_seed(config.seed)
            self.ground_head = GroundingHead(hidden)
            if config.generative:
                from vega3d.fusion import build_fusion, build_projector

                self.projector = build_projector(config.projector, config.generative_dim, hidden)
                self.fusion = build_fusion(config.fusion, hidden, **config.fusion_kwargs)
            if config.llm == "lora":
                self._inject_lora()
        if head_state is not None:
            self.ground_head.load_state_dict(head_state_from_release(head_state))
        self.attach_simulator(None)
        self.recorded_stand_in = False
        self._set_trainable()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Video3DLLMConfig, dtype="float32", device="cpu") -> Video3DLLM:
        """Load ``config.base_model`` and add what Video-3D LLM adds: the two tokens (unless the base
        is a Video-3D LLM checkpoint that has them) and the head (its weights, when the base has them)."""
        from vega3d.mllm.config import base_fingerprint
        from vega3d.mllm.video3d_llm.loading import load_base

        loaded = load_base(config.base_model, dtype=dtype)
        vocab = dict(loaded.vocab)
        if vocab["ground_token_id"] is None or vocab["coord_token_id"] is None:
            vocab = {**add_grounding_tokens(loaded.model, loaded.tokenizer), "added": True}
        else:
            vocab["added"] = False
        updates = {"tokens": vocab}
        if not config.base_fingerprint:
            updates["base_fingerprint"] = base_fingerprint(config.base_model)
        config = config.model_copy(update=updates)
        return cls(loaded.model, loaded.tokenizer, config, loaded.head_state).to(device).eval()

    def _inject_lora(self):
        from peft import LoraConfig, inject_adapter_in_model

        lora = self.config.lora
        cfg = LoraConfig(r=lora.r, lora_alpha=int(lora.alpha), lora_dropout=lora.dropout,
                         target_modules=lora.target_modules)  # fmt: skip
        inject_adapter_in_model(cfg, self.base)
        params = [p for n, p in self.base.named_parameters() if "lora_" in n]
        if not params:
            raise Vega3DError(f"model.lora.target_modules={cfg.target_modules!r} matched no module of the base model")
        for p in params:
            p.data = p.data.float()

    def _group(self, name: str) -> str:
        """Which parameter group a parameter name belongs to (``parameter_groups``)."""
        if name.startswith(("ground_head.", "token_")):
            return "head"
        if name.startswith(("projector.", "fusion.", "base.model.multi_modal_projector.", "base.model.image_newline")):
            return "branch"
        if name.startswith("base.model.vision_tower.") and "lora_" not in name:
            return "vision"
        return "llm"

    def _set_trainable(self):
        c = self.config
        flags = {"head": c.train_head, "vision": c.train_vision}
        for name, p in self.named_parameters():
            group = self._group(name)
            if group == "branch":
                on = c.train_branch if name.startswith(("projector.", "fusion.")) else c.train_projector
            elif group == "llm":
                on = c.llm == "lora" if "lora_" in name else c.llm == "full"
            else:
                on = flags[group]
            p.requires_grad_(on)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group: "llm" (LoRA or the whole LM), "vision" (SigLIP), "branch"
        (multi_modal_projector, newline, generative projector, fusion), "head" (InfoNCE head, token rows)."""
        groups = {"branch": [], "llm": [], "vision": [], "head": []}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups[self._group(name)].append(p)
        return groups

    def gradient_checkpointing_enable(self):
        kwargs = {"use_reentrant": False}
        if hasattr(self.base, "activation_checkpointing_enable"):
            self.base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    # -- stand-ins and the simulator (vega3d.mllm.host) --------------------------------------
    def _stand_in_names(self) -> dict[str, str]:
        return {"base": f"the LLaVA-Video base ({self.config.base_model})", "simulator": "the Wan simulator",
                "features": "the generative features it was trained on", "model": "the checkpoint"}  # fmt: skip

    # -- visual tokens ----------------------------------------------------------------------
    def _generative_grids(self, gen_features, frames, n: int) -> list[torch.Tensor]:
        if gen_features is not None:
            return gen_features
        if frames is None or self.simulator is None:
            raise Vega3DError(
                "the generative branch needs Wan features: pass gen_features (e.g. from a FeatureStore) or frames "
                "with a simulator attached (attach_simulator)"
            )
        return [self._extract(f) for f in frames]

    def visual_tokens(self, pixel_values, positions, gen_features=None, frames=None, generative=None,
                      aspects=None) -> VisualTokens:  # fmt: skip
        """Per sample: pixels (F, 3, 384, 384), discretised token positions (F, 14, 14, 3), optional
        Wan grids (F, h, w, C) or raw frames for the simulator → :class:`VisualTokens` (module docstring)."""
        use = self._use_generative(generative)
        counts = [int(p.shape[0]) for p in pixel_values]
        m = self.base.model
        dtype = m.multi_modal_projector.linear_1.weight.dtype
        px = torch.cat(list(pixel_values)).to(m.multi_modal_projector.linear_1.weight.device, dtype)
        hidden = m.vision_tower(px, output_hidden_states=True).hidden_states[-1]
        pre_pool = m.multi_modal_projector(hidden)  # (ΣF, 729, D)
        assert pre_pool.shape[1] == PATCH_GRID * PATCH_GRID, pre_pool.shape
        pooled = m.apply_pooling(pre_pool)  # (ΣF, 196, D)
        d = pooled.shape[-1]
        per_sample = list(torch.split(pooled, counts))
        gates = None
        if use:
            grids = self._generative_grids(gen_features, frames, len(counts))
            aspects = aspects or [4 / 3] * len(counts)
            fused, gates = [], []
            for sem, grid, aspect in zip(per_sample, grids, aspects):
                aligned = align_generative(grid.to(sem.device), self.config.strategy, aspect)
                g = self.projector(aligned.to(next(self.projector.parameters()).dtype))
                fdtype = next(self.fusion.parameters(), sem).dtype
                out, gate = self.fusion(sem.reshape(1, -1, d).to(fdtype), g.reshape(1, -1, d).to(fdtype),
                                        grid_thw=(sem.shape[0], TOKEN_GRID, TOKEN_GRID))  # fmt: skip
                fused.append(out.reshape(sem.shape).to(sem.dtype))
                gates.append(gate.reshape(-1)[0])
            per_sample, gates = fused, torch.stack(gates)
        tokens = []
        for sem, pos in zip(per_sample, positions):
            pe = sin3d(pos.to(sem.device, torch.float32), d).reshape(sem.shape)
            tokens.append(add_row_newlines(sem + pe.to(sem.dtype), m.image_newline))
        return VisualTokens(tokens, list(torch.split(pre_pool, counts)), gates)

    def _use_generative(self, generative) -> bool:
        use = self.config.generative if generative is None else bool(generative)
        if use and not self.config.generative:
            raise Vega3DError("generative=True but this model was built with the generative branch off")
        return use

    # -- embeddings -------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, visual: VisualTokens, coords=None) -> torch.Tensor:
        """``inputs_embeds`` (B, L, D): text embeddings (the ``<ground>``/``<coord>`` rows from
        ``token_in``), the visual tokens of sample b in its ``IMAGE_INDEX`` positions (in order),
        and ``sin3d(coords[b])`` added at ``<coord>`` (``coords``: per sample a (3,) discretised
        centre or None)."""
        emb_layer = self.base.get_input_embeddings()
        e = emb_layer(input_ids.clamp(min=0))
        for j, tid in enumerate((self.ground_token_id, self.coord_token_id)):
            e = torch.where((input_ids == tid)[..., None], self.token_in[j].to(e.dtype), e)
        image = input_ids == IMAGE_INDEX
        counts = image.sum(dim=1).tolist()
        want = [t.shape[0] for t in visual.tokens]
        assert counts == want, f"placeholders per sample {counts} vs visual tokens {want}"
        e = e.masked_scatter(image[..., None], torch.cat(visual.tokens).to(e.dtype))
        if coords is not None and any(c is not None for c in coords):
            d = e.shape[-1]
            pe = torch.stack([sin3d(c.float(), d) if c is not None else e.new_zeros(d, dtype=torch.float32)
                              for c in coords]).to(e.device, e.dtype)  # fmt: skip
            e = e + (input_ids == self.coord_token_id)[..., None].to(e.dtype) * pe[:, None, :]
        return e

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``lm_head`` logits with the ``<ground>``/``<coord>`` columns from ``token_out``."""
        out = self.base.get_output_embeddings()(hidden)
        extra = hidden @ self.token_out.to(hidden.dtype).T
        return out.index_copy(-1, self.new_token_ids.to(out.device), extra.to(out.dtype))

    def hidden_states(self, inputs_embeds, attention_mask) -> torch.Tensor:
        lm = self.base.model.language_model
        return lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    # -- forward ----------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask, pixel_values, positions, labels=None, gen_features=None,
                frames=None, coords=None, objects=None, positives=None, aspects=None, generative=None,
                return_logits: bool = False) -> Video3DOutput:  # fmt: skip
        """One batch (see :mod:`vega3d.mllm.video3d_llm.data` for the keys). ``objects``: per sample
        None or ``(cells (P, F, 27, 27) bool, centres (P, 3))``; ``positives``: per grounding sample
        the target proposal indices ([] = zero target) — InfoNCE; other samples: the LM loss."""
        from vega3d.video3d.geometry import object_features

        visual = self.visual_tokens(pixel_values, positions, gen_features, frames, generative, aspects)
        embeds = self.embed(input_ids, visual, coords)
        hidden = self.hidden_states(embeds, attention_mask)
        b = input_ids.shape[0]
        objects = objects or [None] * b
        losses, scores = [], []
        for i in range(b):
            if objects[i] is not None:
                cells, centres = objects[i]
                where = (input_ids[i] == self.ground_token_id).nonzero()
                assert where.numel(), f"grounding sample {i} has no <ground> token"
                feats = object_features(visual.pre_pool[i], cells.to(hidden.device), centres.to(hidden.device))
                s = self.ground_head(feats, hidden[i, int(where[-1])])
                scores.append(s)
                if positives is not None and positives[i] is not None:
                    losses.append(info_nce(s, positives[i], self.config.ground_temperature))
                continue
            scores.append(None)
            if labels is not None:
                target = labels[i, 1:]
                keep = (target != IGNORE_INDEX).nonzero().squeeze(1)
                if keep.numel():
                    logit = self.logits(hidden[i, keep])
                    losses.append(F.cross_entropy(logit.float(), target[keep]))
        loss = torch.stack(losses).mean() if losses else None
        out_logits = self.logits(hidden) if return_logits else None
        return Video3DOutput(loss, visual.gates, scores, out_logits)

    # -- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def sync_token_rows(self) -> None:
        """Copy ``token_in`` / ``token_out`` into the base's embedding and lm_head rows (the base then
        computes exactly what :meth:`embed` / :meth:`logits` do, e.g. inside ``generate``)."""
        ids = self.new_token_ids
        emb, head = self.base.get_input_embeddings().weight, self.base.get_output_embeddings().weight
        emb[ids] = self.token_in.to(emb.dtype)
        head[ids] = self.token_out.to(head.dtype)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, pixel_values, positions, gen_features=None, frames=None,
                 coords=None, aspects=None, generative=None, **generate_kwargs) -> torch.Tensor:  # fmt: skip
        """Greedy (by default) continuation of left-padded prompts: the new token ids (B, T)."""
        visual = self.visual_tokens(pixel_values, positions, gen_features, frames, generative, aspects)
        embeds = self.embed(input_ids, visual, coords)
        self.sync_token_rows()
        generate_kwargs.setdefault("do_sample", False)
        return self.base.generate(inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs)

    # -- checkpoints ------------------------------------------------------------------------
    def save_pretrained(self, directory, state_dict: dict | None = None) -> Path:
        """The config and ONLY the trainable tensors (:mod:`vega3d.mllm.checkpoint`'s format, tagged
        ``vega3d-video3d-llm/1``)."""
        from vega3d.mllm import checkpoint

        names = self.trainable_names()
        source = state_dict if state_dict is not None else dict(self.named_parameters())
        tensors = {n: source[n].detach().to("cpu").clone().contiguous() for n in names}
        return checkpoint.write_checkpoint(directory, self.config, tensors, stand_in=self.stand_in, fmt=FORMAT)

    @classmethod
    def from_pretrained(cls, directory, base=None, simulator=None, dtype="float32", device="cpu",
                        check_base: bool = True, check_sim: bool = True) -> Video3DLLM:  # fmt: skip
        """Rebuild a model saved by :meth:`save_pretrained` (bit-exact): the base folder (recorded, or
        ``base``; fingerprint checked unless ``check_base=False``), the vocabulary (must give the
        recorded rows and ids), then the trainable tensors."""
        from vega3d.mllm import checkpoint

        meta = checkpoint.read_checkpoint_meta(directory, fmt=FORMAT)
        config = read_config(meta, directory)
        if base is not None:
            config = config.model_copy(update={"base_model": str(base)})
        if check_base:
            checkpoint.check_base_fingerprint(config.base_fingerprint, Path(config.base_model), directory)
        if check_sim:
            checkpoint.check_simulator(config.simulator, simulator, str(directory))
        recorded = {k: config.tokens.get(k) for k in ("rows", "ground_token_id", "coord_token_id")}
        found = expected_tokens(config.base_model)
        if recorded != found:
            raise Vega3DError(
                f"{Path(directory) / checkpoint.CONFIG_FILE}: records the vocabulary {recorded}, but base "
                f"{config.base_model} gives {found}; the checkpoint does not match this base's tokenizer"
            )
        tensors = checkpoint.read_trainable(directory)
        model = cls.from_config(config, dtype=dtype)
        checkpoint.copy_trainable(model, tensors, Path(directory) / checkpoint.WEIGHTS_FILE)
        model.recorded_stand_in = bool(meta.get("stand_in", False))
        model.attach_simulator(simulator)
        return model.to(device).eval()


def expected_tokens(base_folder) -> dict:
    """The vocabulary a model on ``base_folder`` has, from its config, headers and tokenizer only (no
    weights): ``{"rows", "ground_token_id", "coord_token_id"}`` — the saved ones when the base has the
    two tokens, else the tokenizer's length + 2 and the next two ids (:func:`add_grounding_tokens`)."""
    from vega3d.mllm.video3d_llm.loading import check_vocabulary, inspect_folder, load_tokenizer

    spec = inspect_folder(base_folder)
    tokenizer = load_tokenizer(spec.folder)
    vocab = check_vocabulary(spec, tokenizer)
    if vocab["ground_token_id"] is not None and vocab["coord_token_id"] is not None:
        return vocab
    n = len(tokenizer)
    return {"rows": n + 2, "ground_token_id": n, "coord_token_id": n + 1}


def recorded_preprocessing(path) -> dict:
    """What a checkpoint of this family recorded about its data (num_frames, sampling, ...); {} for a base folder."""
    from vega3d.mllm import checkpoint

    if is_base_folder(path):
        return {}
    return dict(read_config(checkpoint.read_checkpoint_meta(path, fmt=FORMAT), path).preprocessing)


def read_config(meta: dict, directory) -> Video3DLLMConfig:
    """The :class:`Video3DLLMConfig` of a checkpoint's meta."""
    from vega3d.mllm.checkpoint import meta_config

    return meta_config(meta, directory, Video3DLLMConfig)


def is_base_folder(path) -> bool:
    """True for a folder that is a LLaVA-Video / Video-3D LLM model itself (``config.json`` with
    model_type llava_qwen or llava_onevision), not a vega3d checkpoint."""
    import json

    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") in ("llava_qwen", "llava_onevision")
    except (ValueError, AttributeError, OSError):
        return False


def is_video3d_checkpoint(path) -> bool:
    """True for a vega3d checkpoint of this family (its format tag) or a base folder."""
    from vega3d.mllm import checkpoint

    return is_base_folder(path) or checkpoint.checkpoint_format(path) == FORMAT


def load_any(path, dtype="float32", device="cpu", base=None, simulator=None, check_base=True) -> Video3DLLM:
    """A vega3d checkpoint of this family, or a base folder used as it is (its own head and tokens;
    no generative branch: e.g. the released Video-3D LLM weights)."""
    if is_base_folder(path):
        config = Video3DLLMConfig(base_model=str(Path(path)), generative=False)
        return Video3DLLM.from_config(config, dtype=dtype, device=device)
    if not os.path.isdir(path):
        raise Vega3DError(f"{path}: checkpoint folder does not exist")
    return Video3DLLM.from_pretrained(path, base=base, simulator=simulator, dtype=dtype, device=device,
                                      check_base=check_base)  # fmt: skip
