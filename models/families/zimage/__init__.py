"""Z-Image (Tongyi-MAI): a single-stream flow-matching DiT, a Qwen3 text encoder and the 16-channel FLUX VAE.

Turbo, De-Turbo and Base share architecture and keys, so a header cannot tell them apart; the user says which.

The package has the file names every DiT family has (models/families/__init__.py states the contract):
this module holds the facts and recognises the family's files; `load` finds and loads the parts (and fills a
model_info.ModelInfo, since that means looking for the parts beside the model); `lora` is the LoRA file layout and
the modules LoRA trains; `sample` renders as ComfyUI does (its docstring states the semantics); `workflow` is the
ComfyUI graph a sample PNG carries; `tiny` builds the test-sized model.
"""

from __future__ import annotations

import re
from pathlib import Path

from core import family_facts
from models.families.dit_common import folder_is

FAMILY = "zimage"
# Label, traits, native resolution and default prediction: the facts row (core/family_facts.py).
_ROW = family_facts.ROWS[FAMILY]
LABEL, TRAITS, NATIVE_RESOLUTION, PREDICTION = _ROW.label, tuple(sorted(_ROW.traits)), _ROW.native, _ROW.prediction
MODELSPEC = "z-image"
LORA_VERSION = "zimage"
LORA_MODELSPEC = "z-image/lora"
# Turbo's training adapters (merged while training, never saved): downloaded once from the run's source.
TRAINING_ADAPTER_REPO = "ostris/zimage_turbo_training_adapter"
TRAINING_ADAPTER_FILES = {"v1": "zimage_turbo_training_adapter_v1.safetensors",
                          "v2": "zimage_turbo_training_adapter_v2.safetensors"}
CONTEXT_DIM = 2560          # Qwen3-4B hidden size: the transformer's cap_feat_dim
DIM = 3840                  # the real transformer's width; Lumina 2, the same layout otherwise, has 2304
LUMINA2_DIM = 2304
PIPELINE = "ZImagePipeline"
DENOISER = "transformer"    # the pipeline attribute LoRA trains
TURBO_REPO = "Tongyi-MAI/Z-Image-Turbo"
HUB_IDS = ("Tongyi-MAI/Z-Image-Turbo", "Tongyi-MAI/Z-Image", "ostris/Z-Image-De-Turbo")
VAE_SHIFT, VAE_SCALE = 0.1159, 0.3611
SCHEDULER_SHIFT = 3.0
MAX_SEQUENCE_LENGTH = 512
SIZE_MULTIPLE = 16          # VAE ×8, patches of 2
# The preset whose [sampling] (steps, CFG, sampler) a base of each variant is rendered with where no run says
# otherwise (the XYZ grid's LoRA files); the first is assumed when neither the weights nor the form tell. Base:
# the schema's CFG sampling (no preset of its own).
SAMPLE_PRESETS = {"turbo": "zimage_turbo_adapter", "deturbo": "zimage_deturbo", "base": ""}
PART_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "vae/*", "transformer/*.json"]
MODEL_PATTERNS = PART_PATTERNS + ["transformer/*.safetensors"]
# Kinds as network.dit_targets names them → module names inside a block. Main blocks are `layers.N`; the
# refiners (`noise_refiner.N`, `context_refiner.N`) are left out by default, as ai-toolkit does.
LORA_MODULES = {"attention": ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0"),
                "feed_forward": ("feed_forward.w1", "feed_forward.w2", "feed_forward.w3"),
                "adaLN": ("adaLN_modulation.0",)}
LORA_BLOCKS = ("layers.",)
REFINER_BLOCKS = ("noise_refiner.", "context_refiner.")
LORA_PREFIX = "diffusion_model."

FILE_PREFIX = "model.diffusion_model."


# --- recognising it -------------------------------------------------------------------------------

def strip_prefix(keys) -> list[str]:
    """Keys without ComfyUI's `model.diffusion_model.` prefix (a transformer file may have it or not)."""
    return [k.removeprefix(FILE_PREFIX) for k in keys]


