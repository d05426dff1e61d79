"""``run_benchmark`` / ``vega3d eval-model``: a tiny VEGA-3D checkpoint → predictions → table.

The model is a random-weight Qwen2.5-VL + random-weight Wan stand-in, so its answers are
noise: the tests check structure, counts, ids, what the model was given, resume and
determinism — never whether an answer is right.
"""

import json
import re
from pathlib import Path
from types import MethodType, SimpleNamespace

import pytest
import torch

from vega3d import cli
from vega3d.errors import Vega3DError
from vega3d.eval import run as runner
from vega3d.eval import scanqa, sqa3d, vsibench

FIXTURES = Path(__file__).parent / "fixtures"
VSI = FIXTURES / "vsibench_test.jsonl"
SCANQA = FIXTURES / "scanqa_val_llava_style.json"
SQA3D = FIXTURES / "sqa3d_test_llava_style.json"
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint (generative branch on, simulator recorded) and media for the fixtures:
    VSI-Bench videos; ScanQA a posed_images scan, a frame folder and an .mp4; SQA3D a
    posed_images scan, a SensReader scan and an .mp4."""
    from vega3d.media import write_frame_folder, write_video
    from vega3d.scenes import synthetic_scene, write_scene
    from vega3d.standin.data import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("eval_run")
    checkpoint = write_tiny_checkpoint(root, NUM_FRAMES)

    def frames(seed, n=7):
        return synthetic_scene(num_frames=n, height=48, width=64, seed=seed)

    vsi = root / "vsi"
    for seed, (dataset, scene) in enumerate(
        [("arkitscenes", "41069025"), ("scannet", "scene0011_00"), ("scannetpp", "0a5c013435")]
    ):
        write_video(vsi / dataset / f"{scene}.mp4", frames(seed).color.numpy())
    scans = root / "scans"
    write_scene(frames(3, n=10), scans / "scene0011_00", layout="posed_images")
    write_frame_folder(scans / "scene0015_00", frames(4).color.numpy())
    write_video(scans / "scene0019_00.mp4", frames(5).color.numpy())
    write_scene(frames(6, n=9), scans / "scene0249_00", layout="posed_images")
    write_scene(frames(7), scans / "scene0250_00", layout="sensreader")
    write_video(scans / "scene0251_00.mp4", frames(8).color.numpy())
    return {"checkpoint": checkpoint, "vsi": vsi, "scans": scans}


@pytest.fixture(scope="module")
def answerer(setup):
    from vega3d.mllm.infer import Answerer

    return Answerer.from_checkpoint(setup["checkpoint"])


class Recording:
    """Passes calls to the real Answerer and records what it was given (a prepared video is
    recorded as the path it was read from)."""

    def __init__(self, inner):
        self.inner, self.model, self.num_frames, self.calls = inner, inner.model, inner.num_frames, []
        self.frames_as = inner.frames_as
        self.prepare = inner.prepare

    def stand_in_parts(self):
        return self.inner.stand_in_parts()

    def answer(self, questions, videos, **kwargs):
        self.calls.append((list(questions), [getattr(v, "source", v) for v in videos], kwargs))
        return self.inner.answer(questions, videos, **kwargs)

    def asked(self):
        return [q for questions, _, _ in self.calls for q in questions]

    def videos(self):
        return [v for _, videos, _ in self.calls for v in videos]


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def run(bench, answerer, gt, media, out, **kw):
    kw.setdefault("max_new_tokens", 4)
    kw.setdefault("progress", False)
    return runner.run_benchmark(bench, answerer, gt, media, out, **kw)


def test_vsibench_end_to_end_one_record_per_question_table_and_result(setup, answerer, tmp_path, capsys):
    rec = Recording(answerer)
    result = run("vsibench", rec, VSI, setup["vsi"], tmp_path / "a", batch_size=5)
    printed = capsys.readouterr().out
    questions = vsibench.load_annotations(VSI)
    preds = lines(tmp_path / "a" / "predictions.jsonl")
    assert [p["id"] for p in preds] == [q.id for q in questions]
    assert all(set(p) == {"id", "prediction"} and isinstance(p["prediction"], str) for p in preds)
    # the official prompts with the official video locations, grouped by video (annotation order
    # within one), batches of 5, 4 frames as recorded at training
    expected = [(q.prompt, str(q.video_path(setup["vsi"]))) for q in questions]
    assert list(zip(rec.asked(), rec.videos())) == sorted(expected, key=lambda pair: pair[1])
    assert [len(qs) for qs, _, _ in rec.calls] == [5, 5, 2]
    assert all(kw == {"max_new_tokens": 4, "batch_size": 5} for _, _, kw in rec.calls)
    assert "vsibench: scored 12 of 12 expected items" in printed
    assert "Avg.  Obj. Count  Abs. Dist." in printed and "paper: VEGA-3D" in printed
    written = json.loads((tmp_path / "a" / "result.json").read_text())
    assert written["counts"]["scored"] == written["counts"]["expected"] == 12
    assert written["run"]["counts"] == {
        "in_annotations": 12,
        "selected": 12,
        "skipped_missing_media": 0,
        "answered": 12,
        "resumed": 0,
        "generated": 12,
        "processes": 1,
    }
    assert written["run"]["num_frames"] == NUM_FRAMES and written["run"]["model_config"]["generative"] is True
    direct = vsibench.evaluate(tmp_path / "a" / "predictions.jsonl", VSI)
    assert written["overall"] == direct["overall"] == result["overall"]
    assert written["tasks"] == direct["tasks"]
    # deterministic: a second run (other batch size) writes the same file
    run("vsibench", answerer, VSI, setup["vsi"], tmp_path / "b", batch_size=4)
    assert (tmp_path / "a" / "predictions.jsonl").read_bytes() == (tmp_path / "b" / "predictions.jsonl").read_bytes()


def test_scanqa_from_scans_frame_folders_and_videos(setup, answerer, tmp_path, capsys, caption_scorer):
    rec = Recording(answerer)
    result = run(
        "scanqa", rec, SCANQA, setup["scans"], tmp_path, scorer=caption_scorer, instruction=runner.SPATIAL_INSTRUCTION
    )
    questions = scanqa.load_annotations(SCANQA)
    assert rec.asked() == [runner.SPATIAL_INSTRUCTION + "\n" + q.prompt for q in questions]
    # a posed_images scan, a frame folder, an .mp4 — given as paths, read by the Answerer as in training
    scans = setup["scans"]
    assert rec.videos() == [str(scans / "scene0011_00")] * 2 + [str(scans / "scene0015_00")] * 2 + [
        str(scans / "scene0019_00.mp4")
    ]
    assert not any("depth" in str(v) for v in rec.videos())
    preds = lines(tmp_path / "predictions.jsonl")
    assert [p["id"] for p in preds] == [q.id for q in questions]
    assert "scanqa: scored 5 of 5 expected items" in capsys.readouterr().out
    written = json.loads((tmp_path / "result.json").read_text())
    assert (
        written["counts"] == {"expected": 5, "scored": 5}
        and written["run"]["instruction"] == runner.SPATIAL_INSTRUCTION
    )
    assert set(result) >= {"cider", "em", "em_refined", "meteor"}


def test_sqa3d_resume_generates_only_the_missing_ids(setup, answerer, tmp_path, capsys):
    full = tmp_path / "full"
    run("sqa3d", answerer, SQA3D, setup["scans"], full)  # posed_images, SensReader and .mp4 scenes
    reference = (full / "predictions.jsonl").read_bytes()
    ids = [q.id for q in sqa3d.load_annotations(SQA3D)]
    prompt_to_id = {q.prompt: q.id for q in sqa3d.load_annotations(SQA3D)}

    # an interrupted run: --limit 2, then a crash in the middle of writing a third line
    part = tmp_path / "part"
    run("sqa3d", answerer, SQA3D, setup["scans"], part, limit=2)
    assert [p["id"] for p in lines(part / "predictions.jsonl")] == ids[:2]
    with (part / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "220602000003", "predic')
    rec = Recording(answerer)
    capsys.readouterr()
    result = run("sqa3d", rec, SQA3D, setup["scans"], part)
    printed = capsys.readouterr().out
    assert [prompt_to_id[q] for q in rec.asked()] == ids[2:]
    assert "2 already in" in printed and "generating 4" in printed and "incomplete last line" in printed
    assert (part / "predictions.jsonl").read_text().count("\n") == 6
    assert (part / "predictions.jsonl").read_bytes() == reference  # same answers, annotation order
    assert result["run"]["counts"]["resumed"] == 2 and result["run"]["counts"]["generated"] == 4

    # all done: a rerun generates nothing and scores the same
    rec = Recording(answerer)
    again = run("sqa3d", rec, SQA3D, setup["scans"], part)
    assert rec.calls == [] and again["em"] == result["em"]

    # a resume with other settings is refused
    with pytest.raises(Vega3DError, match="other settings.*max_new_tokens"):
        run("sqa3d", answerer, SQA3D, setup["scans"], part, max_new_tokens=5)


def test_processes_answer_contiguous_shares_and_process_0_merges(setup, answerer, tmp_path, capsys):
    """Two processes simulated by two threads meeting at a threading.Barrier."""
    import threading

    from vega3d.mllm.infer import Answerer

    reference = tmp_path / "single"
    run("sqa3d", answerer, SQA3D, setup["scans"], reference)
    ids = [q.id for q in sqa3d.load_annotations(SQA3D)]
    prompt_to_id = {q.prompt: q.id for q in sqa3d.load_annotations(SQA3D)}
    out = tmp_path / "two"
    # process 0 of an earlier two-process run answered one question, then the job was killed
    with pytest.raises(RuntimeError, match="interrupted"):
        run(
            "sqa3d",
            Interrupted(answerer, after=1),
            SQA3D,
            setup["scans"],
            out,
            batch_size=1,
            rank=0,
            world_size=2,
            barrier=lambda: None,
        )
    assert [p["id"] for p in lines(out / "predictions.part0.jsonl")] == ids[:1]
    # the rerun: 5 left; process 0 takes the first 2, process 1 the last 3
    recs = [Recording(answerer), Recording(Answerer.from_checkpoint(setup["checkpoint"]))]
    meet, results, errors = threading.Barrier(2, timeout=120), {}, []

    def process(rank):
        try:
            results[rank] = run(
                "sqa3d", recs[rank], SQA3D, setup["scans"], out, rank=rank, world_size=2, barrier=meet.wait
            )
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)
            meet.abort()

    threads = [threading.Thread(target=process, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [prompt_to_id[q] for q in recs[0].asked()] == ids[1:3]
    assert [prompt_to_id[q] for q in recs[1].asked()] == ids[3:]
    assert results[1] is None and results[0]["run"]["counts"]["processes"] == 2
    assert results[0]["run"]["counts"]["resumed"] == 1 and results[0]["run"]["counts"]["generated"] == 5
    assert "1 already in" in capsys.readouterr().out
    assert (out / "predictions.jsonl").read_bytes() == (reference / "predictions.jsonl").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl", "result.json", "run.json"]
    with pytest.raises(Vega3DError, match="rank/world_size"):
        run("sqa3d", answerer, SQA3D, setup["scans"], out, rank=2, world_size=2)


class Interrupted(Recording):
    """Raises after ``after`` answered batches, like a killed job."""

    def __init__(self, inner, after):
        super().__init__(inner)
        self.after = after

    def answer(self, questions, videos, **kwargs):
        if len(self.calls) == self.after:
            raise RuntimeError("interrupted")
        return super().answer(questions, videos, **kwargs)


def test_missing_media_names_the_question_or_is_skipped_and_counted(setup, answerer, tmp_path, capsys):
    import shutil

    media = tmp_path / "media"
    shutil.copytree(setup["scans"], media)
    shutil.rmtree(media / "scene0250_00")  # SQA3D questions 220602000003 and ...04
    rec = Recording(answerer)
    with pytest.raises(Vega3DError, match=r"question '220602000003': media not found: .*scene0250_00"):
        run("sqa3d", rec, SQA3D, media, tmp_path / "out")
    assert rec.calls == [] and not (tmp_path / "out" / "predictions.jsonl").exists()  # checked before generating

    result = run("sqa3d", rec, SQA3D, media, tmp_path / "out", skip_missing=True)
    printed = capsys.readouterr().out
    assert [p["id"] for p in lines(tmp_path / "out" / "predictions.jsonl")] == [
        "220602000001",
        "220602000002",
        "220602000005",
        "220602000006",
    ]
    assert "sqa3d: scored 4 of 4 expected items (6 in" in printed and "2 skipped: media missing" in printed
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["run"]["counts"]["skipped_missing_media"] == 2
    assert [s["id"] for s in written["run"]["skipped"]] == ["220602000003", "220602000004"]
    assert written["run"]["skipped"][0]["path"] == str(media / "scene0250_00")
    assert result["counts"]["expected"] == 4

    (media / "arkitscenes").mkdir()
    with pytest.raises(Vega3DError, match=r"question '1': media not found: .*arkitscenes/41069025.mp4"):
        run("vsibench", rec, VSI, media, tmp_path / "vsi")


def test_media_kinds(setup, tmp_path):
    from vega3d.media import write_frame_folder

    scans = setup["scans"]
    assert runner.media_kind(scans / "scene0011_00") == "scan"  # posed_images
    assert runner.media_kind(scans / "scene0250_00") == "scan"  # SensReader
    assert runner.media_kind(scans / "scene0015_00") == "frames"
    assert runner.media_kind(scans / "scene0019_00.mp4") == "video"
    digits = tmp_path / "digits"  # 00000.jpg ... without poses or intrinsics: a frame folder
    write_frame_folder(digits, torch.zeros(2, 8, 8, 3, dtype=torch.uint8).numpy())
    for i, f in enumerate(sorted(digits.iterdir())):
        f.rename(digits / f"{i:05d}.png")
    assert runner.media_kind(digits) == "frames"
    (digits / "00000.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    assert runner.media_kind(digits) == "scan"  # a pose file: a (possibly broken) scan, load_scene says what is missing
    (tmp_path / "empty").mkdir()
    assert runner.media_kind(tmp_path / "empty") is None


def test_broken_media_errors_name_the_question(setup, answerer, tmp_path):
    media = tmp_path / "media"
    (media / "scene0249_00").mkdir(parents=True)
    (media / "scene0249_00" / "00000.jpg").write_bytes(b"not an image")
    (media / "scene0249_00" / "intrinsic.txt").write_text("500 0 32 0\n0 500 24 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(Vega3DError, match=r"sqa3d questions \['220602000001'\]: .*scene0249_00"):
        run("sqa3d", answerer, SQA3D, media, tmp_path / "out", limit=1)
    (media / "scene0249_00" / "intrinsic.txt").unlink()  # now a (broken) frame folder
    with pytest.raises(Vega3DError, match=r"sqa3d questions \['220602000001'\]: .*00000.jpg"):
        run("sqa3d", answerer, SQA3D, media, tmp_path / "out2", limit=1)
    (media / "scene0249_00" / "00000.jpg").unlink()  # an empty folder: named before anything runs
    with pytest.raises(Vega3DError, match=r"question '220602000001': .*scene0249_00 is neither a video file"):
        run("sqa3d", answerer, SQA3D, media, tmp_path / "out3", limit=1)


@pytest.mark.parametrize("bench", runner.BOX_BENCHMARKS)
def test_grounding_benchmarks_give_a_clear_error(bench, tmp_path, capsys):
    with pytest.raises(
        Vega3DError, match=f"{bench}: the VEGA-3D MLLM has no grounding/box head yet.*vega3d eval {bench}"
    ):
        runner.run_benchmark(bench, object(), FIXTURES / f"{bench}_val_llava_style.json", tmp_path, tmp_path / "o")
    # the CLI says so before loading any model (this checkpoint does not exist)
    code = cli.main(
        [
            "eval-model",
            bench,
            "--model",
            str(tmp_path / "no_model"),
            "--gt",
            str(tmp_path / "x.json"),
            "--media",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "no grounding/box head yet" in capsys.readouterr().err


def test_bad_inputs_are_errors(setup, answerer, tmp_path):
    with pytest.raises(Vega3DError, match="media root .* is not a folder"):
        run("sqa3d", answerer, SQA3D, tmp_path / "nowhere", tmp_path / "o")
    for kw, match in [
        ({"limit": 0}, "limit: got 0; expected"),
        ({"batch_size": 0}, "batch_size: got 0; expected"),
        ({"num_frames": 8}, "num_frames=8 but the answerer samples 4"),
    ]:
        with pytest.raises(Vega3DError, match=match):
            run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "o", **kw)
    with pytest.raises(Vega3DError, match="does not exist"):
        run("sqa3d", answerer, tmp_path / "none.json", setup["scans"], tmp_path / "o")
    # VSI-Bench ids 6, 7 are Rel. Dir. easy/medium, hard is id 8: a selection the scorer would refuse
    rec = Recording(answerer)
    with pytest.raises(Vega3DError, match="cannot be scored: vsibench: relative direction .* lack"):
        run("vsibench", rec, VSI, setup["vsi"], tmp_path / "o", limit=7)
    assert rec.calls == []
    # a predictions file this runner did not write, or one with ids of other questions
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "predictions.jsonl").write_text('{"id": "220602000001", "prediction": "x"}\n')
    with pytest.raises(Vega3DError, match="not written by this runner"):
        run("sqa3d", answerer, SQA3D, setup["scans"], foreign)
    run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "mixed", limit=1)
    with (tmp_path / "mixed" / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "999", "prediction": "x"}\n')
    with pytest.raises(
        Vega3DError, match=r"predictions.jsonl:2: prediction id '999' is not among this run's questions"
    ):
        run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "mixed", limit=1)


def test_cli_eval_model_matches_the_python_api(setup, answerer, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(
        [
            "eval-model",
            "sqa3d",
            "--model",
            str(setup["checkpoint"]),
            "--gt",
            str(SQA3D),
            "--media",
            str(setup["scans"]),
            "--out",
            str(out),
            "--max-new-tokens",
            "4",
            "--batch-size",
            "3",
            "--no-progress",
            "--no-paper",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "sqa3d: scored 6 of 6 expected items" in printed and "All    What      Is" in printed
    assert "paper:" not in printed
    assert "NOTE: small STAND-IN(s), not the real model: the Qwen2.5-VL base; the Wan simulator" in printed
    assert "EM-R (STAND-IN)" in printed
    run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "api")
    assert (out / "predictions.jsonl").read_bytes() == (tmp_path / "api" / "predictions.jsonl").read_bytes()
    written = json.loads((out / "result.json").read_text())
    assert written["run"]["model"]["checkpoint"] == str(Path(setup["checkpoint"]).resolve())
    assert written["counts"]["scored"] == 6
    code = cli.main(
        [
            "eval-model",
            "sqa3d",
            "--model",
            str(setup["checkpoint"]),
            "--gt",
            str(SQA3D),
            "--media",
            str(setup["scans"]),
            "--out",
            str(tmp_path / "o2"),
            "--num-frames",
            "0",
        ]
    )
    assert code == 2 and "num_frames: got 0; expected None or a positive integer" in capsys.readouterr().err


def test_eval_model_frames_as_images_is_recorded_and_a_resume_as_video_refused(setup, answerer, tmp_path, capsys):
    from vega3d.mllm.infer import Answerer

    out = tmp_path / "images"
    argv = ["eval-model", "sqa3d", "--model", str(setup["checkpoint"]), "--gt", str(SQA3D), "--media",
            str(setup["scans"]), "--out", str(out), "--max-new-tokens", "4", "--limit", "2", "--no-progress"]  # fmt: skip
    assert cli.main([*argv, "--frames-as", "images"]) == 0
    assert json.loads((out / "run.json").read_text())["frames_as"] == "images"
    assert json.loads((out / "result.json").read_text())["run"]["frames_as"] == "images"
    images = Answerer(answerer.model, answerer.processor, num_frames=NUM_FRAMES, frames_as="images")
    run("sqa3d", images, SQA3D, setup["scans"], tmp_path / "api", limit=2)  # the same answers from Python
    assert (out / "predictions.jsonl").read_bytes() == (tmp_path / "api" / "predictions.jsonl").read_bytes()
    capsys.readouterr()
    assert cli.main(argv) == 2  # the default: frames as a video
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "holds predictions of a run with other settings (frames_as: recorded 'images', now 'video')" in error
    run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "video", limit=1)
    assert json.loads((tmp_path / "video" / "run.json").read_text())["frames_as"] == "video"
    with pytest.raises(SystemExit):
        cli.main([*argv, "--frames-as", "image"])
    assert "argument --frames-as: invalid choice: 'image'" in capsys.readouterr().err


def test_eval_model_checks_arguments_checkpoint_annotations_then_media(setup, tmp_path, capsys):
    """The CLI's edge checks come in the order a user fixes them, all before a model is loaded:
    each case below is broken in that check and every later one."""
    nowhere, no_gt, no_media = tmp_path / "no_model", tmp_path / "none.json", tmp_path / "no_media"
    checkpoint = setup["checkpoint"]
    cases = [
        ([nowhere, no_gt, no_media, "--batch-size", "0"], r"batch_size: got 0; expected None or a positive integer"),
        ([nowhere, no_gt, no_media], r"no_model: not a vega3d checkpoint"),
        ([checkpoint, no_gt, no_media], r"none\.json does not exist"),
        ([checkpoint, SQA3D, no_media], r"media root .*no_media is not a folder"),
    ]
    for (model, gt, media, *extra), match in cases:
        argv = ["eval-model", "sqa3d", "--model", str(model), "--gt", str(gt), "--media", str(media)]
        assert cli.main([*argv, "--out", str(tmp_path / "o"), *extra]) == 2
        assert re.search(match, capsys.readouterr().err), match
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        cli.main(["eval-model", "--help"])
    assert "questions answered per generate call" in capsys.readouterr().out  # --batch-size has help


def test_the_runner_does_not_import_the_cli():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(runner))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in modules if m and m.startswith("vega3d.eval.cli")]


@pytest.mark.slow
def test_two_process_launch_equals_one_process(setup, answerer, tmp_path):
    """`vega3d eval-model` under torchrun (2 CPU processes, gloo, through accelerate's PartialState)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "vega3d.cli",
        "eval-model",
        "sqa3d",
        "--model",
        str(setup["checkpoint"]),
        "--gt",
        str(SQA3D),
        "--media",
        str(setup["scans"]),
        "--out",
        str(out),
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("sqa3d: scored 6 of 6 expected items") == 1  # printed by process 0 only
    assert "generating 6 on 2 processes" in proc.stdout
    run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "one")
    assert (out / "predictions.jsonl").read_bytes() == (tmp_path / "one" / "predictions.jsonl").read_bytes()
    assert json.loads((out / "result.json").read_text())["run"]["counts"]["processes"] == 2
    assert not list(out.glob("predictions.part*"))


