"""Loading LLaVA-Video in both layouts: key maps, strict checks, the vocabulary, real-size counts."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vega3d import Vega3DError
from vega3d.mllm.video3d_llm.loading import (
    canonical_to_original,
    inspect_folder,
    load_base,
    to_canonical,
)

# Key names of the original LLaVA release and their transformers names (reference §1.2 table).
RELEASE_NAMES = {
    "model.embed_tokens.weight": "model.language_model.embed_tokens.weight",
    "model.layers.27.mlp.down_proj.weight": "model.language_model.layers.27.mlp.down_proj.weight",
    "model.norm.weight": "model.language_model.norm.weight",
    "lm_head.weight": "lm_head.weight",
    "model.mm_projector.0.weight": "model.multi_modal_projector.linear_1.weight",
    "model.mm_projector.2.bias": "model.multi_modal_projector.linear_2.bias",
    "model.image_newline": "model.image_newline",
    "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight":
        "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
    "model.vision_tower.vision_tower.vision_model.post_layernorm.bias":
        "model.vision_tower.vision_model.post_layernorm.bias",
    "ground_head_obj.3.weight": "ground_head_obj.3.weight",
    "ground_head_zero_target": "ground_head_zero_target",
}  # fmt: skip
# transformers' spellings of the same tensors (converter output, save_pretrained, module names)
HF_NAMES = {
    "language_model.model.layers.0.self_attn.q_proj.bias": "model.language_model.layers.0.self_attn.q_proj.bias",
    "language_model.lm_head.weight": "lm_head.weight",
    "vision_tower.vision_model.embeddings.patch_embedding.weight":
        "model.vision_tower.vision_model.embeddings.patch_embedding.weight",
    "vision_tower.embeddings.position_embedding.weight": "model.vision_tower.vision_model.embeddings.position_embedding.weight",
    "model.vision_tower.vision_model.post_layernorm.weight": "model.vision_tower.vision_model.post_layernorm.weight",
    "multi_modal_projector.linear_1.bias": "model.multi_modal_projector.linear_1.bias",
    "image_newline": "model.image_newline",
    "model.language_model.norm.weight": "model.language_model.norm.weight",
}  # fmt: skip


def _file_keys(folder):
    keys = []
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            keys += list(h.keys())
    return keys


def test_key_maps_match_the_release_names_and_round_trip(llava):
    for original, canonical in RELEASE_NAMES.items():
        assert to_canonical("llava", original) == canonical
        assert canonical_to_original(canonical) == original
    for name, canonical in HF_NAMES.items():
        assert to_canonical("hf", name) == canonical
    keys = _file_keys(llava["llava"]) + _file_keys(llava["v3d"])
    assert len(keys) > 50
    for key in keys:  # every tensor the original-layout stand-ins hold maps there and back
        assert canonical_to_original(to_canonical("llava", key)) == key
    assert to_canonical("llava", "model.vision_resampler.weight") is None
    assert to_canonical("hf", "model.mm_projector.0.weight") is None


def test_both_layouts_load_the_same_weights_and_the_dropped_layer_is_ignored(llava):
    a, b = load_base(llava["llava"]), load_base(llava["hf"])
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.spec.layout == "llava" and b.spec.layout == "hf"
    # the tower keeps layers - 1 of the SigLIP config (mm_vision_select_layer -2); the 27th is skipped
    assert a.model.config.vision_config.num_hidden_layers == 2
    assert a.spec.ignored and all(".encoder.layers.2." in k for k in a.spec.ignored)
    # file weights arrive unchanged (the original names, read back independently)
    files = {}
    for f in llava["llava"].glob("*.safetensors"):
        files.update(load_file(str(f)))
    assert torch.equal(files["model.mm_projector.2.weight"], sa["model.multi_modal_projector.linear_2.weight"])
    assert torch.equal(
        files["model.layers.1.self_attn.k_proj.bias"], sa["model.language_model.layers.1.self_attn.k_proj.bias"]
    )
    assert a.head_state is None and a.vocab["ground_token_id"] is None


def test_the_converter_spelling_of_the_hf_layout_loads(llava, tmp_path):
    folder = tmp_path / "converted"
    shutil.copytree(llava["hf"], folder)
    tensors = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("vision_tower.", "vision_tower.vision_model.", 1) if k.startswith("vision_tower.") else k: v
               for k, v in tensors.items()}  # fmt: skip
    save_file(renamed, str(folder / "model.safetensors"))
    loaded = load_base(folder).model.state_dict()
    reference = load_base(llava["hf"]).model.state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def _shards(folder):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return index, sorted(set(index["weight_map"].values()))


def test_a_missing_or_extra_or_misshapen_key_is_one_line_naming_the_file(llava, tmp_path):
    index, files = _shards(llava["llava"])
    # extra tensor
    bad = tmp_path / "extra"
    shutil.copytree(llava["llava"], bad)
    t = load_file(str(bad / files[0]))
    t["model.mm_projector.4.weight"] = torch.zeros(2)
    save_file(t, str(bad / files[0]))
    idx = json.loads((bad / "model.safetensors.index.json").read_text())
    idx["weight_map"]["model.mm_projector.4.weight"] = files[0]
    (bad / "model.safetensors.index.json").write_text(json.dumps(idx))
    with pytest.raises(Vega3DError, match=rf"{files[0]}: unexpected tensor 'model.mm_projector.4.weight'"):
        load_base(bad)
    # missing tensor (dropped from its shard and the index)
    bad = tmp_path / "missing"
    shutil.copytree(llava["llava"], bad)
    name = "model.layers.1.mlp.up_proj.weight"
    shard = index["weight_map"][name]
    t = load_file(str(bad / shard))
    del t[name]
    save_file(t, str(bad / shard))
    idx = json.loads((bad / "model.safetensors.index.json").read_text())
    del idx["weight_map"][name]
    (bad / "model.safetensors.index.json").write_text(json.dumps(idx))
    with pytest.raises(
        Vega3DError, match=r"model\.safetensors\.index\.json: missing 1 weight.*layers\.1\.mlp\.up_proj"
    ):
        load_base(bad)
    # wrong shape
    bad = tmp_path / "shape"
    shutil.copytree(llava["llava"], bad)
    name = "model.image_newline"
    shard = index["weight_map"][name]
    t = load_file(str(bad / shard))
    t[name] = torch.zeros(63)
    save_file(t, str(bad / shard))
    with pytest.raises(Vega3DError, match=rf"{shard}: tensor 'model.image_newline' has shape \[63\], expected \[64\]"):
        load_base(bad)


def test_config_fields_the_pipeline_does_not_reproduce_are_refused(llava, tmp_path):
    bad = tmp_path / "proj"
    shutil.copytree(llava["llava"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "mm_projector_type": "linear"}))
    with pytest.raises(
        Vega3DError, match=r"config\.json: mm_projector_type: input should be 'mlp2x_gelu', got 'linear'"
    ):
        inspect_folder(bad)
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "qwen2"}))
    with pytest.raises(
        Vega3DError, match=r"config\.json: model_type: input should be 'llava_qwen' or 'llava_onevision', got 'qwen2'"
    ):
        inspect_folder(bad)
    (bad / "config.json").write_text(json.dumps({**cfg, "mm_vision_tower": "google/siglip-base"}))
    with pytest.raises(Vega3DError, match=r"field mm_vision_tower: 'google/siglip-base' is neither a SigLIP folder"):
        inspect_folder(bad)


def test_the_released_video3d_checkpoint_keeps_its_vocabulary_and_head(llava):
    loaded = load_base(llava["v3d"])
    tok = loaded.tokenizer
    ids = loaded.vocab
    assert ids["rows"] == len(tok) == loaded.model.get_input_embeddings().weight.shape[0]
    assert ids["ground_token_id"] == tok.convert_tokens_to_ids("<ground>") == len(tok) - 2
    assert ids["coord_token_id"] == len(tok) - 1
    # the saved rows, not the stale config.vocab_size (which is the base's padded 320)
    assert json.loads((llava["v3d"] / "config.json").read_text())["vocab_size"] == 320 != ids["rows"]
    files = {}
    for f in llava["v3d"].glob("*.safetensors"):
        files.update(load_file(str(f)))
    assert set(loaded.head_state) == {k for k in files if k.startswith("ground_head_")}
    assert torch.equal(loaded.head_state["ground_head_query.0.weight"], files["ground_head_query.0.weight"])
    # the rows were mean-initialised when the tokens were added (before any training)
    emb = files["model.embed_tokens.weight"]
    assert torch.allclose(emb[-2], emb[:-2].mean(0), atol=1e-6)


def test_a_vocabulary_that_does_not_match_its_tokenizer_is_refused_before_loading(llava, tmp_path, monkeypatch):
    bad = tmp_path / "ids"
    shutil.copytree(llava["v3d"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "ground_token_ids": [cfg["ground_token_ids"][0] - 1]}))
    import transformers

    def no_loading(*a, **k):
        raise AssertionError("weights loaded before the vocabulary check")

    monkeypatch.setattr(transformers.LlavaOnevisionForConditionalGeneration, "from_pretrained", no_loading)
    with pytest.raises(Vega3DError, match=r"config\.json field ground_token_ids: \[302\], but the saved tokenizer gives "
                                          r"<ground> the id 303; the vocabulary does not match the tokenizer"):  # fmt: skip
        load_base(bad)
    # a tokenizer with more tokens than embedding rows
    bad = tmp_path / "rows"
    shutil.copytree(llava["v3d"], bad)
    tokenizer = load_base.__globals__["load_tokenizer"](bad)
    tokenizer.add_tokens(["<extra_a>", "<extra_b>"])
    tokenizer.save_pretrained(bad)
    with pytest.raises(Vega3DError, match=r"tokenizer has 307 tokens but .*model\.embed_tokens\.weight' has 305 rows"):
        load_base(bad)


def _siglip_params(v):
    d, i, p, n = v["hidden_size"], v["intermediate_size"], v["patch_size"], (v["image_size"] // v["patch_size"]) ** 2
    layer = 4 * (d * d + d) + 2 * 2 * d + (d * i + i) + (i * d + d)
    return 3 * p * p * d + d + n * d + (v["num_hidden_layers"] - 1) * layer + 2 * d


def _qwen2_params(t):
    d, i, layers, v = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], t["vocab_size"]
    kv = t["num_key_value_heads"] * d // t["num_attention_heads"]
    layer = (d * d + d) + 2 * (d * kv + kv) + d * d + 3 * d * i + 2 * d
    return v * d + layers * layer + d + v * d


def test_real_size_parameter_counts_on_the_meta_device():
    from transformers import LlavaOnevisionForConditionalGeneration

    from vega3d.fusion import build_fusion, build_projector
    from vega3d.mllm.video3d_llm.grounding import GroundingHead
    from vega3d.mllm.video3d_llm.loading import SO400M
    from vega3d.standin.llava_video import REAL_TEXT, real_llava_video_config

    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(real_llava_video_config())
        head = GroundingHead(3584)
        projector = build_projector("mlp2x_gelu", 1536, 3584)
        fusion = build_fusion("gated", 3584)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    d = 3584
    projector_mm = 1152 * d + d + d * d + d
    expected = _qwen2_params(REAL_TEXT) + _siglip_params(SO400M) + projector_mm + d
    assert count(model) == expected
    assert 8.03e9 < expected < 8.04e9  # "LLaVA-OneVision/Video 7B": 8.03 B parameters
    assert count(model.model.vision_tower) == _siglip_params(SO400M)  # 26 of so400m's 27 layers
    assert count(head) == 2 * (2 * (d * d + d) + 2 * d) + d == 51_412_480
    assert count(projector) == 1536 * d + d + d * d + d == 18_357_248  # reference §5: 18.36 M
    assert count(fusion) == 4 * d + 2 * d + 1 == 21_505  # token_gated: ≈ 21.5 K
