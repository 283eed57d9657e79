"""FLUX.1 (Black Forest Labs): a double- and single-stream flow-matching DiT, T5-XXL and CLIP-L text encoders and
the 16-channel VAE. Variants: [dev] (guidance-distilled: a `guidance_in` embedder) and [schnell] (4-step, none).

The package has the file names every DiT family has (models/families/__init__.py states the contract). Chroma
(models/families/chroma) shares FLUX's blocks and this package's code; the two are told apart here.
Sources of the facts: ../reference/flux.md (sd-scripts library/flux_utils.py, diffusers single_file_utils.py,
ComfyUI model_detection.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from core import family_facts
from models.families.dit_common import folder_is, wrong_part

FAMILY = "flux"
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
VARIANTS = ("dev", "schnell")
# sd-scripts' values (library/flux_utils.py MODEL_VERSION_FLUX_V1; library/sai_model_spec.py ARCH_FLUX_1_*).
LORA_VERSION = "flux1"
MODELSPEC_BY_VARIANT = {"dev": "flux-1-dev", "schnell": "flux-1-schnell"}
MODELSPEC = MODELSPEC_BY_VARIANT["dev"]
LORA_MODELSPEC = MODELSPEC + "/lora"
CONTEXT_DIM = 4096          # T5-XXL: the transformer's joint_attention_dim
POOLED_DIM = 768            # CLIP-L's pooled output
DIM = 3072                  # the real transformer's width (24 heads of 128)
PIPELINE = "FluxPipeline"
DENOISER = "transformer"
DEV_REPO, SCHNELL_REPO = "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"
HUB_IDS = (DEV_REPO, SCHNELL_REPO)
REPO_BY_VARIANT = {"dev": DEV_REPO, "schnell": SCHNELL_REPO}
VAE_SHIFT, VAE_SCALE = 0.1159, 0.3611
SIZE_MULTIPLE = 16          # VAE ×8, latents packed 2×2
# The preset whose [sampling] a base of each variant is rendered with where no run says otherwise (the XYZ grid's
# LoRA files; the first is assumed when neither the weights nor the form tell): dev 20 steps at CFG 1 (with the
# distilled guidance 3.5), schnell 4 steps.
SAMPLE_PRESETS = {"dev": "flux_dev_24gb", "schnell": "flux_schnell"}
PART_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*", "text_encoder/*",
                 "text_encoder_2/*", "vae/*", "transformer/*.json"]
MODEL_PATTERNS = PART_PATTERNS + ["transformer/*.safetensors"]
FILE_PREFIX = "model.diffusion_model."
LORA_PREFIX = "transformer."  # the default LoRA layout's module prefix (flux/lora.py; never diffusion_model.)
# BFL single files: FLUX.1 has the modulation linears Chroma lacks; FLUX.2 has shared modulations instead.
_BFL_MARK = "double_blocks.0.img_attn.norm.key_norm.scale"
_DIFFUSERS_MARK = "transformer_blocks.0.attn.norm_added_k.weight"


def max_sequence_length(family: str, variant: str = "dev") -> int:
    """T5 tokens: 512 for dev and Chroma (diffusers' default), 256 for schnell (sd-scripts' default for it)."""
    return 256 if family == FAMILY and variant == "schnell" else 512


# --- recognising it -------------------------------------------------------------------------------

def strip_prefix(keys) -> list[str]:
    """Keys without ComfyUI's `model.diffusion_model.` prefix (a transformer file may have it or not)."""
    return [k.removeprefix(FILE_PREFIX) for k in keys]


def layout(keys) -> str | None:
    """What a single file's transformer keys are: "flux" (FLUX.1, BFL or diffusers names), "chroma", "flux2"
    (FLUX.2, which Danlu does not train) or None."""
    names = set(strip_prefix(keys))
    if any(k.startswith("distilled_guidance_layer.") for k in names):
        return "chroma" if _BFL_MARK in names or _DIFFUSERS_MARK in names else None
    if "single_stream_modulation.lin.weight" in names or "double_stream_modulation_img.lin.weight" in names:
        return "flux2"
    if (_BFL_MARK in names and "double_blocks.0.img_mod.lin.weight" in names) or (
            _DIFFUSERS_MARK in names and "transformer_blocks.0.norm1.linear.weight" in names
            and "single_transformer_blocks.0.proj_mlp.weight" in names):  # SD3 has no single-stream blocks
        return "flux"
    return None


def matches(keys) -> bool:
    """A FLUX.1 transformer: BFL names (`double_blocks.*`, with or without `model.diffusion_model.`) or diffusers
    names (`transformer_blocks.*` with `norm1.linear`, which Chroma's blocks lack)."""
    return layout(keys) == "flux"


def variant_of(keys) -> str:
    """dev or schnell: schnell has no guidance embedder (sd-scripts analyze_checkpoint_state, ComfyUI
    model_detection `guidance_embed`)."""
    names = set(strip_prefix(keys))
    dev = "guidance_in.in_layer.weight" in names or "time_text_embed.guidance_embedder.linear_1.weight" in names
    return "dev" if dev else "schnell"


