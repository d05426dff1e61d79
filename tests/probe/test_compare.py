"""probe-compare end to end on the synthetic scene, resume after a kill, the bootstrap, the paper numbers."""

import json

import pytest
import torch

from vega3d import cli
from vega3d.errors import Vega3DError

SPEC = """\
probe: {min_motion_px: 4, local_negative_px: [6, 18], recall_stride_px: 8, recall_radii_px: [8, 16, 32]}
bootstrap_draws: 200
encoders:
  - label: random ViT
    encoder: random_vit
    options: {image_size: 64, hidden_size: 48, num_layers: 2}
  - label: Wan VAE
    encoder: wan_vae
    options: {model: models/vace, height: 64, width: 96}
  - label: DINOv3
    encoder: dinov3
    options: {model: models/dinov3}
  - label: VACE
    encoder: wan_vace
    options: {model: models/vace, height: 64, width: 96, block: 1}
    blocks: [0, 1]
"""
ARGS = ["synthetic", "--frames", "6", "--synthetic-size", "64x96"]


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_dinov3, save_tiny_wan_vace

    root = tmp_path_factory.mktemp("compare")
    save_tiny_wan_vace(root / "models" / "vace", num_layers=2, vace_layers=(0,))
    save_tiny_dinov3(root / "models" / "dinov3")
    (root / "spec.yaml").write_text(SPEC)
    return root


def _compare(spec_dir, out):
    return cli.main(["probe-compare", *ARGS, "--encoders", str(spec_dir / "spec.yaml"), "--out", str(out)])


