"""Stable Diffusion 2.x: OpenCLIP ViT-H/14 text encoder (OpenCLIP names), 512 px epsilon or 768 px v."""

from __future__ import annotations

FAMILY = "sd2"
TRAITS = ("unet",)         # the config fields that apply to it: core.config.F(families=...)
LABEL = "SD 2.x"
NATIVE_RESOLUTION = 512  # 768 for the v-prediction release: see families.native_resolution
PREDICTION = "epsilon"
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
