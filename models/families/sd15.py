"""Stable Diffusion 1.x: CLIP ViT-L/14 text encoder (HF names in the single file), 512 px, epsilon."""

from __future__ import annotations

FAMILY = "sd15"
TRAITS = ("unet",)         # the config fields that apply to it: core.config.F(families=...)
LABEL = "SD 1.x"
NATIVE_RESOLUTION = 512
PREDICTION = "epsilon"
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
