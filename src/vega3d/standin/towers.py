"""Tiny random-weight stand-ins for the towers of the paper's Figure 3, in their real on-disk layouts.

Each ``save_tiny_*`` writes a folder laid out like the published checkpoint, so the encoders load
it through the same code path as the real model (vega3d.encoders):

* :func:`save_tiny_sd21` — ``stabilityai/stable-diffusion-2-1`` (diffusers): ``unet/``, ``vae/``,
  ``scheduler/``, ``text_encoder/`` + ``tokenizer/`` (CLIP), ``model_index.json``;
* :func:`save_tiny_svd` — ``stabilityai/stable-video-diffusion-img2vid`` (diffusers): ``unet/``
  (UNetSpatioTemporalConditionModel), ``vae/`` (AutoencoderKLTemporalDecoder), ``image_encoder/``
  (CLIPVisionModelWithProjection), ``feature_extractor/``, ``scheduler/``, ``model_index.json``;
* :func:`save_tiny_wan_vace` — ``Wan-AI/Wan2.1-VACE-1.3B-diffusers``: ``transformer/``
  (WanVACETransformer3DModel), ``vae/`` and a one-row ``prompt_embedding.safetensors``;
* :func:`save_tiny_vjepa2` — ``facebook/vjepa2-vitl-fpc64-256`` (transformers VJEPA2Model);
* :func:`save_tiny_dinov3` — ``facebook/dinov3-vitl16-pretrain-lvd1689m`` (transformers DINOv3ViTModel).

Weights are drawn from an explicit ``torch.Generator`` (:func:`vega3d.standin.wan.randomize_`):
same ``seed`` → same bytes. None of them is the real model, and each folder says so
(:func:`vega3d.standin.write_marker`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vega3d.standin import write_marker
from vega3d.standin.wan import build_tiny_vae, randomize_, write_random_prompt_embedding

#: ImageNet normalisation (V-JEPA 2, DINOv3 preprocessor files) and CLIP's (SVD's feature extractor).
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

#: SD2.1's scheduler config (``scheduler/scheduler_config.json`` of stabilityai/stable-diffusion-2-1).
SD21_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                      num_train_timesteps=1000, prediction_type="v_prediction", set_alpha_to_one=False,
                      steps_offset=1)  # fmt: skip
#: SVD's scheduler config (``scheduler/scheduler_config.json`` of stable-video-diffusion-img2vid).
SVD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                     steps_offset=1, timestep_spacing="leading", timestep_type="continuous",
                     use_karras_sigmas=True)  # fmt: skip


def _built(cls, generator, **config):
    """``cls(**config)`` built without touching the global RNG, then randomised from ``generator``."""
    with torch.random.fork_rng(devices=[]):
        model = cls(**config)
    return randomize_(model, generator).eval()


def _built_hf(model_cls, config, generator):
    """A transformers model from ``config``, randomised from ``generator``."""
    with torch.random.fork_rng(devices=[]):
        model = model_cls(config)
    return randomize_(model, generator).eval()


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_tiny_clip_tokenizer(folder: Path, max_length: int = 77):
    """A CLIP tokenizer with the 256 byte symbols (and their end-of-word forms) and no merges:
    every word is spelled out byte by byte; ``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1 (also pad)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in bytes_to_unicode().values():
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)
    return tokenizer


# ----------------------------------------------------------------------------- Stable Diffusion 2.1


def build_tiny_sd_unet(generator, cross_attention_dim: int = 16):
    """A random UNet2DConditionModel with SD2.1's topology (4 levels, linear projections) at tiny width."""
    from diffusers import UNet2DConditionModel

    return _built(UNet2DConditionModel, generator, sample_size=8, in_channels=4, out_channels=4,
                  block_out_channels=(8, 16, 32, 32), layers_per_block=1, norm_num_groups=4,
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                  cross_attention_dim=cross_attention_dim, attention_head_dim=(2, 2, 4, 4),
                  use_linear_projection=True)  # fmt: skip


