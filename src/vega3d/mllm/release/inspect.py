"""``vega3d inspect-release``: what the release folder holds, and whether its DiT was re-initialised.

The suspicion (docs/release.md): the release's training code builds the Wan DiT inside the
custom class's ``__init__`` and then calls ``from_pretrained`` on Qwen2.5-VL, whose checkpoint
lacks every DiT key; transformers' ``_init_weights`` then redraws every ``nn.Linear`` /
``nn.Conv3d`` weight from N(0, 0.02²) and zeroes their biases (norms and modulation tables
are left alone). The DiT was frozen, so the saved one is what training used.

Evidence, from the DiT's own tensors (read one at a time):

- per Linear/Conv weight (``*.weight`` of rank >= 2): std and mean, and whether they are those
  of an N(0, 0.02²) draw of that size (:func:`looks_reinitialised`);
- per bias of those layers: the share of values that are exactly 0;
- with a Wan2.1 folder (``wan=``, either layout): per tensor, the largest absolute difference
  to Wan's tensor of that name, and whether it is within bf16 rounding (2^-8 of Wan's value).

:func:`dit_verdict` turns this into ``dit_reinitialised`` (True / False / None) and one sentence.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.mllm.release.folder import (
    BF16_RELATIVE,
    DIT_PREFIX,
    REINIT_STD,
    ReleaseFolder,
    TensorInfo,
    branch_summary,
    open_release,
    parts,
    read_headers,
    read_tensors,
    release_attributes,
)

FORMAT = "vega3d-release-inspect/1"
#: How many standard errors a re-initialised tensor's std and mean may stray (6: no false alarm over 1000 tensors).
SIGMAS = 6.0
#: Relative slack on the std beyond sampling noise (bf16 storage, rounding of the draw).
STD_SLACK = 0.01


def looks_reinitialised(x: torch.Tensor) -> bool:
    """True when ``x``'s std and mean are those of n values drawn from N(0, 0.02²): the sample
    std within ``SIGMAS`` standard errors (0.02/sqrt(2n)) or 1 % of 0.02, the mean within
    ``SIGMAS`` · 0.02/sqrt(n) of 0."""
    n = x.numel()
    std, mean = float(x.std()), float(x.mean())
    std_tol = REINIT_STD * max(STD_SLACK, SIGMAS / math.sqrt(2 * n))
    return abs(std - REINIT_STD) <= std_tol and abs(mean) <= SIGMAS * REINIT_STD / math.sqrt(n)


def layer_weights(dit: dict[str, TensorInfo]) -> tuple[list[str], list[str]]:
    """``(weights, biases)``: the DiT's Linear/Conv weights (``*.weight`` of rank >= 2) and the
    biases of those layers (LayerNorm biases excluded), by DiT key."""
    weights = sorted(k for k, v in dit.items() if k.endswith(".weight") and len(v.shape) >= 2)
    biases = [k[: -len("weight")] + "bias" for k in weights if k[: -len("weight")] + "bias" in dit]
    return weights, biases


class WanDiT(contextlib.AbstractContextManager):
    """The DiT tensors of a Wan2.1 folder (either layout), by ORIGINAL Wan key name.

    Built against the release's DiT keys: every one must be in the folder with the same shape
    (checked from headers before anything is read)."""

    def __init__(self, path, release_dit: dict[str, TensorInfo]):
        from vega3d.simulator.convert import original_dit_files
        from vega3d.simulator.layouts import open_wan_folder

        wan = open_wan_folder(path)
        self.root = wan.root
        if wan.layout == "original":
            files = [f.name for f in original_dit_files(wan.root)]
            names = {k: k for k in release_dit}
        else:
            files = sorted(str(f.relative_to(wan.root)) for f in (wan.root / "transformer").glob("*.safetensors"))
            names = {k: to_diffusers_key(k) for k in release_dit}
        headers = read_headers(wan.root, files)
        problems = [f"{k} missing" for k, n in names.items() if n not in headers]
        problems += [
            f"{k} has shape {headers[n].shape} there, {release_dit[k].shape} in the release"
            for k, n in names.items()
            if n in headers and headers[n].shape != release_dit[k].shape
        ]
        extra = sorted(set(headers) - set(names.values()))
        problems += [f"{k} is not in the release" for k in extra]
        if problems:
            raise Vega3DError(
                f"--wan {self.root}: its DiT is not the release's architecture ({len(problems)} difference(s), "
                f"e.g. {'; '.join(problems[:3])})"
            )
        self.names, self.headers = names, headers
        self._stack = contextlib.ExitStack()
        self._open: dict[str, object] = {}

    def get(self, key: str) -> torch.Tensor:
        """Wan's tensor for the release's DiT ``key``."""
        from safetensors import safe_open

        name = self.names[key]
        file = self.headers[name].file
        if file not in self._open:
            self._open[file] = self._stack.enter_context(safe_open(str(self.root / file), "pt"))
        return self._open[file].get_tensor(name)

    def __exit__(self, *exc):
        self._stack.close()
        return None


def to_diffusers_key(key: str) -> str:
    """A Wan DiT key in the original names → its diffusers ``WanTransformer3DModel`` name
    (diffusers' own ``convert_wan_transformer_to_diffusers``, one key at a time)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    (new,) = convert_wan_transformer_to_diffusers({key: None})
    return new


def _weight_row(key: str, x: torch.Tensor) -> dict:
    return {"key": key, "shape": list(x.shape), "std": float(x.std()), "mean": float(x.mean()),
            "like_reinit": looks_reinitialised(x)}  # fmt: skip


def _wan_row(key: str, x: torch.Tensor, ref: torch.Tensor) -> dict:
    ref = ref.float()
    diff = (x - ref).abs()
    within = bool((diff <= BF16_RELATIVE * ref.abs()).all())
    return {"key": key, "max_abs_diff": float(diff.max()) if diff.numel() else 0.0, "within_bf16": within}


def dit_evidence(folder: ReleaseFolder, wan=None) -> dict | None:
    """The DiT's statistics (and, with ``wan``, its differences to Wan2.1), per tensor and in
    summary; None when the folder holds no DiT."""
    dit = folder.part(DIT_PREFIX)
    if not dit:
        return None
    weights, biases = layer_weights(dit)
    weight_set, bias_set = set(weights), set(biases)
    reader = WanDiT(wan, dit) if wan is not None else contextlib.nullcontext()
    rows: dict[str, list] = {"weights": [], "biases": [], "wan": []}
    with reader:
        for key, value in read_tensors(folder, [DIT_PREFIX + k for k in sorted(dit)]):
            k, x = key[len(DIT_PREFIX) :], value.float()
            if k in weight_set:
                rows["weights"].append(_weight_row(k, x))
            elif k in bias_set:
                rows["biases"].append({"key": k, "zero_fraction": float((x == 0).float().mean())})
            if wan is not None:
                rows["wan"].append(_wan_row(k, x, reader.get(k)))
    return {"summary": _summary(dit, rows, weight_set, wan, reader), **rows}


def _summary(dit, rows, weight_set, wan, reader) -> dict:
    stds = [r["std"] for r in rows["weights"]]
    zero = sum(r["zero_fraction"] * dit[r["key"]].numel for r in rows["biases"])
    total = sum(dit[r["key"]].numel for r in rows["biases"])
    out = {
        "tensors": len(dit),
        "parameters": sum(v.numel for v in dit.values()),
        "dtypes": sorted({v.dtype for v in dit.values()}),
        "layer_weights": len(rows["weights"]),
        "layer_weights_like_reinit": sum(r["like_reinit"] for r in rows["weights"]),
        "weight_std": {"min": min(stds), "median": statistics.median(stds), "max": max(stds)} if stds else None,
        "bias_tensors": len(rows["biases"]),
        "bias_tensors_all_zero": sum(r["zero_fraction"] == 1.0 for r in rows["biases"]),
        "bias_zero_fraction": zero / total if total else None,
    }
    if wan is not None:
        worst = max(rows["wan"], key=lambda r: r["max_abs_diff"])
        out["wan"] = {
            "folder": str(Path(reader.root).resolve()),
            "compared": len(rows["wan"]),
            "within_bf16": sum(r["within_bf16"] for r in rows["wan"]),
            "layer_weights_within_bf16": sum(r["within_bf16"] for r in rows["wan"] if r["key"] in weight_set),
            "largest_difference": {"key": worst["key"], "max_abs_diff": worst["max_abs_diff"]},
        }
    return out


def dit_verdict(summary: dict | None) -> tuple[bool | None, str]:
    """``(dit_reinitialised, sentence)`` from :func:`dit_evidence`'s summary."""
    if summary is None:
        return None, f"undetermined: the folder holds no DiT ({DIT_PREFIX}* tensors), so there is nothing to check"
    n_w, like = summary["layer_weights"], summary["layer_weights_like_reinit"]
    n_b, zero_b = summary["bias_tensors"], summary["bias_tensors_all_zero"]
    reinit = n_w > 0 and like == n_w and n_b > 0 and zero_b == n_b
    trained = n_b > 0 and zero_b == 0 and like < n_w
    stats = (
        f"{like} of {n_w} Linear/Conv weights look like N(0, 0.02²) draws, {zero_b} of {n_b} of their bias "
        "tensors are all zero"
    )
    wan = summary.get("wan")
    if wan is not None and wan["within_bf16"] == wan["compared"]:
        return (
            False,
            f"not re-initialised: all {wan['compared']} DiT tensors equal Wan2.1's ({wan['folder']}) "
            "up to bf16 rounding",
        )
    if reinit:
        wan_note = (
            f"; {wan['compared'] - wan['within_bf16']} of {wan['compared']} tensors differ from Wan2.1's beyond "
            f"bf16 rounding, {wan['within_bf16'] - wan['layer_weights_within_bf16']} others (norms, modulation) match"
            if wan is not None
            else ""
        )
        return True, (
            f"re-initialised: {stats}{wan_note} — transformers' _init_weights, not Wan2.1's weights. The release "
            "was trained and evaluated with generative features from a DiT with random projections"
        )
    if wan is not None:
        return None, (
            f"undetermined: {wan['compared'] - wan['within_bf16']} of {wan['compared']} tensors differ from Wan2.1's "
            f"({wan['folder']}) beyond bf16 rounding, yet it is no fresh N(0, 0.02²) draw either ({stats}): another "
            "or a fine-tuned DiT"
        )
    if trained:
        return False, f"not re-initialised (statistics only: {stats}); pass --wan to check they are Wan2.1's weights"
    return None, f"undetermined: {stats}; pass --wan to compare with Wan2.1"


def inspect_release(path, wan=None) -> dict:
    """What the release folder ``path`` holds and the DiT verdict (see the module docstring):
    ``{"format", "folder", "stand_in", "index", "shards", "parts", "config", "branch",
    "dit_reinitialised", "verdict", "evidence"}``. ``wan``: a Wan2.1-T2V folder to compare the DiT with."""
    folder = open_release(path)
    evidence = dit_evidence(folder, wan)
    value, sentence = dit_verdict(evidence["summary"] if evidence else None)
    shards = sorted({t.file for t in folder.tensors.values()})
    from vega3d.standin import is_stand_in

    return {
        "format": FORMAT,
        "folder": str(folder.root.resolve()),
        "stand_in": is_stand_in(folder.root),
        "index": folder.index,
        "shards": [{"file": s, "bytes": (folder.root / s).stat().st_size} for s in shards],
        "parts": parts(folder),
        "config": release_attributes(folder.config),
        "branch": branch_summary(folder),
        "dit_reinitialised": value,
        "verdict": sentence,
        "evidence": evidence,
    }


def format_report(report: dict) -> str:
    """The readable form of :func:`inspect_release`'s report (what the CLI prints)."""
    from vega3d.standin import notice

    lines = [f"release: {report['folder']} ({len(report['shards'])} shard(s), index {report['index']})", ""]
    if report["stand_in"]:
        lines[1:1] = [notice(["the release folder"], "Its verdict says nothing about the real release."), ""]
    lines.append(f"{'part':<18} {'tensors':>8} {'parameters':>15}  dtypes")
    for name, p in report["parts"].items():
        if p["tensors"] or name != "other":
            lines.append(f"{name:<18} {p['tensors']:>8} {p['parameters']:>15,}  {', '.join(p['dtypes']) or '-'}")
    lines += ["", "config:"] + [f"  {k}: {v}" for k, v in report["config"].items()]
    branch = report["branch"]
    lines.append("")
    for key in ("residual_scale", "gate_projection.0.bias"):
        if key in branch:
            lines.append(f"fusion {key}: {branch[key]}")
    evidence = report["evidence"]
    if evidence:
        s = evidence["summary"]
        std = s["weight_std"]
        lines += [
            f"DiT: {s['tensors']} tensors, {s['parameters']:,} parameters, {', '.join(s['dtypes'])}",
            f"  Linear/Conv weights: {s['layer_weights']}, like N(0, 0.02²): {s['layer_weights_like_reinit']}"
            + (f"; std {std['min']:.4g} / {std['median']:.4g} / {std['max']:.4g} (min / median / max)" if std else ""),
            f"  their biases: {s['bias_tensors']} tensors, {s['bias_tensors_all_zero']} all zero"
            + (
                f"; {100 * s['bias_zero_fraction']:.1f} % of values exactly 0"
                if s["bias_zero_fraction"] is not None
                else ""
            ),
        ]
        if "wan" in s:
            w = s["wan"]
            big = w["largest_difference"]
            lines.append(
                f"  vs Wan2.1 {w['folder']}: {w['within_bf16']} of {w['compared']} tensors equal up to bf16 rounding; "
                f"largest difference {big['max_abs_diff']:.4g} ({big['key']})"
            )
    value = {True: "true", False: "false", None: "null"}[report["dit_reinitialised"]]
    lines += ["", f"dit_reinitialised: {value} — {report['verdict']}"]
    return "\n".join(lines)
