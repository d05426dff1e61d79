"""Wilson intervals against hand values; per-task/suite/seed summaries and the table."""

import math

import pytest

from vega3d.libero.results import render_table, summarize, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),  # z²/(n+z²) = 3.8415/13.8415
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 1, 0.2065, 1.0),
        (485, 500, 0.9510, 0.9817),  # 97 % of a 500-episode suite: ±~1.5 points
    ],
)
def test_wilson_interval_hand_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-4) and got[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    lo, hi = wilson_interval(30, 60)
    assert lo + hi == pytest.approx(1.0)  # symmetric at p = 0.5


def _rec(seed, task, episode, success, error=None):
    return {"seed": seed, "task": task, "episode": episode, "success": success, "error": error}


def test_summary_per_task_per_seed_pooled_and_spread():
    records = [_rec(7, 0, e, e < 4) for e in range(5)] + [_rec(8, 0, e, e < 2) for e in range(5)]
    records += [_rec(7, 1, e, True) for e in range(5)] + [
        _rec(8, 1, e, e != 3, "boom" if e == 3 else None) for e in range(5)
    ]
    records += [_rec(7, 0, 0, False)]  # a later record of the same episode replaces the first (a retried error)
    records += [_rec(9, 0, 0, True), _rec(7, 0, 7, True), _rec(7, 5, 0, True)]  # outside the selection: ignored
    res = summarize(records, suite="libero_goal", tasks=[0, 1], seeds=[7, 8], trials=5,
                    task_names={0: ("open_the_drawer", "open the drawer"), 1: ("t1", "put the bowl on the plate")})  # fmt: skip
    t0, t1 = res["per_task"]
    assert t0["per_seed"]["7"]["successes"] == 3 and t0["per_seed"]["8"]["successes"] == 2
    assert t0["pooled"] == {
        "episodes": 10,
        "successes": 5,
        "errors": 0,
        "rate": 0.5,
        "wilson95": list(wilson_interval(5, 10)),
    }
    assert t0["across_seeds"]["mean"] == pytest.approx(0.5) and t0["across_seeds"]["std"] == pytest.approx(
        math.sqrt(0.02)
    )
    assert t1["pooled"]["errors"] == 1 and t1["per_seed"]["8"]["rate"] == 0.8
    total = res["suite_total"]
    assert total["per_seed"]["7"]["successes"] == 8 and total["per_seed"]["8"]["successes"] == 6
    assert total["pooled"]["episodes"] == 20 and res["complete"] and res["episodes_done"] == 20
    table = render_table(res)
    assert "open the drawer" in table and "3/5" in table and "40.0 [" not in table.splitlines()[0]
    assert "libero_goal" in table.splitlines()[-1] and "70.0 [" in table.splitlines()[-1]


def test_summary_marks_an_incomplete_run():
    res = summarize([_rec(7, 0, 0, True)], suite="libero_10", tasks=[0, 1], seeds=[7], trials=2)
    assert not res["complete"] and res["episodes_done"] == 1 and res["episodes_planned"] == 4
    assert res["per_task"][1]["pooled"]["rate"] is None
    assert "(incomplete: 1 of 4 episodes)" in render_table(res)
