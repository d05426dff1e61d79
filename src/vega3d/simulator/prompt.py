"""The text context Wan2.1's DiT cross-attends to, for a prompt (here: the empty one).

Wan builds the context exactly like this (``wan/modules/t5.py`` T5EncoderModel and
``WanModel.forward``; diffusers' ``WanPipeline._get_t5_prompt_embeds`` does the same
with its own default length):

1. tokenize the (whitespace-cleaned) prompt with the umT5 tokenizer,
   ``padding="max_length"``, ``max_length=text_len`` (512), ``truncation=True``,
   ``add_special_tokens=True`` (so "" becomes the single token ``</s>``);
2. run the umT5 encoder with the attention mask;
3. keep only the valid (mask = 1) rows: (k, text_dim);
4. zero-pad to ``text_len`` rows: (512, text_dim).

The row count matters: the DiT's cross-attention is unmasked, so the zero rows take
part in the softmax (padding to 226 rows, diffusers' pipeline default, gives different
features than Wan's 512). On disk the context is a safetensors file with one tensor
named ``prompt_embedding`` holding the trimmed (k, text_dim) rows, plus metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vega3d.errors import Vega3DError

TENSOR_NAME = "prompt_embedding"


def clean_prompt(text: str) -> str:
    """Wan's ``whitespace`` clean: collapse runs of whitespace, strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompt(text_encoder, tokenizer, text: str = "", text_len: int = 512) -> torch.Tensor:
    """umT5 encoder output for ``text``, trimmed to its valid tokens: (k, text_dim) float32 on CPU.

    ``text_encoder`` is a transformers ``UMT5EncoderModel`` (or any encoder returning
    ``last_hidden_state``), ``tokenizer`` its tokenizer.
    """
    inputs = tokenizer(
        [clean_prompt(text)],
        padding="max_length",
        max_length=text_len,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    device = next(text_encoder.parameters()).device
    ids, mask = inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
    hidden = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    k = int(mask[0].gt(0).sum())
    return hidden[0, :k].float().cpu()


def pad_prompt_embedding(emb: torch.Tensor, text_len: int = 512) -> torch.Tensor:
    """Zero-pad a trimmed (k, text_dim) context to (text_len, text_dim) (k <= text_len)."""
    emb = _check_matrix(emb, "prompt embedding")
    if emb.shape[0] > text_len:
        raise Vega3DError(f"prompt embedding: {emb.shape[0]} rows; expected at most text_len={text_len}")
    return torch.cat([emb, emb.new_zeros(text_len - emb.shape[0], emb.shape[1])])


def _check_matrix(emb, where: str) -> torch.Tensor:
    if not isinstance(emb, torch.Tensor):
        raise Vega3DError(f"{where}: got {type(emb).__name__}; expected a torch.Tensor of shape (k, text_dim)")
    if emb.ndim != 2:
        raise Vega3DError(f"{where}: shape {tuple(emb.shape)}; expected rank 2 (k, text_dim)")
    if not emb.is_floating_point():
        raise Vega3DError(f"{where}: dtype {emb.dtype}; expected a floating-point tensor")
    if not torch.isfinite(emb).all():
        raise Vega3DError(f"{where}: contains NaN or infinite values")
    return emb


def load_prompt_embedding(tensor_or_path, text_dim: int, text_len: int = 512) -> torch.Tensor:
    """Validate a prompt context and return it padded: (text_len, text_dim) float32 on CPU.

    Accepts a tensor or a safetensors file (tensor named ``prompt_embedding``), trimmed
    (k, text_dim) with 1 <= k <= text_len or already padded (text_len, text_dim).
    """
    where = "prompt embedding"
    if isinstance(tensor_or_path, (str, Path)):
        path = Path(tensor_or_path).expanduser()
        where = str(path)
        if not path.is_file():
            raise Vega3DError(f"{path}: prompt embedding file does not exist")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise Vega3DError(f"{path}: not a readable safetensors file ({err})") from None
        if TENSOR_NAME not in tensors:
            raise Vega3DError(f"{path}: no tensor named '{TENSOR_NAME}' (found {sorted(tensors)})")
        emb = tensors[TENSOR_NAME]
    else:
        emb = tensor_or_path
    emb = _check_matrix(emb, where)
    if emb.shape[1] != text_dim:
        raise Vega3DError(f"{where}: shape {tuple(emb.shape)}; expected width text_dim={text_dim} (k, {text_dim})")
    if emb.shape[0] == 0 or emb.shape[0] > text_len:
        raise Vega3DError(f"{where}: {emb.shape[0]} rows; expected 1..text_len={text_len} rows")
    return pad_prompt_embedding(emb.detach().float().cpu(), text_len)


def save_prompt_embedding(emb: torch.Tensor, path, *, metadata: dict | None = None) -> Path:
    """Write a trimmed (k, text_dim) context as ``prompt_embedding`` in a safetensors file.

    ``metadata`` (str → str; e.g. source model identity, text) is stored in the header.
    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    from safetensors.torch import save_file

    emb = _check_matrix(emb, "prompt embedding")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file({TENSOR_NAME: emb.detach().float().cpu().contiguous()}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path
