"""The one training loop, for every model family, on accelerate: ``vega3d train CONFIG.yaml``.

One code path for one GPU, multi-GPU DDP, DeepSpeed ZeRO-2/3 and FSDP — the choice is
accelerate's (``accelerate launch --config_file configs/accelerate/<x>.yaml -m vega3d.cli
train CONFIG.yaml``); nothing here is distributed by hand. The config is loaded and checked
by :func:`vega3d.training.config.load_train_config`; this module is the loop.

:func:`train` runs named steps: :func:`prepare` (accelerator, model + simulator or feature
store, optimizer, data, schedule), :func:`resume` (the last complete checkpoint of the same
experiment), then per batch :func:`train_step` (one micro-batch; an optimizer step every
``grad_accum``), :func:`log` and :func:`save`. What is specific to the model family comes from
its :class:`~vega3d.training.families.Family` (model, data loader, batch transfer); the loop
talks to the model only through ``model(**inputs)`` (``.loss``, optional ``.gate_means``),
``parameter_groups()``, ``trainable_names()``, ``save_pretrained()``,
``gradient_checkpointing_enable()`` and ``stand_in_notice()``.

Per optimizer step: AdamW over the trainable groups (branch = projector + fusion at
``branch_lr``, LLM/LoRA at ``lr``, vision tower at ``vision_lr``, task heads at ``head_lr``; each split into
decayed / undecayed parts by HF Trainer's rule with ``decay_norms_and_biases: false``), cosine LR with linear
warmup (transformers' ``get_cosine_schedule_with_warmup``), gradient clipping, gradient
accumulation. Mixed precision and gradient checkpointing from the config. Logs loss, LR
and gate statistics to the progress bar and ``OUTPUT/log.jsonl``. Every ``save_every``
steps: ``OUTPUT/checkpoints/step-XXXXXXX/`` with accelerate's state (trainable weights
only, optimizer, scheduler, RNG), ``model/`` (the model's small ``save_pretrained``
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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json
from vega3d.progress import progress as progress_bar
from vega3d.training.config import TrainConfig, check_feature_store, config_differences
from vega3d.training.families import Family, get_family

STATE_FILE = "trainer_state.json"
STAND_IN_CONSEQUENCE = (
    "This run only shows that training works; the model it writes is meaningless "
    "(its checkpoint records stand_in: true)."
)


@dataclass
class TrainState:
    """Where the run is (``trainer_state.json``): optimizer steps, the epoch, batches of it
    done, records skipped so far."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    skipped: int = 0


@dataclass
class Window:
    """What the micro-steps since the last log line add up to."""

    loss_sum: float = 0.0
    micro: int = 0
    gates: list = field(default_factory=list)


@dataclass
class Run:
    """What :func:`prepare` builds and the other steps share."""

    config: TrainConfig
    family: Family
    accelerator: object
    model: torch.nn.Module  # as accelerate wrapped it
    optimizer: object
    loader: object
    scheduler: object
    total_steps: int
    save_kwargs: dict
    load_kwargs: dict
    state: TrainState = field(default_factory=TrainState)
    window: Window = field(default_factory=Window)
    start: float = field(default_factory=time.time)

    @property
    def out(self) -> Path:
        return Path(self.config.train.output_dir)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    @property
    def finished(self) -> bool:
        t = self.config.train
        return self.state.step >= self.total_steps or not (t.max_steps or self.state.epoch < t.epochs)


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) training; returns the folder of the final model checkpoint."""
    run = prepare(config)
    resume(run)
    bar = progress_bar(
        total=run.total_steps, initial=run.state.step, enabled=progress and run.main, desc="train", unit="step"
    )
    run.model.train()
    run.start = time.time()
    while not run.finished:
        run_epoch(run, bar)
    bar.close()
    return finish(run)


# -- prepare ----------------------------------------------------------------------------------
def prepare(config: TrainConfig) -> Run:
    """Check the config's paths and store, then build the accelerator, the model (+ simulator or
    store), the optimizer, the data and the LR schedule, all wrapped by accelerate."""
    t, family = config.train, get_family(config.family)
    family.check(config, lambda loc: "config", True)
    store_line = check_feature_store(config)
    accelerator = make_accelerator(t)
    if accelerator.is_main_process and store_line:
        print(store_line, file=sys.stderr)
    model = family.build_model(config, accelerator.device)
    if accelerator.is_main_process and (note := model.stand_in_notice(STAND_IN_CONSEQUENCE)):
        print(note, file=sys.stderr)
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = make_optimizer(model, t)
    loader = family.build_loader(config, model)
    total = total_steps(t, len(loader.dataset), accelerator.num_processes, accelerator.is_main_process)
    scheduler = make_schedule(optimizer, t, total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    save_kwargs, load_kwargs = _state_kwargs(accelerator, accelerator.unwrap_model(model))
    return Run(config, family, accelerator, model, optimizer, loader, scheduler, total, save_kwargs, load_kwargs)


def make_accelerator(t):
    """The accelerator for ``t`` (a TrainSettings), with the global RNGs seeded per process."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed

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
    set_seed(t.seed, device_specific=True)
    return accelerator


