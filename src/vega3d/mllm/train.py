"""Training a VEGA-3D Qwen2.5-VL with accelerate: ``vega3d train CONFIG.yaml``.

One code path for one GPU, multi-GPU DDP, DeepSpeed ZeRO-2/3 and FSDP — the choice is
accelerate's (``accelerate launch --config_file configs/accelerate/<x>.yaml -m vega3d.cli
train CONFIG.yaml``); nothing here is distributed by hand.

Per optimizer step: AdamW over the trainable groups (branch = projector + fusion at
``branch_lr``, LLM/LoRA at ``lr``, vision tower at ``vision_lr``), cosine LR with linear
warmup (transformers' ``get_cosine_schedule_with_warmup``), gradient clipping, gradient
accumulation. Mixed precision and gradient checkpointing from the config. Logs loss, LR
and gate statistics to tqdm and ``OUTPUT/log.jsonl``. Every ``save_every`` steps:
``OUTPUT/checkpoints/step-XXXXXXX/`` with accelerate's state (trainable weights only,
optimizer, scheduler, RNG), ``model/`` (a small :meth:`Vega3DQwen.save_pretrained`
checkpoint) and ``trainer_state.json`` (written last: its presence marks a complete
checkpoint). A new run in the same ``output_dir`` resumes from the last complete one.
The final model goes to ``OUTPUT/model/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import yaml

from vega3d.errors import Vega3DError
from vega3d.mllm.config import Vega3DConfig
from vega3d.mllm.data import DataConfig
from vega3d.mllm.fields import above, at_least, between, check_fields, one_of
from vega3d.standin.qwen import stand_in_parts

STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class SimulatorSpec:
    """How to build the online :class:`vega3d.simulator.WanWorldSimulator` (see its
    ``from_pretrained``). ``device``: None = the training process's device."""

    path: str
    timestep: float = 300
    shift: float = 5.0
    block: int = 20
    height: int = 480
    width: int = 832
    seed: int = 0
    dtype: str = "bfloat16"
    device: str | None = None
    batch_frames: int | None = None

    def __post_init__(self):
        check_fields(
            self,
            "simulator",
            {
                "timestep": between(0, 1000),
                "shift": above(0),
                "block": at_least(0),
                "height": at_least(16),
                "width": at_least(16),
                "seed": at_least(0),
                "dtype": one_of("float32", "bfloat16", "float16"),
                "batch_frames": at_least(1),
            },
        )


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation and bookkeeping. LRs: ``lr`` for the LLM (LoRA or full), ``branch_lr``
    for projector + fusion (None = ``lr``), ``vision_lr`` for the vision tower.
    ``batch_size`` is per process. ``mixed_precision``: "no" | "bf16" | "fp16" (accelerate);
    ``base_dtype``: the dtype the frozen base is loaded in."""

    output_dir: str
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 1e-5
    branch_lr: float | None = None
    vision_lr: float = 2e-6
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    mixed_precision: str = "bf16"
    base_dtype: str = "bfloat16"
    gradient_checkpointing: bool = True
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 1
    seed: int = 0
    num_workers: int = 2
    find_unused_parameters: bool = False

    def __post_init__(self):
        if self.mixed_precision is False:  # YAML 1.1 reads an unquoted `no` as false
            object.__setattr__(self, "mixed_precision", "no")
        check_fields(
            self,
            "train",
            {
                "epochs": at_least(1),
                "max_steps": at_least(1),
                "batch_size": at_least(1),
                "grad_accum": at_least(1),
                "lr": above(0),
                "branch_lr": above(0),
                "vision_lr": above(0),
                "weight_decay": at_least(0),
                "warmup_ratio": between(0, 1),
                "max_grad_norm": at_least(0),
                "mixed_precision": one_of("no", "bf16", "fp16"),
                "base_dtype": one_of("float32", "bfloat16", "float16"),
                "save_every": at_least(0),
                "keep_last": at_least(0),
                "log_every": at_least(1),
                "seed": at_least(0),
                "num_workers": at_least(0),
            },
        )
        if not self.output_dir:
            raise Vega3DError("train.output_dir: expected a folder path, got an empty string")


@dataclass(frozen=True)
class TrainConfig:
    model: Vega3DConfig
    data: DataConfig
    train: TrainSettings
    simulator: SimulatorSpec | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "simulator": None if self.simulator is None else dataclasses.asdict(self.simulator),
        }


def _section(cls, data, name, where):
    if not isinstance(data, dict):
        raise Vega3DError(f"{where}: section '{name}' must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise Vega3DError(f"{where}: unknown keys in '{name}': {sorted(unknown)}; valid: {sorted(names)}")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise Vega3DError(f"{where}: section '{name}' lacks required keys {missing}")
    try:
        return cls(**data)
    except Vega3DError as exc:
        raise Vega3DError(f"{where}: {exc}") from None


def _set_dotted(tree: dict, dotted: str, where: str) -> None:
    if "=" not in dotted:
        raise Vega3DError(f"override {dotted!r}: expected section.key=value (e.g. train.max_steps=10)")
    key, value = dotted.split("=", 1)
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise Vega3DError(f"override {dotted!r}: {p} is not a section of {where}")
    node[parts[-1]] = yaml.safe_load(value)


def load_train_config(path, overrides: list[str] = (), check_paths: bool = True) -> TrainConfig:
    """Read a YAML training config; ``overrides`` are ``section.key=value`` strings.

    Relative paths (model.base_model, simulator.path, data.annotations, data.media_root,
    data.feature_store, train.output_dir) resolve against the YAML file's folder. Every
    field's type and range is checked (see ``vega3d.mllm.fields``); ``check_paths``: also
    check that the folders and files exist (:func:`check_config_paths`)."""
    path = Path(path)
    if not path.is_file():
        raise Vega3DError(f"{path}: training config not found")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise Vega3DError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(tree, dict):
        raise Vega3DError(f"{path}: expected a mapping with sections model, data, train[, simulator]")
    for o in overrides:
        _set_dotted(tree, o, str(path))
    unknown = set(tree) - {"model", "data", "train", "simulator"}
    if unknown:
        raise Vega3DError(f"{path}: unknown sections {sorted(unknown)}; valid: model, data, train, simulator")
    for name in ("model", "data", "train"):
        if name not in tree:
            raise Vega3DError(f"{path}: missing section '{name}'")
    root = path.resolve().parent

    def resolve(section, key):
        sec = tree.get(section)
        if isinstance(sec, dict) and sec.get(key) and isinstance(sec[key], str):
            p = Path(sec[key]).expanduser()
            sec[key] = str(p if p.is_absolute() else (root / p).resolve())

    for section, key in (
        ("model", "base_model"),
        ("simulator", "path"),
        ("data", "annotations"),
        ("data", "media_root"),
        ("data", "feature_store"),
        ("train", "output_dir"),
    ):
        resolve(section, key)
    model = Vega3DConfig.from_dict(tree["model"], where=str(path))
    data = _section(DataConfig, tree["data"], "data", str(path))
    train = _section(TrainSettings, tree["train"], "train", str(path))
    sim = tree.get("simulator")
    sim = None if sim is None else _section(SimulatorSpec, sim, "simulator", str(path))
    if model.generative and sim is None and not data.feature_store:
        raise Vega3DError(
            f"{path}: the generative branch is on but there is neither a 'simulator' section (online "
            "features) nor data.feature_store (precomputed features)"
        )
    config = TrainConfig(model=model, data=data, train=train, simulator=sim)
    if check_paths:
        check_config_paths(config, str(path))
    return config


def check_config_paths(config: TrainConfig, where: str | None = None) -> None:
    """Raise a :class:`Vega3DError` naming the field when a path of ``config`` does not exist
    or is of the wrong kind (model.base_model must be a Qwen2.5-VL folder)."""
    from vega3d.mllm.config import check_qwen_folder

    where = f"{where}: " if where else ""
    try:
        check_qwen_folder(config.model.base_model, "model.base_model")
    except Vega3DError as exc:
        raise Vega3DError(f"{where}{exc}") from None
    d = config.data
    checks = [
        ("data.annotations", d.annotations, "file"),
        ("data.media_root", d.media_root, "dir"),
        ("data.feature_store", d.feature_store, "dir"),
    ]
    if config.simulator is not None:
        checks.append(("simulator.path", config.simulator.path, "dir"))
    for field, value, kind in checks:
        if not value:
            continue
        p = Path(value)
        if not p.exists():
            raise Vega3DError(
                f"{where}{field}: {p} does not exist (expected a {'file' if kind == 'file' else 'folder'})"
            )
        if kind == "file" and not p.is_file():
            raise Vega3DError(f"{where}{field}: {p} is a folder, expected a file")
        if kind == "dir" and not p.is_dir():
            raise Vega3DError(f"{where}{field}: {p} is a file, expected a folder")
    out = Path(config.train.output_dir)
    if out.exists() and not out.is_dir():
        raise Vega3DError(f"{where}train.output_dir: {out} is a file, expected a folder")


SIMULATOR_KEYS = ("timestep", "shift", "block", "height", "width", "seed")


def _describe_extraction(ext: dict) -> str:
    model = ext.get("model") if isinstance(ext.get("model"), dict) else {}
    items = [f"{k}={ext[k]}" for k in SIMULATOR_KEYS if k in ext]
    items += [f"mode={ext.get('mode', 'frame')}", f"dtype={ext.get('dtype')}"]
    if model.get("path"):
        items.append(f"model={model['path']}")
    if model.get("weights_hash"):
        items.append(f"weights {str(model['weights_hash'])[:12]}")
    if ext.get("stand_in"):
        items.append("STAND-IN weights")
    return ", ".join(items)


def check_feature_store(config: TrainConfig, where: str | None = None) -> str | None:
    """With ``data.feature_store``: compare the store's extraction config with the
    ``simulator`` section when both are given (timestep, shift, block, height, width, seed,
    frame mode and the Wan weights hash; the compute dtype is a run choice, as for
    checkpoints) and raise listing the differing fields. Returns a line saying which simulator
    config the features come from (None without a store)."""
    store_path = config.data.feature_store
    if not store_path:
        return None
    from vega3d.store import FeatureStore

    ext = FeatureStore(store_path).extraction_config
    spec = config.simulator
    if spec is None:
        return (
            f"simulator: features from data.feature_store {store_path}, extracted with {_describe_extraction(ext)} "
            "(no 'simulator' section to compare with)"
        )
    diffs = []
    for key in SIMULATOR_KEYS:
        stored, given = ext.get(key), getattr(spec, key)
        if stored is None or float(stored) != float(given):
            diffs.append(f"{key}: store {stored} vs simulator section {given}")
    if ext.get("mode", "frame") != "frame":
        diffs.append(f"mode: store {ext.get('mode')!r} vs simulator section 'frame' (online features are per frame)")
    stored_hash = (ext.get("model") or {}).get("weights_hash") if isinstance(ext.get("model"), dict) else None
    if stored_hash:
        from vega3d.simulator.layouts import detect_layout, weight_files, weights_hash

        root = Path(spec.path).expanduser()
        given_hash = weights_hash(root, weight_files(root, detect_layout(root)))
        if given_hash != stored_hash:
            diffs.append(
                f"model.weights_hash: store {stored_hash[:12]}… vs simulator section {given_hash[:12]}… ({spec.path})"
            )
    if diffs:
        raise Vega3DError(
            f"{where + ': ' if where else ''}data.feature_store {store_path} was extracted with another simulator config than the "
            f"'simulator' section ({'; '.join(diffs)}); use a store extracted with these settings, or drop the "
            "'simulator' section to train on the store as it was extracted"
        )
    return (
        f"simulator: features from data.feature_store {store_path}, extracted with {_describe_extraction(ext)} "
        "(matches the 'simulator' section)"
    )


# -- checkpoints ----------------------------------------------------------------------------
def complete_checkpoints(output_dir) -> list[Path]:
    """``OUTPUT/checkpoints/step-*`` folders holding a trainer_state.json, oldest first."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _register_trainable_only_hooks(accelerator, model):
    """accelerate's save_state/load_state: keep only trainable tensors of the model
    (the frozen base is reloaded from its folder, never copied into checkpoints)."""
    from safetensors.torch import load_file

    trainable = set(model.trainable_names())

    def strip(name):
        return name[len("module.") :] if name.startswith("module.") else name

    def save_hook(models, weights, output_dir):
        for i, w in enumerate(weights):
            weights[i] = {k: v for k, v in w.items() if strip(k) in trainable}

    def load_hook(models, input_dir):
        file = Path(input_dir) / "model.safetensors"
        if not file.is_file():
            raise Vega3DError(f"{input_dir}: checkpoint lacks model.safetensors")
        tensors = {strip(k): v for k, v in load_file(str(file)).items()}
        if set(tensors) != trainable:
            raise Vega3DError(
                f"{file}: holds {len(tensors)} tensors, expected the model's {len(trainable)} trainable "
                f"parameters (unexpected {sorted(set(tensors) - trainable)[:3]}, "
                f"missing {sorted(trainable - set(tensors))[:3]})"
            )
        params = dict(model.named_parameters())
        with torch.no_grad():
            for k, v in tensors.items():
                params[k].copy_(v)
        models.clear()  # loaded here; accelerate must not load it again

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


