import json
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from vega3d import Vega3DError
from vega3d.eval import scanqa

FIXTURES = Path(__file__).parent / "fixtures"
LLAVA = FIXTURES / "scanqa_val_llava_style.json"
OFFICIAL = FIXTURES / "ScanQA_v1.0_val.json"
PRED = FIXTURES / "scanqa_pred.jsonl"


@pytest.fixture
def scorer(caption_scorer):
    return caption_scorer  # the session's one METEOR process (tests/eval/conftest.py)


@pytest.fixture
def result(scorer):
    return scanqa.evaluate(PRED, LLAVA, scorer=scorer)


def test_exact_match_variants_by_hand(result):
    # preds: "cabinet" (raw hit), "The black chair." (hit after cleaning), "two" vs "2"
    # (hit after number words), "front of the tv" vs "in front of the tv" (EM-R only), "sofa" (miss)
    assert result["em"] == pytest.approx(1 / 5)
    assert result["em_normalized"] == pytest.approx(3 / 5)
    assert result["em_refined"] == pytest.approx(4 / 5)
    assert result["counts"] == {"expected": 5, "scored": 5}


def test_caption_metrics_equal_pycocoevalcap_called_directly(result, scorer):
    questions = scanqa.load_annotations(LLAVA)
    preds = [json.loads(line) for line in PRED.read_text().splitlines()]
    gts = {q.id: list(q.answers) for q in questions}
    res = {p["id"]: [p["prediction"].rstrip(".")] for p in preds}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    # pycocoevalcap's own Meteor object (the shared Java process), called directly
    meteor_obj = scorer._meteor_scorer()
    assert isinstance(meteor_obj, Meteor)
    meteor, _ = meteor_obj.compute_score(gts, res)
    for n in range(4):
        assert result[f"bleu{n + 1}"] == pytest.approx(bleu[n], abs=1e-12)
    assert result["cider"] == pytest.approx(cider, abs=1e-12)
    assert result["rouge_l"] == pytest.approx(rouge, abs=1e-12)
    assert result["meteor"] == pytest.approx(meteor, abs=1e-12)
    assert result["cider"] > 0


def test_official_scanqa_file_parses_to_same_answers():
    llava = scanqa.load_annotations(LLAVA)
    official = scanqa.load_annotations(OFFICIAL)
    assert [q.answers for q in llava] == [q.answers for q in official]
    assert official[0].id == "val-scene0011-0" and llava[0].id == "scanqa_val-scene0011-0_0"


def test_ptb_tokenize_changes_only_caption_metrics(scorer, result):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = scanqa.evaluate(PRED, LLAVA, scorer=scorer, ptb_tokenize=True)
    assert tokenized["em"] == result["em"] and tokenized["em_refined"] == result["em_refined"]
    questions = scanqa.load_annotations(LLAVA)
    preds = [json.loads(line) for line in PRED.read_text().splitlines()]
    tok = PTBTokenizer()
    gts = tok.tokenize({q.id: [{"caption": a} for a in q.answers] for q in questions})
    res = tok.tokenize({p["id"]: [{"caption": p["prediction"].rstrip(".")}] for p in preds})
    assert tokenized["cider"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-12)
    assert tokenized["bleu4"] == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0][3], abs=1e-12)


def test_missing_prediction_names_id(tmp_path):
    lines = PRED.read_text().splitlines()[1:]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Vega3DError, match="scanqa_val-scene0011-0_0"):
        scanqa.evaluate(path, LLAVA)


def test_annotation_without_answers_is_an_error(tmp_path):
    data = json.loads(LLAVA.read_text())
    del data[2]["metadata"]["answers"]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        Vega3DError, match=r"record 2 \(id 'scanqa_val-scene0015-0_0'\): missing field 'metadata.answers'"
    ):
        scanqa.load_annotations(path)


def test_prompts_for_runners():
    llava = scanqa.load_annotations(LLAVA)
    official = scanqa.load_annotations(OFFICIAL)
    assert llava[0].prompt == "What is placed next to the door? Answer the question simply."
    assert [q.prompt for q in llava] == [q.prompt for q in official]
    assert [q.scene_id for q in llava] == [q.scene_id for q in official] and llava[0].scene_id == "scene0011_00"
