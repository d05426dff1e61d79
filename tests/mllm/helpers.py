"""Test helpers: building model inputs from random frames."""

import torch


def video_batch(processor, num_frames=5, height=56, width=84, seed=0, question="How many chairs?", answer="Three."):
    """One tokenised video conversation (a dict of model inputs + the raw frames)."""
    import numpy as np

    from vega3d.mllm.data import collate
    from vega3d.mllm.processing import llava_to_messages

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    item = {"id": f"x{seed}", **processor.video_inputs(frames)}
    msgs = llava_to_messages([{"from": "human", "value": "<video>\n" + question}, {"from": "gpt", "value": answer}])
    item.update(processor.encode(msgs, item["video_grid_thw"]))
    item["second_per_grid_ts"] = 1.0
    batch = collate([item], processor.tokenizer.pad_token_id)
    for k in ("ids", "num_skipped"):
        batch.pop(k)
    return batch, torch.from_numpy(frames)
