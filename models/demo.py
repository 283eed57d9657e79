"""`python launcher.py demo`: a tiny base model, a small learnable dataset and a run config.

Everything is generated here, so a user with no network can walk through all seven steps.
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

from core import config as cfgmod

DEMO_PROMPTS = ["demo, a red square", "demo, a blue circle"]
DEFAULT_FAMILY = "sd15"  # the demo `launcher.py demo` writes when no family is named
DEMO_DIR = Path("outputs") / "demo"  # the demo tagger (taggers/tiny.py) is written here too, shared by the families


def _images(folder: Path, count: int = 12, size: int = 96) -> None:
    """Flat colour shapes on plain backgrounds: something a tiny model can learn."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    shapes = ["square", "circle"]
    for i in range(count):
        hue = i / count
        r, g, b = (int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.8, 0.9))
        w, h = (size, size) if i % 3 else (size + 32, size - 32)  # a few landscape images for the buckets
        img = Image.new("RGB", (w, h), (240, 240, 235))
        draw = ImageDraw.Draw(img)
        shape = shapes[i % 2]
        box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=(r, g, b))
        name = f"demo_{i:02d}"
        img.save(folder / f"{name}.png")
        colour = ["red", "yellow", "green", "blue", "purple", "pink"][int(hue * 6) % 6]
        (folder / f"{name}.txt").write_text(f"demo, {colour} {shape}, simple background", encoding="utf-8")


def make_demo(root: Path, family: str = "sd15") -> Path:
    """Write <root>/base, <root>/dataset/10_demo and <root>/run.toml; return the run.toml path.

    A DiT family (its package's tiny module: DEMO_PRESET, demo_settings) writes its tiny model as a diffusers
    folder and starts from its preset, scaled down to the tiny model (Z-Image: Turbo with a tiny training adapter
    beside it, base/adapter.safetensors).
    """
    from core.config.presets import PRESETS
    from models import families
    from models.tiny import save_tiny, tiny_resolution

    root = Path(root)
    tiny = save_tiny(family, root / "base")
    dit = families.dit_module(family)
    kit = families.part(dit, "tiny") if dit is not None else None
    base = tiny.folder if kit is not None else tiny.single_file or tiny.folder
    _images(root / "dataset" / "10_demo")
    cfg = cfgmod.default_config()
    if kit is not None and kit.DEMO_PRESET in PRESETS:
        cfg = cfgmod.merge_dict(cfg, PRESETS[kit.DEMO_PRESET])
    cfg.model.base = str(base)
    cfg.dataset.dir = str(root / "dataset")
    cfg.dataset.resolution = 256  # the smallest the schema allows; the tiny UNet works at any size
    cfg.dataset.resolutions = []  # one resolution (the Z-Image preset's 512/768/1024 would be slow on a CPU)
    cfg.dataset.trigger_word = "demo"
    cfg.dataset.min_bucket_reso = 64
    cfg.dataset.max_bucket_reso = 512
    cfg.network.rank = 8
    cfg.network.alpha = 4.0
    cfg.optimizer.lr = 1e-3
    cfg.optimizer.text_encoder_lr = 5e-4
    cfg.training.epochs = 4
    cfg.training.batch_size = 2
    cfg.training.mixed_precision = "no"
    cfg.training.device = "cpu"
    cfg.saving.output_dir = str(root / "runs")
    cfg.saving.name = "demo"
    cfg.saving.every_n_epochs = 2
    cfg.saving.precision = "float"
    cfg.sampling.prompts = list(DEMO_PROMPTS)
    cfg.sampling.steps = 8
    cfg.sampling.width = cfg.sampling.height = max(64, tiny_resolution(family))  # the schema's smallest
    if kit is not None:
        cfg = cfgmod.with_values(cfg, kit.demo_settings(tiny, root))
    path = root / "run.toml"
    cfgmod.save(cfg, path)
    return path


def family_folder(demo_root: str | Path, family: str) -> Path:
    """Where the demo of `family` lives: SD1.5 in demo_root itself (outputs/demo), any other family in
    demo_root/<family> (outputs/demo/zimage), so each demo keeps its own base, dataset, runs and run.toml."""
    return Path(demo_root) if family == DEFAULT_FAMILY else Path(demo_root) / family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher.py demo", description="Write a tiny demo model, dataset and run.")
    parser.add_argument("--out", default=None,
                        help=f"folder to write (default {DEMO_DIR.as_posix()}, another family in {DEMO_DIR.as_posix()}"
                             "/<family>)")
    from models.tiny import FAMILIES

    parser.add_argument("--family", default=DEFAULT_FAMILY, choices=list(FAMILIES))
    args = parser.parse_args(argv)
    path = make_demo(Path(args.out) if args.out else family_folder(DEMO_DIR, args.family), args.family)
    print(f"Demo written: {path.parent}\n  run config: {path}\n  train it:   python launcher.py train {path}")
    return 0
