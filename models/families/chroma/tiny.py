"""A tiny Chroma: FLUX's tiny blocks without modulation linears, an approximator of width 32, T5 only
(built by models/families/flux/tiny.py, which both families share)."""

from __future__ import annotations

from pathlib import Path

from models.families import chroma
from models.families.flux.tiny import build_chroma, save_transformer_files  # noqa: F401 - the seam's names


def build_tiny(seed: int = 0):
    """A tiny ChromaPipeline with seeded random weights."""
    return build_chroma(seed)


# ---------------------------------------------------------------------------------------------- the demo
DEMO_PRESET = "chroma"  # models/demo.py starts from it, then the generic demo settings


def demo_settings(tiny, root: Path) -> dict:
    """What the Chroma demo sets over the generic demo (models/demo.py): the preset scaled down to a CPU."""
    from core.config import default_config

    return {"model.family": chroma.FAMILY,
            "training.max_train_steps": default_config().training.max_train_steps,
            "saving.every_n_steps": 0, "network.train_text_encoder": False,
            "optimizer.name": "AdamW", "optimizer.lr": 4e-4, "training.fp8_base": False,
            "training.gradient_checkpointing": False, "training.blocks_to_swap": 0,
            "training.epochs": 2, "saving.every_n_epochs": 1, "sampling.steps": 8}
