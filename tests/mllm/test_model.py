import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.mllm.helpers import video_batch
from vega3d.errors import Vega3DError
from vega3d.mllm.config import Vega3DConfig
from vega3d.mllm.model import Vega3DQwen


def make(base, tiny, **kw):
    """A model on a private copy of the session's base (LoRA injection edits the base)."""
    kw.setdefault("generative_dim", 32)
    return Vega3DQwen(copy.deepcopy(base), Vega3DConfig(base_model=str(tiny["qwen"]), **kw)).eval()


def features(n, seed=0, h=4, w=6, c=32):
    return torch.randn(n, h, w, c, generator=torch.Generator().manual_seed(seed))


def test_baseline_switch_gives_exactly_the_base_logits(base, tiny, processor):
    batch, _ = video_batch(processor)
    ref = base(**{k: v for k, v in batch.items() if k != "labels"}).logits
    off = make(base, tiny, generative=False, llm="lora")  # LoRA B=0 at init: still the base function
    assert off.fusion is None and off.projector is None
    assert torch.equal(off(**batch).logits, ref)
    on = make(base, tiny, llm="frozen")
    assert torch.equal(on(**batch, generative=False).logits, ref)
    assert not torch.equal(on(**batch, video_features=[features(5)]).logits, ref)


def test_forward_backward_reaches_only_trainable_parts(base, tiny, processor):
    batch, _ = video_batch(processor)
    model = make(base, tiny, llm="lora")
    out = model(**batch, video_features=[features(5)])
    assert torch.isfinite(out.loss)
    assert out.gate_means.shape == (1,)
    out.loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert name.startswith(("projector.", "fusion.")) or "lora_" in name, name
            if "lora_A" not in name:  # lora_A gets no grad while lora_B == 0
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    model.zero_grad(set_to_none=True)


def test_parameter_groups_follow_the_config(base, tiny):
    full = make(base, tiny, llm="full", train_vision=True, train_fusion=False)
    groups = full.parameter_groups()
    assert groups["vision"] and groups["llm"] and groups["branch"]  # projector still trainable
    assert all(not p.requires_grad for p in full.fusion.parameters())
    frozen = make(base, tiny, llm="frozen", train_projector=False)
    g = frozen.parameter_groups()
    assert not g["llm"] and not g["vision"] and len(g["branch"]) == len(list(frozen.fusion.parameters()))


def test_gate_to_one_ignores_generative_and_to_zero_uses_it(base, tiny, processor):
    batch, _ = video_batch(processor)
    sem_only = make(base, tiny, fusion_kwargs={"gate_bias": 40.0})
    a = sem_only(**batch, video_features=[features(5, 1)])
    b = sem_only(**batch, video_features=[features(5, 2)])
    assert torch.allclose(a.gate_means, torch.ones(1))
    assert torch.equal(a.logits, b.logits)
    gen_only = make(base, tiny, fusion_kwargs={"gate_bias": -40.0})
    c = gen_only(**batch, video_features=[features(5, 1)])
    d = gen_only(**batch, video_features=[features(5, 2)])
    assert torch.allclose(c.gate_means, torch.zeros(1))
    assert not torch.allclose(c.logits, d.logits)


