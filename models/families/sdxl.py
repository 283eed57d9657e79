"""SDXL: CLIP-L plus OpenCLIP bigG under conditioner.embedders.0/1, 1024 px, epsilon.

The refiner stores only the OpenCLIP encoder, as embedder 0, and is not a base for LoRA training.
"""

from __future__ import annotations

from core import family_facts

FAMILY = "sdxl"
# Label, traits, native resolution and default prediction: the facts row (core/family_facts.py).
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
MODELSPEC = "stable-diffusion-xl-v1-base"
LORA_VERSION = "sdxl_base_v1-0"
CONTEXT_DIM = 2048
REFINER_CONTEXT_DIM = 1280


def matches(keys: set[str] | list[str]) -> bool:
    return any(k.startswith("conditioner.embedders.1.") for k in keys)


def is_refiner(keys: set[str] | list[str]) -> bool:
    return (any(k.startswith("conditioner.embedders.0.model.") for k in keys)
            and not any(k.startswith("conditioner.embedders.1.") for k in keys))


def lora_version(prediction: str = "epsilon") -> str:
    """`ss_base_model_version` of a LoRA trained on this family."""
    return LORA_VERSION


def pipeline_class():
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline
