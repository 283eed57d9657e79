"""The model families: one module each, with the same small set of names.

Each module defines FAMILY, LABEL, NATIVE_RESOLUTION, PREDICTION (the default when nothing says
otherwise), MODELSPEC (the `modelspec.architecture` of a base checkpoint), LORA_VERSION
(`ss_base_model_version` of a LoRA trained on it; `lora_version(prediction)` gives it),
CONTEXT_DIM (the cross-attention width of the
real model, which tells families apart when only the UNet is stored), `matches(keys)` (the
single-file keys that identify it) and `pipeline_class()`.
"""

from __future__ import annotations

from types import ModuleType

from models.families import sd2, sd15, sdxl

MODULES: dict[str, ModuleType] = {"sd15": sd15, "sd2": sd2, "sdxl": sdxl}
FAMILIES = ("sd15", "sd2", "sdxl", "sdxl_refiner")
LABELS = {"sd15": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sdxl_refiner": "SDXL refiner"}
NATIVE = {"sd15": 512, "sd2": 512, "sdxl": 1024, "sdxl_refiner": 1024}


def module(family: str) -> ModuleType:
    """The module of a family; the SDXL refiner and SD2-v share their base's module."""
    key = {"sd2v": "sd2", "sdxl_refiner": "sdxl"}.get(family, family)
    if key not in MODULES:
        raise KeyError(f"unknown model family {family!r}")
    return MODULES[key]


def native_resolution(family: str, prediction: str) -> int:
    """512 for SD1 and SD2-base, 768 for SD2 v-prediction (the 768-v release), 1024 for SDXL."""
    if family in ("sd2", "sd2v") and prediction == "v_prediction":
        return 768
    return NATIVE.get(family, 512)


def modelspec_architecture(family: str, prediction: str) -> str:
    if family in ("sd2", "sd2v"):
        return "stable-diffusion-v2-768-v" if prediction == "v_prediction" else "stable-diffusion-v2-512"
    if family == "sdxl_refiner":
        return "stable-diffusion-xl-v1-refiner"
    return module(family).MODELSPEC


def lora_family(keys: list[str] | dict, metadata: dict[str, str] | None = None) -> str | None:
    """The base family a LoRA/LyCORIS file was made for: from ss_base_model_version / ss_v2, else keys and shapes."""
    meta = metadata or {}
    version = meta.get("ss_base_model_version", "")
    arch = meta.get("modelspec.architecture", "")
    if version.startswith("sdxl") or arch.startswith("stable-diffusion-xl"):
        return "sdxl"
    if version.startswith(("sd_v2", "sd_2")) or meta.get("ss_v2") == "True" or arch.startswith("stable-diffusion-v2"):
        return "sd2"
    if version.startswith(("sd_v1", "sd_1")) or arch.startswith("stable-diffusion-v1"):
        return "sd15"
    names = list(keys)
    if any(k.startswith(("lora_te1_", "lora_te2_", "lora_unet_input_blocks", "lora_unet_output_blocks",
                         "lora_unet_middle_block", "text_encoder_2.")) for k in names):
        return "sdxl"
    shapes = keys if isinstance(keys, dict) else {}
    for k, (_, shape) in shapes.items():  # cross-attention input width tells SD1 (768) from SD2 (1024)
        if "attn2" in k and ("to_k" in k) and ("lora_down" in k or "lora_A" in k) and len(shape) >= 2:
            return {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(shape[1])
    if any("text_model_encoder_layers_22" in k or "text_model.encoder.layers.22" in k for k in names):
        return "sd2"
    return "sd15" if meta else None
