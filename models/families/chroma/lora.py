"""Chroma's LoRA: FLUX's layouts and targets (models/families/flux/lora.py). Chroma's blocks have no modulation
linears, and its distilled_guidance_layer is never targeted (only block linears are), as sd-scripts and
OneTrainer's presets leave it out."""

from __future__ import annotations

from typing import Any

from models.families.flux.lora import (  # noqa: F401  (the family seam's names)
    DEFAULT_LAYOUT,
    LAYOUTS,
    layout_state,
    lora_state,
    lora_target_modules,
)
from models.families.flux.lora import lora_metadata as _flux_metadata


def lora_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Family fields of the file's metadata: ss_base_model_version and modelspec `chroma`."""
    return _flux_metadata(meta, family="chroma")