def test_probe_compare_end_to_end(spec_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _compare(spec_dir, out) == 0
    report = json.loads((out / "compare.json").read_text())
    rows = {r["label"]: r for r in report["rows"]}
    assert list(rows) == [
        "pixels",
        "position control",
        "random ViT",
        "Wan VAE",
        "DINOv3",
        "VACE block=0",
        "VACE block=1",
    ]
    assert rows["VACE block=0"]["encoder"]["block"] == 0 and rows["VACE block=1"]["paper_figure3"] == 97
    assert rows["Wan VAE"]["paper_figure3"] == 80 and rows["DINOv3"]["paper_figure3"] == 62
    assert rows["random ViT"]["paper_figure3"] is None and rows["Wan VAE"]["grid"] == [8, 12]
    assert rows["Wan VAE"]["stand_in"] and rows["DINOv3"]["stand_in"] and not rows["pixels"]["stand_in"]
    pairs = {r["num_pairs"] for r in rows.values()}
    assert len(pairs) == 1  # every encoder on the same frame pairs
    for row in rows.values():
        cell = row["summary"]["auroc_local"]
        assert cell["low"] <= cell["high"] and abs(cell["value"] - (cell["low"] + cell["high"]) / 2) < 0.1
        assert set(row["summary"]) >= {"auroc", "paper_score", "margin_local", "nn_recall@16"}
    assert abs(rows["position control"]["summary"]["auroc_local"]["value"] - 0.5) < 0.05  # the control: chance
    text = (out / "compare.txt").read_text()
    assert "DINOv3" in text and "[" in text and "STAND-IN rows" in text and "Figure 3b" in text
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert report["command"].startswith("vega3d probe-compare synthetic --encoders")
    # the same rows as scoring each encoder alone with vega3d.probe.score
    from vega3d.encoders import build_encoder
    from vega3d.probe import score
    from vega3d.scenes import synthetic_scene

    scene = synthetic_scene(num_frames=6, height=64, width=96, seed=0)
    alone = score(scene, build_encoder("dinov3", model=spec_dir / "models" / "dinov3")(scene.frames()),
                  **report["spec"]["probe"])  # fmt: skip
    assert rows["DINOv3"]["summary"]["auroc_local"]["value"] == pytest.approx(alone.auroc_local, abs=1e-12)
    vace = build_encoder("wan_vace", model=spec_dir / "models" / "vace", height=64, width=96, block=0)
    alone = score(scene, vace(scene.frames()), **report["spec"]["probe"])  # one VAE + DiT pass served both blocks
    assert rows["VACE block=0"]["summary"]["auroc_local"]["value"] == pytest.approx(alone.auroc_local, abs=1e-12)


def test_probe_compare_resumes_after_a_kill(spec_dir, tmp_path, monkeypatch):
    import vega3d.probe.compare as compare

    real, built = compare.entry_rows, []

    def killed_at_the_fourth(scenes, spec, entry):
        if entry["label"] == "Wan VAE":
            raise KeyboardInterrupt  # the process dies while the 4th entry runs
        built.append(entry["label"])
        return real(scenes, spec, entry)

    out = tmp_path / "out"
    monkeypatch.setattr(compare, "entry_rows", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        _compare(spec_dir, out)
    assert built == ["pixels", "position control", "random ViT"]
    done = sorted(p.name for p in (out / "rows").iterdir())
    assert done == ["00-pixels.json", "01-position_control.json", "02-random_ViT.json"]
    assert not (out / "compare.json").exists()
    before = {name: (out / "rows" / name).read_bytes() for name in done}

    def counting(scenes, spec, entry):
        built.append(entry["label"])
        return real(scenes, spec, entry)

    built.clear()
    monkeypatch.setattr(compare, "entry_rows", counting)
    assert _compare(spec_dir, out) == 0
    assert built == ["Wan VAE", "DINOv3", "VACE"]  # the rerun continues: finished entries are not recomputed
    assert all((out / "rows" / name).read_bytes() == data for name, data in before.items())
    fresh = tmp_path / "fresh"
    assert _compare(spec_dir, fresh) == 0  # the resumed table equals an uninterrupted run's
    a, b = (json.loads((d / "compare.json").read_text())["rows"] for d in (out, fresh))
    assert [r["summary"] for r in a] == [r["summary"] for r in b]


def test_spec_errors_name_the_entry(spec_dir, tmp_path):
    from vega3d.probe.compare import load_spec

    cases = [
        ("encoders: [{label: a, encoder: nosuch}]", r"encoders.0 \(a\): unknown encoder 'nosuch'"),
        (
            "encoders: [{label: a, encoder: pixels, options: {block: 3}}]",
            r"encoders.0 \(a\): encoder 'pixels': unknown option",
        ),
        ("encoders: [{label: a, encoder: pixels}, {label: a, encoder: pixels}]", "repeated or reserved: \\['a'\\]"),
        ("encoders: [{label: a, encoder: pixels, blocks: [1]}]", "blocks/timesteps lists need a tower with stages"),
        ("encoders: [{label: a, encoder: pixels}]\nprobe: {min_motion_px: -1}", "probe option min_motion_px=-1"),
        ("encoders: [{label: a, encoder: pixels, paper: Foo}]", "paper='Foo'; expected one of"),
        ("encoders: []", "encoders"),
        ("encoders: [{label: a, encoder: pixels}]\nencoder: []", "encoder: unknown key"),
    ]
    for text, message in cases:
        (tmp_path / "s.yaml").write_text(text)
        with pytest.raises(Vega3DError, match=message):
            load_spec(tmp_path / "s.yaml")


def test_bootstrap_weights_equal_repeating_pairs():
    """Under integer pair weights every number equals the unweighted one on the points of each
    pair repeated that many times (vega3d.probe.sampling.auroc as the reference)."""
    from vega3d.probe.bootstrap import SceneDraws
    from vega3d.probe.sampling import auroc

    g = torch.Generator().manual_seed(0)
    pair_id = torch.randint(0, 5, (60,), generator=g).sort().values
    pos = torch.rand(60, generator=g)
    neg_owner, loc_owner = torch.randint(0, 60, (150,), generator=g), torch.randint(0, 60, (90,), generator=g)
    neg, loc = torch.rand(150, generator=g) * 0.8, torch.rand(90, generator=g)
    neg[:5] = pos[neg_owner[:5]]  # exact ties
    has_local = torch.zeros(60, dtype=torch.bool)
    has_local[loc_owner] = True
    samples = dict(num_pairs=5, pair_id=pair_id, pos=pos, neg=neg, neg_owner=neg_owner, loc=loc, loc_owner=loc_owner,
                   has_local=has_local, paper_pairs=torch.rand(4, generator=g))  # fmt: skip
    draws = SceneDraws(samples, [8.0], 1e-6)
    w = torch.tensor([[2.0, 0.0, 1.0, 3.0, 1.0]], dtype=torch.float64)
    got = draws.values(w, torch.tensor([[1.0, 2.0, 0.0, 1.0]], dtype=torch.float64))

    def repeat(values, owners_pair):
        return torch.cat([values[owners_pair == p].repeat(int(w[0, p])) for p in range(5)])

    point_pair = pair_id
    ref_auroc = auroc(repeat(pos, point_pair), repeat(neg, point_pair[neg_owner]))
    ref_local = auroc(repeat(pos[has_local], point_pair[has_local]), repeat(loc, point_pair[loc_owner]))
    assert float(got["auroc"][0]) == pytest.approx(ref_auroc, abs=1e-12)
    assert float(got["auroc_local"][0]) == pytest.approx(ref_local, abs=1e-12)
    assert float(got["pos_cosine"][0]) == pytest.approx(float(repeat(pos, point_pair).double().mean()), abs=1e-12)
    paper = samples["paper_pairs"].double()
    assert float(got["paper_score"][0]) == pytest.approx(float((paper[0] + 2 * paper[1] + paper[3]) / 4), abs=1e-12)


def test_paper_numbers_are_the_published_ones():
    from tests.conftest import SHARED
    from vega3d.probe.figure3 import NOT_COVERED, PAPER_FIGURE3, TOWER_OF_ENCODER

    path = SHARED / "reference" / "paper_numbers.json"
    if not path.is_file():
        pytest.skip("no shared/reference/paper_numbers.json beside this checkout")
    published = json.loads(path.read_text())["correspondence_score_percent_approx"]
    assert PAPER_FIGURE3 == published
    assert set(TOWER_OF_ENCODER.values()) | set(NOT_COVERED) == set(published)  # every tower: an encoder or a reason
