"""The empty-prompt context: Wan's encode → trim → zero-pad, files, validation, export-prompt."""

import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.original_layout import save_tiny_wan_original
from vega3d import cli
from vega3d.errors import Vega3DError
from vega3d.simulator.layouts import load_text_encoder, load_wan_components
from vega3d.simulator.prompt import (
    PROMPT_FILE,
    clean_prompt,
    encode_prompt,
    load_prompt_embedding,
    pad_prompt_embedding,
    save_prompt_embedding,
)
from vega3d.standin import MARKER
from vega3d.standin.wan import save_tiny_wan

TINY = dict(num_layers=1, dim=32, text_dim=32, seed=2, with_text_encoder=True)


@pytest.fixture(scope="module")
def te_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("te")
    return {
        "diffusers": save_tiny_wan(base / "diffusers", **TINY),
        "original": save_tiny_wan_original(base / "original", **TINY),
    }


# ----------------------------------------------------------------------------- padding / validation


def test_pad_keeps_rows_and_appends_zeros():
    emb = torch.randn(3, 8)
    out = pad_prompt_embedding(emb, 512)
    assert out.shape == (512, 8) and torch.equal(out[:3], emb) and not out[3:].any()


def test_trimmed_and_padded_inputs_give_the_same_context():
    emb = torch.randn(2, 8)
    assert torch.equal(load_prompt_embedding(emb, 8), load_prompt_embedding(pad_prompt_embedding(emb), 8))


@pytest.mark.parametrize(
    "emb, match",
    [
        (torch.ones(1, 7), "text_dim=8"),
        (torch.ones(8), "rank 2"),
        (torch.ones(1, 1, 8), "rank 2"),
        (torch.ones(513, 8), "rows"),
        (torch.ones(0, 8), "rows"),
        (torch.tensor([[float("nan")] * 8]), "NaN"),
        (torch.tensor([[float("inf")] * 8]), "NaN or infinite"),
        (torch.ones(1, 8, dtype=torch.int64), "floating"),
        ([[1.0] * 8], "torch.Tensor"),
    ],
)
def test_bad_prompt_embeddings_are_rejected(emb, match):
    with pytest.raises(Vega3DError, match=match):
        load_prompt_embedding(emb, 8)


def test_pad_rejects_too_many_rows():
    with pytest.raises(Vega3DError, match="at most"):
        pad_prompt_embedding(torch.ones(5, 2), text_len=4)


def test_file_round_trip_with_metadata(tmp_path):
    emb = torch.randn(4, 8)
    path = save_prompt_embedding(emb, tmp_path / "sub" / "p.safetensors", metadata={"text": "", "model": "x"})
    with safe_open(str(path), "pt") as fh:
        assert list(fh.keys()) == ["prompt_embedding"] and fh.metadata() == {"text": "", "model": "x"}
        assert torch.equal(fh.get_tensor("prompt_embedding"), emb)
    assert torch.equal(load_prompt_embedding(path, 8)[:4], emb)
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_file_with_the_wrong_tensor_name(tmp_path):
    save_file({"context": torch.ones(1, 8)}, str(tmp_path / "p.safetensors"))
    with pytest.raises(Vega3DError, match="no tensor named 'prompt_embedding'.*context"):
        load_prompt_embedding(tmp_path / "p.safetensors", 8)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(Vega3DError, match="does not exist"):
        load_prompt_embedding(tmp_path / "nope.safetensors", 8)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(Vega3DError, match="safetensors"):
        load_prompt_embedding(tmp_path / "bad.safetensors", 8)


def test_file_with_wrong_width_names_the_file(tmp_path):
    path = save_prompt_embedding(torch.ones(1, 9), tmp_path / "p.safetensors")
    with pytest.raises(Vega3DError, match=r"p\.safetensors.*text_dim=8"):
        load_prompt_embedding(path, 8)


def test_clean_prompt_collapses_whitespace():
    assert clean_prompt("  a \n\t room  ") == "a room" and clean_prompt("") == ""


# ----------------------------------------------------------------------------- encoding like Wan / diffusers


def test_empty_prompt_is_one_token(te_dirs):
    enc, tok, _ = load_text_encoder(te_dirs["diffusers"])
    assert tok("", add_special_tokens=True)["input_ids"] == [tok.eos_token_id]
    assert encode_prompt(enc, tok, "").shape == (1, 32)
    assert encode_prompt(enc, tok, "a room in the kitchen").shape[0] > 5


