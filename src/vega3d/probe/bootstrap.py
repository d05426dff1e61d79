"""Bootstrap intervals over frame pairs for the probe's headline numbers.

Points of one frame pair are not independent (one camera motion, one stretch of the scene), so
the unit of resampling is the pair. Each draw picks the scored pairs with replacement and
recomputes every number from the per-point cosines that :func:`vega3d.probe.score` leaves in its
``samples`` dict, weighting each point, negative and searched point by how often its pair was
drawn: the means and margins as weighted means, both AUROCs as weighted AUROCs (all
positive-negative comparisons, ties within ``tie_tolerance`` half: :func:`win_matrix`), NN recall
as a weighted hit rate. The paper-compatible score is resampled over its own pairs
(adjacent frames). With several scenes each scene is resampled on its own and the per-scene
values are averaged (NaN left out), as :func:`vega3d.probe.summarize` combines scenes. The
interval is the (1 − level)/2 and (1 + level)/2 quantiles of the draws (percentile bootstrap);
one ``torch.Generator`` seeded with ``seed`` makes it reproducible.
"""

from __future__ import annotations

import math

import torch

from vega3d.probe.result import HEADLINE

FIELDS = HEADLINE  # auroc_local, auroc, paper_score, pos_cosine, neg_cosine, margin, neg_cosine_local, margin_local


def _per_pair(values: torch.Tensor, pair: torch.Tensor, num_pairs: int) -> torch.Tensor:
    """Sum of ``values`` per pair: (P,) float64."""
    return torch.zeros(num_pairs, dtype=torch.float64).index_add_(0, pair, values.double())


def win_matrix(pos, pos_pair, neg, neg_pair, num_pairs: int, tol: float) -> torch.Tensor:
    """(P, P): entry (p, q) counts the (positive of pair p, negative of pair q) comparisons the
    positive wins, ties within ``tol`` counting half — so that under pair weights w the AUROC is
    ``w M w / ((w · positives per pair)(w · negatives per pair))``."""
    m = torch.zeros(num_pairs, num_pairs, dtype=torch.float64)
    pos = pos.double()
    for q in neg_pair.unique().tolist():
        sneg = torch.sort(neg[neg_pair == q].double()).values
        below = torch.searchsorted(sneg, pos - tol, right=False)
        upto = torch.searchsorted(sneg, pos + tol, right=True)
        m[:, q] = _per_pair(below + 0.5 * (upto - below), pos_pair, num_pairs)
    return m


class SceneDraws:
    """One scene's numbers as functions of pair weights, from per-pair sums built once from
    :func:`vega3d.probe.score`'s ``samples`` (every draw is then a few small matrix products)."""

    def __init__(self, samples: dict, radii, tie_tolerance: float):
        s, p = samples, int(samples["num_pairs"])
        self.num_pairs, self.radii = p, [float(r) for r in radii]
        point_pair, local = s["pair_id"], s["has_local"]
        neg_pair, loc_pair = point_pair[s["neg_owner"]], point_pair[s["loc_owner"]]

        def sums(values, pair):
            return _per_pair(values, pair, p), _per_pair(torch.ones(len(values)), pair, p)

        self.pos, self.neg, self.loc = sums(s["pos"], point_pair), sums(s["neg"], neg_pair), sums(s["loc"], loc_pair)
        self.pos_local = sums(s["pos"][local], point_pair[local])
        self.win = win_matrix(s["pos"], point_pair, s["neg"], neg_pair, p, tie_tolerance)
        self.win_local = win_matrix(s["pos"][local], point_pair[local], s["loc"], loc_pair, p, tie_tolerance)
        self.paper = s["paper_pairs"].double()
        self.recall = {}
        if "recall_err" in s:
            rp = s["recall_pair_id"]
            count = _per_pair(torch.ones(len(rp)), rp, p)
            for key, err in (("nn_recall", s["recall_err"]), ("nn_recall_same_location", s["recall_err_same"])):
                for r in self.radii:
                    self.recall[f"{key}@{r:g}"] = (_per_pair((err <= r).double(), rp, p), count)

    def values(self, w: torch.Tensor, paper_w: torch.Tensor) -> dict:
        """Every field for D weightings at once: ``w`` (D, pairs), ``paper_w`` (D, adjacent pairs) → (D,) each."""

        def mean(sums):
            return (w @ sums[0]) / (w @ sums[1])

        def auroc(win, positives, negatives):
            return ((w @ win) * w).sum(1) / ((w @ positives[1]) * (w @ negatives[1]))

        out = {"pos_cosine": mean(self.pos), "neg_cosine": mean(self.neg), "neg_cosine_local": mean(self.loc)}
        out["margin"] = out["pos_cosine"] - out["neg_cosine"]
        out["margin_local"] = mean(self.pos_local) - out["neg_cosine_local"]
        out["auroc"] = auroc(self.win, self.pos, self.neg)
        out["auroc_local"] = auroc(self.win_local, self.pos_local, self.loc)
        out["paper_score"] = (paper_w @ self.paper) / paper_w.sum(1)
        out.update({k: mean(v) for k, v in self.recall.items()})
        return out  # 0/0 -> NaN: not measurable under that weighting


def resample(count: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """(draws, count) float64: how often each of ``count`` items is picked in ``count`` picks with replacement."""
    picks = torch.randint(0, max(count, 1), (draws, count), generator=generator)
    return torch.zeros(draws, count, dtype=torch.float64).scatter_add_(1, picks, torch.ones(draws, count).double())


def bootstrap(scenes: list[SceneDraws], draws: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``{field: {"low", "high"}}``: the percentile interval over ``draws`` pair resamplings,
    scenes resampled independently and their values averaged (module docstring)."""
    gen = torch.Generator().manual_seed(int(seed))
    per_scene = [sc.values(resample(sc.num_pairs, draws, gen), resample(len(sc.paper), draws, gen)) for sc in scenes]
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    out = {}
    for key in per_scene[0]:
        vals = torch.stack([v[key] for v in per_scene]).nanmean(0)  # (draws,): mean over scenes
        vals = vals[~vals.isnan()]
        low, high = (float(torch.quantile(vals, q)) for q in (lo_q, hi_q)) if len(vals) else (math.nan, math.nan)
        out[key] = {"low": low, "high": high}
    return out