def make_schedule(optimizer, t, total: int):
    """Linear warmup over ``warmup_ratio`` of the steps, then ``t.schedule``: transformers' cosine
    to 0 at ``total``, or "step": constant, multiplied by ``lr_decay`` at each of ``lr_decay_steps``."""
    from transformers import get_cosine_schedule_with_warmup

    warmup = int(t.warmup_ratio * total)
    if t.schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total)
    milestones = sorted(t.lr_decay_steps)

    def factor(step: int) -> float:
        ramp = step / warmup if step < warmup else 1.0  # transformers' linear warmup
        return ramp * t.lr_decay ** sum(step >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model, t) -> torch.optim.AdamW:
    """AdamW over the model's parameter groups, each at its LR (branch, llm, vision, head)."""
    branch = t.branch_lr if t.branch_lr is not None else t.lr
    lrs = {"branch": branch, "llm": t.lr, "vision": t.vision_lr, "head": t.head_lr if t.head_lr is not None else branch}
    groups = [{"params": ps, "lr": lrs[k], "name": k} for k, ps in model.parameter_groups().items() if ps]
    if not groups:
        raise Vega3DError("nothing to train: every part of the model is frozen (check model.train_* and model.llm)")
    if not t.decay_norms_and_biases:
        decayed = hf_decayed_parameters(model)
        groups = [part for group in groups for part in split_decay(group, decayed)]
    return torch.optim.AdamW(groups, weight_decay=t.weight_decay)


def hf_decayed_parameters(model) -> set[int]:
    """ids of the parameters HF Trainer's optimizer decays (``train.decay_norms_and_biases: false``):
    those outside every ``ALL_LAYERNORM_LAYERS`` module whose names hold no "bias" — transformers'
    ``get_parameter_names`` rule, as the release's ``create_optimizer`` applies it."""
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    names = {name for name in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in name}
    return {id(p) for name, p in model.named_parameters() if name in names}


def split_decay(group: dict, decayed: set[int]) -> list[dict]:
    """``group`` as its decayed parameters and the rest (``weight_decay`` 0, named ``<name>_no_decay``),
    both at its LR; an empty part is left out."""
    decay = [p for p in group["params"] if id(p) in decayed]
    rest = [p for p in group["params"] if id(p) not in decayed]
    parts = (
        {**group, "params": decay},
        {**group, "params": rest, "weight_decay": 0.0, "name": f"{group['name']}_no_decay"},
    )
    return [part for part in parts if part["params"]]


def total_steps(t, num_records: int, num_processes: int, main: bool) -> int:
    """Optimizer steps of the run. As in HF Trainer, max_steps, when set, overrides epochs
    (as many epochs as it takes; the main process says so)."""
    per_epoch = math.ceil(math.ceil(num_records / (t.batch_size * num_processes)) / t.grad_accum)
    if main and t.max_steps and t.max_steps != per_epoch * t.epochs:
        print(
            f"train.max_steps={t.max_steps} overrides train.epochs={t.epochs}: {per_epoch} optimizer "
            f"step(s) per epoch, so {math.ceil(t.max_steps / per_epoch)} epoch(s), the last one possibly "
            "partial; the LR schedule is sized for the max_steps steps",
            file=sys.stderr,
        )
    return t.max_steps or per_epoch * t.epochs