# ------------------------------------------------------------------ media read once per scene
@pytest.fixture
def reads(monkeypatch):
    """Counts load_video calls (every read of a video / scan) and simulator runs."""
    from tests.media_reads import count_media_reads

    return count_media_reads(monkeypatch)


def test_each_scene_is_read_once_and_answers_are_those_of_reading_per_question(setup, answerer, tmp_path, reads):
    from vega3d.mllm.infer import Answerer

    # the straightforward way: every question reads its video and runs the simulator
    plain = Answerer(answerer.model, answerer.processor, num_frames=NUM_FRAMES, media_cache=0)
    run("vsibench", plain, VSI, setup["vsi"], tmp_path / "plain", batch_size=5, reuse_media=False)
    assert reads == {"load": 12, "simulate": 12}  # 12 questions
    # reuse: 3 videos, each read once and simulated once, though batches of 5 cross videos
    reads.update(load=0, simulate=0)
    rec = Recording(answerer)
    run("vsibench", rec, VSI, setup["vsi"], tmp_path / "reuse", batch_size=5)
    assert reads == {"load": 3, "simulate": 3}
    assert len(set(rec.videos())) == 3 and all(isinstance(v, str) for v in rec.videos())
    plain_preds = (tmp_path / "plain" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "reuse" / "predictions.jsonl").read_bytes() == plain_preds
    # scans (posed_images, SensReader) and an .mp4, without the read-ahead thread: 6 questions, 3 scenes
    reads.update(load=0, simulate=0)
    run("sqa3d", answerer, SQA3D, setup["scans"], tmp_path / "sqa", batch_size=4, read_ahead=False)
    assert reads == {"load": 3, "simulate": 3}
    reads.update(load=0, simulate=0)
    run("sqa3d", plain, SQA3D, setup["scans"], tmp_path / "sqa_plain", batch_size=4)
    assert reads["load"] == 3  # the runner reuses media even with the answerer's cache off
    run("sqa3d", plain, SQA3D, setup["scans"], tmp_path / "sqa_per_question", batch_size=4, reuse_media=False)
    assert reads["load"] == 3 + 6
    sqa = (tmp_path / "sqa" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "sqa_plain" / "predictions.jsonl").read_bytes() == sqa
    assert (tmp_path / "sqa_per_question" / "predictions.jsonl").read_bytes() == sqa


