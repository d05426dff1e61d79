"""Model inputs of OpenVLA-OFT: the prompt's token ids, the channel-stacked pixels, the normalised proprio.

- **Prompt** (OFT ``get_vla_action``): ``"In: What action should the robot take to
  {instruction.lower()}?\\nOut:"``, tokenised with the folder's Llama tokenizer (BOS added), then
  the "▁" token appended unless it is already last (OFT ``predict_action``: id 29871 in Llama-2),
  as the training sequences had it.
- **Pixels** (prismatic's ``PrismaticImageProcessor``, ``resize-naive``): each image resized to
  the tower's input size with PIL bicubic when it is not already that size (the harness hands
  over 224² images, so this is a no-op there: PIL returns an unchanged copy), scaled to [0, 1]
  and normalised per tower (DINOv2: ImageNet mean/std; SigLIP: 0.5/0.5, from
  ``preprocessor_config.json``); per image [DINOv2 | SigLIP] channels, images stacked along channels.
- **Proprio / actions**: BOUNDS_Q99 with the folder's statistics
  (:func:`vega3d.libero.protocol.normalize_proprio` / ``unnormalize_actions``, OFT's formulas, masks honoured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vega3d.config import FileRecord, parse
from vega3d.errors import Vega3DError
from vega3d.libero.protocol import normalize_proprio, unnormalize_actions
from vega3d.policy.folder import PROMPT, PROMPT_SUFFIX_TOKEN, OFTFolder, Statistics


class _TokenizerConfig(FileRecord):
    """``tokenizer_config.json``, the field checked (the rest is transformers')."""

    tokenizer_class: Literal["LlamaTokenizer", "LlamaTokenizerFast"]  # OpenVLA's Llama-2 tokenizer


def load_tokenizer(folder: OFTFolder):
    """The folder's Llama tokenizer: transformers' ``LlamaTokenizer`` itself, local files only (not
    ``AutoTokenizer``, which would read ``config.json``'s ``auto_map`` and ask to run the folder's code)."""
    from transformers import LlamaTokenizer

    from vega3d.files import read_json

    path = folder.path / "tokenizer_config.json"
    parse(_TokenizerConfig, read_json(path, "tokenizer config"), path)
    try:
        return LlamaTokenizer.from_pretrained(str(folder.path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise Vega3DError(f"{folder.path}: cannot load the Llama tokenizer ({type(err).__name__}: {err})") from None


@dataclass
class OFTProcessor:
    """Turns an observation (images, instruction, proprio) into model inputs and normalised actions back."""

    tokenizer: object
    means: tuple  # per tower
    stds: tuple
    image_size: int
    statistics: Statistics

    @classmethod
    def from_folder(cls, folder: OFTFolder, statistics: Statistics) -> OFTProcessor:
        tokenizer = load_tokenizer(folder)
        processor = cls(tokenizer, folder.means, folder.stds, folder.towers[0].image_size, statistics)
        processor.suffix_id  # noqa: B018  (checked now, before any work)
        return processor

    @property
    def suffix_id(self) -> int:
        token = self.tokenizer.convert_tokens_to_ids(PROMPT_SUFFIX_TOKEN)
        if token is None or token == self.tokenizer.unk_token_id:
            raise Vega3DError(f"the tokenizer has no {PROMPT_SUFFIX_TOKEN!r} token (OFT appends it after 'Out:')")
        return int(token)

    @property
    def stop_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def prompt_ids(self, instruction: str) -> list[int]:
        ids = self.tokenizer(PROMPT.format(instruction=instruction.lower())).input_ids
        return ids if ids[-1] == self.suffix_id else [*ids, self.suffix_id]

    def image_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (6, S, S) float32: [DINOv2-normalised | SigLIP-normalised]."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise Vega3DError(f"policy image of shape {image.shape} and dtype {image.dtype}; expected (H, W, 3) uint8")
        if image.shape[:2] != (self.image_size, self.image_size):
            from PIL import Image

            image = np.asarray(Image.fromarray(image).resize((self.image_size,) * 2, Image.Resampling.BICUBIC))
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        parts = [
            (x - torch.tensor(m)[:, None, None]) / torch.tensor(s)[:, None, None] for m, s in zip(self.means, self.stds)
        ]
        return torch.cat(parts)

    def pixel_values(self, images: list[np.ndarray]) -> torch.Tensor:
        return torch.cat([self.image_tensor(im) for im in images])

    def normalize_proprio(self, proprio) -> np.ndarray:
        s = self.statistics
        return normalize_proprio(proprio, s.proprio_q01, s.proprio_q99, s.proprio_mask)

    def unnormalize_actions(self, actions) -> np.ndarray:
        s = self.statistics
        return unnormalize_actions(actions, s.action_q01, s.action_q99, s.action_mask)

    def batch(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` (B, T) of token-id lists."""
        t = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(prompts), t), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), t), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, : len(p)], mask[i, : len(p)] = torch.tensor(p), 1
        return ids, mask
