"""The prompt-context cache: computed once (one process of many), read after; bad entries and
unwritable folders are warned about and worked around, never fatal; the key follows every input.

The reference is the uncached computation: the tiny umT5 stand-in loaded and run on the empty
prompt (prompt.encode_prompt), padded to 512 rows.
"""

import multiprocessing as mp
import os
import warnings
from pathlib import Path

import pytest
import torch

from vega3d.files import TMP_PREFIX, cache_dir
from vega3d.simulator import layouts
from vega3d.simulator.layouts import open_wan_folder, prompt_cache_inputs, text_encoder_context
from vega3d.simulator.prompt import TEXT_LEN, encode_prompt, load_prompt_embedding
from vega3d.simulator.prompt_cache import PromptCacheWarning, prompt_cache_dir, prompt_cache_key
from vega3d.standin.wan import save_tiny_wan


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny Wan2.1 stand-in with its text encoder and tokenizer, no prompt_embedding.safetensors."""
    return save_tiny_wan(tmp_path_factory.mktemp("te") / "wan", num_layers=2, with_text_encoder=True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "prompt-context"


def uncached_context(model, text=""):
    encoder, tokenizer, _ = layouts.load_text_encoder(model)
    return load_prompt_embedding(encode_prompt(encoder, tokenizer, text, TEXT_LEN), 32, TEXT_LEN)


def no_encoder_load(monkeypatch):
    monkeypatch.setattr(layouts, "load_text_encoder", lambda *a, **k: pytest.fail("the text encoder was loaded"))


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "v"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "v" and prompt_cache_dir() == tmp_path / "v" / "prompt-context"
    monkeypatch.delenv("VEGA3D_CACHE")
    assert cache_dir() == tmp_path / "x" / "vega3d"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "vega3d"


def test_first_load_computes_and_stores_later_loads_read(model, cache, monkeypatch):
    reference = uncached_context(model)
    context, source, status = text_encoder_context(model)
    assert status == "computed" and torch.equal(context, reference)
    assert source["file"] == str(_entry(cache))
    no_encoder_load(monkeypatch)
    again, source_again, status = text_encoder_context(model)
    assert status == "hit" and torch.equal(again, reference)
    assert source_again == source and source["source"] == "text_encoder"  # the same identity hit or miss


def test_from_pretrained_uses_the_cache_and_records_the_same_config(model, cache, monkeypatch):
    from vega3d.simulator import WanWorldSimulator

    first = WanWorldSimulator.from_pretrained(model, block=1, height=32, width=48)
    no_encoder_load(monkeypatch)
    second = WanWorldSimulator.from_pretrained(model, block=1, height=32, width=48)
    assert first.config.to_dict() == second.config.to_dict()
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.extract(x), second.extract(x))


def test_no_cache_computes_and_writes_nothing(model, cache):
    from vega3d.simulator import WanWorldSimulator

    context, source, status = text_encoder_context(model, cache=False)
    assert status == "uncached" and "file" not in source and torch.equal(context, uncached_context(model))
    WanWorldSimulator.from_pretrained(model, block=1, height=32, width=48, prompt_cache=False)
    assert not cache.exists()


def _race(model: str, cache: str, barrier, results) -> None:
    """One of several processes loading the same context at the same moment."""
    os.environ["VEGA3D_CACHE"] = cache
    import transformers  # noqa: F401 - imported before the start line, so the processes truly race

    folder = open_wan_folder(model)
    barrier.wait()
    context, _, status = text_encoder_context(folder)
    results.put((status, context.numpy().tobytes()))


def test_racing_processes_compute_once(model, cache):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(model), str(cache.parent), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(status for status, _ in got) == ["computed", "hit"]  # exactly one computed
    assert got[0][1] == got[1][1] == uncached_context(model).numpy().tobytes()


def _entries(cache: Path) -> list[Path]:
    """The cache's entries (not the temporary files of an interrupted write, nor the lock files)."""
    return sorted(p for p in cache.iterdir() if p.suffix == ".safetensors" and not p.name.startswith(TMP_PREFIX))


def _entry(cache: Path) -> Path:
    (entry,) = _entries(cache)
    return entry


