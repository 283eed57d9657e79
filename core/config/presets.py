"""Presets from the field's practice. Each is a partial config applied after the defaults."""

from __future__ import annotations

from core.errors import ConfigError

# Z-Image trains at 512, 768 and 1024 at once, as the seed guide's ai-toolkit config does (resolution: [512, 768,
# 1024]); min_bucket_reso 256 leaves the 512 resolution its aspect-ratio buckets (at 512 a floor of 512 would allow
# only the square).
_ZIMAGE_COMMON = {
    "dataset": {"resolution": 1024, "resolutions": [512, 768, 1024], "min_bucket_reso": 256, "max_bucket_reso": 2048,
                "cache_latents": "disk", "caption_dropout_rate": 0.05, "cache_text_encoder_outputs": False},
    "network": {"rank": 16, "alpha": 16.0, "train_unet": True, "train_text_encoder": False,
                "dit_targets": ["attention", "feed_forward", "adaLN"], "dit_refiners": False},
    "optimizer": {"name": "AdamW8bit", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "constant", "warmup": 0.0},
    "training": {"batch_size": 1, "gradient_accumulation_steps": 1, "max_train_steps": 3000,
                 "mixed_precision": "bf16", "gradient_checkpointing": True, "timestep_type": "weighted",
                 "timestep_bias": "balanced"},
    "saving": {"every_n_epochs": 0, "every_n_steps": 250, "keep_last": 8, "precision": "bf16"},
}

# FLUX.1 and Chroma start from Z-Image's recipe (rank 16, LR 1e-4, AdamW8bit, a file every 250 steps); their
# T5-XXL is 9.5 GB in bf16, so its outputs are cached and it is freed before training.
_FLUX_COMMON = {
    **_ZIMAGE_COMMON,
    "dataset": {**_ZIMAGE_COMMON["dataset"], "caption_dropout_rate": 0.0, "cache_text_encoder_outputs": True},
    "training": {**_ZIMAGE_COMMON["training"], "max_train_steps": 2000, "fp8_base": True, "timestep_type": "sigmoid"},
    "sampling": {"steps": 20, "cfg": 1.0, "width": 1024, "height": 1024, "sampler": "euler"},
}