def build_tiny_sd_vae(generator):
    """A random AutoencoderKL with SD's topology (factor 8, 4 latent channels) at tiny width."""
    from diffusers import AutoencoderKL

    return _built(AutoencoderKL, generator, in_channels=3, out_channels=3, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64,
                  scaling_factor=0.18215)  # fmt: skip


def save_tiny_sd21(path, *, with_text_encoder: bool = True, seed: int = 0) -> Path:
    """Write a random-weight Stable Diffusion 2.1 stand-in in the diffusers layout; return the path.

    Without ``with_text_encoder`` a random (77, 16) ``prompt_embedding.safetensors`` stands in for
    the empty-prompt context (the real one is the CLIP text encoder's output for "")."""
    from diffusers import DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from vega3d.simulator.prompt import PROMPT_FILE, save_prompt_embedding

    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    build_tiny_sd_unet(gen).save_pretrained(root / "unet")
    build_tiny_sd_vae(gen).save_pretrained(root / "vae")
    DDIMScheduler(**SD21_SCHEDULER).save_pretrained(root / "scheduler")
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDIMScheduler"]}  # fmt: skip
    if with_text_encoder:
        tokenizer = save_tiny_clip_tokenizer(root / "tokenizer")
        cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                             num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                             bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_act="gelu")  # fmt: skip
        _built_hf(CLIPTextModel, cfg, gen).save_pretrained(root / "text_encoder")
        index.update(text_encoder=["transformers", "CLIPTextModel"], tokenizer=["transformers", "CLIPTokenizer"])
    else:
        meta = {"source": "random stand-in (not a CLIP text encoder output)", "text": "", "seed": seed}
        save_prompt_embedding(torch.randn(77, 16, generator=gen), root / PROMPT_FILE, metadata=meta)
    _write_json(root / "model_index.json", index)
    write_marker(root, real="Stable Diffusion 2.1", writer="vega3d.standin.towers.save_tiny_sd21",
                 recipe={"with_text_encoder": with_text_encoder, "seed": seed})  # fmt: skip
    return root


# ----------------------------------------------------------------------------- Stable Video Diffusion