def test_media_reader_reads_once_in_order_and_reads_ahead():
    import threading

    from vega3d.eval.runners.media import MediaReader

    for read_ahead in (False, True):
        started, gate = [], threading.Event()

        def prepare(path):
            started.append(path)
            if path == "c" and read_ahead:
                gate.wait(10)  # still reading c while b is used
            if path == "bad":
                raise Vega3DError("bad: cannot decode")
            return f"prepared {path}"

        with MediaReader(prepare, ["a", "a", "b", "c", "c", "bad"], read_ahead=read_ahead) as reader:
            assert reader.get("a") == reader.get("a") == "prepared a"
            assert reader.get("b") == "prepared b"
            if read_ahead:  # c was started in the background when b was asked for
                assert started[:3] == ["a", "b", "c"]
                gate.set()
            assert reader.get("c") == "prepared c" and reader.get("c") == "prepared c"
            assert sorted(reader._pending) == ([2, 3] if read_ahead else [2])  # a and b released
            with pytest.raises(Vega3DError, match="bad: cannot decode"):  # raised when its turn comes
                reader.get("bad")
            with pytest.raises(AssertionError, match="not among the run's media"):  # an internal invariant
                reader.get("z")
        assert started == ["a", "b", "c", "bad"] and reader.reads == 4
        assert len(reader._pending) == 0  # released on close


def test_stand_in_model_says_so_before_the_table_in_the_row_and_in_the_json(setup, answerer, tmp_path, capsys):
    # the fixture's base and simulator are both random-weight stand-ins
    assert answerer.stand_in_parts() == ["base", "simulator"]
    run("vsibench", answerer, VSI, setup["vsi"], tmp_path, limit=2)
    captured = capsys.readouterr()
    out = captured.out
    note = out.index("NOTE: small STAND-IN(s), not the real model: the Qwen2.5-VL base; the Wan simulator.")
    assert note < out.index("paper: VEGA-3D")
    assert "all (STAND-IN)" in out
    assert "NOTE: small STAND-IN(s), not the real model: the Qwen2.5-VL base" in captured.err  # also said at the start
    for name in ("run.json", "result.json"):
        written = json.loads((tmp_path / name).read_text())
        assert written["stand_in"] is True and written["stand_in_parts"] == ["base", "simulator"]


class RealLooking(Recording):
    """The real Answerer's answers, presented with a model whose base folder has no stand-in
    marker and no simulator — what a real checkpoint looks like to the runner. Its
    ``stand_in_parts`` is the real one: ``Answerer.stand_in_parts`` → ``Vega3DQwen.stand_in_parts``
    over this model."""

    def __init__(self, inner, base, simulator_record=None):
        from vega3d.mllm.model import Vega3DQwen

        super().__init__(inner)
        config = SimpleNamespace(
            base_model=str(base), simulator=simulator_record, to_dict=lambda: {"generative": False}
        )
        self.model = SimpleNamespace(config=config, simulator=None, recorded_stand_in=False)
        self.model.stand_in_parts = MethodType(Vega3DQwen.stand_in_parts, self.model)

    def stand_in_parts(self):
        from vega3d.mllm.infer import Answerer

        return Answerer.stand_in_parts(self)