def test_encode_prompt_matches_diffusers_wan_pipeline(te_dirs):
    """Padded to 512 rows, our context equals WanPipeline._get_t5_prompt_embeds(max_sequence_length=512)."""
    from diffusers import WanPipeline

    enc, tok, _ = load_text_encoder(te_dirs["diffusers"])
    pipe = SimpleNamespace(text_encoder=enc, tokenizer=tok, _execution_device=torch.device("cpu"))
    for text in ("", "a video of a  room"):
        ref = WanPipeline._get_t5_prompt_embeds(
            pipe, prompt=text, max_sequence_length=512, device="cpu", dtype=torch.float32
        )
        ours = pad_prompt_embedding(encode_prompt(enc, tok, text, 512), 512)
        assert ref.shape == (1, 512, 32)
        torch.testing.assert_close(ours, ref[0], rtol=0, atol=0)
    # the row count matters: diffusers' default (226 rows) is a different context length
    short = WanPipeline._get_t5_prompt_embeds(pipe, prompt="", device="cpu", dtype=torch.float32)
    assert short.shape[1] == 226


def test_trimmed_rows_do_not_depend_on_padding_length(te_dirs):
    enc, tok, _ = load_text_encoder(te_dirs["diffusers"])
    torch.testing.assert_close(encode_prompt(enc, tok, "a room", 512), encode_prompt(enc, tok, "a room", 16))


def test_original_t5_pth_gives_the_same_context_as_diffusers_layout(te_dirs):
    ed, td, idd = load_text_encoder(te_dirs["diffusers"])
    eo, to, ido = load_text_encoder(te_dirs["original"])
    assert idd["layout"] == "diffusers" and ido["layout"] == "original"
    assert type(eo).__name__ == "UMT5EncoderModel" and eo.config.relative_attention_num_buckets == 32
    assert not eo.training and not any(p.requires_grad for p in eo.parameters())
    for text in ("", "red wooden table"):
        assert torch.equal(encode_prompt(ed, td, text), encode_prompt(eo, to, text))
    sd = torch.load(te_dirs["original"] / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True)
    assert sd["token_embedding.weight"].dtype == torch.bfloat16 and "blocks.0.pos_embedding.embedding.weight" in sd


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_components_compute_the_context_when_no_file_is_given(te_dirs, layout):
    root = te_dirs[layout]
    assert not (root / PROMPT_FILE).exists()
    c = load_wan_components(root)
    enc, tok, _ = load_text_encoder(root)
    assert torch.equal(c.prompt_embedding, pad_prompt_embedding(encode_prompt(enc, tok, ""), 512))
    assert c.identity["prompt"]["source"] == "text_encoder" and c.text_encoder is None
    c2 = load_wan_components(root, need_text_encoder=True)
    assert type(c2.text_encoder).__name__ == "UMT5EncoderModel" and c2.tokenizer is not None


def test_text_encoder_required_but_absent(tmp_path):
    root = save_tiny_wan(tmp_path / "m", num_layers=1)
    with pytest.raises(Vega3DError) as err:
        load_text_encoder(root)
    msg = str(err.value)  # worded for CLI users and for the Python API
    assert "no text encoder" in msg and "vega3d export-prompt --model" in msg
    assert "`vega3d extract --prompt-embedding FILE`" in msg and "Python: prompt_embedding=FILE" in msg
    with pytest.raises(Vega3DError, match="no text encoder"):
        load_wan_components(root, need_text_encoder=True)


def test_original_t5_with_unexpected_or_missing_keys(te_dirs, tmp_path):
    root = tmp_path / "o"
    shutil.copytree(te_dirs["original"], root)
    path = root / "models_t5_umt5-xxl-enc-bf16.pth"
    sd = torch.load(path, weights_only=True)
    torch.save({**sd, "blocks.0.attn.extra.weight": torch.zeros(1)}, path)
    with pytest.raises(Vega3DError, match="unexpected key.*blocks.0.attn.extra.weight"):
        load_text_encoder(root)
    torch.save({k: v for k, v in sd.items() if k != "blocks.1.ffn.fc2.weight"}, path)
    with pytest.raises(Vega3DError, match=r"missing key.*encoder\.block\.1\.layer\.1\.DenseReluDense\.wo\.weight"):
        load_text_encoder(root)
    torch.save({k: v for k, v in sd.items() if not k.startswith("token_embedding")}, path)
    with pytest.raises(Vega3DError, match="token_embedding.weight"):
        load_text_encoder(root)


