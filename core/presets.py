"""Presets from the field's practice. Each is a partial config applied after the defaults."""

from __future__ import annotations

from core.errors import ConfigError

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
}


def preset_dict(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'.", f"未知的预设 '{name}'。",
                          f"Presets: {', '.join(PRESETS)}.", f"可用预设：{', '.join(PRESETS)}。", key="preset")
    return PRESETS[name]
