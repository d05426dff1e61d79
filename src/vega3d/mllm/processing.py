"""Text + video/image preprocessing for Qwen2.5-VL without torchvision.

transformers' Qwen2.5-VL *video* processor (and the fast image processor) need
torchvision, which this project does not depend on. :class:`Vega3DProcessor` builds the
same model inputs from the tokenizer and the PIL/NumPy ``Qwen2VLImageProcessorPil``:

* images go through the image processor unchanged (``pixel_values``, ``image_grid_thw``);
* videos: every frame is resized (``smart_resize`` to a multiple of 28, within
  ``video_min_pixels..video_max_pixels``, bicubic, PIL), rescaled and normalised by the
  image processor's own methods, an odd frame count is padded by repeating the last frame,
  and the frames are patchified in exactly the layout of transformers'
  ``Qwen2VLVideoProcessor.patchify`` (``pixel_values_videos`` of shape
  (T*Hp*Wp, 3*2*14*14), ``video_grid_thw`` (T, Hp, Wp), T = ceil(N/2)). The only
  difference from the torchvision path is the resize kernel (PIL vs torchvision bicubic).

Conversations follow the model's chat template; each ``<|video_pad|>`` / ``<|image_pad|>``
placeholder is expanded to the number of merged visual tokens (T*Hp*Wp/4), and
``labels`` keep only the assistant turns (their text and closing ``<|im_end|>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Config, FileRecord, parse
from vega3d.errors import Vega3DError

IGNORE_INDEX = -100
VIDEO_PAD = "<|video_pad|>"
IMAGE_PAD = "<|image_pad|>"


def to_uint8_frames(frames, what: str = "frames") -> np.ndarray:
    """(N,H,W,3) uint8 numpy from (N,H,W,3) uint8 or (N,3,H,W) float [0,1] (tensor or array)."""
    given = f"shape {tuple(getattr(frames, 'shape', np.shape(frames)))} {getattr(frames, 'dtype', '')}"
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        if frames.dtype.is_floating_point and frames.ndim == 4 and frames.shape[1] == 3:
            frames = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise Vega3DError(f"{what}: expected N >= 1 frames, (N,H,W,3) uint8 or (N,3,H,W) float in [0,1]; got {given}")
    return frames


@dataclass
class Vega3DProcessor:
    """Tokenizer + image processor + the video path; see the module docstring.

    ``video_min_pixels`` / ``video_max_pixels`` bound the pixels per video frame (the
    defaults are Qwen2.5-VL's video defaults, 128*28*28 and 768*28*28).
    """

    tokenizer: object
    image_processor: object
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 768 * 28 * 28

    @classmethod
    def from_pretrained(cls, path, video_min_pixels: int | None = None, video_max_pixels: int | None = None):
        """Load the tokenizer, image processor and chat template of a Qwen2.5-VL folder."""
        from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

        from vega3d.mllm.config import check_qwen_folder

        path = check_qwen_folder(path, "processor")
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.chat_template is None and (path / "chat_template.json").is_file():
            tokenizer.chat_template = json.loads((path / "chat_template.json").read_text())["chat_template"]
        if tokenizer.chat_template is None:
            raise Vega3DError(f"{path}: no chat template (tokenizer_config.json or chat_template.json)")
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
        kwargs = {}
        if video_min_pixels is not None:
            kwargs["video_min_pixels"] = int(video_min_pixels)
        if video_max_pixels is not None:
            kwargs["video_max_pixels"] = int(video_max_pixels)
        return cls(tokenizer, image_processor, **kwargs)

    # -- vision -------------------------------------------------------------------------
    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    def video_inputs(self, frames) -> dict:
        """Frames (N,H,W,3) uint8 or (N,3,H,W) float [0,1] → ``pixel_values_videos``
        (T*Hp*Wp, 3*tp*p*p) float32 and ``video_grid_thw`` (1, 3) int64, T = ceil(N/tp)."""
        from transformers.image_utils import SizeDict

        ip = self.image_processor
        frames = to_uint8_frames(frames, "video frames")
        p, m, tp = int(ip.patch_size), int(ip.merge_size), int(ip.temporal_patch_size)
        size = SizeDict(shortest_edge=self.video_min_pixels, longest_edge=self.video_max_pixels)
        out = []
        for frame in frames:
            img = np.ascontiguousarray(np.moveaxis(frame, -1, 0))  # (3,H,W) uint8
            img = ip.resize(img, size=size, resample=ip.resample, factor=p * m)
            img = ip.rescale(img, ip.rescale_factor)
            img = ip.normalize(img, ip.image_mean, ip.image_std)
            out.append(np.asarray(img, dtype=np.float32))
        video = np.stack(out)  # (N,3,h,w)
        if pad := -video.shape[0] % tp:
            video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)])
        n, c, h, w = video.shape
        gt, gh, gw = n // tp, h // p, w // p
        # Same layout as transformers' Qwen2VLVideoProcessor.patchify (batch of one).
        patches = video.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
        patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat = patches.reshape(gt * gh * gw, c * tp * p * p)
        return {
            "pixel_values_videos": torch.from_numpy(np.ascontiguousarray(flat)),
            "video_grid_thw": torch.tensor([[gt, gh, gw]], dtype=torch.long),
        }

    def image_inputs(self, image) -> dict:
        """One image (H,W,3) uint8 or (3,H,W) float [0,1] → ``pixel_values``, ``image_grid_thw`` (1,3)."""
        frame = to_uint8_frames(image[None] if hasattr(image, "ndim") and image.ndim == 3 else image, "image")
        assert frame.shape[0] == 1, f"image_inputs takes one image, got {frame.shape[0]}"
        out = self.image_processor(images=[frame[0]], return_tensors="pt")
        return {"pixel_values": out["pixel_values"].float(), "image_grid_thw": out["image_grid_thw"].long()}

    def frame_image_inputs(self, frames: torch.Tensor) -> dict:
        """Frames (N,3,H,W) float in [0,1] as N images (the released model's input): the image
        processor's own path with ``do_rescale=False`` → ``pixel_values`` and ``image_grid_thw`` (N,3)."""
        assert frames.ndim == 4 and frames.shape[1] == 3 and frames.dtype.is_floating_point, frames.shape
        out = self.image_processor(images=list(frames), do_rescale=False, return_tensors="pt")
        return {"pixel_values": out["pixel_values"].float(), "image_grid_thw": out["image_grid_thw"].long()}

    # -- text -----------------------------------------------------------------------------
    def _render(self, messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _expand(self, text: str, video_tokens: list[int], image_tokens: list[int]) -> str:
        """Replace the k-th video/image placeholder by its number of merged tokens."""
        for pad, counts in ((VIDEO_PAD, video_tokens), (IMAGE_PAD, image_tokens)):
            pieces = text.split(pad)
            assert len(pieces) - 1 <= len(counts), "encode checks the placeholders against the inputs"
            text = pieces[0] + "".join(pad * counts[i] + piece for i, piece in enumerate(pieces[1:]))
        return text

    def encode(
        self,
        messages: list[dict],
        video_grid_thw: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        add_generation_prompt: bool = False,
    ) -> dict:
        """Tokenise chat ``messages`` (the ``apply_chat_template`` format) with expanded visual
        placeholders. Returns 1-D ``input_ids``, ``labels`` (assistant turns only, rest
        ``IGNORE_INDEX``) and ``mm_token_type_ids`` (0 text, 1 image, 2 video)."""
        merge = self.merge_size**2
        vt = [int(g.prod()) // merge for g in video_grid_thw] if video_grid_thw is not None else []
        it = [int(g.prod()) // merge for g in image_grid_thw] if image_grid_thw is not None else []
        rendered = self._render(messages, add_generation_prompt)
        counts = {"video": (rendered.count(VIDEO_PAD), len(vt)), "image": (rendered.count(IMAGE_PAD), len(it))}
        wrong = [f"{found} <{kind}> placeholder(s) in the human turns but {given} {kind}(s)"
                 for kind, (found, given) in counts.items() if found != given]  # fmt: skip
        if wrong:  # one placeholder per video / image input, in order
            raise Vega3DError(f"{'; '.join(wrong)}; expected one each (placeholders and inputs pair up in order)")
        full = self._expand(rendered, vt, it)
        # Character spans of assistant answers: render prefixes of the conversation.
        spans = []
        for k, msg in enumerate(messages):
            if msg["role"] != "assistant":
                continue
            if k == 0 or all(m["role"] == "system" for m in messages[:k]):
                raise Vega3DError("conversation starts with an assistant ('gpt') turn; expected a human turn first")
            before = self._expand(self._render(messages[:k], True), vt, it)
            upto = self._expand(self._render(messages[: k + 1], False), vt, it)
            if not full.startswith(upto) or not upto.startswith(before):
                raise Vega3DError("chat template is not prefix-consistent; cannot locate assistant turns")
            end = upto.rstrip("\n")
            spans.append((len(before), len(end)))
        enc = self.tokenizer(full, return_offsets_mapping=True, add_special_tokens=False)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long)
        labels = torch.full_like(ids, IGNORE_INDEX)
        for i, (start, _) in enumerate(enc["offset_mapping"]):
            if any(a <= start < b for a, b in spans):
                labels[i] = ids[i]
        types = torch.zeros_like(ids)
        types[ids == self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)] = 1
        types[ids == self.tokenizer.convert_tokens_to_ids(VIDEO_PAD)] = 2
        return {"input_ids": ids, "labels": labels, "mm_token_type_ids": types}


def video_as_images(messages: list[dict], count: int) -> list[dict]:
    """``messages`` with each video item of a turn replaced by ``count`` image items where it stood: a
    video's frames given as images (the released model's input and training data; ``frames_as="images"``)."""

    def items(content):
        if not isinstance(content, list):
            return content
        return [x for item in content for x in ([{"type": "image"}] * count if item["type"] == "video" else [item])]

    return [{**message, "content": items(message["content"])} for message in messages]


#: LLaVA's speakers (a turn's ``from``) → chat roles.
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class Turn(FileRecord):
    """One LLaVA-style turn (other keys of it are ignored)."""

    speaker: Literal[tuple(ROLES)] = Field(alias="from")  # who speaks: human (user), gpt (assistant) or system
    value: str  # the text; in a human turn, <video> / <image> markers where the media go


class Conversation(Config):
    """A record's ``conversations``."""

    conversations: list[Turn] = Field(min_length=1)  # the turns, in order


def llava_to_messages(conversations, record: str = "record") -> list[dict]:
    """LLaVA-style turns ``[{"from": "human"|"gpt"|"system", "value": str}]`` → chat messages.

    ``<video>`` and ``<image>`` markers in a human turn become video/image content items,
    in place. Turns that are not :class:`Turn` (a missing/unknown ``from``, a non-string ``value``)
    are one Vega3DError naming ``record`` and the turn."""
    messages = []
    for turn in parse(Conversation, {"conversations": conversations}, record).conversations:
        role, value = ROLES[turn.speaker], turn.value
        if role != "user":
            messages.append({"role": role, "content": value})
            continue
        content = []
        pos = 0
        while True:
            nxt = [(value.find(m, pos), m) for m in ("<video>", "<image>") if value.find(m, pos) >= 0]
            if not nxt:
                break
            idx, marker = min(nxt)
            if value[pos:idx]:
                content.append({"type": "text", "text": value[pos:idx]})
            content.append({"type": marker[1:-1]})
            pos = idx + len(marker)
            if value[pos : pos + 1] == "\n":  # LLaVA puts "<video>\n" before the question
                pos += 1
        if value[pos:]:
            content.append({"type": "text", "text": value[pos:]})
        messages.append({"role": role, "content": content})
    return messages
