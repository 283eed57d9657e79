"""Chroma (lodestones, Apache-2.0): FLUX.1's blocks without CLIP, without the guidance input and without the
per-block modulation linears; a `distilled_guidance_layer` (approximator) computes the modulations instead.

The registry finds a DiT family's package by its PIPELINE, so Chroma has its own; its modules reuse FLUX's code
(models/families/flux), which tells the two apart.
"""

from __future__ import annotations

from pathlib import Path

from core import family_facts
from models.families import flux
from models.families.dit_common import folder_is

FAMILY = "chroma"
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
VARIANTS: tuple[str, ...] = ()
# sd-scripts' values (library/flux_utils.py MODEL_VERSION_CHROMA; library/sai_model_spec.py ARCH_FLUX_1_CHROMA).
LORA_VERSION = "chroma"
MODELSPEC = "chroma"
LORA_MODELSPEC = MODELSPEC + "/lora"
CONTEXT_DIM = flux.CONTEXT_DIM
DIM = flux.DIM
PIPELINE = "ChromaPipeline"
DENOISER = "transformer"
HD_REPO = "lodestones/Chroma1-HD"
HUB_IDS = (HD_REPO, "lodestones/Chroma1-Base")
VAE_SHIFT, VAE_SCALE = flux.VAE_SHIFT, flux.VAE_SCALE
SIZE_MULTIPLE = flux.SIZE_MULTIPLE
SAMPLE_PRESETS = {"": "chroma"}  # real CFG 4 with the negative prompt, 30 steps (sd-scripts' docs §4)
PART_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "vae/*", "transformer/*.json"]
MODEL_PATTERNS = PART_PATTERNS + ["transformer/*.safetensors"]
FILE_PREFIX = flux.FILE_PREFIX
LORA_PREFIX = flux.LORA_PREFIX
max_sequence_length = flux.max_sequence_length
strip_prefix = flux.strip_prefix


def matches(keys) -> bool:
    """A Chroma transformer: FLUX's blocks plus `distilled_guidance_layer.*` (BFL or diffusers names, with or
    without `model.diffusion_model.`)."""
    return flux.layout(keys) == "chroma"


def lora_matches(keys, metadata: dict[str, str]) -> bool:
    """A LoRA for Chroma: its blocks are FLUX's, so only the metadata (sd-scripts' `ss_base_model_version` chroma,
    modelspec chroma) tells it apart."""
    return metadata.get("ss_base_model_version", "").startswith(LORA_VERSION) or metadata.get(
        "modelspec.architecture", "").startswith(MODELSPEC)


def is_folder(folder: Path) -> bool:
    """A Chroma diffusers folder (or a transformer-only folder)."""
    return folder_is(folder, PIPELINE, "ChromaTransformer2DModel")


def not_a_base(kind: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a Chroma LoRA given where a base model is needed."""
    return ("This is a LoRA for Chroma, not a base model.", "这是 Chroma 的 LoRA，不是底模。",
            f"Pick the Chroma transformer file (e.g. Chroma1-HD.safetensors) or folder (or {HD_REPO}) as the base.",
            f"请选择 Chroma 的 transformer 文件（例如 Chroma1-HD.safetensors）或文件夹（或 {HD_REPO}）作为底模。")


def other_part(tensors: dict[str, tuple[str, list[int]]]) -> tuple[str, str, str, str] | None:
    """FLUX's module answers for the T5, CLIP-L and VAE files the two families share (it is asked first)."""
    return None


def pipeline_class():
    from diffusers import ChromaPipeline

    return ChromaPipeline


def lora_version(prediction: str = "flow") -> str:
    return LORA_VERSION