def save_tiny_svd(path, *, seed: int = 0) -> Path:
    """Write a random-weight Stable Video Diffusion (img2vid) stand-in in the diffusers layout."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    # the spatio-temporal blocks use 32 norm groups: widths are multiples of 32
    _built(UNetSpatioTemporalConditionModel, gen, sample_size=8, in_channels=8, out_channels=4,
           block_out_channels=(32, 32, 64, 64), layers_per_block=1, num_attention_heads=(2, 2, 4, 4),
           cross_attention_dim=16, addition_time_embed_dim=4, projection_class_embeddings_input_dim=12,
           transformer_layers_per_block=1, num_frames=14).save_pretrained(root / "unet")  # fmt: skip
    _built(AutoencoderKLTemporalDecoder, gen, in_channels=3, out_channels=3, latent_channels=4,
           down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
           sample_size=64, scaling_factor=0.18215).save_pretrained(root / "vae")  # fmt: skip
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=16)  # fmt: skip
    _built_hf(CLIPVisionModelWithProjection, cfg, gen).save_pretrained(root / "image_encoder")
    _write_json(root / "feature_extractor" / "preprocessor_config.json",
                {"crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_normalize": True,
                 "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
                 "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 1 / 255,
                 "size": {"shortest_edge": 32}})  # fmt: skip
    EulerDiscreteScheduler(**SVD_SCHEDULER).save_pretrained(root / "scheduler")
    _write_json(root / "model_index.json",
                {"_class_name": "StableVideoDiffusionPipeline", "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
                 "vae": ["diffusers", "AutoencoderKLTemporalDecoder"], "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                 "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                 "feature_extractor": ["transformers", "CLIPImageProcessor"]})  # fmt: skip
    write_marker(root, real="Stable Video Diffusion (img2vid)", writer="vega3d.standin.towers.save_tiny_svd",
                 recipe={"seed": seed})  # fmt: skip
    return root


# ----------------------------------------------------------------------------- Wan2.1-VACE


def save_tiny_wan_vace(path, *, num_layers: int = 4, vace_layers=(0, 2), dim: int = 32, seed: int = 0) -> Path:
    """Write a random-weight Wan2.1-VACE stand-in (diffusers layout: ``transformer/`` holds a
    WanVACETransformer3DModel, ``vae/`` the Wan2.1 VAE) with a one-row random prompt context."""
    from diffusers import WanVACETransformer3DModel

    from vega3d.simulator.prompt import PROMPT_FILE

    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    _built(WanVACETransformer3DModel, gen, patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=dim // 2,
           in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=2 * dim, num_layers=num_layers,
           cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
           vace_layers=list(vace_layers), vace_in_channels=96).save_pretrained(root / "transformer")  # fmt: skip
    build_tiny_vae(8, gen).save_pretrained(root / "vae")
    write_random_prompt_embedding(root / PROMPT_FILE, 32, gen, seed)
    write_marker(root, real="Wan2.1-VACE-1.3B", writer="vega3d.standin.towers.save_tiny_wan_vace",
                 recipe={"num_layers": num_layers, "vace_layers": list(vace_layers), "dim": dim, "seed": seed})  # fmt: skip
    return root


# ----------------------------------------------------------------------------- transformers backbones


def save_tiny_vjepa2(path, *, crop_size: int = 32, seed: int = 0) -> Path:
    """Write a random-weight V-JEPA 2 stand-in (transformers VJEPA2Model: ``config.json``,
    ``model.safetensors``, ``video_preprocessor_config.json``)."""
    from transformers import VJEPA2Config, VJEPA2Model

    root = Path(path).expanduser()
    cfg = VJEPA2Config(patch_size=8, crop_size=crop_size, frames_per_clip=8, tubelet_size=2, hidden_size=32,
                       num_attention_heads=2, num_hidden_layers=2, pred_hidden_size=16, pred_num_attention_heads=2,
                       pred_num_hidden_layers=1, num_pooler_layers=1)  # fmt: skip
    _built_hf(VJEPA2Model, cfg, torch.Generator().manual_seed(seed)).save_pretrained(root)
    _write_json(root / "video_preprocessor_config.json",
                {"crop_size": {"height": crop_size, "width": crop_size}, "do_center_crop": True, "do_normalize": True,
                 "do_rescale": True, "do_resize": True, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD,
                 "video_processor_type": "VJEPA2VideoProcessor"})  # fmt: skip
    write_marker(root, real="V-JEPA 2", writer="vega3d.standin.towers.save_tiny_vjepa2",
                 recipe={"crop_size": crop_size, "seed": seed})  # fmt: skip
    return root


def save_tiny_dinov3(path, *, image_size: int = 32, seed: int = 0) -> Path:
    """Write a random-weight DINOv3 ViT stand-in (transformers DINOv3ViTModel, 4 registers)."""
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    root = Path(path).expanduser()
    cfg = DINOv3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=image_size, patch_size=8, num_register_tokens=4)  # fmt: skip
    _built_hf(DINOv3ViTModel, cfg, torch.Generator().manual_seed(seed)).save_pretrained(root)
    _write_json(root / "preprocessor_config.json",
                {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": IMAGENET_MEAN,
                 "image_std": IMAGENET_STD, "image_processor_type": "DINOv3ViTImageProcessorFast",
                 "size": {"height": image_size, "width": image_size}})  # fmt: skip
    write_marker(root, real="DINOv3 ViT", writer="vega3d.standin.towers.save_tiny_dinov3",
                 recipe={"image_size": image_size, "seed": seed})  # fmt: skip
    return root
