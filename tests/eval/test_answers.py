import pytest

from vega3d import Vega3DError
from vega3d.eval.answers import clean_answer, exact_match, exact_match_refined


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("The Black Chair.", "black chair"),  # lower, drop '.', drop article
        ("  a   brown table  ", "brown table"),  # outer/inner spaces, article
        ("2 chairs", "two chairs"),  # digit to word
        ("none", "zero"),
        ("23", "twenty-three"),
        ("21", "21"),  # LEO spells out only 0-20 and 23
        ("letf", "left"),  # typo fixes
        ("tv stand", "TV stand"),  # LEO's rule re-uppercases tv
        ("5 oclock", "five o'clock"),
        ("mat2", "mat"),  # letters+digit -> letters
        ("backwards", "backward"),
        ("on the left!", "on left"),
        ("it's café", "it's caf"),  # non-ASCII letters are deleted
    ],
)
def test_clean_answer_follows_leo_rules(raw, cleaned):
    assert clean_answer(raw) == cleaned


def test_clean_answer_rejects_non_string():
    with pytest.raises(Vega3DError, match="string"):
        clean_answer(3)


def test_em_r_whitespace_free_containment():
    assert exact_match_refined("blackchair", ["black chair"])
    assert exact_match_refined("black chair", ["chair"])  # answer inside prediction
    assert exact_match_refined("chair", ["brown chair", "x"])  # prediction inside answer
    assert not exact_match_refined("table", ["black chair"])
    assert exact_match_refined("left", ["right", "left"])


def test_em_is_exact_only():
    assert exact_match("black chair", ["black chair"])
    assert not exact_match("blackchair", ["black chair"])
    assert not exact_match("Black chair", ["black chair"])


def test_empty_prediction_only_matches_empty_answer():
    # LEO's substring test would accept "" for every answer; we do not.
    assert not exact_match_refined("", ["black chair"])
    assert not exact_match_refined("   ", ["black chair"])
    assert exact_match_refined("", [""])


def test_answer_lists_are_checked():
    with pytest.raises(Vega3DError, match="single string"):
        exact_match_refined("a", "a")
    with pytest.raises(Vega3DError, match="at least one"):
        exact_match_refined("a", [])
    with pytest.raises(Vega3DError, match="strings"):
        exact_match_refined("a", [None])
