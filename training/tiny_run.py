"""Tiny runs (tests and the CPU benchmark): a flat-colour dataset and a small config for a tiny base model."""

from __future__ import annotations

from pathlib import Path

from core import config as cfgmod


def flat_dataset(folder: Path, count: int = 4, repeats: int = 2, size: int = 64) -> Path:
    """<folder>/<repeats>_flat with flat-colour images and captions: something a tiny model can learn."""
    from PIL import Image

    sub = folder / f"{repeats}_flat"
    sub.mkdir(parents=True, exist_ok=True)
    colours = [(220, 40, 40), (40, 60, 220), (230, 200, 40), (40, 180, 80)]
    names = ["red", "blue", "yellow", "green"]
    for i in range(count):
        Image.new("RGB", (size, size), colours[i % 4]).save(sub / f"img{i}.png")
        (sub / f"img{i}.txt").write_text(f"{names[i % 4]}, plain colour", encoding="utf-8")
    return folder


def tiny_config(base: Path, dataset: Path, out: Path, name: str, **overrides) -> cfgmod.RunConfig:
    """A two-epoch run at 64 px: rank 4, alpha 2 (≠ rank), text-encoder LoRA on, float files, one sample."""
    cfg = cfgmod.default_config()
    cfg.model.base = str(base)
    cfg.dataset.dir = str(dataset)
    cfg.dataset.resolution = 256
    cfg.dataset.bucket_no_upscale = True  # 64 px images stay 64 px (8×8 latents): fast on a CPU
    cfg.dataset.trigger_word = "flat"
    cfg.network.rank = 4
    cfg.network.alpha = 2.0
    cfg.network.train_text_encoder = True
    cfg.optimizer.lr = 1e-3
    cfg.optimizer.text_encoder_lr = 5e-4
    cfg.optimizer.scheduler = "constant"
    cfg.training.epochs = 2
    cfg.training.batch_size = 2
    cfg.training.mixed_precision = "no"
    cfg.training.device = "cpu"
    cfg.saving.output_dir = str(out)
    cfg.saving.name = name
    cfg.saving.every_n_epochs = 1
    cfg.saving.precision = "float"
    cfg.sampling.prompts = ["flat, red"]
    cfg.sampling.steps = 3
    cfg.sampling.width = 64
    cfg.sampling.height = 64
    for path, value in overrides.items():
        section, key = path.split("__")
        setattr(getattr(cfg, section), key, value)
    return cfg
