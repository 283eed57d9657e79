"""Stable Diffusion 2.x: OpenCLIP ViT-H/14 text encoder (OpenCLIP names), 512 px epsilon or 768 px v."""

from __future__ import annotations

from core import family_facts

FAMILY = "sd2"
# Label, traits, native resolution and default prediction: the facts row (core/family_facts.py).
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
MODELSPEC = "stable-diffusion-v2-512"
LORA_VERSION = "sd_v2"
CONTEXT_DIM = 1024
TEXT_ENCODER_PREFIX = "cond_stage_model.model."


def matches(keys: set[str] | list[str]) -> bool:
    return any(k.startswith(TEXT_ENCODER_PREFIX) for k in keys)


def lora_version(prediction: str = "epsilon") -> str:
    """`ss_base_model_version` of a LoRA trained on this family (sd_v2_v for the v-prediction release)."""
    return "sd_v2_v" if prediction == "v_prediction" else "sd_v2"


def pipeline_class():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline
