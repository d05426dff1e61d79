"""The whole Table-1 loop on stand-ins: tiny train → save → load → eval-model (five benchmarks) →
vega3d eval; resume; ask with a posed scan folder; bad input refused before any work."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from vega3d import Vega3DError
from vega3d.cli import main
from vega3d.training.config import load_train_config
from vega3d.training.loop import train

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "configs" / "video3d_llm_tiny.yaml"
FILES = {"scanrefer": "scanrefer_vg_val", "multi3drefer": "multi3drefer_val", "scan2cap": "scan2cap_val",
         "scanqa": "scanqa_val", "sqa3d": "sqa3d_test"}  # fmt: skip


def overrides(setup, out, *extra):
    return [f"model.base_model={setup['llava_video']}", f"data.root={setup['data']}",
            f"data.feature_store={setup['store']}", f"train.output_dir={out}", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("v3d_train") / "run"
    cfg = load_train_config(TINY_YAML, overrides(setup, out, "train.max_steps=2", "train.save_every=1"))
    return train(cfg, progress=False)


def _gt(setup, bench):
    return setup["data"] / "processed" / f"{FILES[bench]}_llava_style.json"


def test_training_writes_a_checkpoint_that_loads_bit_exactly(trained, setup):
    from safetensors.torch import load_file

    from vega3d.mllm.video3d_llm.model import Video3DLLM

    meta = json.loads((trained / "vega3d_config.json").read_text())
    assert meta["format"] == "vega3d-video3d-llm/1" and meta["stand_in"] is True
    cfg = meta["config"]
    assert cfg["preprocessing"] == {"num_frames": 2, "sampling": "uniform", "spatial_instruction": True}
    assert cfg["simulator"]["block"] == 1 and cfg["tokens"]["added"] is True
    saved = load_file(str(trained / "trainable.safetensors"))
    assert {"token_in", "token_out", "ground_head.zero_target", "fusion.gate.weight"} <= set(saved)
    assert any(k.startswith("base.model.vision_tower.") for k in saved)  # SigLIP trained (train_vision)
    model = Video3DLLM.from_pretrained(trained)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in saved.items())
    log = [json.loads(x) for x in (trained.parent / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)


def test_training_resumes_from_its_last_checkpoint(trained, setup, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained.parent, run)
    train(
        load_train_config(TINY_YAML, overrides(setup, run, "train.max_steps=3", "train.save_every=1")), progress=False
    )
    assert "resumed from" in capsys.readouterr().out
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]


def test_eval_model_answers_all_five_benchmarks_and_vega3d_eval_scores_them_alike(trained, setup, tmp_path):
    from vega3d.video3d import read_samples, select_multi, select_single

    for bench in FILES:
        out = tmp_path / bench
        args = ["eval-model", bench, "--model", str(trained), "--gt", str(_gt(setup, bench)), "--media",
                str(setup["data"]), "--out", str(out), "--feature-store", str(setup["store"]), "--limit", "3",
                "--max-new-tokens", "4", "--no-progress", "--device", "cpu"]  # fmt: skip
        assert main(args) == 0
        result = json.loads((out / "result.json").read_text())
        assert result["stand_in"] is True and result["counts"]["scored"] == 3
        preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
        samples = read_samples(_gt(setup, bench))[:3]
        assert [p["id"] for p in preds] == [str(s.id) for s in samples]
        proposals = json.loads((setup["data"] / "metadata" / "scannet_val_pred_box.json").read_text())
        for p, s in zip(preds, samples):
            boxes = torch.tensor(proposals[s.video], dtype=torch.float32)
            if bench == "scanrefer":  # the kept raw scores give the chosen box
                assert len(p["scores"]) == len(boxes) + 1
                assert p["box"] == boxes[select_single(torch.tensor(p["scores"]))].tolist()
            if bench == "multi3drefer":
                assert p["boxes"] == [boxes[i].tolist() for i in select_multi(torch.tensor(p["scores"]))]
            if bench == "scan2cap":  # the best proposal with IoU >= 0.5, as the release's box_input
                assert (p.get("box") is None) == (s.box_input is None)
                if s.box_input is not None:
                    torch.testing.assert_close(torch.tensor(p["box"]), torch.tensor(s.box_input), rtol=0, atol=1e-6)
                    assert isinstance(p["prediction"], str)
                else:
                    assert p["prediction"] == ""
        ours = json.loads((out / "result.json").read_text())
        key = {"scanrefer": "acc@0.25", "multi3drefer": "f1@0.25", "scan2cap": "cider", "scanqa": "cider",
               "sqa3d": "em"}[bench]  # fmt: skip
        # vega3d eval on the same file scores the same (the prediction format is the one format)
        limited = tmp_path / f"{bench}_gt.json"
        limited.write_text(json.dumps(json.loads(_gt(setup, bench).read_text())[:3]))
        assert main(["eval", bench, "--pred", str(out / "predictions.jsonl"), "--gt", str(limited), "--out",
                     str(tmp_path / f"{bench}_score.json"), "--no-paper"]) == 0  # fmt: skip
        scored = json.loads((tmp_path / f"{bench}_score.json").read_text())
        assert scored[key] == ours[key]


def test_eval_model_resumes_without_answering_again(trained, setup, tmp_path, capsys, monkeypatch):
    args = ["eval-model", "sqa3d", "--model", str(trained), "--gt", str(_gt(setup, "sqa3d")), "--media",
            str(setup["data"]), "--out", str(tmp_path / "out"), "--feature-store", str(setup["store"]),
            "--limit", "2", "--max-new-tokens", "3", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    first = (tmp_path / "out" / "predictions.jsonl").read_text()
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer

    def no_answers(*a, **k):
        raise AssertionError("answered again")

    monkeypatch.setattr(Video3DAnswerer, "answer", no_answers)
    assert main(args) == 0
    assert "2 already in" in capsys.readouterr().out
    assert (tmp_path / "out" / "predictions.jsonl").read_text() == first


def test_answers_do_not_depend_on_the_batch_size(trained, setup):
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer
    from vega3d.video3d import Video3DData, read_samples

    answerer = Video3DAnswerer.from_checkpoint(trained, feature_store=setup["store"])
    data = Video3DData(setup["data"])
    samples = read_samples(_gt(setup, "scanqa"))[:3]
    scene = answerer.scene(data, samples[0].video)
    questions = [s.question for s in samples]
    one = answerer.answer(scene, questions, max_new_tokens=5, batch_size=1)
    three = answerer.answer(scene, questions, max_new_tokens=5, batch_size=3)
    assert one == three
    boxes = data.proposals(samples[0].video, "val")
    g1 = answerer.ground(scene, questions, boxes, batch_size=1)
    g3 = answerer.ground(scene, questions, boxes, batch_size=3)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g3))


def test_ask_answers_about_a_posed_scan_folder(trained, setup, capsys):
    scan = setup["data"] / "scannet" / "posed_images" / "scene0001_00"
    rc = main(["ask", "--model", str(trained), "--video", str(scan), "--max-new-tokens", "3", "--baseline",
               "How many chairs are in the room?"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr()
    assert "STAND-IN" in out.err and out.out.endswith("\n")


def test_bad_input_is_one_line_before_the_model_loads(trained, setup, tmp_path, monkeypatch, capsys):
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer

    def no_model(*a, **k):
        raise AssertionError("model loaded before the checks")

    monkeypatch.setattr(Video3DAnswerer, "from_checkpoint", no_model)
    data = tmp_path / "data"
    shutil.copytree(setup["data"], data, ignore=shutil.ignore_patterns("posed_images"))
    (data / "scannet" / "posed_images").symlink_to(setup["data"] / "scannet" / "posed_images")
    (data / "metadata" / "scannet_val_pred_box.json").write_text(
        json.dumps({"scannet/scene9999_00": [[0, 0, 0, 1, 1, 1]]})
    )
    base = ["eval-model", "scanrefer", "--model", str(trained), "--media", str(data), "--out", str(tmp_path / "o")]
    assert main([*base, "--gt", str(_gt(setup, "scanrefer"))]) == 2
    err = capsys.readouterr().err
    assert "scene 'scannet/scene0001_00' is missing from" in err and "scannet_val_pred_box.json" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()
    assert main(["eval-model", "sqa3d", "--model", str(trained), "--media", str(setup["data"]), "--gt",
                 str(_gt(setup, "sqa3d")), "--out", str(tmp_path / "o"), "--num-frames", "50"]) == 2  # fmt: skip
    assert "50 frames requested but the scan has only 12" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_whose_vocabulary_does_not_match_its_base_is_refused(trained, tmp_path):
    from vega3d.mllm.video3d_llm.model import Video3DLLM

    bad = tmp_path / "ckpt"
    shutil.copytree(trained, bad)
    meta = json.loads((bad / "vega3d_config.json").read_text())
    meta["config"]["tokens"]["coord_token_id"] += 1
    (bad / "vega3d_config.json").write_text(json.dumps(meta))
    with pytest.raises(Vega3DError, match=r"vega3d_config\.json: records the vocabulary .* does not match"):
        Video3DLLM.from_pretrained(bad)


def test_two_processes_share_the_scans_and_process_zero_merges(trained, setup, tmp_path):
    from vega3d.mllm.video3d_llm.evaluate import run_benchmark
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer

    answerer = Video3DAnswerer.from_checkpoint(trained, feature_store=setup["store"])
    out = tmp_path / "out"
    kw = {"limit": 4, "max_new_tokens": 2, "progress": False, "world_size": 2}
    other = []

    def meet():  # process 1 runs whole where process 0 first waits for it (after both read what is done)
        if not other:
            other.append(run_benchmark("sqa3d", answerer, _gt(setup, "sqa3d"), setup["data"], out, rank=1,
                                       barrier=lambda: None, **kw))  # fmt: skip
            assert (out / "predictions.part1.jsonl").is_file() and not (out / "predictions.jsonl").exists()

    result = run_benchmark("sqa3d", answerer, _gt(setup, "sqa3d"), setup["data"], out, rank=0, barrier=meet, **kw)
    assert other == [None]
    assert result["counts"]["scored"] == 4 and not list(out.glob("predictions.part*"))
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4


def test_online_simulator_training_equals_the_feature_store_path(setup, tmp_path):
    """The online path (a ``simulator`` section, no store) trains on the features the store holds:
    with one frame per scan (frame 0: the first noise draw in both) the losses agree, and the
    checkpoint records the same simulator as the store's extraction config."""
    sim = ["simulator.path=" + str(setup["wan"]), "simulator.block=1", "simulator.height=32", "simulator.width=48",
           "simulator.dtype=float32", "data.num_frames=1", "train.max_steps=2", "train.save_every=0"]  # fmt: skip
    stored = load_train_config(TINY_YAML, overrides(setup, tmp_path / "store", *sim[-3:]))
    online = load_train_config(TINY_YAML, [*overrides(setup, tmp_path / "online", *sim), "data.feature_store=null"])
    assert online.data.feature_store is None and stored.simulator is None
    train(stored, progress=False)
    train(online, progress=False)
    logs = [
        [json.loads(x) for x in (tmp_path / run / "log.jsonl").read_text().splitlines()] for run in ("store", "online")
    ]
    assert [r["step"] for r in logs[1]] == [1, 2]
    assert [r["loss"] for r in logs[1]] == pytest.approx([r["loss"] for r in logs[0]], rel=1e-4)
    rec = [json.loads((tmp_path / r / "model" / "vega3d_config.json").read_text())["config"]["simulator"]
           for r in ("store", "online")]  # fmt: skip
    assert rec[0] == rec[1] and rec[1]["model"]["path"] == str(setup["wan"]) and rec[1]["block"] == 1