@pytest.mark.parametrize("n,h,w", [(3, 56, 84), (5, 84, 56), (1, 56, 56), (4, 112, 84)])
def test_alignment_through_the_model_odd_frames_non_square(base, tiny, processor, n, h, w):
    batch, _ = video_batch(processor, num_frames=n, height=h, width=w)
    model = make(base, tiny)
    t, hp, wp = batch["video_grid_thw"][0].tolist()
    assert t == (n + 1) // 2
    vis = model.visual_outputs(
        batch["pixel_values_videos"], batch["video_grid_thw"], video_features=[features(n, h=3, w=5)]
    )
    assert vis.mm_encoder_outputs["video"].pooler_output[0].shape == (t * hp // 2 * wp // 2, 64)
    out = model(**batch, video_features=[features(n, h=3, w=5)])
    assert torch.isfinite(out.logits).all()


def test_bad_generative_inputs(base, tiny, processor):
    batch, _ = video_batch(processor, num_frames=5)
    model = make(base, tiny)
    with pytest.raises(Vega3DError, match="temporal patches"):
        model(**batch, video_features=[features(7)])  # 7 frames -> T=4, video has T=3
    with pytest.raises(Vega3DError, match="C=32"):
        model(**batch, video_features=[features(5, c=16)])
    with pytest.raises(Vega3DError, match="attach"):
        model(**batch, video_frames=[torch.zeros(5, 56, 84, 3, dtype=torch.uint8)])
    with pytest.raises(Vega3DError, match="1 video_features"):
        model(**batch)
    off = make(base, tiny, generative=False)
    with pytest.raises(Vega3DError, match="branch off"):
        off(**batch, generative=True)


def test_online_simulator_equals_precomputed_features(base, tiny, processor, simulator):
    batch, frames = video_batch(processor, num_frames=5)
    model = make(base, tiny)
    with pytest.raises(Vega3DError, match="feature_dim"):
        make(base, tiny, generative_dim=48).attach_simulator(simulator)
    model.attach_simulator(simulator)
    assert "simulator" not in dict(model.named_children())
    assert not any(k.startswith(("transformer.", "vae.")) for k in model.state_dict())
    online = model(**batch, video_frames=[frames]).logits
    offline = model(**batch, video_features=[simulator.extract(frames)]).logits
    assert torch.equal(online, offline)


def test_save_load_bit_exact_and_small(base, tiny, processor, simulator, tmp_path):
    batch, frames = video_batch(processor, num_frames=3)
    model = Vega3DQwen.from_config(Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=32, llm="lora", seed=3))
    model.attach_simulator(simulator)
    model.config = model.config.replace(simulator=simulator.config.to_dict())
    with torch.no_grad():  # make every trainable tensor non-trivial
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path / "ck")
    saved = load_file(str(tmp_path / "ck" / "trainable.safetensors"))
    assert set(saved) == set(model.trainable_names())
    assert all(k.startswith(("projector.", "fusion.")) or "lora_" in k for k in saved)
    sim_tensors = {id(p) for p in simulator.transformer.parameters()}
    assert sim_tensors and not any(k.startswith(("transformer", "vae", "simulator")) for k in saved)
    size = sum(v.numel() for v in saved.values())
    assert size < sum(p.numel() for p in model.base.parameters()) / 4
    meta = json.loads((tmp_path / "ck" / "vega3d_config.json").read_text())
    assert meta["config"]["base_model"] == str(tiny["qwen"]) and meta["config"]["base_fingerprint"]
    assert meta["config"]["simulator"]["model"]["weights_hash"] == simulator.config.model["weights_hash"]

    loaded = Vega3DQwen.from_pretrained(tmp_path / "ck", simulator=simulator)
    sd1, sd2 = model.state_dict(), loaded.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(model(**batch, video_frames=[frames]).logits, loaded(**batch, video_frames=[frames]).logits)


def test_load_rejects_mismatches(base, tiny, tmp_path, simulator):
    model = make(
        base, tiny, llm="lora", base_fingerprint="0" * 64, simulator={**simulator.config.to_dict(), "block": 0}
    )
    model.save_pretrained(tmp_path / "ck")
    with pytest.raises(Vega3DError, match=r"fingerprint .*vega3d ask --no-check-base, or check_base=False in Python"):
        Vega3DQwen.from_pretrained(tmp_path / "ck")
    with pytest.raises(Vega3DError, match=r"simulator differs .*\(1 field\(s\): block: checkpoint 0 vs given 1\)$"):
        Vega3DQwen.from_pretrained(tmp_path / "ck", check_base=False, simulator=simulator)
    with pytest.raises(Vega3DError, match=r"base model: .*wan is not a Hugging Face model folder: no config.json"):
        Vega3DQwen.from_pretrained(tmp_path / "ck", base=tiny["wan"])
    with pytest.raises(Vega3DError, match=r"base model: .*gone does not exist"):
        Vega3DQwen.from_pretrained(tmp_path / "ck", base=tmp_path / "gone")
    tensors = load_file(str(tmp_path / "ck" / "trainable.safetensors"))
    tensors["base.lm_head.weight"] = torch.zeros(1)
    save_file(tensors, str(tmp_path / "ck" / "trainable.safetensors"))
    with pytest.raises(Vega3DError, match="unexpected"):
        Vega3DQwen.from_pretrained(tmp_path / "ck", check_base=False)
    with pytest.raises(Vega3DError, match="not a vega3d checkpoint"):
        Vega3DQwen.from_pretrained(tmp_path / "nothing")
    with pytest.raises(Vega3DError, match="llm"):
        Vega3DConfig(base_model="x", llm="qlora")


