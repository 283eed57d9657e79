"""Qwen-Image's LoRA: the linears it trains and the file layout ai-toolkit writes and ComfyUI / diffusers load.

Layout: `diffusion_model.<diffusers module>.lora_A/lora_B.weight`, no alpha keys (alpha/rank, rslora included, is
folded into lora_B, so a loader reading alpha = rank applies exactly the trained delta). ComfyUI maps every key
(its generic `diffusion_model.` entry: the single file uses the diffusers names) and diffusers 0.42.1's
QwenImageLoraLoaderMixin strips the prefix and loads it (tests/test_qwen_lora_file.py checks both on the full-size
key set). Bare names would load in diffusers and change nothing, so the prefix is always written.

Targets (diffusers 0.42.1 transformer_qwenimage.py, QwenImageTransformerBlock): the joint attention's eight linears,
the two MLPs of each stream, and optionally the modulation linears `img_mod.1` / `txt_mod.1` (musubi-tuner leaves
them out, ai-toolkit trains them). Nothing outside `transformer_blocks.N` (img_in, txt_in, the timestep embedder,
norm_out, proj_out) is ever targeted.
"""

from __future__ import annotations

import re
from typing import Any

from models.families.qwen_image import DENOISER, LORA_PREFIX, LORA_VERSION, MODELSPEC_BY_VARIANT, PREDICTION, VARIANTS

LORA_MODULES = {"attention": ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
                              "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out"),
                "mlp": ("img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"),
                "modulation": ("img_mod.1", "txt_mod.1")}
_BLOCK = re.compile(r"^transformer_blocks\.\d+\.(.+)$")


def lora_target_modules(transformer, targets=("attention", "mlp"), refiners: bool = False) -> list[str]:
    """Full module names of the block linears that get LoRA, by kind ("attention", "mlp", "modulation").
    Qwen-Image has no refiners; the argument is the family seam's."""
    unknown = set(targets) - set(LORA_MODULES)
    if unknown:
        raise ValueError(f"unknown Qwen-Image LoRA targets {sorted(unknown)}; known: {sorted(LORA_MODULES)}")
    wanted = {m for t in targets for m in LORA_MODULES[t]}
    return [name for name, _ in transformer.named_modules() if (m := _BLOCK.match(name)) and m[1] in wanted]


def lora_state(components: dict[str, Any], adapter: str = "default") -> dict[str, Any]:
    """The file's tensors (fp32, CPU) from a peft-injected transformer, scaling folded into lora_B."""
    from models.lora_names import folded_pairs

    model = components.get(DENOISER)
    if model is None:
        raise ValueError("Qwen-Image LoRA files hold the transformer's layers only")
    state = {}
    for name, down, up in folded_pairs(model, "Qwen-Image", adapter):
        state[f"{LORA_PREFIX}{name}.lora_A.weight"] = down
        state[f"{LORA_PREFIX}{name}.lora_B.weight"] = up
    return state


def lora_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Family fields of the file's metadata: alpha is folded, so the file's alpha is its rank; the variant trained
    on is named by modelspec.architecture (qwen-image/lora, qwen-image-edit-2509/lora, ...)."""
    meta = dict(meta)
    if "ss_network_dim" in meta:
        meta["ss_network_alpha"] = str(meta["ss_network_dim"])
    variant = variant_of_meta(meta)
    meta.update({"ss_base_model_version": LORA_VERSION, "ss_v2": "False",
                 "modelspec.architecture": f"{MODELSPEC_BY_VARIANT[variant]}/lora",
                 "modelspec.prediction_type": PREDICTION})
    meta.pop("ss_v_parameterization", None)
    return meta


def variant_of_meta(meta: dict[str, Any]) -> str:
    """The run's model.variant in the embedded run TOML (models.lora_file.CONFIG_KEY), else "image"."""
    from models.lora_file import trained_variant

    return trained_variant(meta, VARIANTS, "image")