# ----------------------------------------------------------------------------- export-prompt


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_export_prompt_round_trip(te_dirs, tmp_path, capsys, layout):
    out = tmp_path / "prompt_embedding.safetensors"
    assert cli.main(["export-prompt", "--model", str(te_dirs[layout]), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "(1, 32)" in printed and str(out) in printed
    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
    assert meta["text"] == "" and meta["layout"] == layout and len(meta["text_encoder_hash"]) == 64
    # the tiny folder is a stand-in: said on stderr and recorded in the file
    assert meta["stand_in"] == "true" and "NOTE:" in captured.err and "STAND-IN" in captured.err
    # the exported file reproduces the context computed from the encoder
    computed = load_wan_components(te_dirs[layout]).prompt_embedding
    from_file = load_wan_components(te_dirs[layout], prompt_embedding=out)
    assert torch.equal(from_file.prompt_embedding, computed)
    assert from_file.identity["prompt"]["source"] == "file" and from_file.identity["prompt"]["metadata"]["text"] == ""


def test_export_prompt_from_a_folder_without_the_stand_in_marker_says_nothing(te_dirs, tmp_path, capsys):
    root = tmp_path / "real"
    shutil.copytree(te_dirs["diffusers"], root)
    (root / MARKER).unlink()
    out = tmp_path / "p.safetensors"
    assert cli.main(["export-prompt", "--model", str(root), "--out", str(out)]) == 0
    assert "STAND-IN" not in capsys.readouterr().err
    with safe_open(str(out), "pt") as fh:
        assert fh.metadata()["stand_in"] == "false"


def test_export_prompt_with_text(te_dirs, tmp_path, capsys):
    out = tmp_path / "p.safetensors"
    assert cli.main(["export-prompt", "--model", str(te_dirs["diffusers"]), "--out", str(out), "--text", "a room"]) == 0
    enc, tok, _ = load_text_encoder(te_dirs["diffusers"])
    assert torch.equal(load_prompt_embedding(out, 32), pad_prompt_embedding(encode_prompt(enc, tok, "a room")))


def test_export_prompt_without_text_encoder_is_a_one_line_error(tmp_path, capsys):
    root = save_tiny_wan(tmp_path / "m", num_layers=1)
    assert cli.main(["export-prompt", "--model", str(root), "--out", str(tmp_path / "p.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "export-prompt: error:" in err and "no text encoder" in err and not (tmp_path / "p.safetensors").exists()
    assert f"--model {root}" in err and "Run it on the full Wan2.1 folder" in err
    assert "--prompt-embedding FILE" in err and "prompt_embedding=FILE" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_text_encoder_dtypes_agree_between_layouts(te_dirs, dtype):
    ed, _, _ = load_text_encoder(te_dirs["diffusers"], dtype=dtype)
    eo, _, _ = load_text_encoder(te_dirs["original"], dtype=dtype)
    dd, do = ({n: p.dtype for n, p in e.named_parameters()} for e in (ed, eo))
    assert dd == do and dtype in set(dd.values())
    sd, so = ed.state_dict(), eo.state_dict()
    assert all(torch.equal(sd[k], so[k]) for k in sd)


def _reference_wan_t5(sd, ids, mask):
    """Wan's T5Encoder forward (wan/modules/t5.py) written out from the weights alone:
    pre-RMSNorm blocks, unscaled attention + per-layer bidirectional bucketed relative bias
    (max distance 128), FFN fc2(fc1(x) * gelu_tanh(gate(x))), final RMSNorm."""
    import math

    import torch.nn.functional as F

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def buckets(rel, num_buckets, max_dist=128):
        half = num_buckets // 2
        out = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = (
            exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_dist / exact) * (half - exact)).long()
        )
        return out + torch.where(rel < exact, rel, large.clamp(max=half - 1))

    x = sd["token_embedding.weight"][ids]
    n = ids.shape[1]
    rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(layers):
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        table = w["pos_embedding.embedding.weight"]
        heads = table.shape[1]
        bias = table[buckets(rel, table.shape[0])].permute(2, 0, 1)[None]
        bias = bias.masked_fill(mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
        h = rms(x, w["norm1.weight"])
        q, k, v = ((h @ w[f"attn.{p}.weight"].T).unflatten(-1, (heads, -1)) for p in "qkv")
        att = F.softmax(torch.einsum("bihc,bjhc->bhij", q, k) + bias, dim=-1)
        x = x + torch.einsum("bhij,bjhc->bihc", att, v).flatten(2) @ w["attn.o.weight"].T
        h = rms(x, w["norm2.weight"])
        gate = F.gelu(h @ w["ffn.gate.0.weight"].T, approximate="tanh")
        x = x + ((h @ w["ffn.fc1.weight"].T) * gate) @ w["ffn.fc2.weight"].T
    return rms(x, sd["norm.weight"])


def test_original_t5_mapping_matches_wans_t5_math(te_dirs):
    """Guards the Wan-T5 → UMT5 key map (e.g. gate vs fc1) independently of our own inverse map."""
    root = te_dirs["original"]
    enc, tok, _ = load_text_encoder(root)
    sd = {k: v.float() for k, v in torch.load(root / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True).items()}
    for text in ("", "a video of a room with a table", "red green blue " * 30):
        t = tok([text], padding="max_length", max_length=512, truncation=True, return_tensors="pt")
        ref = _reference_wan_t5(sd, t.input_ids, t.attention_mask)[0, : int(t.attention_mask.sum())]
        torch.testing.assert_close(encode_prompt(enc, tok, text), ref, rtol=1e-4, atol=1e-4)
