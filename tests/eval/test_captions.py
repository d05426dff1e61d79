import pytest

from vega3d import Vega3DError
from vega3d.eval import captions
from vega3d.eval.captions import CaptionScorer


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)
    with pytest.raises(Vega3DError, match="METEOR needs Java"):
        CaptionScorer().score({"a": ["x"]}, {"a": ["x"]})


@pytest.mark.parametrize(
    "gts, res, match",
    [
        ({"a": ["x"]}, {"b": ["x"]}, "ids differ"),
        ({"a": ["x"], "b": ["y"]}, {"b": ["y"], "a": ["x"]}, "ids differ"),
        ({}, {}, "nothing to score"),
        ({"a": []}, {"a": ["x"]}, "non-empty list of reference"),
        ({"a": ["x"]}, {"a": ["x", "y"]}, "exactly one hypothesis"),
        ({"a": ["x"]}, {"a": [3]}, "exactly one hypothesis"),
    ],
)
def test_bad_inputs_are_rejected_before_any_java(gts, res, match):
    with pytest.raises(Vega3DError, match=match):
        CaptionScorer().score(gts, res)


def test_newlines_do_not_break_meteor(caption_scorer):
    out = caption_scorer.score({"a": ["a brown\nchair"]}, {"a": ["a brown chair\n"]})
    assert out["meteor"] > 0.9 and out["per_item"]["meteor"][0] > 0.9