def test_simulator_differences_are_readable_field_lists(simulator):
    from vega3d.mllm.checkpoint import simulator_differences

    given = simulator.config.to_dict()
    recorded = json.loads(json.dumps(given))
    recorded["block"], recorded["model"]["weights_hash"] = 7, "f" * 64
    recorded["model"]["path"], recorded["dtype"] = "/elsewhere", "bfloat16"  # location and precision: not identity
    diffs = simulator_differences(recorded, given)
    assert diffs == [
        "block: checkpoint 7 vs given 1",
        f"model.weights_hash: checkpoint '{'f' * 23}… vs given '{given['model']['weights_hash'][:23]}…",
    ]


def test_ask_cli_no_check_base_accepts_a_different_base(base, tiny, tmp_path, simulator, capsys):
    from vega3d.cli import main

    model = make(base, tiny, llm="lora", base_fingerprint="0" * 64, simulator=simulator.config.to_dict())
    model.save_pretrained(tmp_path / "ck")
    video = str(tiny["annotations"].parent / "video_0.mp4")
    args = ["ask", "--model", str(tmp_path / "ck"), "--video", video, "--max-new-tokens", "2", "--num-frames", "2", "q"]
    assert main(args) == 2
    assert "vega3d ask --no-check-base" in capsys.readouterr().err
    assert main([*args[:-1], "--no-check-base", "q"]) == 0


def test_stand_in_flag_is_recorded_and_exposed(base, tiny, tmp_path, simulator):
    """A checkpoint records a top-level stand_in flag; the model / answerer expose it: true for a
    stand-in base, an attached stand-in simulator, or stand-in training features; false otherwise."""
    import shutil

    from vega3d.mllm.checkpoint import read_checkpoint_stand_in
    from vega3d.standin import MARKER as STAND_IN_MARKER

    def stand_in_notice(model):
        return model.stand_in_notice("The answers below are meaningless.")

    real_looking = tmp_path / "qwen_no_marker"  # the same weights without the stand-in marker
    shutil.copytree(tiny["qwen"], real_looking, ignore=shutil.ignore_patterns(STAND_IN_MARKER))
    plain = Vega3DQwen(copy.deepcopy(base), Vega3DConfig(base_model=str(real_looking), generative=False))
    assert plain.stand_in is False and plain.stand_in_parts() == [] and stand_in_notice(plain) is None
    plain.save_pretrained(tmp_path / "plain")
    assert read_checkpoint_stand_in(tmp_path / "plain") is False
    assert Vega3DQwen.from_pretrained(tmp_path / "plain").stand_in is False
    meta_file = tmp_path / "plain" / "vega3d_config.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "stand_in": True}))
    flagged = Vega3DQwen.from_pretrained(tmp_path / "plain")  # only the recorded flag says so
    assert flagged.stand_in is True and flagged.stand_in_parts() == ["model"]
    assert "records stand_in: true" in stand_in_notice(flagged)

    fed = Vega3DQwen(
        copy.deepcopy(base),
        Vega3DConfig(base_model=str(real_looking), generative_dim=32, simulator=simulator.config.to_dict()),
    )
    assert fed.stand_in_parts() == ["simulator"]  # trained on features of a stand-in simulator (none attached)
    assert "the generative features (extracted by a stand-in Wan simulator)" in stand_in_notice(fed)
    fed.save_pretrained(tmp_path / "fed")
    meta = json.loads((tmp_path / "fed" / "vega3d_config.json").read_text())
    assert meta["stand_in"] is True
    loaded = Vega3DQwen.from_pretrained(tmp_path / "fed", simulator=simulator)
    assert loaded.stand_in_parts() == ["simulator"] and "the Wan simulator" in stand_in_notice(loaded)
    real_sim = type("RealSimulator", (), {"stand_in": False, "feature_dim": 32})()
    fed.attach_simulator(real_sim)  # a real simulator on a model trained on stand-in features
    assert fed.stand_in_parts() == ["features"]
    assert "the generative features (extracted by a stand-in Wan simulator)" in stand_in_notice(fed)

    on_stand_in_base = make(base, tiny, generative=False)
    assert on_stand_in_base.stand_in_parts() == ["base"] and "Qwen2.5-VL base" in stand_in_notice(on_stand_in_base)
    assert stand_in_notice(on_stand_in_base).endswith("The answers below are meaningless.")


