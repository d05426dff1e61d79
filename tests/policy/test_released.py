"""Loading the released OpenVLA-OFT layout: key maps both ways, strict checks with one-line errors, real-size counts."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vega3d.errors import Vega3DError
from vega3d.policy.config import PolicyConfig
from vega3d.policy.folder import KNOWN_TOWERS, open_oft_folder, text_config_of
from vega3d.policy.model import OFTArch, OpenVLAOFT
from vega3d.policy.processing import OFTProcessor
from vega3d.policy.released import load_released, model_to_released, read_component, released_to_model
from vega3d.policy.vla import VLAPolicy, make_arch


def _copy(tiny_oft, tmp_path):
    return shutil.copytree(tiny_oft, tmp_path / "oft")


def _arch(folder):
    stats = folder.stats(None)
    return make_arch(PolicyConfig(base_model=str(folder.path)), folder, stats, OFTProcessor.from_folder(folder, stats))


def _file_tensors(folder):
    vla = {}
    for f in folder.weight_files:
        vla |= load_file(str(f))
    return vla, read_component(folder.action_head_file), read_component(folder.proprio_file)


def test_loaded_model_writes_back_the_files_tensors_exactly(tiny_oft):
    folder = open_oft_folder(tiny_oft)
    model = load_released(folder, _arch(folder), dtype=torch.float32)
    vla, head, proprio = model_to_released(model.state_dict(), folder.towers)
    file_vla, file_head, file_proprio = _file_tensors(folder)
    for ours, theirs in ((vla, file_vla), (head, file_head), (proprio, file_proprio)):
        assert set(ours) == set(theirs)
        assert all(torch.equal(ours[k].to(theirs[k].dtype), theirs[k]) for k in theirs)
    # the released names are the prismatic ones, and the map back gives the model's names
    assert "vision_backbone.featurizer.blocks.0.ls1.scale_factor" in file_vla
    assert "vision_backbone.fused_featurizer.attn_pool.kv.weight" in file_vla
    assert {"language_model.lm_head.weight", "projector.fc3.bias"} <= set(file_vla)
    assert set(released_to_model(file_vla, folder.towers)) == {
        k for k in model.state_dict() if not k.startswith(("action_head.", "proprio_projector."))
    }


def test_component_files_keep_their_dtypes_and_ddp_prefix_is_stripped(tiny_oft, tmp_path):
    raw = torch.load(next(tiny_oft.glob("action_head--*")), weights_only=True)
    assert all(k.startswith("module.") for k in raw) and next(iter(raw.values())).dtype == torch.bfloat16
    plain = tmp_path / "action_head--1_checkpoint.pt"
    torch.save({k.removeprefix("module."): v for k, v in raw.items()}, plain)
    assert read_component(plain).keys() == read_component(next(tiny_oft.glob("action_head--*"))).keys()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: next(root.glob("action_head--*")).unlink(), r"no action_head--\*_checkpoint\.pt file"),
        (
            lambda root: next(root.glob("proprio_projector--*")).unlink(),
            r"no proprio_projector--\*_checkpoint\.pt file",
        ),
        (lambda root: (root / "dataset_statistics.json").unlink(), "no dataset_statistics.json"),
        (
            lambda root: shutil.copy(next(root.glob("action_head--*")), root / "action_head--5_checkpoint.pt"),
            "2 .* instead of one",
        ),
        (lambda root: (root / "model-00002-of-00002.safetensors").unlink(), r"names shard\(s\) \['model-00002"),
    ],
    ids=["action-head", "proprio", "statistics", "two-heads", "shard"],
)
def test_incomplete_folders_are_one_line_errors_before_any_weight_is_read(tiny_oft, tmp_path, damage, message):
    root = _copy(tiny_oft, tmp_path)
    damage(root)
    with pytest.raises(Vega3DError, match=message):
        open_oft_folder(root)


def _rewrite_shard(root, change):
    shard = root / "model-00002-of-00002.safetensors"
    tensors = load_file(str(shard))
    change(tensors)
    save_file(tensors, str(shard))
    return shard


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.update({"language_model.model.extra.weight": torch.zeros(2)}),
            "unexpected tensor language_model.model.extra",
        ),
        (lambda t: t.pop("language_model.model.norm.weight"), "missing tensor language_model.model.norm.weight"),
        (
            lambda t: t.update({"language_model.model.norm.weight": torch.zeros(3)}),
            r"has shape \(3,\); the config gives \(32,\)",
        ),
    ],
    ids=["extra", "missing", "shape"],
)
def test_key_mismatches_name_the_file_and_the_key(tiny_oft, tmp_path, change, message):
    root = _copy(tiny_oft, tmp_path)
    shard = _rewrite_shard(root, change)
    folder = open_oft_folder(root)
    with pytest.raises(Vega3DError, match=message) as err:
        load_released(folder, _arch(folder))
    assert str(shard) in str(err.value) and "\n" not in str(err.value)


def test_action_head_mismatch_names_the_pt_file(tiny_oft, tmp_path):
    root = _copy(tiny_oft, tmp_path)
    path = next(root.glob("action_head--*"))
    state = torch.load(path, weights_only=True)
    state["module.model.extra"] = torch.zeros(1)
    torch.save(state, path)
    folder = open_oft_folder(root)
    with pytest.raises(Vega3DError, match=f"{path}: unexpected tensor action_head.model.extra"):
        load_released(folder, _arch(folder))


def test_statistics_key_rules(tiny_oft, tmp_path):
    folder = open_oft_folder(tiny_oft)
    assert folder.stats("libero_spatial").key == "libero_spatial_no_noops"  # OFT's <suite>_no_noops fallback
    assert folder.stats(None).key == "libero_spatial_no_noops"  # the only key
    with pytest.raises(Vega3DError, match=r"no statistics for 'libero_goal' or 'libero_goal_no_noops'"):
        folder.stats("libero_goal")
    root = _copy(tiny_oft, tmp_path)
    stats = json.loads((root / "dataset_statistics.json").read_text())
    stats["libero_spatial_no_noops"]["action"]["q99"] = [1.0] * 3
    (root / "dataset_statistics.json").write_text(json.dumps(stats))
    with pytest.raises(Vega3DError, match=r"libero_spatial_no_noops.action: q01, q99, mask of lengths 7, 3, 7"):
        open_oft_folder(root)


def test_constants_come_from_the_checkpoint_not_argv(tiny_oft, monkeypatch):
    monkeypatch.setattr("sys.argv", ["aloha_eval.py", "--bridge"])  # what OFT's constants.py would sniff
    folder = open_oft_folder(tiny_oft)
    arch = _arch(folder)
    assert (arch.chunk, arch.action_dim, arch.proprio_dim, arch.num_images) == (8, 7, 8, 2)
    policy = VLAPolicy.from_config(PolicyConfig(base_model=str(tiny_oft), chunk=5))
    assert policy.net.arch.chunk == 5


def test_real_text_config_takes_transformers_4401_llama_defaults():
    real = {
        "text_config": {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064}
    }
    kwargs = text_config_of(real, "config.json")
    from transformers import LlamaConfig

    config = LlamaConfig(**kwargs)
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads) == (
        4096, 11008, 32, 32)  # fmt: skip
    assert (config.vocab_size, config.rms_norm_eps, config.max_position_embeddings) == (32064, 1e-6, 2048)
    assert config.rope_parameters["rope_theta"] == 10000.0 and config.num_key_value_heads == 32


def test_real_size_parameter_counts_on_the_meta_device():
    real = {"text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064}}
    towers = tuple(KNOWN_TOWERS.values())
    arch = OFTArch(towers, text_config_of(real, "config.json"), 7, 8, chunk=8, num_images=2, stop_token_id=2,
                   pad_token_id=32000)  # fmt: skip
    with torch.device("meta"):
        net = OpenVLAOFT(arch)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    d, k_in = 4096, 7 * 4096
    head = 2 * k_in + (k_in * d + d) + 2 * (2 * d + d * d + d) + 2 * d + (d * 7 + 7)  # LN, fc1, 2 blocks, LN, fc2
    assert count(net.action_head) == head == 151_117_831  # "151 M"
    assert count(net.proprio_projector) == (8 * d + d) + (d * d + d) == 16_818_176  # "16.8 M"
    v = 2176
    assert count(net.projector) == (v * 4 * v + 4 * v) + (4 * v * d + d) + (d * d + d) == 71_385_600
    llama_2_7b = 6_738_415_616  # published parameter count (vocabulary 32000)
    assert count(net.language_model) == llama_2_7b + 2 * 64 * d  # OpenVLA pads the vocabulary to 32064
    released = model_to_released(net.state_dict(), towers)
    total = sum(t.numel() for part in released for t in part.values())
    assert count(net) == total + 1024  # + transformers' DINOv2 class-token position row (zero)
    vla = total - count(net.action_head) - count(net.proprio_projector)
    # the VLA ("7.5 B"): Llama-2-7B + padded vocabulary + timm's two towers + the projector
    assert vla == llama_2_7b + 2 * 64 * d + 303_230_976 + 427_680_704 + 71_385_600 == 7_541_237_184


def _edit_json(root, name, change):
    data = json.loads((root / name).read_text())
    change(data)
    (root / name).write_text(json.dumps(data))


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("config.json", lambda d: d.update(use_fused_vision_backbone=False), "use_fused_vision_backbone: input should"),
        ("config.json", lambda d: d.update(timm_override_act_layers=[None, "relu"]), r"timm_override_act_layers\.1"),
        ("config.json", lambda d: d["text_config"].update(rope_scaling={"type": "linear"}), "text_config.rope_scaling"),
        ("config.json", lambda d: d.update(image_sizes=[224, 112]), r"grids \[16, 8\]; expected DINOv2 then SigLIP"),
        ("dataset_statistics.json", lambda d: d.clear(), "no dataset_statistics.json or no dataset key"),
        ("dataset_statistics.json", lambda d: d["libero_spatial_no_noops"].pop("proprio"), r"noops\.proprio: required"),
        ("preprocessor_config.json", lambda d: d.update(image_resize_strategy="crop"), "image_resize_strategy: input"),
        ("preprocessor_config.json", lambda d: d.update(input_sizes=[[3, 8, 8]] * 2), r"expected \[3, 224, 224\]"),
        ("model.safetensors.index.json", lambda d: d.update(weight_map={}), "weight_map: dictionary should have"),
    ],
    ids=["fused", "act", "rope", "grid", "no-keys", "proprio", "resize", "input-size", "weight-map"],
)
def test_folder_records_are_declared_and_errors_name_file_and_field(tiny_oft, tmp_path, name, change, message):
    root = _copy(tiny_oft, tmp_path)
    _edit_json(root, name, change)
    with pytest.raises(Vega3DError, match=message) as err:
        open_oft_folder(root)
    assert (name in str(err.value) or name == "dataset_statistics.json") and "\n" not in str(err.value)
