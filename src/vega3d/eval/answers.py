"""Answer normalisation and matching shared by the question-answering benchmarks.

Two pieces:

* :func:`clean_answer` — the answer cleaning LEO (embodied-generalist,
  ``data/data_utils.py::clean_answer``, commit 477dc44) applies to both the
  prediction and the ground truth before matching. Video-3D LLM copies it
  verbatim into ``llava/eval/eval_sqa3d.py`` for its SQA3D EM, so the SQA3D
  numbers of Video-3D LLM / VEGA-3D are computed on cleaned answers. The rules
  are reproduced here in the same order, including two harmless quirks of the
  original: lower-casing happens first, so ``tv`` is then rewritten to upper-case
  ``TV``; and the ``ç``/``’`` rewrites come after the character filter has
  already deleted those characters, so they never fire.
* :func:`exact_match_refined` — EM-R, LEO's "refined exact match"
  (``evaluator/scanqa_eval.py::answer_match``): exact match, or, after removing
  all whitespace, the prediction is contained in an answer or an answer in the
  prediction (``blackchair`` matches ``black chair``).

Benchmark-specific cleaning happens in the benchmark module, before these calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vega3d.errors import Vega3DError

# Number words LEO substitutes for standalone digits ("only for answer").
_NUMBER_WORDS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "11": "eleven",
    "12": "twelve",
    "13": "thirteen",
    "14": "fourteen",
    "15": "fifteen",
    "16": "sixteen",
    "17": "seventeen",
    "18": "eighteen",
    "19": "nineteen",
    "20": "twenty",
    "23": "twenty-three",
}

# Typo fixes LEO applies to whole words (after lower-casing).
_WORD_FIXES = (
    ("letf", "left"),
    ("let", "left"),
    ("tehre", "there"),
    ("rigth", "right"),
    ("rght", "right"),
    ("behine", "behind"),
    ("tv", "TV"),
    ("chai", "chair"),
    ("wasing", "washing"),
    ("waslked", "walked"),
    ("oclock", "o'clock"),
)


def _cleaning_rules() -> list[tuple[re.Pattern, str]]:
    """The ordered (pattern, replacement) list of LEO's ``clean_answer``."""
    rules: list[tuple[str, str]] = [
        (r"[ ]+$", ""),  # trailing spaces
        (r"^[ ]+", ""),  # leading spaces
        (r" {2,}", " "),  # runs of spaces
        (r"\.[ ]{2,}", ". "),
        (r"[^a-zA-Z0-9,'\s\-:]+", ""),  # keep letters, digits , ' whitespace - :
        ("ç", "c"),
        ("’", "'"),
    ]
    rules += [(rf"\b{wrong}\b", right) for wrong, right in _WORD_FIXES]
    rules.append((r"\bo'[ ]+clock\b", "o'clock"))
    for digits, word in _NUMBER_WORDS.items():
        rules.append((rf"\b{digits}\b", word))
        if digits == "0":  # LEO maps "none" to "zero" right after "0"
            rules.append((r"\bnone\b", "zero"))
    rules += [
        (r"\b([a-zA-Z]+)([0-9])\b", r"\g<1>"),  # "no1", "mat2" -> "no", "mat"
        (r"\ba\b ([a-zA-Z]+)", r"\g<1>"),  # drop articles before a word
        (r"\ban\b ([a-zA-Z]+)", r"\g<1>"),
        (r"\bthe\b ([a-zA-Z]+)", r"\g<1>"),
        (r"\bbackwards\b", "backward"),
    ]
    return [(re.compile(pattern), replacement) for pattern, replacement in rules]


_RULES = _cleaning_rules()


def clean_answer(text: str) -> str:
    """LEO's answer cleaning (see module docstring): lower-case, drop punctuation,
    fix common typos, spell out numbers 0-20 and 23, drop articles.

    >>> clean_answer("The Black chair.")
    'black chair'
    >>> clean_answer("2 chairs")
    'two chairs'
    """
    if not isinstance(text, str):
        raise Vega3DError(f"clean_answer: expected a string answer, found {type(text).__name__} {text!r}")
    text = text.lower()
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def _without_whitespace(text: str) -> str:
    return "".join(text.split())


def exact_match(pred: str, answers: Iterable[str]) -> bool:
    """True when ``pred`` equals one of ``answers`` exactly (no normalisation)."""
    return any(pred == answer for answer in _answer_list(answers))


def exact_match_refined(pred: str, answers: Iterable[str]) -> bool:
    """EM-R (LEO): ``pred`` equals an answer, or, with ALL whitespace removed, one
    of the two strings contains the other (``"blackchair"`` matches ``"black chair"``).

    One deliberate difference from LEO's code: an empty prediction (empty after
    whitespace removal) only matches an empty answer. LEO's substring test would
    count ``""`` as contained in every answer and score it correct.
    """
    pred_compact = _without_whitespace(pred)
    for answer in _answer_list(answers):
        if pred == answer:
            return True
        answer_compact = _without_whitespace(answer)
        if not pred_compact or not answer_compact:
            if pred_compact == answer_compact:
                return True
            continue
        if pred_compact in answer_compact or answer_compact in pred_compact:
            return True
    return False


def _answer_list(answers: Iterable[str]) -> list[str]:
    """The reference answers: a list (any iterable but a single string) of at least one string."""
    listed = None if isinstance(answers, str) else list(answers)
    if not listed or not all(isinstance(answer, str) for answer in listed):
        raise Vega3DError(
            f"answers: expected a list of at least one reference answer, all strings (not a single string), "
            f"found {answers!r}"
        )
    return listed
