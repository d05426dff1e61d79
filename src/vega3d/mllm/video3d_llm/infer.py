"""Answering, captioning and grounding with a Video-3D LLM checkpoint.

:class:`Video3DAnswerer` holds the model and how scans are read for it (frame count and
sampling — by default those recorded at training, else 32 uniform frames —, the Wan feature
source: the simulator the checkpoint records, rebuilt, or a feature store). Per prepared scan
(:meth:`Video3DAnswerer.scene`, :meth:`Video3DAnswerer.scan_folder`):

- :meth:`~Video3DAnswerer.answer` — greedy generation for a batch of questions (left-padded;
  ``coords``: a Scan2Cap ``<coord>`` box centre per question);
- :meth:`~Video3DAnswerer.ground` — one teacher-forced forward with ``<ground>`` as the answer:
  InfoNCE scores over the given boxes plus the zero-target slot (last).

Prompts are the release's evaluation prompts: system, ``<image>`` (the visual tokens) and a
newline, then the question; ``instruction`` (e.g. the training-time spatial instruction) goes on a
line before the question when given (the release's evaluation leaves it out of the model input).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.mllm.video3d_llm.data import collate, encode, object_inputs, read_scene, scene_inputs, to_device


class Video3DAnswerer:
    """See the module docstring."""

    def __init__(self, model, device="cpu", num_frames: int = 32, sampling: str = "uniform",
                 instruction: str | None = None, store=None):  # fmt: skip
        self.model = model.eval()
        self.device = torch.device(device)
        self.num_frames, self.sampling, self.instruction, self.store = int(num_frames), sampling, instruction, store

    @classmethod
    def from_checkpoint(cls, path, device="cpu", dtype="float32", *, num_frames=None, sampling=None, base=None,
                        simulator=None, load_simulator: bool = True, feature_store=None, instruction=None,
                        check_base: bool = True) -> Video3DAnswerer:  # fmt: skip
        """A vega3d checkpoint of this family or a base folder (:func:`~vega3d.mllm.video3d_llm.model.load_any`).
        The Wan features: ``feature_store`` (a FeatureStore folder), else the simulator (``simulator``: a
        WanWorldSimulator or a Wan folder; default the recorded one), unless ``load_simulator=False``."""
        from vega3d.mllm.infer import simulator_from_record
        from vega3d.mllm.video3d_llm.model import load_any

        model = load_any(path, dtype=dtype, device=device, base=base, check_base=check_base)
        store = None
        if model.config.generative and feature_store:
            from vega3d.store import FeatureStore

            store = FeatureStore(feature_store)
        elif model.config.generative and load_simulator:
            if simulator is None or isinstance(simulator, (str, Path)):
                simulator = simulator_from_record(model.config.simulator, device=device, path=simulator)
            model.attach_simulator(simulator)
        pre = dict(model.config.preprocessing)
        return cls(model, device, num_frames or pre.get("num_frames", 32), sampling or pre.get("sampling", "uniform"),
                   instruction, store)  # fmt: skip

    def stand_in_parts(self) -> list[str]:
        return self.model.stand_in_parts()

    # -- scans ------------------------------------------------------------------------------
    def scene(self, data, video: str, frame_ids=None):
        """A scan of a ``data/`` folder (:class:`vega3d.video3d.Video3DData`) prepared for the model."""
        ids = frame_ids if frame_ids is not None else data.choose_frames(video, self.num_frames, self.sampling)
        return read_scene(data, video, ids, self.model.config.strategy, self.store)

    def scan_folder(self, folder):
        """A ``posed_images/<scene>`` folder on its own (frames, depth, poses, intrinsics and an
        ``axis_align_matrix.txt`` or ScanNet ``<scene>.txt``): ``num_frames`` uniform frames."""
        from vega3d.video3d.data import list_posed_frames, read_posed_frames
        from vega3d.video3d.frames import uniform_frames

        folder = Path(folder)
        ids = list_posed_frames(folder)
        chosen = [ids[i] for i in uniform_frames(len(ids), self.num_frames, what=f"scan {folder}")]
        frames = read_posed_frames(folder, chosen)
        if frames.axis_align is None:
            raise Vega3DError(
                f"{folder}: no axis alignment (axis_align_matrix.txt or {folder.name}.txt); the 3D positions need it"
            )
        features = None
        if self.store is not None:
            features, _ = self.store.get(folder.name, chosen)
        return scene_inputs(frames, f"scannet/{folder.name}", self.model.config.strategy, features)

    # -- answering --------------------------------------------------------------------------
    def _batch(self, items, padding_side: str) -> dict:
        batch = collate(items, self.model.tokenizer.pad_token_id, padding_side=padding_side)
        return to_device(batch, self.device)

    def _item(self, scene, question: str, answer: str | None, coord=None, objects=None) -> dict:
        ids, labels = encode(self.model.tokenizer, question, len(scene.frame_ids), answer, self.instruction)
        frames = scene.color if self.model.simulator is not None and scene.features is None else None
        return {"id": "", "input_ids": ids, "labels": labels, "pixel_values": scene.pixels, "positions": scene.positions,
                "aspect": scene.aspect, "features": scene.features, "frames": frames, "coord": coord,
                "objects": objects, "positives": None}  # fmt: skip

    @torch.no_grad()
    def answer(self, scene, questions: list[str], *, coords=None, max_new_tokens: int = 128, batch_size: int = 1,
               generative=None) -> list[str]:  # fmt: skip
        """Greedy answers to ``questions`` about one prepared scan (``coords``: per question a
        discretised ``<coord>`` centre (3,) or None)."""
        tok = self.model.tokenizer
        coords = coords or [None] * len(questions)
        out = []
        for start in range(0, len(questions), batch_size):
            chunk = range(start, min(start + batch_size, len(questions)))
            batch = self._batch([self._item(scene, questions[i], None, coords[i]) for i in chunk], "left")
            new = self.model.generate(
                batch["input_ids"], batch["attention_mask"], batch["pixel_values"], batch["positions"],
                gen_features=batch["gen_features"], frames=batch["frames"], coords=batch["coords"],
                aspects=batch["aspects"], generative=generative, max_new_tokens=max_new_tokens,
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id,
            )  # fmt: skip
            out += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        return out

    @torch.no_grad()
    def ground(self, scene, questions: list[str], boxes: torch.Tensor, *, batch_size: int = 1,
               generative=None) -> list[torch.Tensor]:  # fmt: skip
        """Scores (P + 1,) per question over ``boxes`` (P, 6) (zero-target slot last)."""
        objects = object_inputs(scene, boxes)
        scores = []
        for start in range(0, len(questions), batch_size):
            chunk = questions[start : start + batch_size]
            batch = self._batch([self._item(scene, q, "<ground>", objects=objects) for q in chunk], "right")
            batch.pop("labels")
            out = self.model(**batch, generative=generative)
            scores += [s.float().cpu() for s in out.scores]
        return scores