PRESETS: dict[str, dict] = {
    "anime_sd15": {
        "dataset": {"resolution": 512},
        "network": {"rank": 32, "alpha": 16.0},
        "optimizer": {"name": "AdamW", "lr": 2e-4},
        "training": {"epochs": 10, "batch_size": 2, "clip_skip": 2},
        "saving": {"every_n_epochs": 2},
    },
    "realistic_sd15": {
        "dataset": {"resolution": 512},
        "network": {"rank": 64, "alpha": 32.0},
        "optimizer": {"name": "AdamW", "lr": 1e-4},
        "training": {"epochs": 10, "batch_size": 2, "clip_skip": 1},
        "saving": {"every_n_epochs": 2},
    },
    "product_sd15": {
        "dataset": {"resolution": 512},
        "network": {"rank": 32, "alpha": 16.0},
        "optimizer": {"name": "AdamW", "lr": 1e-4},
        "training": {"epochs": 12, "batch_size": 2},
        "saving": {"every_n_epochs": 2},
    },
    "sdxl_1024": {
        "dataset": {"resolution": 1024, "max_bucket_reso": 2048},
        "network": {"rank": 32, "alpha": 16.0},
        "optimizer": {"name": "AdamW", "lr": 1e-4},
        "training": {"epochs": 10, "batch_size": 1, "mixed_precision": "bf16"},
        "sampling": {"width": 1024, "height": 1024},
    },
    "lowvram_8gb": {
        "network": {"rank": 16, "alpha": 8.0, "train_text_encoder": False},
        "optimizer": {"name": "AdamW8bit"},
        "training": {"batch_size": 1, "gradient_checkpointing": True, "mixed_precision": "fp16"},
        "dataset": {"cache_latents": "disk", "cache_text_encoder_outputs": True},
    },
    # SDXL on an 8 GB card (sd-scripts' --fp8_base recipe): the frozen UNet in fp8, checkpointing, cached text
    # encoder outputs, rank 16; core.runs.estimate puts it at about 7 GB.
    "sdxl_8gb_fp8": {
        "dataset": {"resolution": 1024, "max_bucket_reso": 2048, "cache_latents": "disk",
                    "cache_text_encoder_outputs": True},
        "network": {"rank": 16, "alpha": 8.0, "train_text_encoder": False},
        "optimizer": {"name": "AdamW8bit", "lr": 1e-4},
        "training": {"epochs": 10, "batch_size": 1, "gradient_checkpointing": True, "mixed_precision": "bf16",
                     "fp8_base": True},
        "sampling": {"width": 1024, "height": 1024},
    },
    "lowvram_12gb": {
        "network": {"rank": 32, "alpha": 16.0},
        "optimizer": {"name": "AdamW8bit"},
        "training": {"batch_size": 1, "gradient_checkpointing": True},
        "dataset": {"cache_latents": "memory"},
    },
    "vram_16gb": {
        "training": {"batch_size": 2, "gradient_checkpointing": False},
        "dataset": {"cache_latents": "memory"},
    },
    "vram_24gb": {
        "training": {"batch_size": 4, "mixed_precision": "bf16"},
        "dataset": {"cache_latents": "memory"},
    },
    # Z-Image (the seed guide's baselines): rank 16, LR 1e-4, AdamW8bit, 2500–3000 steps for 10–30 images, a file
    # and samples every 250 steps. Turbo keeps its 8-step, guidance-free sampling through the training adapter;
    # De-Turbo is sampled like a normal model (25 steps, CFG 3 as ComfyUI counts it = diffusers guidance 2).
    "zimage_turbo_adapter": {
        "model": {"family": "zimage", "variant": "turbo", "training_adapter": "v2"},
        **_ZIMAGE_COMMON,
        "sampling": {"steps": 8, "cfg": 1.0, "width": 1024, "height": 1024, "sampler": "euler"},
    },
    "zimage_deturbo": {
        "model": {"family": "zimage", "variant": "deturbo", "training_adapter": "none"},
        **_ZIMAGE_COMMON,
        "sampling": {"steps": 25, "cfg": 3.0, "width": 1024, "height": 1024, "sampler": "euler"},
    },
    # FLUX.1 (sd-scripts docs/flux_train_network.md §6.1, ai-toolkit config/examples/train_lora_flux_24gb.yaml):
    # rank 16, LR 1e-4, sigmoid timesteps (ai-toolkit's default), T5 and CLIP outputs cached then freed. The
    # bf16 transformer alone is 22 GiB, so every FLUX preset keeps the frozen base in fp8: at 24 GB batch 2
    # (sd-scripts' 24 GB recipe), at 16 GB batch 1, at 12 GB 16 blocks swapped to CPU memory (sd-scripts' 12 GB
    # recipe). Samples as ComfyUI users make them: dev 20 steps at CFG 1 (FluxGuidance 3.5), schnell 4 steps.
    "flux_dev_24gb": {
        "model": {"family": "flux", "variant": "dev"}, **_FLUX_COMMON,
        "training": {**_FLUX_COMMON["training"], "batch_size": 2},
    },
    "flux_dev_16gb": {"model": {"family": "flux", "variant": "dev"}, **_FLUX_COMMON},
    "flux_dev_12gb": {
        "model": {"family": "flux", "variant": "dev"}, **_FLUX_COMMON,
        "training": {**_FLUX_COMMON["training"], "blocks_to_swap": 16},
    },
    "flux_schnell": {
        "model": {"family": "flux", "variant": "schnell"}, **_FLUX_COMMON,
        "sampling": {"steps": 4, "cfg": 1.0, "width": 1024, "height": 1024, "sampler": "euler"},
    },
    # Chroma (sd-scripts docs §4: sigmoid timesteps, T5 mask; samples with real CFG 4 and a negative prompt):
    # 8.9 B parameters, fp8 base and cached text on 16 GB.
    "chroma": {
        "model": {"family": "chroma"}, **_FLUX_COMMON,
        "sampling": {"steps": 30, "cfg": 4.0, "width": 1024, "height": 1024, "sampler": "euler"},
    },
    # Qwen-Image on a 24 GB card (musubi-tuner docs/qwen_image.md: fp8 base + 16 swapped blocks ≈ 24 GB at 1024²,
    # batch 1, checkpointing): the 38 GiB bf16 transformer stored in fp8, 16 of its 60 blocks in CPU memory, and
    # Qwen2.5-VL-7B's outputs cached then the encoder freed. Timesteps weighted as ai-toolkit's Qwen-Image jobs;
    # LoRA on attention and MLP, not the modulation (musubi's network leaves img_mod / txt_mod out).
    # Samples as musubi's and the pipeline's example: 25 steps, true CFG 4 with the negative prompt " " (CFG runs
    # only with a negative prompt).
    "qwen_image_24gb": {
        "model": {"family": "qwen_image", "variant": "image"}, **_FLUX_COMMON,
        "dataset": {**_FLUX_COMMON["dataset"], "resolutions": [], "resolution": 1024},
        "network": {**_FLUX_COMMON["network"], "dit_targets": ["attention", "feed_forward"]},
        "training": {**_FLUX_COMMON["training"], "timestep_type": "weighted", "blocks_to_swap": 16},
        "sampling": {"steps": 25, "cfg": 4.0, "width": 1024, "height": 1024, "sampler": "euler",
                     "negative_prompt": " "},
    },
}


def preset_dict(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'.", f"未知的预设 '{name}'。",
                          f"Presets: {', '.join(PRESETS)}.", f"可用预设：{', '.join(PRESETS)}。", key="preset")
    return PRESETS[name]
