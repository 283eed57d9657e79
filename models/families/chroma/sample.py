"""Chroma samples: FLUX's code (models/families/flux/sample.py states the semantics): real CFG with the negative
prompt, a bool attention mask, the shift by the image's token count."""

from __future__ import annotations

from models.families.flux.sample import render, render_batch  # noqa: F401  (the family seam's names)
from models.families.flux.sample import sample_recipe as _flux_recipe


def sample_recipe(recipe: dict, args: dict) -> tuple[dict, dict]:
    """models.recipe's family hook for Chroma: CFG as typed, the ComfyUI graph with CLIPLoader(chroma)."""
    return _flux_recipe(recipe, args, family="chroma")
