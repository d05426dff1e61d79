"""A tiny on-disk training setup for tests, benchmarks and smoke runs — STAND-INS only.

:func:`write_tiny_setup` writes a random-weight Qwen2.5-VL (:func:`save_tiny_qwen25vl`),
a random-weight Wan2.1 (:func:`vega3d.standin.wan.save_tiny_wan`) and a few LLaVA-style
records over synthetic videos (an MP4 via PyAV and frame folders, from
:func:`vega3d.scenes.synthetic_scene`). Nothing here is real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vega3d.media import write_frame_folder, write_video


def write_tiny_setup(root, num_records: int = 4, num_frames: int = 6, height: int = 56, width: int = 84) -> dict:
    """Write ``root/qwen25vl``, ``root/wan`` and ``root/data/train.json`` (+ media).
    Returns the paths. Deterministic."""
    from vega3d.scenes import synthetic_scene
    from vega3d.standin.qwen import save_tiny_qwen25vl
    from vega3d.standin.wan import save_tiny_wan

    root = Path(root)
    qwen = save_tiny_qwen25vl(root / "qwen25vl", seed=0)
    wan = save_tiny_wan(root / "wan", num_layers=2, dim=32, seed=0)
    data = root / "data"
    answers = ["Three chairs.", "Left of the table.", "About 2.5 meters.", "Yes."]
    questions = ["How many chairs are in the room?", "Where is the lamp?", "How far is the sofa?", "Is there a bed?"]
    records = []
    for i in range(num_records):
        scene = synthetic_scene(num_frames=num_frames, height=height, width=width, seed=i)
        frames = scene.color.numpy() if hasattr(scene.color, "numpy") else np.asarray(scene.color)
        if i % 2 == 0:
            media = write_video(data / f"video_{i}.mp4", frames).name
        else:
            media = write_frame_folder(data / f"frames_{i}", frames).name
        records.append(
            {
                "id": f"tiny_{i}",
                "video": media,
                "conversations": [
                    {"from": "human", "value": "<video>\n" + questions[i % len(questions)]},
                    {"from": "gpt", "value": answers[i % len(answers)]},
                ],
            }
        )
    (data / "train.json").write_text(json.dumps(records, indent=1))
    return {"qwen": qwen, "wan": wan, "annotations": data / "train.json", "root": root}


def write_tiny_checkpoint(root, num_frames: int = 4) -> Path:
    """A tiny random-weight VEGA-3D checkpoint under ``root/checkpoint`` — a STAND-IN.

    Writes a tiny Qwen2.5-VL (``root/qwen``) and a 2-block Wan (``root/wan``), attaches the
    simulator (block 1, 32x48 input) with the generative branch on, records the preprocessing
    (``num_frames`` frames, 56x56..56x84 pixels, 1 fps) and saves. Returns the checkpoint folder.
    """
    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen
    from vega3d.simulator import WanWorldSimulator
    from vega3d.standin.qwen import save_tiny_qwen25vl
    from vega3d.standin.wan import save_tiny_wan

    root = Path(root)
    qwen = save_tiny_qwen25vl(root / "qwen", seed=0)
    wan = save_tiny_wan(root / "wan", num_layers=2, dim=32, seed=0)
    sim = WanWorldSimulator.from_pretrained(wan, block=1, height=32, width=48)
    config = Vega3DConfig(
        base_model=str(qwen),
        generative_dim=32,
        simulator=sim.config.to_dict(),
        preprocessing={
            "num_frames": num_frames,
            "video_min_pixels": 56 * 56,
            "video_max_pixels": 56 * 84,
            "frame_fps": 1.0,
        },
    )
    model = Vega3DQwen.from_config(config)
    model.attach_simulator(sim)
    return model.save_pretrained(root / "checkpoint")
