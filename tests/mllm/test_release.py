"""The released VEGA-3D folder: inspect verdicts, strict conversion and loading, bad input, and the
converted model's logits against a hand-built forward of the release's formulas."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from tests.mllm.release_layout import write_tiny_release
from tests.original_layout import save_tiny_wan_original
from vega3d.cli import main
from vega3d.errors import Vega3DError
from vega3d.mllm.release import open_release
from vega3d.mllm.release.convert import convert_release, release_branch
from vega3d.mllm.release.inspect import inspect_release

TOWER = {"height": 160, "width": 160, "dtype": "float32"}  # frames of this size reach the DiT unresized


@pytest.fixture(scope="module")
def releases(tiny, tmp_path_factory):
    """Two tiny releases over the session's stand-ins: "wanlike" (the Wan stand-in's DiT in bf16)
    and "reinit" (Linear/Conv weights N(0, 0.02²), zero biases), plus an fp32 one for exact logits."""
    root = tmp_path_factory.mktemp("releases")
    return {
        "wanlike": write_tiny_release(root / "wanlike", tiny["qwen"], tiny["wan"]),
        "reinit": write_tiny_release(root / "reinit", tiny["qwen"], tiny["wan"], reinit=True),
        "fp32": write_tiny_release(root / "fp32", tiny["qwen"], tiny["wan"], dit_dtype=torch.float32, seed=3),
        "root": root,
    }


@pytest.fixture(scope="module")
def converted(releases, tiny):
    return convert_release(releases["fp32"], releases["root"] / "ckpt", tiny["wan"], tower=TOWER)


# ----------------------------------------------------------------------------- inspect


def test_inspect_wanlike_dit_is_not_reinitialised(releases, tiny, tmp_path):
    stats = inspect_release(releases["wanlike"])
    assert stats["dit_reinitialised"] is False and "statistics only" in stats["verdict"]
    s = stats["evidence"]["summary"]
    assert s["layer_weights_like_reinit"] == 0 and s["bias_zero_fraction"] == 0.0
    assert stats["parts"]["dit"]["dtypes"] == ["BF16"] and stats["branch"]["residual_scale"] == [0.37]
    assert stats["config"]["generative_fusion_method"] == "token_gated_residual"
    original = save_tiny_wan_original(tmp_path / "wan_original", num_layers=2, dim=32, seed=0)  # same weights
    for wan in (tiny["wan"], original):
        report = inspect_release(releases["wanlike"], wan=wan)
        w = report["evidence"]["summary"]["wan"]
        assert report["dit_reinitialised"] is False and w["within_bf16"] == w["compared"] == s["tensors"]
        assert "equal Wan2.1's" in report["verdict"] and 0 < w["largest_difference"]["max_abs_diff"] < 0.01


def test_inspect_reinitialised_dit(releases, tiny):
    report = inspect_release(releases["reinit"])
    assert report["dit_reinitialised"] is True and report["verdict"].startswith("re-initialised")
    s = report["evidence"]["summary"]
    assert s["layer_weights_like_reinit"] == s["layer_weights"] > 20 and s["bias_zero_fraction"] == 1.0
    report = inspect_release(releases["reinit"], wan=tiny["wan"])
    w = report["evidence"]["summary"]["wan"]
    assert report["dit_reinitialised"] is True
    assert w["layer_weights_within_bf16"] == 0 and w["within_bf16"] > 0  # norms and modulation are still Wan's
    rows = {r["key"]: r for r in report["evidence"]["wan"]}
    assert rows["blocks.0.norm3.weight"]["within_bf16"] and not rows["blocks.0.self_attn.q.weight"]["within_bf16"]


def test_inspect_mixed_or_absent_dit_is_undetermined(releases, tiny, tmp_path):
    reinit = {}
    for shard in sorted(releases["reinit"].glob("model-*.safetensors")):
        reinit |= {k: v for k, v in load_file(str(shard)).items() if k.startswith("generative_encoder.tower.model.")}
    half = {k: v for k, v in reinit.items() if k.startswith("generative_encoder.tower.model.blocks.0.")}
    mixed = write_tiny_release(tmp_path / "mixed", tiny["qwen"], tiny["wan"], add=half)  # block 0 re-init only
    for wan in (None, tiny["wan"]):
        report = inspect_release(mixed, wan=wan)
        assert report["dit_reinitialised"] is None and report["verdict"].startswith("undetermined"), report["verdict"]
    none = write_tiny_release(tmp_path / "nodit", tiny["qwen"], tiny["wan"], with_dit=False)
    report = inspect_release(none)
    assert report["dit_reinitialised"] is None and "holds no DiT" in report["verdict"]
    assert report["parts"]["dit"]["tensors"] == 0


def test_cli_inspect_prints_and_writes_json(releases, tiny, tmp_path, capsys):
    out = tmp_path / "inspect.json"
    assert main(["inspect-release", str(releases["reinit"]), "--wan", str(tiny["wan"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dit_reinitialised: true — re-initialised" in text and "generative_merger" in text and "STAND-IN" in text
    saved = json.loads(out.read_text())
    assert saved["dit_reinitialised"] is True and saved["format"] == "vega3d-release-inspect/1"


# ----------------------------------------------------------------------------- bad input


def _bad_folders(releases, tiny, root):
    """(folder, expected message) for folders that are not a (complete) release."""
    from vega3d.standin.data import write_tiny_checkpoint

    truncated = root / "truncated"
    shutil.copytree(releases["wanlike"], truncated)
    shard = truncated / "model-00002-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    lost = root / "lost"
    shutil.copytree(releases["wanlike"], lost)
    (lost / "model-00003-of-00003.safetensors").unlink()
    checkpoint = write_tiny_checkpoint(root / "vega3d")
    return [
        (tiny["qwen"], "is a plain Qwen2.5-VL model"),
        (checkpoint, "is a vega3d checkpoint"),
        (truncated, "model-00002-of-00003.safetensors: not a readable safetensors file"),
        (lost, r"names shard\(s\) \['model-00003-of-00003.safetensors'\] .*which are not in"),
        (tiny["wan"], "no config.json"),
    ]


def test_bad_folders_one_line_each_nothing_written(releases, tiny, tmp_path, capsys):
    folders = _bad_folders(releases, tiny, tmp_path)
    capsys.readouterr()  # the builders' progress lines
    for folder, message in folders:
        with pytest.raises(Vega3DError, match=message):
            open_release(folder)
        for argv in (
            ["inspect-release", str(folder), "--out", str(tmp_path / "r.json")],
            ["convert-release", str(folder), "--wan", str(tiny["wan"]), "--out", str(tmp_path / "ck")],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and "error:" in err, err
        assert not (tmp_path / "r.json").exists() and not (tmp_path / "ck").exists()


def test_conversion_is_strict_and_names_key_and_file(releases, tiny, tmp_path):
    missing = write_tiny_release(tmp_path / "m", tiny["qwen"], tiny["wan"], drop=("generative_fusion.norm2.bias",))
    with pytest.raises(Vega3DError, match=r"m: missing generative_fusion\.norm2\.bias"):
        convert_release(missing, tmp_path / "o1", tiny["wan"])
    extra = write_tiny_release(
        tmp_path / "e", tiny["qwen"], tiny["wan"], add={"generative_fusion.alpha": torch.ones(1)}
    )
    with pytest.raises(Vega3DError, match=r"e/model-0000\d-of-00003\.safetensors: unexpected generative_fusion\.alpha"):
        convert_release(extra, tmp_path / "o2", tiny["wan"])
    odd = {"generative_encoder.tower.model.blocks.0.extra.weight": torch.ones(2, 2)}
    dit = write_tiny_release(tmp_path / "d", tiny["qwen"], tiny["wan"], add=odd)
    with pytest.raises(
        Vega3DError, match=r"d/model-0000\d-of-00003\.safetensors: unexpected .*blocks\.0\.extra\.weight"
    ):
        convert_release(dit, tmp_path / "o3", tiny["wan"])
    wide = write_tiny_release(tmp_path / "w", tiny["qwen"], tiny["wan"],
                              add={"generative_fusion.norm1.bias": torch.zeros(65)})  # fmt: skip
    with pytest.raises(Vega3DError, match=r"norm1\.bias has shape \(65,\)"):
        convert_release(wide, tmp_path / "o4", tiny["wan"])
    other_wan = tmp_path / "wan48"
    from vega3d.standin.wan import save_tiny_wan

    save_tiny_wan(other_wan, num_layers=2, dim=48, seed=0)
    with pytest.raises(Vega3DError, match=r"the --wan folder's DiT config needs"):
        convert_release(releases["wanlike"], tmp_path / "o5", other_wan)
    with pytest.raises(Vega3DError, match=r"--wan .*wan48: its DiT is not the release's architecture"):
        inspect_release(releases["wanlike"], wan=other_wan)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def test_fresh_merger_and_fusion_load_the_release_keys_strictly(releases):
    from vega3d.fusion import build_fusion, build_projector
    from vega3d.mllm.release import FUSION_NAMES

    folder = open_release(releases["wanlike"])
    projector, fusion, fields = release_branch(folder)
    assert fields == {
        "projector": "merger_mlp",
        "projector_kwargs": {"hidden": 48, "merge_size": 2},
        "fusion": "residual_gated",
        "generative_dim": 32,
        "generative_interpolation": "bilinear",
    }
    stored = {}
    for shard in sorted(releases["wanlike"].glob("model-*.safetensors")):
        stored |= {
            k: v for k, v in load_file(str(shard)).items() if k.startswith(("generative_merger.", "generative_fusion."))
        }
    fresh_p = build_projector("merger_mlp", 32, 64, hidden=48)
    fresh_f = build_fusion("residual_gated", 64)
    fresh_p.load_state_dict(
        {k[len("generative_merger.") :]: v for k, v in stored.items() if "merger" in k}, strict=True
    )
    fresh_f.load_state_dict(
        {FUSION_NAMES[k[len("generative_fusion.") :]]: v for k, v in stored.items() if "fusion" in k}, strict=True
    )
    for mine, fresh in ((projector, fresh_p), (fusion, fresh_f)):
        for (name, a), (_, b) in zip(mine.state_dict().items(), fresh.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    assert fusion.residual_scale.item() == pytest.approx(0.37)


# ----------------------------------------------------------------------------- the converted model


def test_converted_checkpoint_records_the_choice(converted, releases, tiny, tmp_path):
    from vega3d.files import fingerprint
    from vega3d.mllm.checkpoint import read_checkpoint_config
    from vega3d.simulator.layouts import weight_files

    config = read_checkpoint_config(converted)
    assert config.origin["dit"] == "release" and config.origin["dit_reinitialised"] is False
    assert config.base_model == str(releases["fp32"].resolve()) and config.simulator["block"] == 1  # the last block
    assert (config.projector, config.fusion, config.generative_interpolation) == (
        "merger_mlp",
        "residual_gated",
        "bilinear",
    )
    assert json.loads((converted / "release_inspect.json").read_text())["dit_reinitialised"] is False
    assert config.preprocessing == {"frames_as": "images"}  # the release takes one image per frame
    from vega3d.mllm.infer import Answerer

    assert Answerer.from_checkpoint(converted, load_simulator=False).frames_as == "images"
    wan_hash = fingerprint(tiny["wan"], weight_files(tiny["wan"], "diffusers"))
    # this release's DiT is the Wan stand-in's in float32: written back, it is byte for byte Wan's file
    assert config.simulator["model"]["weights_hash"] == wan_hash
    for dit, same in (("release", False), ("wan", True)):
        out = convert_release(releases["reinit"], tmp_path / dit, tiny["wan"], dit=dit, tower=TOWER)
        config = read_checkpoint_config(out)
        assert config.origin["dit"] == dit and config.origin["dit_reinitialised"] is True
        assert (config.simulator["model"]["weights_hash"] == wan_hash) is same  # the re-initialised DiT, or Wan's


def test_cli_convert_then_ask(releases, tiny, tmp_path, capsys):
    out = tmp_path / "ck"
    assert main(["convert-release", str(releases["reinit"]), "--wan", str(tiny["wan"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dit_reinitialised: true" in text and "block 1" in text
    with pytest.raises(Vega3DError, match="is the released VEGA-3D model, not a vega3d checkpoint: convert it"):
        from vega3d.mllm.model import Vega3DQwen

        Vega3DQwen.from_pretrained(releases["reinit"])
    frames = tmp_path / "frames"
    from vega3d.media import write_frame_folder

    write_frame_folder(frames, np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8))
    assert main(["ask", "--model", str(out), "--video", str(frames), "--max-new-tokens", "2", "Where?"]) == 0
    captured = capsys.readouterr()
    assert "STAND-IN" in captured.err and captured.out.strip() != ""


def test_base_loading_is_strict_outside_the_release_modules(releases, tiny, tmp_path):
    from vega3d.mllm.model import load_base

    load_base(releases["wanlike"])  # the DiT, merger and fusion are the release's extra modules
    broken = tmp_path / "broken"
    shutil.copytree(releases["wanlike"], broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    dropped = "model.layers.0.mlp.down_proj.weight"
    shard = broken / index["weight_map"][dropped]
    state = load_file(str(shard))
    state["visual.unknown.weight"] = torch.ones(1)
    del state[dropped]
    save_file(state, str(shard), metadata={"format": "pt"})
    index["weight_map"]["visual.unknown.weight"] = shard.name
    del index["weight_map"][dropped]
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        Vega3DError, match=r"1 weight\(s\) missing \(e\.g\. model\.language_model\.layers\.0\.mlp.*unused"
    ):
        load_base(broken)


def _release_reference_logits(release, wan, batch, frames_list, seed=0, block=1):
    """The release's forward written from its formulas with stock modules: transformers'
    Qwen2.5-VL on the release folder, diffusers' WanTransformer3DModel with the release's DiT
    (converted by diffusers) and AutoencoderKLWan; Wan features of each image (its own 1-frame
    video, noise = the first draw of a CPU generator seeded ``seed``), the output of blocks[block],
    bilinear resize to the patch grid, the 2 x 2 merger MLP, token_gated_residual, scattered into the
    image-token positions."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vega3d.simulator.noise import flow_noise_level

    qwen = Qwen2_5_VLForConditionalGeneration.from_pretrained(release).eval()
    stored = {}
    for shard in sorted(release.glob("model-*.safetensors")):
        stored |= load_file(str(shard))
    dit = {
        k[len("generative_encoder.tower.model.") :]: v for k, v in stored.items() if k.startswith("generative_encoder.")
    }
    transformer = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(wan / "transformer")).eval()
    transformer.load_state_dict(convert_wan_transformer_to_diffusers(dit), strict=True)
    vae = AutoencoderKLWan.from_pretrained(wan / "vae").eval()
    context = load_file(str(wan / "prompt_embedding.safetensors"))["prompt_embedding"]
    context = torch.cat([context, context.new_zeros(512 - len(context), context.shape[1])])[None]
    t, sigma = flow_noise_level(300, 5.0)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    m = {k[len("generative_merger.") :]: v for k, v in stored.items() if k.startswith("generative_merger.")}
    f = {k[len("generative_fusion.") :]: v for k, v in stored.items() if k.startswith("generative_fusion.")}
    fused_all = []
    with torch.no_grad():
        semantic = qwen.model.get_image_features(batch["pixel_values"], batch["image_grid_thw"], return_dict=True)
        semantic = semantic.pooler_output
        for frame, sem, (_, hp, wp) in zip(frames_list, semantic, batch["image_grid_thw"].tolist(), strict=True):
            x = frame.permute(2, 0, 1).float()[None] / 255 * 2 - 1  # (1, 3, H, W) in [-1, 1]
            z = (vae.encode(x[:, :, None]).latent_dist.mode() - mean) / std
            eps = torch.randn(z.shape[1:], generator=torch.Generator().manual_seed(seed))[None]
            held = {}
            hook = transformer.blocks[block].register_forward_hook(lambda mod, i, o: held.setdefault("x", o))
            transformer(
                hidden_states=(1 - sigma) * z + sigma * eps, timestep=torch.tensor([t]), encoder_hidden_states=context
            )
            hook.remove()
            h, w = x.shape[2] // 16, x.shape[3] // 16
            grid = held["x"].reshape(1, h, w, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid.float(), size=(hp, wp), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
            win = grid.reshape(hp // 2, 2, wp // 2, 2, -1).permute(0, 2, 1, 3, 4)  # (h/2, w/2, 2, 2, C)
            win = win * torch.rsqrt(win.pow(2).mean(-1, keepdim=True) + 1e-6) * m["ln_q.weight"]
            win = win.reshape(-1, 4 * win.shape[-1])
            gen = F.linear(
                F.gelu(F.linear(win, m["mlp.0.weight"], m["mlp.0.bias"])), m["mlp.2.weight"], m["mlp.2.bias"]
            )
            d = sem.shape[-1]
            n1 = F.layer_norm(sem, (d,), f["norm1.weight"], f["norm1.bias"], eps=1e-5)
            n2 = F.layer_norm(gen, (d,), f["norm2.weight"], f["norm2.bias"], eps=1e-5)
            g = torch.sigmoid(
                F.linear(torch.cat([n1, n2], -1), f["gate_projection.0.weight"], f["gate_projection.0.bias"])
            )
            mixed = g * sem + (1 - g) * gen
            fused_all.append(sem + f["residual_scale"] * (mixed - sem))
        embeds = qwen.get_input_embeddings()(batch["input_ids"])
        slots = batch["input_ids"] == qwen.config.image_token_id
        embeds[slots] = torch.cat(fused_all)
        out = qwen(input_ids=batch["input_ids"], inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                   image_grid_thw=batch["image_grid_thw"], mm_token_type_ids=batch["mm_token_type_ids"])  # fmt: skip
    return out.logits, torch.cat(semantic)


def test_converted_model_logits_equal_the_release_formulas(converted, releases, tiny):
    from vega3d.mllm.data import collate
    from vega3d.mllm.infer import simulator_from_record
    from vega3d.mllm.model import Vega3DQwen
    from vega3d.mllm.processing import Vega3DProcessor

    processor = Vega3DProcessor.from_pretrained(releases["fp32"])
    frames = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8))
    items = [processor.image_inputs(fr.numpy()) for fr in frames]
    thw = torch.cat([i["image_grid_thw"] for i in items])
    assert thw[0].tolist() == [1, 8, 8]  # the 10 x 10 Wan grid is resampled down onto 8 x 8 patches
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Where?"}]},
                {"role": "assistant", "content": "Left."}]  # fmt: skip
    item = {"id": "0", **processor.encode(messages, image_grid_thw=thw)}
    batch = collate([item], processor.tokenizer.pad_token_id)
    batch.update(pixel_values=torch.cat([i["pixel_values"] for i in items]), image_grid_thw=thw)
    for k in ("ids", "num_skipped", "labels"):
        batch.pop(k, None)
    config = json.loads((converted / "vega3d_config.json").read_text())["config"]
    model = Vega3DQwen.from_pretrained(converted, simulator=simulator_from_record(config["simulator"]))
    ours = model(**batch, image_frames=[fr[None] for fr in frames]).logits
    ref, semantic = _release_reference_logits(releases["fp32"], tiny["wan"], batch, frames)
    baseline = model(**batch, generative=False).logits
    err, effect = (ours - ref).abs().max().item(), (baseline - ref).abs().max().item()
    assert err < 1e-5 and effect > 10_000 * err, (err, effect)  # measured: err 2.7e-7, effect 1.0
    area = Vega3DQwen.from_pretrained(converted, simulator=model.simulator)
    area.config = area.config.replace(generative_interpolation="area")  # vega3d's own resampling: another function
    assert (area(**batch, image_frames=[fr[None] for fr in frames]).logits - ref).abs().max() > 100 * err