def matches(keys) -> bool:
    """A Z-Image transformer (original or diffusers names, with or without the prefix; Lumina 2 too: see is_lumina2).

    Main blocks carry `adaLN_modulation.0` (a bare Linear); Lumina 2 has `adaLN_modulation.1` (after a SiLU).
    """
    names = set(strip_prefix(keys))
    return "layers.0.adaLN_modulation.0.weight" in names and (
        "cap_embedder.1.weight" in names or "noise_refiner.0.attention.k_norm.weight" in names
        or "noise_refiner.0.attention.norm_k.weight" in names)


def is_lumina2(shapes: dict[str, list[int]]) -> bool:
    """Lumina 2 shares the layout at width 2304; Z-Image is 3840 (test models are smaller, never 2304)."""
    cap = dict(zip(strip_prefix(shapes), shapes.values())).get("cap_embedder.1.weight")
    return bool(cap) and cap[0] == LUMINA2_DIM


def lora_matches(keys, metadata: dict[str, str]) -> bool:
    """A LoRA for Z-Image: ai-toolkit's `ss_base_model_version`, or block names only this layout has."""
    if metadata.get("ss_base_model_version", "").startswith("zimage"):
        return True
    pat = re.compile(r"^(diffusion_model\.|transformer\.|lora_unet_|lycoris_)?(layers|noise_refiner|context_refiner)"
                     r"[._]\d+[._](attention[._](to_q|to_k|to_v|to_out|qkv|out)|feed_forward[._]w[123]"
                     r"|adaLN_modulation)")
    return any(pat.match(k) for k in keys)


def is_folder(folder: Path) -> bool:
    """A diffusers folder (or transformer-only folder, as De-Turbo's) of this family."""
    return folder_is(folder, PIPELINE, "ZImageTransformer2DModel")


def not_a_base(kind: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a Z-Image LoRA or training adapter given where a base model is needed."""
    what = ("the Z-Image Turbo training adapter", "Z-Image Turbo 训练适配器") if kind == "adapter" else \
        ("a LoRA for Z-Image", "Z-Image 的 LoRA")
    return (f"This is {what[0]}, not a base model.", f"这是 {what[1]}，不是底模。",
            f"Pick the Z-Image transformer file or folder (or {TURBO_REPO}) as the base"
            + ("; set the adapter in the training adapter field." if kind == "adapter" else "."),
            f"请选择 Z-Image 的 transformer 文件或文件夹（或 {TURBO_REPO}）作为底模"
            + ("；训练适配器请填在“训练适配器”一栏。" if kind == "adapter" else "。"))


def other_part(tensors: dict[str, tuple[str, list[int]]]) -> tuple[str, str, str, str] | None:
    """(en, zh, hint_en, hint_zh) when a file is Z-Image's text encoder (Qwen3) or its 16-channel VAE, not a base."""
    keys = list(tensors)
    if any(k.endswith("layers.0.self_attn.q_norm.weight") for k in keys):
        what = ("a Qwen3 text encoder (Z-Image uses one)", "Qwen3 文本编码器（Z-Image 使用它）")
    elif len(shape := (tensors.get("decoder.conv_in.weight") or ("", []))[1]) == 4 and shape[1] == 16:  # 2-D
        what = ("a 16-channel VAE (Z-Image / FLUX)", "16 通道 VAE（Z-Image / FLUX）")
    else:
        return None
    return (f"This is {what[0]}, not a base model.", f"这是{what[1]}，不是底模。",
            "Pick the Z-Image transformer (e.g. diffusion_models/z_image_turbo_bf16.safetensors); its text encoder "
            "and VAE are found beside it (ComfyUI's text_encoders/ and vae/ folders).",
            "请选择 Z-Image 的 transformer（例如 diffusion_models/z_image_turbo_bf16.safetensors）；"
            "其文本编码器和 VAE 会在旁边（ComfyUI 的 text_encoders/ 与 vae/ 文件夹）自动找到。")


# --- what shared code asks ------------------------------------------------------------------

def pipeline_class():
    from diffusers import ZImagePipeline

    return ZImagePipeline


def lora_version(prediction: str = "flow") -> str:
    """`ss_base_model_version` of a LoRA trained on this family (ai-toolkit's value)."""
    return LORA_VERSION
