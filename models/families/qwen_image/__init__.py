"""Qwen-Image (Alibaba Qwen): a 20 B MMDiT (60 dual-stream blocks), the Qwen2.5-VL-7B text encoder and a causal
3-D (Wan 2.1-style) 16-channel VAE with per-channel latent mean and std.

Variants, named as the releases are (Hugging Face repos Qwen/Qwen-Image, Qwen/Qwen-Image-Edit, -Edit-2509,
-Edit-2511; ComfyUI's files qwen_image_bf16, qwen_image_edit_bf16, qwen_image_edit_2509_bf16, ..._2511_bf16):
image (text to image), edit (one control image), edit_2509 and edit_2511 (EditPlus: up to three control images).
They share architecture and keys, so a header cannot tell them apart: a folder says it by its pipeline class, a
file or hub id by its name, else the user says which.

The package has the file names every DiT family has (models/families/__init__.py states the contract).
Sources of the facts: ../reference/qwen-image.md (diffusers 0.42.1 transformer_qwenimage.py and pipelines/qwenimage,
ComfyUI model_detection.py, musubi-tuner, ai-toolkit).
"""

from __future__ import annotations

import re
from pathlib import Path

from core import family_facts
from models.families.dit_common import folder_is, wrong_part

FAMILY = "qwen_image"
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
VARIANTS = ("image", "edit", "edit_2509", "edit_2511")
EDIT_VARIANTS = VARIANTS[1:]
# The preset a base of each variant is sampled with where no run says otherwise (models.grid.plan.base_sampling);
# the edit variants are sampled as text to image until edit samples land.
SAMPLE_PRESETS = {"image": "qwen_image_24gb"}
LORA_VERSION = "qwen_image"          # ai-toolkit's arch name; musubi writes no ss_base_model_version of its own
MODELSPEC_BY_VARIANT = {"image": "qwen-image", "edit": "qwen-image-edit", "edit_2509": "qwen-image-edit-2509",
                        "edit_2511": "qwen-image-edit-2511"}
MODELSPEC = MODELSPEC_BY_VARIANT["image"]
LORA_MODELSPEC = MODELSPEC + "/lora"
CONTEXT_DIM = 3584          # Qwen2.5-VL-7B's hidden size: the transformer's joint_attention_dim
DIM = 3072                  # the real transformer's width (24 heads of 128)
PIPELINE = "QwenImagePipeline"
# The edit variants' pipelines (recognised in folders; trained and sampled in a later round).
PIPELINE_BY_VARIANT = {"image": PIPELINE, "edit": "QwenImageEditPipeline", "edit_2509": "QwenImageEditPlusPipeline",
                       "edit_2511": "QwenImageEditPlusPipeline"}
DENOISER = "transformer"
REPO_BY_VARIANT = {"image": "Qwen/Qwen-Image", "edit": "Qwen/Qwen-Image-Edit",
                   "edit_2509": "Qwen/Qwen-Image-Edit-2509", "edit_2511": "Qwen/Qwen-Image-Edit-2511"}
IMAGE_REPO = REPO_BY_VARIANT["image"]
HUB_IDS = tuple(REPO_BY_VARIANT.values())
SIZE_MULTIPLE = 16          # VAE ×8, latents packed 2×2
# The prompt template's system turn and user header (34 tokens) are encoded and dropped (pipeline_qwenimage.py).
TEMPLATE_DROP_TOKENS = 34
PART_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "vae/*", "transformer/*.json"]
EDIT_PART_PATTERNS = PART_PATTERNS + ["processor/*"]
MODEL_PATTERNS = PART_PATTERNS + ["transformer/*.safetensors"]
FILE_PREFIX = "model.diffusion_model."
# The LoRA file's module prefix (lora.py): ai-toolkit's, which ComfyUI and diffusers both load.
LORA_PREFIX = "diffusion_model."
# ComfyUI detects Qwen-Image by `txt_norm.weight` (comfy/model_detection.py); the block layout says it is not
# another MMDiT with a text norm.
_MARKS = ("txt_norm.weight", "img_in.weight", "transformer_blocks.0.img_mod.1.weight",
          "transformer_blocks.0.txt_mlp.net.2.weight")
# A name says the variant: repo ids (Qwen-Image-Edit-2509), ComfyUI's files (qwen_image_edit_2509_bf16) and the
# usual renames; the newest first so that "edit_2511" is not read as "edit".
# ai-toolkit's arch names: qwen_image_edit_plus (2509), qwen_image_edit_plus:2511.
_NAME_RULES = (("edit_2511", r"edit.*2511"), ("edit_2509", r"edit.*(2509|plus)"), ("edit", r"edit"))


# --- recognising it -------------------------------------------------------------------------------

def strip_prefix(keys) -> list[str]:
    """Keys without ComfyUI's `model.diffusion_model.` prefix (a transformer file may have it or not)."""
    return [k.removeprefix(FILE_PREFIX) for k in keys]


def matches(keys) -> bool:
    """A Qwen-Image transformer (any variant): diffusers names, which single files use too, with or without the
    `model.diffusion_model.` prefix."""
    names = set(strip_prefix(keys))
    return all(m in names for m in _MARKS)


