"""Stable Diffusion 1.x: CLIP ViT-L/14 text encoder (HF names in the single file), 512 px, epsilon."""

from __future__ import annotations

from core import family_facts

FAMILY = "sd15"
# Label, traits, native resolution and default prediction: the facts row (core/family_facts.py).
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
MODELSPEC = "stable-diffusion-v1"
LORA_VERSION = "sd_v1"
CONTEXT_DIM = 768
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."


def matches(keys: set[str] | list[str]) -> bool:
    return any(k.startswith(TEXT_ENCODER_PREFIX) for k in keys)


def lora_version(prediction: str = "epsilon") -> str:
    """`ss_base_model_version` of a LoRA trained on this family."""
    return LORA_VERSION


def pipeline_class():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline
