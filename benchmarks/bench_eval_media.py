"""Benchmark runner throughput: each scene read once (and read ahead) vs read per question.

Runs :func:`vega3d.eval.run.run_benchmark` on SQA3D-format questions, several per video,
three times in one process (alternating, ``--repeats`` rounds) on the same machine:

- ``per_question`` — the straightforward way: every question decodes its video, preprocesses
  the frames and runs the simulator (``Answerer(media_cache=0)``, ``reuse_media=False``);
- ``reuse_no_read_ahead`` — each video read once (``Answerer.prepare``), the simulator
  features computed once per video (``read_ahead=False``);
- ``reuse`` — the default: the same, with the next video read ahead in a background thread;

and reports questions per second of each and the ratios to ``per_question``, and checks
that all wrote the same predictions. The model is the random-weight STAND-IN of the tests (tiny Qwen2.5-VL
+ tiny Wan, generative branch on): generation is far cheaper than with a real 7B model,
so the ratio here is an upper bound of what reuse buys; the media are synthetic 640x480
MPEG-4 videos (PyAV), decoded at ``--num-frames`` uniformly sampled frames. No GPU numbers:
none was available when this was written.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_eval_media.py --out bench_eval_media.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from vega3d.files import write_json


def write_media(root: Path, videos: int, frames: int, height: int, width: int) -> list[str]:
    """``videos`` synthetic MPEG-4 files ``root/sceneNNNN_00.mp4`` (smooth moving pattern)."""
    from vega3d.media import write_video

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    scenes = []
    for v in range(videos):
        clip = np.empty((frames, height, width, 3), np.uint8)
        for t in range(frames):
            phase = 0.05 * t + v
            clip[t, ..., 0] = 127 + 120 * np.sin(x / 37 + phase)
            clip[t, ..., 1] = 127 + 120 * np.sin(y / 23 - phase)
            clip[t, ..., 2] = 127 + 120 * np.sin((x + y) / 51 + 2 * phase)
        scene = f"scene{v:04d}_00"
        write_video(root / f"{scene}.mp4", clip, fps=30)
        scenes.append(scene)
    return scenes


def write_questions(path: Path, scenes: list[str], per_video: int) -> None:
    """SQA3D llava-style records, ``per_video`` questions about each scene."""
    records = []
    for s, scene in enumerate(scenes):
        for q in range(per_video):
            records.append(
                {
                    "id": 220600000000 + s * 1000 + q,
                    "video": f"scannet/{scene}",
                    "metadata": {"question_type": "what"},
                    "conversations": [
                        {"from": "human", "value": f"<image> I am at spot {q}. What is on my left?"},
                        {"from": "gpt", "value": "table"},
                    ],
                }
            )
    path.write_text(json.dumps(records))


def main(argv=None) -> dict:
    from vega3d.standin.data import write_tiny_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--questions-per-video", type=int, default=8)
    parser.add_argument("--video-frames", type=int, default=300, help="frames in each synthetic video")
    parser.add_argument("--num-frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode (alternating); the fastest counts")
    parser.add_argument("--out", type=Path, help="JSON result file")
    args = parser.parse_args(argv)

    import torch

    from vega3d.eval.run import run_benchmark
    from vega3d.mllm.infer import Answerer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scenes = write_media(root / "media", args.videos, args.video_frames, args.height, args.width)
        write_questions(root / "questions.json", scenes, args.questions_per_video)
        checkpoint = write_tiny_checkpoint(root, args.num_frames)
        reuse = Answerer.from_checkpoint(checkpoint)
        per_question = Answerer(
            reuse.model, reuse.processor, num_frames=reuse.num_frames, frame_fps=reuse.frame_fps, media_cache=0
        )
        modes = {
            "per_question": (per_question, False, False),
            "reuse_no_read_ahead": (reuse, True, False),
            "reuse": (reuse, True, True),
        }
        n = args.videos * args.questions_per_video

        def once(name, tag):
            answerer, reuse_media, read_ahead = modes[name]
            out = root / f"{name}_{tag}"
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the runner's table: noise for a stand-in
                run_benchmark(
                    "sqa3d",
                    answerer,
                    root / "questions.json",
                    root / "media",
                    out,
                    batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens,
                    reuse_media=reuse_media,
                    read_ahead=read_ahead,
                    progress=False,
                    paper=False,
                )
            return time.perf_counter() - start, (out / "predictions.jsonl").read_bytes()

        once("reuse", "warmup")  # first-call costs (imports, allocator) out of the timings
        seconds = {name: [] for name in modes}
        outputs = {}
        for r in range(args.repeats):
            for name in modes:
                elapsed, outputs[name] = once(name, r)
                seconds[name].append(elapsed)
    best = {name: min(times) for name, times in seconds.items()}
    result = {
        "stand_in": "random-weight tiny Qwen2.5-VL + tiny Wan (not the real models); synthetic videos",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "questions": n,
        "seconds": seconds,
        "questions_per_second": {name: n / t for name, t in best.items()},
        "speedup_reuse_vs_per_question": best["per_question"] / best["reuse"],
        "speedup_reuse_no_read_ahead_vs_per_question": best["per_question"] / best["reuse_no_read_ahead"],
        "identical_predictions": len(set(outputs.values())) == 1,
    }
    print(
        f"{n} questions over {args.videos} videos ({args.num_frames} of {args.video_frames} frames, "
        f"{args.width}x{args.height}), batch {args.batch_size}, tiny stand-in model, CPU"
    )
    print(f"{'mode':<21}{'best s':>8}{'q/s':>8}{'vs per_question':>17}")
    for name in modes:
        print(f"{name:<21}{best[name]:>8.2f}{n / best[name]:>8.2f}{best['per_question'] / best[name]:>16.2f}x")
    print(f"identical predictions in all modes: {result['identical_predictions']}")
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
