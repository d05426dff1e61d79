"""Weight decay as HF Trainer applies it (``train.decay_norms_and_biases: false``): the optimizer's
groups against transformers' own rule and a hand list, on a tiny module; LRs kept; the default
(decay everything) unchanged."""

import torch
from torch import nn
from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
from transformers.trainer_pt_utils import get_parameter_names

from vega3d.training.config import TrainSettings
from vega3d.training.loop import make_optimizer


class Tiny(nn.Module):
    """Two groups as a family gives them: a branch (Linear + LayerNorm) and an LLM (embedding,
    RMSNorm, a bias-free Linear)."""

    def __init__(self):
        super().__init__()
        self.branch = nn.ModuleDict({"proj": nn.Linear(4, 4), "ln": nn.LayerNorm(4)})
        self.llm = nn.ModuleDict({"emb": nn.Embedding(5, 4), "norm": nn.RMSNorm(4), "out": nn.Linear(4, 5, bias=False)})

    def parameter_groups(self):
        return {"branch": list(self.branch.parameters()), "llm": list(self.llm.parameters())}


def settings(**kw):
    return TrainSettings(output_dir="unused", lr=1e-3, branch_lr=2e-3, **{"weight_decay": 0.01, **kw})


def by_name(model, optimizer):
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        (g["name"], g["lr"], g["weight_decay"]): sorted(names[id(p)] for p in g["params"])
        for g in optimizer.param_groups
    }


def test_hf_trainer_rule_splits_each_group_keeping_its_lr():
    model = Tiny()
    groups = by_name(model, make_optimizer(model, settings(decay_norms_and_biases=False)))
    # by hand: biases and LayerNorm weights undecayed; RMSNorm is not in ALL_LAYERNORM_LAYERS, so decayed
    assert groups == {
        ("branch", 2e-3, 0.01): ["branch.proj.weight"],
        ("branch_no_decay", 2e-3, 0.0): ["branch.ln.bias", "branch.ln.weight", "branch.proj.bias"],
        ("llm", 1e-3, 0.01): ["llm.emb.weight", "llm.norm.weight", "llm.out.weight"],
    }
    # transformers' own rule, as HF Trainer's create_optimizer applies it
    decayed = {n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n}
    assert {n for (_, _, wd), ns in groups.items() if wd > 0 for n in ns} == decayed
    assert {n for (_, _, wd), ns in groups.items() if wd == 0 for n in ns} == {
        n for n, _ in model.named_parameters()
    } - decayed


def test_default_decays_every_trainable_tensor():
    model = Tiny()
    assert TrainSettings(output_dir="unused").decay_norms_and_biases is True
    groups = by_name(model, make_optimizer(model, settings()))
    assert groups == {
        ("branch", 2e-3, 0.01): ["branch.ln.bias", "branch.ln.weight", "branch.proj.bias", "branch.proj.weight"],
        ("llm", 1e-3, 0.01): ["llm.emb.weight", "llm.norm.weight", "llm.out.weight"],
    }


def test_a_step_with_zero_gradients_shrinks_only_the_decayed_tensors():
    model = Tiny()
    optimizer = make_optimizer(model, settings(decay_norms_and_biases=False, weight_decay=0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's update is 0: only AdamW's decoupled decay, p·(1 − lr·wd), moves p
    optimizer.step()
    lr = {"branch": 2e-3, "llm": 1e-3}
    for name, p in model.named_parameters():
        decayed = name in ("branch.proj.weight", "llm.emb.weight", "llm.norm.weight", "llm.out.weight")
        factor = 1 - lr[name.split(".")[0]] * 0.5 if decayed else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=0, atol=1e-7)
