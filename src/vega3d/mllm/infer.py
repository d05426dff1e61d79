"""Answering questions about videos with a VEGA-3D checkpoint (batched generation).

:class:`Answerer` holds the model, its processor and (for the generative branch) the
simulator. ``answer(questions, videos)`` samples ``num_frames`` frames per video
uniformly, builds the chat prompt, runs greedy (or configured) generation in batches
with left padding and returns the decoded answers, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vega3d.errors import Vega3DError


def simulator_from_record(record: dict, device="cpu", dtype=None, path=None):
    """Rebuild the simulator a checkpoint recorded (``config.simulator``); ``path`` overrides
    the recorded Wan folder (same weights elsewhere)."""
    from vega3d.simulator import WanWorldSimulator

    folder = path or (record.get("model") or {}).get("path")
    if not folder:
        raise Vega3DError("the checkpoint records no simulator folder: pass --simulator / simulator=")
    return WanWorldSimulator.from_pretrained(
        folder, timestep=record["timestep"], shift=record["shift"], block=record["block"], height=record["height"],
        width=record["width"], seed=record["seed"], dtype=dtype or record["dtype"], device=device,
        pad=record.get("pad", False),
    )


class Answerer:
    """Batched question answering over videos. See the module docstring."""

    def __init__(self, model, processor, num_frames: int = 32, device="cpu", frame_fps: float = 1.0):
        self.model = model.eval()
        self.processor = processor
        self.num_frames = int(num_frames)
        self.frame_fps = float(frame_fps)
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, checkpoint, base=None, simulator=None, device="cpu", dtype="float32",
                        num_frames: int | None = None, video_min_pixels=None, video_max_pixels=None,
                        load_simulator: bool = True) -> "Answerer":
        """Load a checkpoint folder. ``simulator``: a WanWorldSimulator, a Wan folder, or None
        (rebuild the recorded one when the generative branch is on). Frame count and pixel
        budget default to the ones recorded at training time (else 32 frames, Qwen's defaults).
        ``load_simulator=False``: no simulator (baseline answers or precomputed features only)."""
        from vega3d.mllm.checkpoint import read_checkpoint_config
        from vega3d.mllm.model import Vega3DQwen, torch_dtype
        from vega3d.mllm.processing import Vega3DProcessor

        config = read_checkpoint_config(checkpoint)
        if not load_simulator:
            simulator = None
        elif config.generative and (simulator is None or isinstance(simulator, (str, Path))):
            if config.simulator is None:
                raise Vega3DError(f"{checkpoint}: generative branch on but no simulator recorded; pass one")
            simulator = simulator_from_record(config.simulator, device=device, path=simulator)
        model = Vega3DQwen.from_pretrained(checkpoint, base=base, simulator=simulator, dtype=torch_dtype(dtype),
                                           device=device)
        pre = dict(config.preprocessing)
        processor = Vega3DProcessor.from_pretrained(
            base or config.base_model,
            video_min_pixels if video_min_pixels is not None else pre.get("video_min_pixels"),
            video_max_pixels if video_max_pixels is not None else pre.get("video_max_pixels"),
        )
        num_frames = num_frames if num_frames is not None else pre.get("num_frames", 32)
        return cls(model, processor, num_frames=num_frames, device=device, frame_fps=pre.get("frame_fps", 1.0))

    def _video(self, video):
        """(frames (N,H,W,3) uint8, second_per_grid_ts) — sampled as in training."""
        from vega3d.mllm.data import load_video, seconds_per_grid
        from vega3d.mllm.processing import to_uint8_frames
        from vega3d.scenes import sample_frames

        tp = int(self.processor.image_processor.temporal_patch_size)
        if isinstance(video, (str, Path)):
            frames, _, spg = load_video(video, self.num_frames, self.frame_fps, tp)
            return frames, spg
        frames = to_uint8_frames(video, "video")
        idx = sample_frames(len(frames), self.num_frames)
        return frames[idx], seconds_per_grid(len(frames), None, len(idx), self.frame_fps, tp)

    @torch.no_grad()
    def answer(self, questions: list[str], videos: list, max_new_tokens: int = 128, batch_size: int = 4,
               generative: bool | None = None, video_features: list | None = None, **generate_kwargs) -> list[str]:
        """Answers to ``questions[i]`` about ``videos[i]`` (a path, a frame folder, or frames
        (N,H,W,3) uint8 / (N,3,H,W) float). ``video_features``: optional precomputed grids
        (N,h,w,C) per video, used instead of the simulator. Greedy unless ``generate_kwargs``
        say otherwise."""
        from vega3d.mllm.data import collate, to_device

        if len(questions) != len(videos):
            raise Vega3DError(f"answer: {len(questions)} questions but {len(videos)} videos")
        if video_features is not None and len(video_features) != len(videos):
            raise Vega3DError(f"answer: {len(video_features)} video_features for {len(videos)} videos")
        tok = self.processor.tokenizer
        generate_kwargs.setdefault("do_sample", False)
        answers = []
        for start in range(0, len(questions), batch_size):
            items = []
            for i in range(start, min(start + batch_size, len(questions))):
                frames, spg = self._video(videos[i])
                item = {"id": str(i), **self.processor.video_inputs(frames)}
                messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": questions[i]}]}]
                item.update(self.processor.encode(messages, item["video_grid_thw"], add_generation_prompt=True))
                if video_features is not None:
                    item["video_features"] = video_features[i]
                else:
                    item["video_frames"] = torch.from_numpy(np.ascontiguousarray(frames))
                item["second_per_grid_ts"] = spg
                items.append(item)
            batch = to_device(collate(items, tok.pad_token_id, padding_side="left"), self.device)
            batch.pop("labels")
            out = self.model.generate(**batch, generative=generative, max_new_tokens=max_new_tokens,
                                      pad_token_id=tok.pad_token_id, **generate_kwargs)
            new = out[:, batch["input_ids"].shape[1]:]
            answers.extend(tok.batch_decode(new, skip_special_tokens=True))
        return answers