def _state_kwargs(accelerator, model) -> tuple[dict, dict]:
    """accelerate save_state/load_state options: trainable tensors only in the saved state."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        return {"exclude_frozen_parameters": True}, {"load_module_strict": False}
    if kind != DistributedType.FSDP:  # FSDP saves its own (sharded) state
        _register_trainable_only_hooks(accelerator, model)
    return {}, {}


def _register_trainable_only_hooks(accelerator, model):
    """accelerate's save_state/load_state: keep only trainable tensors of the model
    (the frozen base is reloaded from its folder, never copied into checkpoints)."""
    from safetensors.torch import load_file

    from vega3d.mllm.checkpoint import copy_trainable

    trainable = set(model.trainable_names())

    def save_hook(models, weights, output_dir):
        for i, w in enumerate(weights):
            weights[i] = {k: v for k, v in w.items() if k.removeprefix("module.") in trainable}

    def load_hook(models, input_dir):
        file = Path(input_dir) / "model.safetensors"
        copy_trainable(model, {k.removeprefix("module."): v for k, v in load_file(str(file)).items()}, file)
        models.clear()  # loaded here; accelerate must not load it again

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


# -- resume -----------------------------------------------------------------------------------
def complete_checkpoints(output_dir) -> list[Path]:
    """``OUTPUT/checkpoints/step-*`` folders holding a trainer_state.json, oldest first."""
    folder = Path(output_dir) / "checkpoints"
    found = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def resume(run: Run) -> None:
    """Continue from the last complete checkpoint in the output folder, if any — refused when
    it holds another experiment (model, data or simulator sections differ); record this run's
    config and drop log lines after the resumed step (a crashed run's tail)."""
    out, done = run.out, complete_checkpoints(run.out)
    previous = out / "train_config.json"
    if done and previous.is_file():
        diff = config_differences(read_json(previous, "train_config.json"), run.config.to_dict())
        if diff:
            raise Vega3DError(
                f"{out} holds a run with a different configuration ({', '.join(diff[:6])}); resuming it would mix "
                "two experiments — use another train.output_dir"
            )
    if done:
        run.accelerator.load_state(str(done[-1] / "state"), **run.load_kwargs)
        run.state = TrainState(**read_json(done[-1] / STATE_FILE, "trainer state"))
        s = run.state
        run.accelerator.print(f"resumed from {done[-1]} (step {s.step}, epoch {s.epoch}, batch {s.batches_done})")
    if run.main:
        write_json(previous, run.config.to_dict())
        log_file = out / "log.jsonl"
        if log_file.is_file():
            lines = [ln for ln in log_file.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln)["step"] <= run.state.step]
            log_file.write_text("".join(ln + "\n" for ln in kept))


# -- the loop ---------------------------------------------------------------------------------
def run_epoch(run: Run, bar) -> None:
    """The rest of the current epoch (all of it when fresh); returns early at the last step.
    An epoch that makes no optimizer step (every record skipped) is an error, not a hang."""
    s = run.state
    run.loader.set_epoch(s.epoch)
    if hasattr(run.loader.dataset, "set_epoch"):  # per-epoch augmentation draws (accelerate skips this call
        run.loader.dataset.set_epoch(s.epoch)  # with a seedable sampler)
    fresh, step_at_start = s.batches_done == 0, s.step
    batches = run.accelerator.skip_first_batches(run.loader, s.batches_done) if s.batches_done else run.loader
    for batch in batches:
        s.batches_done += 1
        if not train_step(run, batch):
            continue
        t = run.config.train
        if s.step % t.log_every == 0 or s.step == run.total_steps:
            log(run, bar)  # before the bar moves: the step's line shows the step's loss
        bar.update(1)
        if run.family.after_step is not None:
            run.family.after_step(run)
        if t.save_every and s.step % t.save_every == 0:
            save(run)
        if s.step >= run.total_steps:
            return
    if fresh and s.step == step_at_start:
        raise Vega3DError(
            f"epoch {s.epoch} made no optimizer step (skipped records: {s.skipped}); check data.annotations"
        )
    s.epoch, s.batches_done = s.epoch + 1, 0


