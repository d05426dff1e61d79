"""``vega3d ask`` (see ``vega3d.cli``)."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    """Add ``ask``."""
    p = subparsers.add_parser(
        "ask",
        help="answer a question about a video with a VEGA-3D checkpoint",
        description="Answer a question about a video (file or frame folder) with a checkpoint written by "
        "vega3d train / Vega3DQwen.save_pretrained.",
    )
    p.add_argument("question")
    p.add_argument("--model", required=True, help="checkpoint folder (vega3d_config.json + trainable.safetensors)")
    p.add_argument("--video", required=True, help="video file, folder of frames or scan folder")
    p.add_argument("--simulator", help="Wan2.1 folder for online features (default: the one the config records)")
    p.add_argument("--base", help="Qwen2.5-VL folder (default: the one the checkpoint records)")
    p.add_argument("--num-frames", type=int, help="frames sampled uniformly (default: as in training, else 32)")
    add_frames_as(p)
    p.add_argument("--max-new-tokens", type=int, default=128, help="longest answer, in tokens (default: 128)")
    p.add_argument(
        "--device", default="cpu", help="torch device of the model and simulator, e.g. cuda:0 (default: cpu)"
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="the model's dtype (default: float32)",
    )
    p.add_argument("--baseline", action="store_true", help="generative branch off (the paired baseline)")
    p.add_argument(
        "--no-check-base",
        action="store_true",
        help="accept a --base folder whose fingerprint differs from the one the checkpoint records",
    )
    p.set_defaults(func=_ask)

    from vega3d.mllm.release.cli import register as register_release

    register_release(subparsers)  # inspect-release, convert-release


def add_frames_as(p) -> None:
    """``--frames-as`` (``ask``, ``eval-model``): :class:`vega3d.mllm.infer.Answerer`'s ``frames_as``."""
    from vega3d.mllm.infer import FRAMES_AS

    p.add_argument(
        "--frames-as",
        choices=FRAMES_AS,
        help="how the frames reach a Qwen2.5-VL checkpoint: one video, or one image per frame, prepared as the "
        "released VEGA-3D spatial model takes them (docs/release.md) (default: as in training, else video)",
    )


def _check_ask_args(args) -> None:
    """Every argument of ``ask`` that can be checked without loading the model; one error naming all bad ones."""
    from pathlib import Path

    from vega3d.errors import Vega3DError
    from vega3d.media import media_kind
    from vega3d.mllm.infer import question_problems

    problems = question_problems([args.question])
    flags = (("--max-new-tokens", args.max_new_tokens), ("--num-frames", args.num_frames))
    problems += [
        f"{flag}: got {value}; expected an integer >= 1" for flag, value in flags if value is not None and value < 1
    ]
    if media_kind(args.video) is None:
        found = "is a folder without images" if Path(args.video).exists() else "does not exist"
        problems.append(f"--video: {args.video} {found}; expected a video file, frame folder or scan folder")
    if problems:
        raise Vega3DError("; ".join(problems))


def _ask(args) -> int:
    _check_ask_args(args)
    from vega3d.mllm.video3d_llm.model import is_video3d_checkpoint

    if is_video3d_checkpoint(args.model):  # the Video-3D LLM family: a posed scan folder
        from vega3d.mllm.video3d_llm.cli import ask

        return ask(args)
    from vega3d.mllm.infer import Answerer

    answerer = Answerer.from_checkpoint(
        args.model,
        base=args.base,
        simulator=args.simulator,
        device=args.device,
        dtype=args.dtype,
        num_frames=args.num_frames,
        load_simulator=not args.baseline,
        check_base=not args.no_check_base,
        frames_as=args.frames_as,
    )
    if note := answerer.model.stand_in_notice("The answers below are meaningless."):
        print(note, file=sys.stderr)
    answer = answerer.answer(
        [args.question], [args.video], max_new_tokens=args.max_new_tokens, generative=False if args.baseline else None
    )
    print(answer[0])
    return 0