def lora_matches(keys, metadata: dict[str, str]) -> bool:
    """A LoRA for FLUX.1: sd-scripts' `ss_base_model_version` (flux1…), modelspec flux-1-*, or block names only
    this layout has (kohya `lora_unet_double_blocks_…_img_mod_lin`, diffusers `transformer.…norm1.linear`, or
    any FLUX block without Chroma's approximator)."""
    version = metadata.get("ss_base_model_version", "")
    if version.startswith(LORA_VERSION) or metadata.get("modelspec.architecture", "").startswith("flux-1"):
        return True
    if version.startswith("chroma") or metadata.get("modelspec.architecture", "").startswith("chroma"):
        return False
    # BFL names under double/single_blocks, diffusers names under transformer_blocks. Qwen-Image's blocks are
    # transformer_blocks with the same attention names, but with img_mlp / img_mod, which FLUX has under BFL names
    # only: such a file is not FLUX's.
    if any(re.match(r"^(diffusion_model\.|transformer\.|lora_unet_|lycoris_)?transformer_blocks[._]\d+[._]"
                    r"(img|txt)_(mlp|mod)", k) for k in keys):
        return False
    pat = re.compile(r"^(diffusion_model\.|transformer\.|lora_unet_|lora_transformer_|lycoris_)?"
                     r"((double_blocks|single_blocks)[._]\d+[._](img_attn|txt_attn|img_mlp|txt_mlp|img_mod|txt_mod|"
                     r"linear1|linear2|modulation)|(transformer_blocks|single_transformer_blocks)[._]\d+[._]"
                     r"(attn|ff|ff_context|norm1|norm1_context|norm|proj_mlp|proj_out))")
    # Chroma's LoRAs hold the same block names: its metadata tells them apart (checked above); without it a
    # FLUX file is the likelier, and every loader reads the two the same way.
    return any(pat.match(k) for k in keys)


def is_folder(folder: Path) -> bool:
    """A FLUX.1 diffusers folder (or a transformer-only folder)."""
    return folder_is(folder, PIPELINE, "FluxTransformer2DModel")


def not_a_base(kind: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a FLUX.1 LoRA given where a base model is needed."""
    return ("This is a LoRA for FLUX.1, not a base model.", "这是 FLUX.1 的 LoRA，不是底模。",
            f"Pick the FLUX.1 transformer file (e.g. flux1-dev.safetensors) or folder (or {DEV_REPO}) as the base.",
            f"请选择 FLUX.1 的 transformer 文件（例如 flux1-dev.safetensors）或文件夹（或 {DEV_REPO}）作为底模。")


def is_clip_text(keys) -> bool:
    """CLIP text-encoder weights (with or without a `text_model.` or other prefix)."""
    return any(k.endswith("encoder.layers.0.self_attn.q_proj.weight") for k in keys) and any(
        k.endswith("embeddings.token_embedding.weight") for k in keys)


def _is_t5(keys: list[str]) -> bool:
    return any(k.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") for k in keys)


def _is_clip_l(keys: list[str]) -> bool:
    """A CLIP text encoder alone (ComfyUI's clip_l.safetensors, `text_model.` names or transformers 5's bare ones):
    no UNet or transformer beside it."""
    return is_clip_text(keys) and not any(
        k.startswith(("model.diffusion_model.", "unet.", "down_blocks.", "conditioner.", "cond_stage_model."))
        for k in keys)


def other_part(tensors: dict[str, tuple[str, list[int]]]) -> tuple[str, str, str, str] | None:
    """(en, zh, hint_en, hint_zh) when a file is FLUX's T5-XXL, CLIP-L or 16-channel VAE, or a FLUX.2
    transformer, rather than a FLUX.1 / Chroma base."""
    keys = list(tensors)
    if layout(keys) == "flux2":
        return ("This is a FLUX.2 transformer; Danlu trains FLUX.1 (dev, schnell) and Chroma, not FLUX.2.",
                "这是 FLUX.2 的 transformer；丹炉支持训练 FLUX.1（dev、schnell）和 Chroma，不支持 FLUX.2。",
                f"Pick a FLUX.1 model (flux1-dev.safetensors, {DEV_REPO}) or a Chroma model.",
                f"请选择 FLUX.1 模型（flux1-dev.safetensors、{DEV_REPO}）或 Chroma 模型。")
    if _is_t5(keys):
        what = ("a T5-XXL text encoder (FLUX and Chroma use it)", "T5-XXL 文本编码器（FLUX 和 Chroma 使用它）")
    elif _is_clip_l(keys):
        what = ("a CLIP-L text encoder (FLUX uses it)", "CLIP-L 文本编码器（FLUX 使用它）")
    elif len(shape := (tensors.get("decoder.conv_in.weight") or ("", []))[1]) == 4 and shape[1] == 16:  # 2-D
        what = ("a 16-channel VAE (FLUX / Chroma / Z-Image)", "16 通道 VAE（FLUX / Chroma / Z-Image）")
    else:
        return None
    return wrong_part(
        what, "Pick the FLUX.1 or Chroma transformer (e.g. diffusion_models/flux1-dev.safetensors); T5-XXL, CLIP-L "
        "and the VAE are found beside it (ComfyUI's text_encoders/ or clip/ and vae/ folders).",
        "请选择 FLUX.1 或 Chroma 的 transformer（例如 diffusion_models/flux1-dev.safetensors）；T5-XXL、CLIP-L "
        "和 VAE 会在旁边（ComfyUI 的 text_encoders/ 或 clip/ 与 vae/ 文件夹）自动找到。")


# --- what shared code asks ------------------------------------------------------------------

def pipeline_class():
    from diffusers import FluxPipeline

    return FluxPipeline


def lora_version(prediction: str = "flow") -> str:
    """`ss_base_model_version` of a LoRA trained on this family (sd-scripts' value for dev and schnell alike)."""
    return LORA_VERSION


def modelspec_architecture(variant: str = "dev") -> str:
    """`modelspec.architecture` of a base (flux-1-dev / flux-1-schnell); a LoRA's adds "/lora"."""
    return MODELSPEC_BY_VARIANT.get(variant, MODELSPEC)