def variant_from_name(name: str) -> str | None:
    """The variant a file name, folder name or hub id states (Qwen-Image-Edit-2509, qwen_image_edit_2511_bf16),
    None when it states none (a plain Qwen-Image name says nothing certain: an edit model may be renamed)."""
    low = name.lower()
    if "qwen" not in low and "edit" not in low:
        return None
    for variant, pattern in _NAME_RULES:
        if re.search(pattern, low):
            return variant
    return "image" if re.search(r"qwen[-_ ]?image", low) else None


def variant_of_pipeline(class_name: str, repo_name: str = "") -> str | None:
    """The variant a diffusers folder's pipeline class states; EditPlus is 2509 or 2511 by the folder's name
    (2509 when it does not say: diffusers' example loads 2509)."""
    if class_name == PIPELINE:
        return "image"
    if class_name == PIPELINE_BY_VARIANT["edit"]:
        return "edit"
    if class_name == PIPELINE_BY_VARIANT["edit_2509"]:
        return "edit_2511" if variant_from_name(repo_name) == "edit_2511" else "edit_2509"
    return None


def lora_matches(keys, metadata: dict[str, str]) -> bool:
    """A LoRA for Qwen-Image: its metadata (ss_base_model_version qwen_image…, modelspec qwen-image…) or block
    names only this layout has (`img_mlp.net`, `txt_mod.1`, `to_add_out` in `transformer_blocks`; FLUX's blocks
    have `ff` / `norm1` instead)."""
    version = metadata.get("ss_base_model_version", "")
    if version.startswith(LORA_VERSION) or metadata.get("modelspec.architecture", "").startswith("qwen-image"):
        return True
    pat = re.compile(r"^(diffusion_model\.|transformer\.|lora_unet_|lycoris_)?transformer_blocks[._]\d+[._]"
                     r"(img_mlp|txt_mlp|img_mod|txt_mod)[._]")
    return any(pat.match(k) for k in keys)


def is_folder(folder: Path) -> bool:
    """A diffusers folder of any variant (or a transformer-only folder)."""
    return any(folder_is(folder, cls, "QwenImageTransformer2DModel") for cls in set(PIPELINE_BY_VARIANT.values()))


def not_a_base(kind: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a Qwen-Image LoRA given where a base model is needed."""
    return ("This is a LoRA for Qwen-Image, not a base model.", "这是 Qwen-Image 的 LoRA，不是底模。",
            f"Pick the Qwen-Image transformer file (e.g. qwen_image_bf16.safetensors) or folder (or {IMAGE_REPO}) "
            "as the base.",
            f"请选择 Qwen-Image 的 transformer 文件（例如 qwen_image_bf16.safetensors）或文件夹（或 {IMAGE_REPO}）"
            "作为底模。")


def is_qwen25vl(keys) -> bool:
    """Qwen2.5-VL text-encoder weights (ComfyUI's qwen_2.5_vl_7b file or transformers' names): Qwen2 layers
    (q_proj with a bias, no q_norm) with or without the vision tower."""
    return any(k.endswith("layers.0.self_attn.q_proj.bias") for k in keys) and (
        any(k.startswith(("visual.", "model.visual.")) for k in keys)
        or any(k.endswith("embed_tokens.weight") for k in keys)) and not any(
        k.endswith("self_attn.q_norm.weight") for k in keys)


def is_wan_vae(tensors: dict[str, tuple[str, list[int]]]) -> bool:
    """The causal 3-D 16-channel VAE (Wan 2.1 names, as ComfyUI's qwen_image_vae, or diffusers'
    AutoencoderKLQwenImage names): 5-D convolutions into a 16-channel decoder."""
    for key in ("decoder.conv1.weight", "decoder.conv_in.weight"):
        shape = (tensors.get(key) or ("", []))[1]
        if len(shape) == 5 and shape[1] == 16:
            return True
    return False


def other_part(tensors: dict[str, tuple[str, list[int]]]) -> tuple[str, str, str, str] | None:
    """(en, zh, hint_en, hint_zh) when a file is Qwen-Image's text encoder (Qwen2.5-VL) or VAE, not a base."""
    keys = list(tensors)
    if is_qwen25vl(keys):
        what = ("a Qwen2.5-VL text encoder (Qwen-Image uses it)", "Qwen2.5-VL 文本编码器（Qwen-Image 使用它）")
    elif is_wan_vae(tensors):
        what = ("the Qwen-Image / Wan 2.1 VAE", "Qwen-Image / Wan 2.1 的 VAE")
    else:
        return None
    return wrong_part(
        what, "Pick the Qwen-Image transformer (e.g. diffusion_models/qwen_image_bf16.safetensors); the text encoder "
        f"and VAE come from a Qwen-Image diffusers folder beside it or from {IMAGE_REPO}.",
        "请选择 Qwen-Image 的 transformer（例如 diffusion_models/qwen_image_bf16.safetensors）；文本编码器和 VAE "
        f"取自它旁边的 Qwen-Image diffusers 文件夹或 {IMAGE_REPO}。")


# --- what shared code asks ------------------------------------------------------------------

def pipeline_class():
    from diffusers import QwenImagePipeline

    return QwenImagePipeline


def lora_version(prediction: str = "flow") -> str:
    """`ss_base_model_version` of a LoRA trained on this family."""
    return LORA_VERSION


def modelspec_architecture(variant: str = "image") -> str:
    """`modelspec.architecture` of a base (qwen-image, qwen-image-edit…); a LoRA's adds "/lora"."""
    return MODELSPEC_BY_VARIANT.get(variant, MODELSPEC)
