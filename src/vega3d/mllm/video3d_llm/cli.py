"""The Video-3D LLM family behind ``vega3d eval-model`` and ``vega3d ask`` (they dispatch here when
``--model`` is a checkpoint of this family or a LLaVA-Video / Video-3D LLM folder)."""

from __future__ import annotations

import sys
from pathlib import Path

from vega3d.errors import Vega3DError


def _check_frames_as(args) -> None:
    if getattr(args, "frames_as", None) not in (None, "video"):
        raise Vega3DError(
            f"--frames-as {args.frames_as}: only for Qwen2.5-VL checkpoints; a Video-3D LLM checkpoint takes its "
            "frames its own way (leave --frames-as out)"
        )


def _instruction(args) -> str | None:
    from vega3d.video3d.formats import SPATIAL_INSTRUCTION

    if getattr(args, "instruction", None) and getattr(args, "spatial_instruction", False):
        raise Vega3DError("give --instruction or --spatial-instruction, not both")
    return SPATIAL_INSTRUCTION if getattr(args, "spatial_instruction", False) else getattr(args, "instruction", None)


def run_eval_model(args) -> int:
    """``vega3d eval-model BENCH --model CKPT --gt VAL.json --media DATA --out DIR``: ``--media`` is
    the release's ``data/`` folder. Arguments, annotations, scans, proposals and frames are checked
    before the model loads."""
    from accelerate import PartialState

    from vega3d.mllm.video3d_llm.evaluate import RunArguments, plan, run_benchmark
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer
    from vega3d.mllm.video3d_llm.model import recorded_preprocessing

    counts = {n: getattr(args, n, None) for n in ("num_frames", "batch_size", "limit", "max_new_tokens")}
    RunArguments(benchmark=args.benchmark, **{n: v for n, v in counts.items() if v is not None})
    _check_frames_as(args)
    instruction = _instruction(args)
    pre = recorded_preprocessing(args.model)
    num_frames, sampling = args.num_frames or pre.get("num_frames", 32), pre.get("sampling", "uniform")
    plan(args.benchmark, args.gt, args.media, limit=args.limit, num_frames=num_frames, sampling=sampling)
    state = PartialState(cpu=args.device == "cpu")
    if state.num_processes > 1 and args.device not in (None, "cpu"):
        raise Vega3DError(f"--device {args.device}: with {state.num_processes} processes each uses its own device")
    answerer = Video3DAnswerer.from_checkpoint(
        args.model, device=args.device or str(state.device), dtype=args.dtype, num_frames=num_frames,
        base=args.base, simulator=args.simulator, load_simulator=not args.baseline,
        feature_store=getattr(args, "feature_store", None), instruction=instruction,
    )  # fmt: skip
    run_benchmark(
        args.benchmark, answerer, args.gt, args.media, args.out, limit=args.limit, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, generative=False if args.baseline else None,
        model={"checkpoint": str(Path(args.model).resolve()), "base": args.base, "simulator": args.simulator,
               "dtype": args.dtype, "feature_store": getattr(args, "feature_store", None)},
        paper=not args.no_paper, progress=not args.no_progress,
    )  # fmt: skip
    return 0


def ask(args) -> int:
    """``vega3d ask --model CKPT --video SCAN_FOLDER "question"``: a ``posed_images/<scene>`` folder
    (frames, depth, poses, intrinsics, axis alignment); ``<coord>`` in the question is not supported
    here (it needs a box)."""
    from vega3d.mllm.video3d_llm.infer import Video3DAnswerer

    _check_frames_as(args)
    if "<coord>" in args.question or "<ground>" in args.question:
        raise Vega3DError("question: <coord> / <ground> need a box or proposals; use vega3d eval-model for those tasks")
    answerer = Video3DAnswerer.from_checkpoint(
        args.model, device=args.device, dtype=args.dtype, num_frames=args.num_frames, base=args.base,
        simulator=args.simulator, load_simulator=not args.baseline, check_base=not args.no_check_base,
    )  # fmt: skip
    scene = answerer.scan_folder(args.video)
    if note := answerer.model.stand_in_notice("The answers below are meaningless."):
        print(note, file=sys.stderr)
    question = args.question if "<image>" in args.question else "<image> " + args.question
    answer = answerer.answer(scene, [question], max_new_tokens=args.max_new_tokens,
                             generative=False if args.baseline else None)  # fmt: skip
    print(answer[0])
    return 0