def test_generate_and_batched_answers_match_single(base, tiny, processor):
    from vega3d.mllm.infer import Answerer

    model = make(base, tiny, llm="lora")
    answerer = Answerer(model, processor, num_frames=4)
    g = torch.Generator().manual_seed(0)
    videos = [torch.rand(4, 3, 56, 84, generator=g), torch.rand(6, 3, 84, 56, generator=g)]
    feats = [features(4, 5), features(4, 6)]
    qs = ["How many chairs?", "Where is the lamp, left or right of the table?"]
    both = answerer.answer(qs, videos, max_new_tokens=6, video_features=feats)
    one = [answerer.answer([q], [v], max_new_tokens=6, video_features=[f])[0] for q, v, f in zip(qs, videos, feats)]
    assert both == one and all(isinstance(a, str) for a in both)
    with pytest.raises(Vega3DError, match="questions"):
        answerer.answer(qs, videos[:1])


def test_image_inputs_are_fused_too(base, tiny, processor):
    from vega3d.mllm.data import collate
    from vega3d.mllm.processing import llava_to_messages

    image = torch.randint(0, 256, (84, 56, 3), dtype=torch.uint8).numpy()
    item = {"id": "img", **processor.image_inputs(image)}
    msgs = llava_to_messages(
        [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A room."}]
    )
    item.update(processor.encode(msgs, image_grid_thw=item["image_grid_thw"]))
    batch = collate([item], processor.tokenizer.pad_token_id)
    batch.pop("ids"), batch.pop("num_skipped")
    model = make(base, tiny)
    ref = base(**batch).logits
    assert torch.equal(model(**batch, generative=False).logits, ref)
    out = model(**batch, image_features=[features(1, h=5, w=3)])
    assert out.gate_means.shape == (1,) and not torch.equal(out.logits, ref)


def test_bf16_base_with_fp32_adapters_trains(base, tiny, processor):
    batch, _ = video_batch(processor)
    model = Vega3DQwen(
        copy.deepcopy(base).to(torch.bfloat16),
        Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=32, llm="lora"),
    )
    assert {p.dtype for n, p in model.named_parameters() if p.requires_grad} == {torch.float32}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, video_features=[features(5)])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_B" in n or n.startswith("projector."))


def test_checkpoints_with_the_older_base_fingerprint_still_load(base, tiny, tmp_path):
    """Checkpoints written before vega3d.files.fingerprint recorded the older definition of the
    base fingerprint; a base folder matching either definition is accepted."""
    from vega3d.mllm.config import base_fingerprint, legacy_base_fingerprint

    old, new = legacy_base_fingerprint(tiny["qwen"]), base_fingerprint(tiny["qwen"])
    assert old != new
    for recorded in (old, new):
        make(base, tiny, generative=False, base_fingerprint=recorded).save_pretrained(tmp_path / recorded[:8])
        assert Vega3DQwen.from_pretrained(tmp_path / recorded[:8]).config.base_fingerprint == recorded
    assert (
        Vega3DQwen.from_config(Vega3DConfig(base_model=str(tiny["qwen"]), generative=False)).config.base_fingerprint
        == new
    )
