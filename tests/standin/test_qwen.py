import json

from vega3d.standin.qwen import QWEN_SPECIAL_TOKENS, save_tiny_qwen25vl


def test_tiny_qwen_has_the_real_layout_and_says_it_is_a_stand_in(tiny):
    folder = tiny["qwen"]
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "preprocessor_config.json",
        "chat_template.json",
    ):
        assert (folder / name).is_file(), name
    assert "stand-in" in (folder / "STAND_IN.md").read_text().lower()
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"] and config["model_type"] == "qwen2_5_vl"


def test_tokenizer_files_agree_and_special_tokens_are_single_ids(tiny):
    from transformers import AutoTokenizer
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    folder = tiny["qwen"]
    tokenizer = AutoTokenizer.from_pretrained(folder)  # what the processor loads
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:]]
    slow_files = Qwen2Tokenizer(vocab=vocab, merges=merges)
    text = "How many chairs are in the room? About 2.5 meters."
    assert slow_files(text).input_ids == tokenizer(text).input_ids
    for token in QWEN_SPECIAL_TOKENS:
        assert tokenizer(token, add_special_tokens=False).input_ids == [tokenizer.convert_tokens_to_ids(token)]


def test_same_seed_same_bytes(tmp_path):
    a = save_tiny_qwen25vl(tmp_path / "a", seed=1)
    b = save_tiny_qwen25vl(tmp_path / "b", seed=1)
    c = save_tiny_qwen25vl(tmp_path / "c", seed=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