# -- the loop -------------------------------------------------------------------------------
def build_simulator(spec: SimulatorSpec, device):
    from vega3d.simulator import WanWorldSimulator

    return WanWorldSimulator.from_pretrained(
        spec.path,
        timestep=spec.timestep,
        shift=spec.shift,
        block=spec.block,
        height=spec.height,
        width=spec.width,
        seed=spec.seed,
        dtype=spec.dtype,
        device=spec.device or device,
        batch_frames=spec.batch_frames,
    )


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) training; returns the folder of the final model checkpoint."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, DistributedType
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from vega3d.mllm.data import ConversationDataset, collate, to_device
    from vega3d.mllm.model import Vega3DQwen, torch_dtype
    from vega3d.mllm.processing import Vega3DProcessor

    t = config.train
    out = Path(t.output_dir)
    check_config_paths(config)
    store_line = check_feature_store(config)
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,
        gradient_accumulation_steps=t.grad_accum,
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=t.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)],
    )
    # Dropout (LoRA, attention) draws from the global RNGs, which cannot take a Generator:
    # training is a program entry point, so it seeds them here (per process), and resume
    # restores them from the checkpoint. Model initialisation uses its own forked seed.
    from accelerate.utils import set_seed

    set_seed(t.seed, device_specific=True)
    is_ds = accelerator.distributed_type == DistributedType.DEEPSPEED
    is_fsdp = accelerator.distributed_type == DistributedType.FSDP
    main = accelerator.is_main_process
    if main and store_line:
        print(store_line, file=sys.stderr)

    # Model (+ simulator outside it).
    model = Vega3DQwen.from_config(config.model, dtype=torch_dtype(t.base_dtype), device="cpu")
    simulator = store_config = None
    if config.model.generative and not config.data.feature_store:
        simulator = build_simulator(config.simulator, accelerator.device)
        model.attach_simulator(simulator)
        model.config = model.config.replace(simulator=simulator.config.to_dict())
    elif config.data.feature_store:
        from vega3d.store import FeatureStore

        store_config = FeatureStore(config.data.feature_store).extraction_config
        model.config = model.config.replace(simulator=store_config)
    parts = stand_in_parts(
        base_model=config.model.base_model,
        simulator=simulator.config.to_dict() if simulator is not None else None,
        features=store_config,
    )
    if main and parts:
        print(
            "NOTE: small STAND-IN(s) with random weights: "
            + "; ".join(parts)
            + ". This run only shows that training works; the model it writes is meaningless "
            "(its checkpoint records stand_in: true).",
            file=sys.stderr,
        )
    d = config.data
    model.config = model.config.replace(
        preprocessing={
            "num_frames": d.num_frames,
            "frame_fps": d.frame_fps,
            "video_min_pixels": d.video_min_pixels,
            "video_max_pixels": d.video_max_pixels,
        }
    )
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    groups = model.parameter_groups()
    lrs = {"branch": t.branch_lr if t.branch_lr is not None else t.lr, "llm": t.lr, "vision": t.vision_lr}
    param_groups = [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]
    if not param_groups:
        raise Vega3DError("nothing to train: every part of the model is frozen (check model.train_* and model.llm)")
    optimizer = torch.optim.AdamW(param_groups, weight_decay=t.weight_decay)

    # Data.
    processor = Vega3DProcessor.from_pretrained(
        config.model.base_model, config.data.video_min_pixels, config.data.video_max_pixels
    )
    dataset = ConversationDataset(config.data, processor, need_frames=simulator is not None)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=t.batch_size,
        shuffle=True,
        num_workers=t.num_workers,
        collate_fn=partial(collate, pad_token_id=processor.tokenizer.pad_token_id),
    )
    steps_per_epoch = math.ceil(math.ceil(len(dataset) / (t.batch_size * accelerator.num_processes)) / t.grad_accum)
    # As in HF Trainer: max_steps, when set, overrides epochs (as many epochs as it takes).
    total_steps = t.max_steps or steps_per_epoch * t.epochs
    if main and t.max_steps and t.max_steps != steps_per_epoch * t.epochs:
        print(
            f"train.max_steps={t.max_steps} overrides train.epochs={t.epochs}: {steps_per_epoch} optimizer "
            f"step(s) per epoch, so {math.ceil(t.max_steps / steps_per_epoch)} epoch(s), the last one possibly "
            "partial; the LR schedule is sized for the max_steps steps",
            file=sys.stderr,
        )
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    unwrapped = accelerator.unwrap_model(model)
    if not (is_ds or is_fsdp):  # DeepSpeed: exclude_frozen_parameters; FSDP saves its own (sharded) state
        _register_trainable_only_hooks(accelerator, unwrapped)
    save_kwargs = {"exclude_frozen_parameters": True} if is_ds else {}
    load_kwargs = {"load_module_strict": False} if is_ds else {}

    # Resume.
    step, epoch, batches_done, skipped = 0, 0, 0, 0
    done = complete_checkpoints(out)
    previous = out / "train_config.json"
    if done and previous.is_file():
        old, new = json.loads(previous.read_text()), json.loads(json.dumps(config.to_dict()))
        diff = [
            f"{sec}.{k}"
            for sec in ("model", "data", "simulator")
            for k in sorted(set(old.get(sec) or {}) | set(new.get(sec) or {}))
            if (old.get(sec) or {}).get(k) != (new.get(sec) or {}).get(k)
        ]
        if diff:
            raise Vega3DError(
                f"{out} holds a run with a different configuration ({', '.join(diff[:6])}); resuming it would mix "
                "two experiments — use another train.output_dir"
            )
    if done:
        last = done[-1]
        accelerator.load_state(str(last / "state"), **load_kwargs)
        state = json.loads((last / STATE_FILE).read_text())
        step, epoch, batches_done, skipped = state["step"], state["epoch"], state["batches_done"], state["skipped"]
        accelerator.print(f"resumed from {last} (step {step}, epoch {epoch}, batch {batches_done})")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log_file = out / "log.jsonl"
    if main and log_file.is_file():  # drop entries after the resumed step (a crashed run's tail)
        lines = [ln for ln in log_file.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        log_file.write_text("".join(ln + "\n" for ln in lines))

    def save(step_now):
        folder = out / "checkpoints" / f"step-{step_now:07d}"
        accelerator.wait_for_everyone()
        accelerator.save_state(str(folder / "state"), **save_kwargs)
        state_dict = accelerator.get_state_dict(model)
        if main:
            unwrapped.save_pretrained(folder / "model", state_dict=state_dict)
            state = {"step": step_now, "epoch": epoch, "batches_done": batches_done, "skipped": skipped}
            (folder / STATE_FILE).write_text(json.dumps(state))
            for old in complete_checkpoints(out)[: -t.keep_last] if t.keep_last > 0 else []:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    bar = tqdm(total=total_steps, initial=step, disable=not (progress and main), desc="train", unit="step")
    model.train()
    start = time.time()
    loss_sum, gate_values, micro = 0.0, [], 0
    while step < total_steps and (t.max_steps or epoch < t.epochs):
        loader.set_epoch(epoch)
        fresh_epoch, step_at_start = batches_done == 0, step
        epoch_loader = accelerator.skip_first_batches(loader, batches_done) if batches_done else loader
        for batch in epoch_loader:
            batches_done += 1
            n_local = torch.tensor([len(batch["ids"]), batch["num_skipped"]], device=accelerator.device)
            counts = accelerator.gather(n_local).reshape(-1, 2)
            skipped += int(counts[:, 1].sum())
            if int(counts[:, 0].min()) == 0:  # a process has no valid sample: all skip this batch
                continue
            inputs = to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                output = model(**inputs)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and t.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            loss_sum += float(accelerator.reduce(output.loss.detach(), "mean"))
            micro += 1
            if output.gate_means is not None:
                gate_values.extend(output.gate_means.detach().float().cpu().tolist())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            if step % t.log_every == 0 or step == total_steps:
                record = {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss_sum / micro,
                    "lr": scheduler.get_last_lr()[0],
                    "skipped_records": skipped,
                    "elapsed_s": round(time.time() - start, 3),
                }
                if gate_values:
                    g = torch.tensor(gate_values)
                    record.update(gate_mean=float(g.mean()), gate_min=float(g.min()), gate_max=float(g.max()))
                if main:
                    with open(log_file, "a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4f}", gate=f"{record.get('gate_mean', float('nan')):.3f}")
                loss_sum, gate_values, micro = 0.0, [], 0
            if t.save_every and step % t.save_every == 0:
                save(step)
            if step >= total_steps:
                break
        else:
            if fresh_epoch and step == step_at_start:  # e.g. every record skipped: would loop forever
                raise Vega3DError(
                    f"epoch {epoch} made no optimizer step (skipped records: {skipped}); check data.annotations"
                )
            epoch, batches_done = epoch + 1, 0
            continue
        break
    bar.close()
    if not (complete_checkpoints(out) and complete_checkpoints(out)[-1].name == f"step-{step:07d}"):
        save(step)
    state_dict = accelerator.get_state_dict(model)
    final = out / "model"
    if main:
        unwrapped.save_pretrained(final, state_dict=state_dict)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final