class OwnAnswerer:
    """A user's own answerer: ``answer`` and ``num_frames`` only (here over a stand-in model,
    which the runner never inspects)."""

    def __init__(self, inner):
        self.inner, self.num_frames = inner, inner.num_frames

    def answer(self, questions, videos, **kwargs):
        return self.inner.answer(questions, videos, **kwargs)


def test_real_model_has_no_note_and_stand_in_false(setup, answerer, tmp_path, capsys):
    real = RealLooking(answerer, tmp_path / "qwen_real")
    assert real.stand_in_parts() == []
    run("vsibench", real, VSI, setup["vsi"], tmp_path / "out", limit=2)
    captured = capsys.readouterr()
    assert "STAND-IN" not in captured.out + captured.err and "NOTE" not in captured.out + captured.err
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["stand_in"] is False and written["stand_in_parts"] == []
    # a simulator recorded as a stand-in but not loaded (baseline) still counts
    assert RealLooking(answerer, tmp_path, {"stand_in": True}).stand_in_parts() == ["simulator"]
    # a real simulator attached to a model trained on stand-in features
    trained = RealLooking(answerer, tmp_path, {"stand_in": True})
    trained.model.simulator = SimpleNamespace(stand_in=False)
    assert trained.stand_in_parts() == ["features"]
    # only the checkpoint as a whole says so: its top-level stand_in flag
    recorded = RealLooking(answerer, tmp_path)
    recorded.model.recorded_stand_in = True
    assert recorded.stand_in_parts() == ["model"]
    run("vsibench", recorded, VSI, setup["vsi"], tmp_path / "flag", limit=2)
    assert "NOTE: small STAND-IN(s), not the real model: the checkpoint." in capsys.readouterr().out
    assert json.loads((tmp_path / "flag" / "run.json").read_text())["stand_in_parts"] == ["model"]
    # an answerer without stand_in_parts (a user's own) has no stand-in parts, whatever it wraps
    run("vsibench", OwnAnswerer(answerer), VSI, setup["vsi"], tmp_path / "own", limit=2)
    captured = capsys.readouterr()
    assert "STAND-IN" not in captured.out + captured.err
    assert json.loads((tmp_path / "own" / "run.json").read_text())["stand_in_parts"] == []