def test_branch_init_starts_training_from_the_release(converted, releases, tiny):
    from vega3d.mllm.checkpoint import read_checkpoint_config, read_trainable
    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    recorded = read_checkpoint_config(converted)
    fields = {k: getattr(recorded, k) for k in ("projector", "projector_kwargs", "fusion", "generative_dim",
                                                "generative_interpolation")}  # fmt: skip
    config = Vega3DConfig(base_model=str(releases["fp32"]), llm="full", branch_init=str(converted), **fields)
    model = Vega3DQwen.from_config(config)
    for name, value in read_trainable(converted).items():
        assert torch.equal(dict(model.named_parameters())[name], value), name
    with pytest.raises(
        Vega3DError, match=r"branch_init .*: its branch is not this config's \(fusion: 'residual_gated'"
    ):
        Vega3DQwen.from_config(config.replace(fusion="gated"))


def test_fresh_residual_model_is_exactly_the_base_at_scale_zero(base, tiny, processor):
    import copy

    from tests.mllm.helpers import video_batch
    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    batch, _ = video_batch(processor, num_frames=3, height=84, width=112)
    ref = base(**{k: v for k, v in batch.items() if k != "labels"}).logits
    config = Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=32, fusion="residual_gated",
                          fusion_kwargs={"gate_init_std": 0.02}, projector="merger_mlp",
                          projector_kwargs={"hidden": 48}, generative_interpolation="bilinear")  # fmt: skip
    model = Vega3DQwen(copy.deepcopy(base), config).eval()
    grid = [torch.randn(3, 5, 7, 32, generator=torch.Generator().manual_seed(0))]
    assert model.fusion.residual_scale.item() == pytest.approx(0.2)
    assert not torch.equal(model(**batch, video_features=grid).logits, ref)  # s = 0.2: the branch is used
    with torch.no_grad():
        model.fusion.residual_scale.zero_()
    assert torch.equal(model(**batch, video_features=grid).logits, ref)  # s = 0: exactly the base model


def test_release_config_fields_declared(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_vl", "use_generative_encoder": true}')
    with pytest.raises(Vega3DError, match=r"config\.json: model_type: input should be 'qwen2_5_vl', got 'qwen2_vl'$"):
        open_release(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_vl", "use_generative_encoder": "yes"}')
    with pytest.raises(Vega3DError, match=r"config\.json: use_generative_encoder: input should be a valid boolean"):
        open_release(tmp_path)