def _flip_a_value(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # a byte of the tensor data (the header is at the front)
    path.write_bytes(bytes(data))


def _other_key(path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as fh:
        meta, tensor = fh.metadata(), fh.get_tensor("prompt_embedding")
    save_file({"prompt_embedding": tensor}, str(path), metadata={**meta, "key": "0" * 64})


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not a safetensors file"),
        lambda p: p.write_bytes(p.read_bytes()[:-5]),  # truncated
        _flip_a_value,  # fails the checksum
        _other_key,  # a file of another entry in its place
    ],
    ids=["garbage", "truncated", "flipped-byte", "other-key"],
)
def test_a_damaged_entry_is_warned_about_recomputed_and_replaced(model, cache, damage):
    text_encoder_context(model)
    damage(_entry(cache))
    with pytest.warns(PromptCacheWarning, match="recomputing it and replacing the entry"):
        context, _, status = text_encoder_context(model)
    assert status == "computed" and torch.equal(context, uncached_context(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert text_encoder_context(model)[2] == "hit"  # the replacement is valid


def test_an_unwritable_cache_folder_warns_and_computes(model, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VEGA3D_CACHE", str(blocker / "cache"))  # cannot be created (root ignores permissions)
    with pytest.warns(PromptCacheWarning, match="cannot be used .* computing the context without caching it"):
        context, source, status = text_encoder_context(model)
    assert status == "uncached" and "file" not in source and torch.equal(context, uncached_context(model))


def test_a_crash_while_writing_leaves_no_entry(model, cache, monkeypatch):
    import vega3d.files

    def crash(*_a):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(vega3d.files.os, "replace", crash)
    with pytest.warns(PromptCacheWarning, match="cannot write"):
        assert text_encoder_context(model)[2] == "uncached"
    monkeypatch.undo()
    monkeypatch.setenv("VEGA3D_CACHE", str(cache.parent))
    assert not _entries(cache) and any(p.name.startswith(TMP_PREFIX) for p in cache.iterdir())  # as after a crash
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the leftover temporary file is not taken for an entry
        assert text_encoder_context(model)[2] == "computed"


def _key(folder, text="", text_len=TEXT_LEN):
    return prompt_cache_key(**prompt_cache_inputs(open_wan_folder(folder)), text=text, text_len=text_len)


def test_the_key_changes_with_every_input(model, tmp_path):
    import shutil

    base = _key(model)
    assert _key(model, text="a room") != base and _key(model, text_len=256) != base
    copy = Path(shutil.copytree(model, tmp_path / "copy"))
    assert _key(copy) == base  # same content elsewhere: same entry
    weights = copy / "text_encoder" / "model.safetensors"
    _flip_a_value(weights)
    assert _key(copy) != base
    copy = Path(shutil.copytree(model, tmp_path / "copy2"))
    config = copy / "text_encoder" / "config.json"
    config.write_text(config.read_text().replace('"layer_norm_epsilon": 1e-06', '"layer_norm_epsilon": 1e-05'))
    assert _key(copy) != base
    copy = Path(shutil.copytree(model, tmp_path / "copy3"))
    (copy / "tokenizer" / "tokenizer_config.json").write_text("{}")
    assert _key(copy) != base


def test_another_text_is_another_entry(model, cache):
    empty, _, _ = text_encoder_context(model)
    room, source, status = text_encoder_context(model, text="a room with a table")
    assert status == "computed" and source["text"] == "a room with a table" and not torch.equal(room, empty)
    assert torch.equal(room, uncached_context(model, "a room with a table"))
    assert len(_entries(cache)) == 2


def test_extract_cli_no_cache_and_batch_frames(model, cache, tmp_path):
    from tests.store.inputs_fixture import write_frame_folder
    from vega3d import cli
    from vega3d.store import FeatureStore

    write_frame_folder(tmp_path / "shots")
    args = ["extract", str(tmp_path / "shots"), "--model", str(model), "--height", "32", "--width", "48"]
    args += ["--block", "1", "--num-frames", "3", "--no-progress"]
    assert cli.main([*args, "--out", str(tmp_path / "a"), "--no-cache"]) == 0
    assert not cache.exists()  # bypassed
    assert cli.main([*args, "--out", str(tmp_path / "b"), "--batch-frames", "2"]) == 0
    assert len(_entries(cache)) == 1
    a, b = FeatureStore(tmp_path / "a"), FeatureStore(tmp_path / "b")
    assert b.extraction_config["batch_frames"] == 2 and a.extraction_config["deterministic"] is False
    assert torch.equal(a.get("shots")[0], b.get("shots")[0])  # same context, batch-invariant on the CPU
