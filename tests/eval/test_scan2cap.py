import json
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from vega3d import Vega3DError
from vega3d.eval import scan2cap
from vega3d.eval.scan2cap import prepare_caption

FIXTURES = Path(__file__).parent / "fixtures"
GT = FIXTURES / "scan2cap_val_llava_style.json"
PRED = FIXTURES / "scan2cap_pred.jsonl"


def _direct(preds, detected):
    """pycocoevalcap on Video-3D LLM's prepared strings, placeholder for undetected objects."""
    objects = scan2cap.load_annotations(GT)
    gts = {o.id: [prepare_caption(r) for r in o.references] for o in objects}
    res = {o.id: [prepare_caption(preds[o.id] if o.id in detected else "")] for o in objects}
    return gts, res


def test_prepare_caption_matches_video3dllm():
    assert prepare_caption("A chair. Brown, wooden") == "sos a chair .  brown ,  wooden eos"
    assert prepare_caption("") == "sos  eos"


def test_official_protocol_equals_pycocoevalcap_directly(caption_scorer):
    result = scan2cap.evaluate(PRED, GT, scorer=caption_scorer)
    assert result["counts"] == {"expected": 3, "scored": 3, "detected@0.5": 2}
    preds = {str(json.loads(line)["id"]): json.loads(line)["prediction"] for line in PRED.read_text().splitlines()}
    gts, res = _direct(preds, detected={"0", "1"})
    cider, cider_items = Cider().compute_score(gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_items = Rouge().compute_score(gts, res)
    meteor, _ = caption_scorer._meteor_scorer().compute_score(gts, res)
    assert result["cider"] == pytest.approx(cider, abs=1e-12)
    assert result["bleu4"] == pytest.approx(bleu[3], abs=1e-12)
    assert result["rouge_l"] == pytest.approx(rouge, abs=1e-12)
    assert result["meteor"] == pytest.approx(meteor, abs=1e-12)
    # the undetected sofa: placeholder scores 0 CIDEr but gets ROUGE-L credit for "sos ... eos"
    assert cider_items[2] == 0.0 and rouge_items[2] > 0
    # strict m*u: per-object scores of detected objects, zero for the sofa, mean over all 3
    assert result["strict"]["cider"] == pytest.approx((cider_items[0] + cider_items[1]) / 3, abs=1e-12)
    assert result["strict"]["rouge_l"] == pytest.approx((rouge_items[0] + rouge_items[1]) / 3, abs=1e-12)
    assert result["strict"]["rouge_l"] < result["rouge_l"]


def test_prediction_box_below_threshold_counts_as_undetected(tmp_path, caption_scorer):
    lines = PRED.read_text().splitlines()
    # the runner captioned a proposal with IoU 0.4/1.6 = 0.25 < 0.5 to the tv
    lines[1] = json.dumps({"id": 1, "prediction": "the tv is on the cabinet.", "box": [2.6, 2, 0, 1, 1, 1]})
    path = tmp_path / "pred.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = scan2cap.evaluate(path, GT, scorer=caption_scorer)
    assert result["counts"]["detected@0.5"] == 1
    assert result["ious"]["1"] == pytest.approx(0.25)
    assert result["strict"]["cider"] < scan2cap.evaluate(PRED, GT, scorer=caption_scorer)["strict"]["cider"]


def test_missing_gt_box_is_an_error(tmp_path):
    data = json.loads(GT.read_text())
    del data[1]["gt_box"]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Vega3DError, match=r"record 1 \(id '1'\): missing field 'gt_box'"):
        scan2cap.load_annotations(path)


def test_undetected_object_still_needs_a_prediction(tmp_path):
    lines = PRED.read_text().splitlines()[:2]
    path = tmp_path / "pred.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Vega3DError, match=r"have no prediction.*'2'"):
        scan2cap.evaluate(path, GT)