def test_eval_model_under_torchrun_equals_one_process(trained, setup, tmp_path):
    """``vega3d eval-model scanrefer`` on 2 CPU processes (torchrun, gloo): each answers its share, process
    0 merges and scores — the same predictions, scores and result as one process."""
    import os
    import socket
    import subprocess
    import sys

    args = ["eval-model", "scanrefer", "--model", str(trained), "--gt", str(_gt(setup, "scanrefer")), "--media",
            str(setup["data"]), "--feature-store", str(setup["store"]), "--limit", "4", "--max-new-tokens", "4",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), "-m",
           "vega3d.cli", *args, "--out", str(tmp_path / "two")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("scanrefer: scored 4 of 4") == 1  # printed by process 0 only
    assert "answering 4 on 2 processes" in proc.stdout  # each process its share (part files, merged)
    assert not list((tmp_path / "two").glob("predictions.part*.jsonl"))
    read = lambda run: [json.loads(x) for x in (tmp_path / run / "predictions.jsonl").read_text().splitlines()]  # noqa: E731
    one, two = read("one"), read("two")
    assert [p["id"] for p in two] == [p["id"] for p in one]
    for a, b in zip(one, two):
        assert a["box"] == b["box"] and a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    result = lambda run: json.loads((tmp_path / run / "result.json").read_text())  # noqa: E731
    assert {k: v for k, v in result("two").items() if k not in ("run", "predictions")} == {
        k: v for k, v in result("one").items() if k not in ("run", "predictions")
    }
