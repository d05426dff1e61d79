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

import hashlib
import re
from pathlib import Path

import torch

from vega3d.simulator.checks import check, no_nan, tensor_found

#: Wan2.1's context length: the DiT always sees ``TEXT_LEN`` context rows.
TEXT_LEN = 512
#: File name of the cached empty-prompt context inside a model folder.
PROMPT_FILE = "prompt_embedding.safetensors"
#: Name of the one tensor in a prompt-embedding file.
TENSOR_NAME = "prompt_embedding"


def clean_prompt(text: str) -> str:
    """Wan's ``whitespace`` clean: collapse runs of whitespace, strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompt(text_encoder, tokenizer, text: str = "", text_len: int = TEXT_LEN) -> torch.Tensor:
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


def pad_prompt_embedding(emb: torch.Tensor, text_len: int = TEXT_LEN) -> torch.Tensor:
    """Zero-pad a trimmed (k, text_dim) context to (text_len, text_dim) (1 <= k <= text_len)."""
    emb = _check_matrix(emb, "prompt embedding", text_len=text_len)
    return torch.cat([emb, emb.new_zeros(text_len - emb.shape[0], emb.shape[1])])


def _check_matrix(emb, where: str, text_dim: int | None = None, text_len: int | None = None) -> torch.Tensor:
    """``emb`` when it is a finite floating-point (k, text_dim) tensor with 1 <= k <= text_len
    (``text_dim`` / ``text_len`` None: any width / any number of rows)."""
    finite = no_nan(emb)
    ok = isinstance(emb, torch.Tensor) and emb.is_floating_point() and finite and emb.ndim == 2
    ok = ok and (text_dim is None or emb.shape[1] == text_dim) and (text_len is None or 1 <= emb.shape[0] <= text_len)
    width = "text_dim" if text_dim is None else f"text_dim={text_dim}"
    rows = "" if text_len is None else f" with at least 1 and at most text_len={text_len} rows"
    check(ok, where, tensor_found(emb, finite), f"a finite floating-point torch.Tensor of rank 2 (k, {width}){rows}")
    return emb


def load_prompt_embedding(tensor_or_path, text_dim: int, text_len: int = TEXT_LEN) -> torch.Tensor:
    """Validate a prompt context and return it padded: (text_len, text_dim) float32 on CPU.

    Accepts a tensor or a safetensors file (tensor named ``prompt_embedding``), trimmed
    (k, text_dim) with 1 <= k <= text_len or already padded (text_len, text_dim).
    """
    where, emb = "prompt embedding", tensor_or_path
    if isinstance(tensor_or_path, (str, Path)):
        where = str(Path(tensor_or_path).expanduser())
        emb = _read_file(Path(where))
    emb = _check_matrix(emb, where, text_dim, text_len).detach().float().cpu()
    return torch.cat([emb, emb.new_zeros(text_len - emb.shape[0], text_dim)])


def _read_file(path: Path) -> torch.Tensor:
    """The ``prompt_embedding`` tensor of a safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors, problem = {}, "prompt embedding file does not exist"
    if path.is_file():
        try:
            tensors = load_file(str(path))
            problem = f"no tensor named '{TENSOR_NAME}' (found {sorted(tensors)})"
        except (SafetensorError, OSError, ValueError) as err:
            problem = f"not a readable safetensors file ({err})"
    expected = f"a safetensors file with the tensor '{TENSOR_NAME}' (written by export-prompt)"
    check(TENSOR_NAME in tensors, str(path), problem, expected)
    return tensors[TENSOR_NAME]


def context_sha256(context: torch.Tensor) -> str:
    """sha256 (hex) of a padded float32 context's bytes (recorded in the simulator's identity)."""
    return hashlib.sha256(context.contiguous().numpy().tobytes()).hexdigest()


def save_prompt_embedding(emb: torch.Tensor, path, *, metadata: dict | None = None) -> Path:
    """Write a trimmed (k, text_dim) context as ``prompt_embedding`` in a safetensors file.

    ``metadata`` (str → str; e.g. source model identity, text) is stored in the header.
    Written atomically (:func:`vega3d.files.atomic_write_bytes`): a reader never sees half a file.
    """
    from safetensors.torch import save

    from vega3d.files import atomic_write_bytes

    emb = _check_matrix(emb, "prompt embedding")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    atomic_write_bytes(path, save({TENSOR_NAME: emb.detach().float().cpu().contiguous()}, metadata=meta))
    return path
