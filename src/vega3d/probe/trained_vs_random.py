"""Does the probe see learning? One real trained network against the same network with random weights.

:func:`trained_vs_random` scores EfficientNet-Lite0 (``effnet_lite0``: ImageNet-1k weights from the
optional extra ``real-weights``) and the same architecture at several random-weight seeds on one
scene, next to the position-only control on the same grid. :class:`TrainedVsRandom` holds the
results, prints them as a table with chance spelled out (:meth:`~TrainedVsRandom.table`), says in
words what each score did (:meth:`~TrainedVsRandom.reading`) and serialises them
(:meth:`~TrainedVsRandom.to_dict`). ``vega3d demo`` shows it as its second panel; docs/probe.md
has the numbers and the commands that reproduce each row.
"""

from __future__ import annotations

from dataclasses import dataclass

from vega3d.probe.result import ProbeResult

RADIUS = "16"  # the NN-recall radius (px) shown: one default search cell


@dataclass
class Row:
    label: str
    encoder: dict  # the encoder's config (the control's: {"name": "position"})
    result: ProbeResult


@dataclass
class TrainedVsRandom:
    """The trained network, its random-weight copies and the position-only control on one scene."""

    scene: object
    stage: int
    trained: Row
    random: list[Row]
    control: Row

    @property
    def rows(self) -> list[Row]:
        return [self.trained, *self.random, self.control]

    def table(self) -> str:
        """Headline, NN recall and paper score per row, then chance and the same-location guess."""

        def f(x) -> str:
            return "  n/a" if x != x else f"{x:.3f}"

        width = max(len(label) for label in [r.label for r in self.rows] + ["guess: did not move"]) + 2
        head = f"{'':<{width}}{'AUROC-local (headline)':>24}{'NN recall @' + RADIUS + 'px':>18}{'paper score':>14}"
        lines = [head]
        for r in self.rows:
            res = r.result
            lines.append(
                f"{r.label:<{width}}{f(res.auroc_local):>24}{f(res.nn_recall[RADIUS]):>18}{f(res.paper_score):>14}"
            )
        same = self.trained.result.nn_recall_same_location[RADIUS]
        lines.append(f"{'chance':<{width}}{'0.500':>24}{'':>18}{'':>14}")
        lines.append(f"{'guess: did not move':<{width}}{'':>24}{f(same):>18}{'':>14}")
        return "\n".join(lines)

    def reading(self) -> list[str]:
        """What the numbers show, in words (computed from them, whichever way they fall)."""
        t = self.trained.result
        rand = [r.result for r in self.random]
        best = max(r.auroc_local for r in rand)
        best_recall = max(r.nn_recall[RADIUS] for r in rand)
        papers = [r.paper_score for r in rand]
        c = self.control.result
        out = [
            f"headline: the trained network {t.auroc_local:.3f}, the best of {len(rand)} random-weight copies "
            f"{best:.3f}, the position-only control {c.auroc_local:.3f} (chance 0.5) — "
            + ("the probe sees what the network learned" if t.auroc_local > best else "no separation here"),
            f"NN recall @{RADIUS}px: trained {t.nn_recall[RADIUS]:.3f}, best random {best_recall:.3f}, "
            f"'did not move' guess {t.nn_recall_same_location[RADIUS]:.3f}",
        ]
        scores = [("trained", t.paper_score), ("random", max(papers)), ("position-only control", c.paper_score)]
        text = f"paper score: trained {t.paper_score:.3f}, random {min(papers):.3f}-{max(papers):.3f}, control {c.paper_score:.3f}"
        if any(v != v for _, v in scores + [("", p) for p in papers]):  # NaN: no adjacent pair shared a voxel
            out.append(text + " (n/a: see the rows' notes)")
            return out
        order = sorted(scores, key=lambda kv: -kv[1])
        out.append(
            f"{text}; it ranks "
            + " > ".join(k for k, _ in order)
            + (" — it does not reward what was learned" if order[0][0] != "trained" else "")
        )
        return out

    def to_dict(self) -> dict:
        return {
            "scene": {"name": self.scene.name, "source": self.scene.source, "frame_ids": list(self.scene.frame_ids)},
            "stage": self.stage,
            "chance_auroc": 0.5,
            "rows": [{"label": r.label, "encoder": r.encoder, "result": r.result.to_dict()} for r in self.rows],
            "reading": self.reading(),
        }


def trained_vs_random(
    scene, *, stage: int = 5, seeds=(0, 1, 2), image_size=None, options: dict | None = None, step=None
) -> TrainedVsRandom:
    """Score ``effnet_lite0`` at ``stage`` trained and with random weights from each of ``seeds`` on
    ``scene`` (``image_size``: the network's input size, default the frame's), and the position-only
    control on the same grid. ``options``: probe options. ``step(name)`` is told as each row starts.
    Needs the ``real-weights`` extra (a one-line error names it otherwise, before any work)."""
    from vega3d.encoders import build_encoder, check_encoder
    from vega3d.probe.run import position_control
    from vega3d.probe.score import score

    options = dict(options or {})
    specs = [("trained (ImageNet-1k)", {"pretrained": True})]
    specs += [(f"random init, seed {s}", {"pretrained": False, "seed": s}) for s in seeds]
    for _, kw in specs:
        check_encoder("effnet_lite0", dict(stage=stage, image_size=image_size, **kw))
    frames, rows = scene.frames(), []
    for label, kw in specs:
        if step:
            step(f"effnet_lite0 {label}")
        encoder = build_encoder("effnet_lite0", stage=stage, image_size=image_size, **kw)
        rows.append(Row(label, encoder.config, score(scene, encoder(frames), **options)))
    control = position_control(scene, rows[0].result.grid_size, options)
    return TrainedVsRandom(scene, stage, rows[0], rows[1:], Row("position-only control", {"name": "position"}, control))
