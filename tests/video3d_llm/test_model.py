"""The Video-3D LLM model: visual tokens vs the stock LLaVA-OneVision path, baseline logits, the
grounding tokens and head, and where the InfoNCE gradients go."""

import math

import pytest
import torch

from vega3d.mllm.video3d_llm.config import Video3DLLMConfig
from vega3d.mllm.video3d_llm.data import SceneCache, collate, encode, sample_item, to_device
from vega3d.mllm.video3d_llm.grounding import info_nce
from vega3d.mllm.video3d_llm.loading import load_base
from vega3d.mllm.video3d_llm.model import IMAGE_INDEX, Video3DLLM, align_generative
from vega3d.video3d import Video3DData, read_samples
from vega3d.video3d.geometry import sin3d

FRAMES = 3


@pytest.fixture(scope="module")
def scene(v3d_data):
    data = Video3DData(v3d_data)
    video = "scannet/scene0000_00"
    cache = SceneCache(data, "resize")
    inputs = cache.get(video, data.choose_frames(video, FRAMES, "uniform"))
    inputs.features = torch.randn(FRAMES, 6, 8, 8, generator=torch.Generator().manual_seed(0))
    return data, inputs


@pytest.fixture(scope="module")
def model(llava):
    return Video3DLLM.from_config(Video3DLLMConfig(base_model=str(llava["llava"]), generative_dim=8))


def _batch(model, data, inputs, tasks=("scanqa", "scanrefer")):
    items = []
    for task in tasks:
        name = {"scanrefer": "scanrefer_vg", "multi3drefer": "multi3drefer"}.get(task, task)
        sample = read_samples(data.root / "processed" / f"{name}_train_llava_style.json")[0]
        boxes = data.proposals(sample.video, "train")
        items.append(sample_item(sample, inputs, model.tokenizer, instruction=None, boxes=boxes))
    return to_device(collate(items, model.tokenizer.pad_token_id), "cpu")


def test_visual_tokens_are_the_stock_pooled_tokens_plus_sin3d_with_a_newline_per_row(model, scene):
    _, inputs = scene
    ids, _ = encode(model.tokenizer, "<image> How many chairs?", FRAMES)
    assert int((ids == IMAGE_INDEX).sum()) == FRAMES * 14 * 15
    with torch.no_grad():
        vis = model.visual_tokens([inputs.pixels], [inputs.positions], generative=False)
        stock = model.base.model.get_video_features(inputs.pixels[None]).pooler_output[0, :-1]  # drop its one newline
    tokens = vis.tokens[0].reshape(FRAMES, 14, 15, -1)
    d = tokens.shape[-1]
    assert tokens.shape == (FRAMES, 14, 15, 64)
    assert torch.equal(tokens[:, :, 14], model.base.model.image_newline.expand(FRAMES, 14, d))
    pe = sin3d(inputs.positions, d)
    torch.testing.assert_close(tokens[:, :, :14], stock.reshape(FRAMES, 14, 14, d) + pe, rtol=0, atol=1e-6)
    assert vis.pre_pool[0].shape == (FRAMES, 729, d)
    pooled = torch.nn.functional.interpolate(
        vis.pre_pool[0].reshape(FRAMES, 27, 27, d).permute(0, 3, 1, 2), size=(14, 14), mode="bilinear"
    )
    torch.testing.assert_close(pooled.permute(0, 2, 3, 1).reshape(FRAMES, 196, d), stock.reshape(FRAMES, 196, d))


