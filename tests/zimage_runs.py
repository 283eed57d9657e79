"""Finished Z-Image run folders made without training, for the grid tests: a config and LoRA files in the run's
naming, written with the tiny adapter writer (the LoRA file format is the same)."""

from __future__ import annotations

from pathlib import Path

from core import config as cfgmod


def fake_run(root: Path, name: str, base_run: Path, seeds: dict[str, int], transformer) -> Path:
    """<root>/<name>/ with config.toml (from `base_run`) and <name><suffix>.safetensors for each suffix → seed."""
    from models.families.zimage.tiny import save_training_adapter

    cfg = cfgmod.load(base_run)
    cfg.saving.output_dir, cfg.saving.name = str(root), name
    cfg.sampling.prompts = ["demo, a red square"]
    folder = Path(root) / name
    folder.mkdir(parents=True)
    cfgmod.save(cfg, folder / "config.toml")
    for suffix, seed in seeds.items():
        save_training_adapter(folder / f"{name}{suffix}.safetensors", transformer, rank=2, seed=seed, std=0.2)
    return folder


def two_runs(root: Path, demo_toml: Path) -> tuple[Path, Path]:
    """lora_v1 (steps 2, 4 and final) and lora_v2 (step 2 and final) under <root>, on the demo's tiny Turbo."""
    from diffusers import ZImageTransformer2DModel

    transformer = ZImageTransformer2DModel.from_pretrained(Path(demo_toml).parent / "base" / "tiny-zimage" /
                                                           "transformer")
    a = fake_run(root, "lora_v1", demo_toml, {"-step00000002": 1, "-step00000004": 2, "": 3}, transformer)
    b = fake_run(root, "lora_v2", demo_toml, {"-step00000002": 4, "": 5}, transformer)
    return a, b
