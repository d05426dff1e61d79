"""Success rates of a LIBERO evaluation: per task and per suite, per seed, Wilson 95 % intervals,
the spread across seeds, as JSON and as a readable table.

Episodes that ended in an error count as failures (as in OpenVLA-OFT, whose episode loop catches
exceptions and reports no success); the tables say how many there were.

Wilson score interval for k successes in n episodes, z = 1.959964 (95 %):
``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with p = k/n. It stays inside [0, 1]
and is sensible at p = 0 or 1, where the normal interval collapses to a point. Episodes of
different seeds reuse the same 50 initial states, so the pooled interval over seeds is
optimistic; the across-seed standard deviation is the number to compare against.
"""

from __future__ import annotations

import math
import statistics

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval (lo, hi) for ``successes`` out of ``n``; None when n == 0."""
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(records: list[dict]) -> dict:
    n = len(records)
    k = sum(1 for r in records if r["success"])
    return {
        "episodes": n,
        "successes": k,
        "errors": sum(1 for r in records if r.get("error")),
        "rate": k / n if n else None,
        "wilson95": list(wilson_interval(k, n)) if n else None,
    }


def _spread(rates: list[float]) -> dict:
    return {
        "seeds": len(rates),
        "mean": statistics.fmean(rates) if rates else None,
        "std": statistics.stdev(rates) if len(rates) > 1 else None,
        "min": min(rates) if rates else None,
        "max": max(rates) if rates else None,
    }


def _block(records: list[dict], seeds: list[int]) -> dict:
    per_seed = {str(s): _rate([r for r in records if r["seed"] == s]) for s in seeds}
    rates = [v["rate"] for v in per_seed.values() if v["rate"] is not None]
    return {"per_seed": per_seed, "pooled": _rate(records), "across_seeds": _spread(rates)}


def summarize(records: list[dict], *, suite: str, tasks: list[int], seeds: list[int], trials: int,
              task_names: dict[int, tuple[str, str]] | None = None) -> dict:  # fmt: skip
    """Results over the selection (``tasks`` x ``seeds`` x episodes ``0..trials-1``) from episode records
    (dicts with ``seed``, ``task``, ``episode``, ``success`` and optional ``error``); a later record of
    the same episode replaces an earlier one."""
    latest = {}
    for r in records:
        if r["task"] in tasks and r["seed"] in seeds and 0 <= r["episode"] < trials:
            latest[(r["seed"], r["task"], r["episode"])] = r
    chosen = list(latest.values())
    names = task_names or {}
    per_task = []
    for t in tasks:
        name, language = names.get(t, ("", ""))
        per_task.append({"task": t, "name": name, "language": language,
                         **_block([r for r in chosen if r["task"] == t], seeds)})  # fmt: skip
    planned = len(tasks) * len(seeds) * trials
    return {
        "suite": suite,
        "seeds": seeds,
        "tasks": tasks,
        "trials": trials,
        "episodes_planned": planned,
        "episodes_done": len(chosen),
        "complete": len(chosen) == planned,
        "per_task": per_task,
        "suite_total": _block(chosen, seeds),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _cell(block: dict) -> str:
    pooled = block["pooled"]
    if not pooled["episodes"]:
        return "-"
    lo, hi = pooled["wilson95"]
    return f"{_pct(pooled['rate'])} [{_pct(lo)}, {_pct(hi)}]"


def _spread_cell(block: dict) -> str:
    s = block["across_seeds"]
    if s["mean"] is None:
        return "-"
    return _pct(s["mean"]) + (f" ± {_pct(s['std'])}" if s["std"] is not None else "")


def render_table(results: dict, width: int = 44) -> str:
    """The results as a plain-text table: one row per task and one for the suite; per seed the
    successes/episodes, then the pooled rate with its Wilson 95 % interval, the mean ± std across
    seeds (success rates in %), and the number of episodes that ended in an error."""
    seeds = [str(s) for s in results["seeds"]]
    header = [
        "task",
        "instruction",
        *[f"seed {s}" for s in seeds],
        "pooled % [Wilson 95%]",
        "mean ± sd over seeds",
        "errors",
    ]
    rows = []
    for t in results["per_task"]:
        lang = t["language"] if len(t["language"]) <= width else t["language"][: width - 1] + "…"
        rows.append([str(t["task"]), lang, *[_k_of_n(t["per_seed"][s]) for s in seeds], _cell(t), _spread_cell(t),
                     str(t["pooled"]["errors"])])  # fmt: skip
    total = results["suite_total"]
    rows.append([results["suite"], "all tasks", *[_k_of_n(total["per_seed"][s]) for s in seeds], _cell(total),
                 _spread_cell(total), str(total["pooled"]["errors"])])  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows[:-1]] + ["  ".join("-" * w for w in widths), line(rows[-1])]
    if not results["complete"]:
        out.append(f"(incomplete: {results['episodes_done']} of {results['episodes_planned']} episodes)")
    return "\n".join(out)


def _k_of_n(rate: dict) -> str:
    return f"{rate['successes']}/{rate['episodes']}" if rate["episodes"] else "-"