def train_step(run: Run, batch: dict) -> bool:
    """One micro-batch: forward, backward, and (every ``grad_accum``) the optimizer and LR
    steps. Returns True when an optimizer step was made. A batch in which any process has no
    valid record is skipped by all processes (so DDP cannot hang)."""
    acc, s, w = run.accelerator, run.state, run.window
    counts = acc.gather(torch.tensor([len(batch["ids"]), batch["num_skipped"]], device=acc.device)).reshape(-1, 2)
    s.skipped += int(counts[:, 1].sum())
    if int(counts[:, 0].min()) == 0:
        return False
    with acc.accumulate(run.model):
        output = run.model(**run.family.to_device(batch, acc.device))
        acc.backward(output.loss)
        if acc.sync_gradients and run.config.train.max_grad_norm:
            acc.clip_grad_norm_(run.model.parameters(), run.config.train.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad()
    w.loss_sum += float(acc.reduce(output.loss.detach(), "mean"))
    w.micro += 1
    if output.gate_means is not None:
        w.gates.extend(output.gate_means.detach().float().cpu().tolist())
    if not acc.sync_gradients:
        return False
    run.scheduler.step()
    s.step += 1
    return True


def log(run: Run, bar) -> None:
    """One ``log.jsonl`` line (main process) over the window since the last one; resets it."""
    s, w = run.state, run.window
    record = {
        "step": s.step,
        "epoch": s.epoch,
        "loss": w.loss_sum / w.micro,
        "lr": run.scheduler.get_last_lr()[0],
        "skipped_records": s.skipped,
        "elapsed_s": round(time.time() - run.start, 3),
    }
    if w.gates:
        g = torch.tensor(w.gates)
        record.update(gate_mean=float(g.mean()), gate_min=float(g.min()), gate_max=float(g.max()))
    simulator_stats = getattr(getattr(run.unwrapped, "simulator", None), "stats", None)  # an online feature cache
    if callable(simulator_stats):
        record.update({f"feature_cache_{k}": v for k, v in simulator_stats().items()})  # this process's cache
    if run.main:
        with open(run.out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        shown = {"loss": f"{record['loss']:.4f}"} | ({"gate": f"{record['gate_mean']:.3f}"} if w.gates else {})
        bar.set_postfix(**shown)
    run.window = Window()


def save(run: Run) -> None:
    """``OUTPUT/checkpoints/step-XXXXXXX/``: accelerate's state, the model checkpoint, and
    ``trainer_state.json`` last (it marks the checkpoint complete); keeps ``keep_last``."""
    acc, keep = run.accelerator, run.config.train.keep_last
    folder = run.out / "checkpoints" / f"step-{run.state.step:07d}"
    acc.wait_for_everyone()
    acc.save_state(str(folder / "state"), **run.save_kwargs)
    state_dict = acc.get_state_dict(run.model)
    if run.main:
        run.unwrapped.save_pretrained(folder / "model", state_dict=state_dict)
        write_json(folder / STATE_FILE, dataclasses.asdict(run.state))
        for old in complete_checkpoints(run.out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    acc.wait_for_everyone()


def finish(run: Run) -> Path:
    """Save the last step (unless just saved) and the final model (``OUTPUT/model``)."""
    done = complete_checkpoints(run.out)
    if not (done and done[-1].name == f"step-{run.state.step:07d}"):
        save(run)
    state_dict = run.accelerator.get_state_dict(run.model)
    final = run.out / "model"
    if run.main:
        run.unwrapped.save_pretrained(final, state_dict=state_dict)
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    return final