def test_baseline_logits_equal_the_stock_model_on_the_same_inputs_embeds(llava, scene):
    data, inputs = scene
    model = Video3DLLM.from_config(Video3DLLMConfig(base_model=str(llava["llava"]), generative=False))
    batch = _batch(model, data, inputs, ("scanqa", "sqa3d"))
    with torch.no_grad():
        ours = model(**batch, return_logits=True).logits
        vis = model.visual_tokens(batch["pixel_values"], batch["positions"])
        embeds = model.embed(batch["input_ids"], vis)
        stock = load_base(llava["llava"]).model  # no tokens added: its own vocabulary
        ref = stock(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    n = model.ground_token_id  # the tokenizer's tokens; the stock model also has Qwen's padding rows after them
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(ours[..., :n][mask], ref[..., :n][mask], rtol=0, atol=1e-5)
    # text positions are the base's own embeddings of the ids
    text = mask & (batch["input_ids"] >= 0)
    torch.testing.assert_close(embeds[text], stock.get_input_embeddings()(batch["input_ids"][text]))
    # the <ground>/<coord> columns: after copying the rows in, the base's lm_head computes the same
    model.sync_token_rows()
    with torch.no_grad():
        hidden = model.hidden_states(embeds, batch["attention_mask"])
        torch.testing.assert_close(model.logits(hidden)[mask], model.base.lm_head(hidden)[mask], rtol=0, atol=1e-6)


def test_grounding_tokens_are_ordinary_tokens_with_mean_rows(model, llava):
    tok = model.tokenizer
    base = load_base(llava["llava"])
    n = len(base.tokenizer)
    assert model.config.tokens == {"rows": n + 2, "ground_token_id": n, "coord_token_id": n + 1, "added": True}
    assert tok.convert_tokens_to_ids("<ground>") == n and "<ground>" not in tok.all_special_tokens
    assert tok("a <ground> b", add_special_tokens=False)["input_ids"].count(n) == 1
    old = base.model.get_input_embeddings().weight
    emb = model.base.get_input_embeddings().weight
    assert emb.shape[0] == n + 2  # shrunk from Qwen's padded rows to the tokenizer's length, as released
    torch.testing.assert_close(emb[:n], old[:n], rtol=0, atol=0)
    torch.testing.assert_close(model.token_in[0], old[:n].mean(0), rtol=0, atol=1e-6)
    mean_out = base.model.get_output_embeddings().weight[:n].mean(0)
    torch.testing.assert_close(model.token_out[1], mean_out, rtol=0, atol=1e-6)


def test_the_released_head_and_token_rows_are_loaded(llava):
    from safetensors.torch import load_file

    model = Video3DLLM.from_config(Video3DLLMConfig(base_model=str(llava["v3d"]), generative=False))
    files = {}
    for f in llava["v3d"].glob("*.safetensors"):
        files.update(load_file(str(f)))
    assert model.config.tokens["added"] is False
    assert torch.equal(model.ground_head.obj[3].weight, files["ground_head_obj.3.weight"])
    assert torch.equal(model.ground_head.zero_target, files["ground_head_zero_target"])
    assert torch.equal(model.token_in[1], files["model.embed_tokens.weight"][model.coord_token_id])


def test_info_nce_is_the_release_formula():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(6, generator=g) * 2 - 1
    tau = 0.07
    e = torch.exp(scores / tau)
    assert math.isclose(
        float(info_nce(scores, [1, 3], tau)), float(-torch.log(e[[1, 3]].sum() / e.sum())), rel_tol=1e-5
    )
    assert math.isclose(float(info_nce(scores, [], tau)), float(-torch.log(e[-1] / e.sum())), rel_tol=1e-5)


def _grads(model):
    return {
        n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters() if p.requires_grad
    }


def test_infonce_gradients_reach_the_head_and_the_fusion_only_as_configured(llava, scene):
    data, inputs = scene
    base = str(llava["llava"])
    model = Video3DLLM.from_config(Video3DLLMConfig(base_model=base, generative_dim=8, llm="frozen"))
    batch = _batch(model, data, inputs, ("scanrefer",))
    out = model(**batch)
    assert out.scores[0].shape == (len(data.proposals("scannet/scene0000_00", "train")) + 1,)
    out.loss.backward()
    g = _grads(model)
    assert all(g[n] for n in g if n.startswith("ground_head."))
    assert any(g[n] for n in g if n.startswith("fusion.")) and any(g[n] for n in g if n.startswith("projector."))
    assert g["token_in"] and not g["token_out"]  # <ground> is read, no logits are computed
    assert not any(n.startswith("base.model.language_model") for n in g)  # llm frozen: not trainable
    # branch off: the fusion is frozen, the head still learns
    model = Video3DLLM.from_config(
        Video3DLLMConfig(base_model=base, generative_dim=8, llm="frozen", train_branch=False)
    )
    model(**batch).loss.backward()
    g = _grads(model)
    assert not any(n.startswith(("fusion.", "projector.")) for n in g)
    assert all(g[n] for n in g if n.startswith("ground_head."))
    groups = model.parameter_groups()
    assert {id(p) for p in groups["head"]} == {id(p) for n, p in model.named_parameters()
                                               if n.startswith(("ground_head.", "token_"))}  # fmt: skip


def test_object_features_come_from_pre_pool_tokens_without_the_generative_stream(model, scene):
    _, inputs = scene
    other = torch.randn_like(inputs.features)
    with torch.no_grad():
        a = model.visual_tokens([inputs.pixels], [inputs.positions], [inputs.features])
        b = model.visual_tokens([inputs.pixels], [inputs.positions], [other])
    assert torch.equal(a.pre_pool[0], b.pre_pool[0])
    assert not torch.allclose(a.tokens[0], b.tokens[0])


def test_generative_grid_is_area_averaged_over_each_token_s_pixels():
    # a grid of 384 one-pixel columns (and rows): token j must average pixels 27j .. 27j+26 exactly
    grid = torch.arange(384.0).reshape(1, 1, 384, 1).expand(1, 384, 384, 1)
    out = align_generative(grid, "resize").reshape(14, 14)
    want = torch.tensor([sum(range(27 * j, 27 * j + 27)) / 27 for j in range(14)])
    torch.testing.assert_close(out[0], want, rtol=0, atol=1e-4)
    # center_crop (4:3 frame): SigLIP column x is column x + 64 of the 512-wide resized frame
    grid = torch.arange(512.0).reshape(1, 1, 512, 1).expand(1, 384, 512, 1)
    out = align_generative(grid, "center_crop", 4 / 3).reshape(14, 14)
    torch.testing.assert_close(out[0], want + 64, rtol=0, atol=1e-4)


def test_pixels_match_the_stock_siglip_processor_and_center_crop_keeps_the_centre():
    import numpy as np
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from vega3d.mllm.video3d_llm.data import siglip_pixels

    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    stock = SiglipImageProcessorPil(size={"height": 384, "width": 384})(images=[img], return_tensors="pt")
    assert torch.equal(siglip_pixels(img[None], "resize"), torch.as_tensor(np.asarray(stock["pixel_values"])))
    # a horizontal ramp (value = column of a 640-wide frame / 2.5): center_crop column k shows frame column
    # (k + 64 + 0.5) * 640 / 512 - 0.5 (PIL resizes pixel centres; bicubic keeps a linear ramp)
    ramp = np.broadcast_to((np.arange(640) / 2.5).astype(np.uint8)[None, :, None], (480, 640, 3)).copy()
    out = siglip_pixels(ramp[None], "center_crop", depth_hw=(480, 640))[0, 0, 200]
    k = torch.arange(40, 340)
    want = ((k + 64 + 0.5) * 640 / 512 - 0.5) / 2.5
    got = (out[40:340] * 0.5 + 0.5) * 255
    assert (got - want).abs().max() < 1.0


def test_lora_trains_adapters_rows_and_head_with_gradient_checkpointing(llava, scene):
    data, inputs = scene
    cfg = Video3DLLMConfig(base_model=str(llava["llava"]), generative=False, llm="lora", train_vision=False)
    model = Video3DLLM.from_config(cfg)
    groups = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups["llm"] and all("lora_" in names[id(p)] for p in groups["llm"])
    assert not groups["vision"] and {names[id(p)] for p in groups["head"]} >= {"token_in", "token_out"}
    model.gradient_checkpointing_enable()
    model.train()
    model(**_batch(model, data, inputs, ("scanqa", "scanrefer"))).loss.backward()
    g = _grads(model)
    assert any(g[n] for n in g if "lora_" in n) and g["token_out"] and g["ground_head.zero_target"]
