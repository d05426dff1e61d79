"""Caption metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr.

The official 3D-LLM scorers (Video-3D LLM ``llava/eval/eval_scanqa.py`` and
``eval_scan2cap.py``, LEO's evaluator, Scan2Cap's ``lib/capeval``) call the
COCO caption scorers directly on ``{id: [references]}`` / ``{id: [hypothesis]}``
dicts of already-prepared strings, without the PTB tokenizer; the benchmark
modules prepare the strings the way each official script does. ``ptb_tokenize``
runs the COCO PTBTokenizer first instead (lower-case, punctuation removed), the
way COCO captioning papers score.

METEOR and the PTB tokenizer run Java (``java`` must be on PATH). Starting the
METEOR jar takes seconds, so a :class:`CaptionScorer` keeps one METEOR process
and can be shared across calls; close it with :meth:`CaptionScorer.close` or use
it as a context manager.

Aggregates are what pycocoevalcap returns: BLEU is corpus-level, METEOR is the
jar's corpus score, ROUGE-L and CIDEr are means of the per-item scores.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from vega3d.errors import Vega3DError

METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


def score_captions(gts, res, *, scorer: CaptionScorer | None = None, ptb_tokenize: bool = False) -> dict:
    """:meth:`CaptionScorer.score` with ``scorer``, or with a temporary one closed afterwards."""
    if scorer is not None:
        return scorer.score(gts, res, ptb_tokenize=ptb_tokenize)
    with CaptionScorer() as own:
        return own.score(gts, res, ptb_tokenize=ptb_tokenize)


def _input_problem(gts: Mapping, res: Mapping) -> str | None:
    """What is wrong with :meth:`CaptionScorer.score`'s inputs (None when nothing is)."""
    if list(res) != list(gts):
        return "hypothesis ids differ from reference ids (or their order)"
    if not gts:
        return "nothing to score (no items)"
    for key in gts:
        if not gts[key] or not all(isinstance(r, str) for r in gts[key]):
            return f"item {key!r} needs a non-empty list of reference strings"
        if len(res[key]) != 1 or not isinstance(res[key][0], str):
            return f"item {key!r} needs exactly one hypothesis string"
    return None


class CaptionScorer:
    """Holds the pycocoevalcap scorers; :meth:`score` computes all metrics at once."""

    def __init__(self) -> None:
        self._meteor = None

    def _meteor_scorer(self):
        if self._meteor is None:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        return self._meteor

    def score(self, gts: Mapping[str, list[str]], res: Mapping[str, list[str]], *, ptb_tokenize: bool = False) -> dict:
        """Score hypotheses against references.

        ``gts``: id -> non-empty list of reference strings; ``res``: id -> a
        one-element list with the hypothesis; same ids in the same order.
        Returns ``{metric: aggregate}`` for :data:`METRICS` plus
        ``"per_item": {metric: [score per id, in gts order]}``.
        """
        ids = list(gts)
        problem = _input_problem(gts, res)
        if problem:
            raise Vega3DError(f"caption scoring: {problem}")
        if shutil.which("java") is None:
            raise Vega3DError(
                "METEOR needs Java (and so does the PTB tokenizer): no 'java' executable on PATH "
                "(install a JRE, e.g. openjdk-17-jre-headless)"
            )
        gts = {key: list(gts[key]) for key in ids}
        res = {key: list(res[key]) for key in ids}
        if ptb_tokenize:
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            tokenizer = PTBTokenizer()
            gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in gts.items()})
            res = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in res.items()})

        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
        cider, cider_items = Cider().compute_score(gts, res)
        rouge, rouge_items = Rouge().compute_score(gts, res)
        # A newline inside a sentence would break the METEOR jar's line protocol.
        meteor_gts = {k: [_one_line(c) for c in v] for k, v in gts.items()}
        meteor_res = {k: [_one_line(c) for c in v] for k, v in res.items()}
        meteor, meteor_items = self._meteor_scorer().compute_score(meteor_gts, meteor_res)

        out = {f"bleu{n + 1}": float(bleu[n]) for n in range(4)}
        out.update(meteor=float(meteor), rouge_l=float(rouge), cider=float(cider))
        per_item = {f"bleu{n + 1}": [float(s) for s in bleu_items[n]] for n in range(4)}
        per_item.update(
            meteor=[float(s) for s in meteor_items],
            rouge_l=[float(s) for s in rouge_items],
            cider=[float(s) for s in cider_items],
        )
        out["per_item"] = per_item
        return out

    def close(self) -> None:
        """Stop the METEOR Java process (a later :meth:`score` starts a new one)."""
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            with meteor.lock:
                meteor.meteor_p.stdin.close()
                meteor.meteor_p.kill()
                meteor.meteor_p.wait()
            meteor.meteor_p.stdout.close()
            meteor.meteor_p.stderr.close()
            # pycocoevalcap's own __del__ later repeats close/kill/wait on the finished process: harmless.

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
