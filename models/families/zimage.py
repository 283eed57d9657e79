"""Z-Image (Tongyi-MAI): a single-stream flow-matching DiT, a Qwen3 text encoder and the 16-channel FLUX VAE.

Turbo, De-Turbo and Base share architecture and keys, so a header cannot tell them apart; the user says which.
"""

from __future__ import annotations

import re
from typing import Any

FAMILY = "zimage"
LABEL = "Z-Image"
NATIVE_RESOLUTION = 1024
PREDICTION = "flow"
MODELSPEC = "z-image"
LORA_VERSION = "zimage"
CONTEXT_DIM = 2560          # Qwen3-4B hidden size: the transformer's cap_feat_dim
DIM = 3840                  # the real transformer's width; Lumina 2, the same layout, has 2304
LUMINA2_DIM = 2304
PIPELINE = "ZImagePipeline"
TURBO_REPO = "Tongyi-MAI/Z-Image-Turbo"
HUB_IDS = ("Tongyi-MAI/Z-Image-Turbo", "Tongyi-MAI/Z-Image", "Tongyi-MAI/Z-Image-Base", "ostris/Z-Image-De-Turbo")
VAE_SHIFT, VAE_SCALE = 0.1159, 0.3611
SCHEDULER_SHIFT = 3.0
MAX_SEQUENCE_LENGTH = 512

# Where the original/ComfyUI single file names a tensor differently from diffusers. The q/k/v projections are
# one fused `attention.qkv` there: rows [0:d] are q, [d:2d] k, [2d:3d] v.
_FILE_TO_DIFFUSERS = (("final_layer.", "all_final_layer.2-1."), ("x_embedder.", "all_x_embedder.2-1."),
                      (".attention.out.", ".attention.to_out.0."), (".attention.k_norm.", ".attention.norm_k."),
                      (".attention.q_norm.", ".attention.norm_q."))
FILE_PREFIX = "model.diffusion_model."


def strip_prefix(keys):
    """Keys without ComfyUI's `model.diffusion_model.` prefix (a transformer file may have it or not)."""
    return [k[len(FILE_PREFIX):] if k.startswith(FILE_PREFIX) else k for k in keys]


def matches(keys) -> bool:
    """A Z-Image transformer single file (original names or diffusers names, with or without the prefix).

    Main blocks carry `adaLN_modulation.0` (a bare Linear); Lumina 2, the same layout otherwise, has
    `adaLN_modulation.1` (after a SiLU). Width 3840 vs 2304 is checked by `dims_problem` with the shapes.
    """
    names = set(strip_prefix(keys))
    has_norm = ("noise_refiner.0.attention.k_norm.weight" in names
                or "noise_refiner.0.attention.norm_k.weight" in names)
    return "layers.0.adaLN_modulation.0.weight" in names and ("cap_embedder.1.weight" in names or has_norm)


def dims_problem(shapes: dict[str, list[int]]) -> str | None:
    """None when the widths are Z-Image's (3840, or a tiny test model's); a reason otherwise."""
    shapes = dict(zip(strip_prefix(shapes), shapes.values()))
    cap = shapes.get("cap_embedder.1.weight")
    if cap and cap[0] == LUMINA2_DIM:
        return "lumina2"
    return None


def from_file_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Original/ComfyUI transformer names → diffusers names (fused qkv split into to_q/to_k/to_v)."""
    out = {}
    for key, value in state.items():
        key = key[len(FILE_PREFIX):] if key.startswith(FILE_PREFIX) else key
        if key == "norm_final.weight":
            continue
        for old, new in _FILE_TO_DIFFUSERS:
            key = key.replace(old, new) if old.startswith(".") or key.startswith(old) else key
        if key.endswith(".attention.qkv.weight"):
            base = key[: -len("qkv.weight")]
            q, k, v = value.chunk(3, dim=0)
            out[base + "to_q.weight"], out[base + "to_k.weight"], out[base + "to_v.weight"] = q, k, v
            continue
        out[key] = value
    return out


def to_file_keys(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """diffusers transformer names → original/ComfyUI names (q/k/v fused into `attention.qkv`)."""
    import torch

    out = {}
    for key, value in state.items():
        m = re.match(r"(.*\.attention\.)to_([qkv])\.weight$", key)
        if m:
            if m.group(2) == "q":
                base = m.group(1)
                out[prefix + base + "qkv.weight"] = torch.cat(
                    [state[base + "to_q.weight"], state[base + "to_k.weight"], state[base + "to_v.weight"]], dim=0)
            continue
        for old, new in _FILE_TO_DIFFUSERS:
            key = key.replace(new, old) if new.startswith(".") or key.startswith(new) else key
        out[prefix + key] = value
    return out


def lora_version(prediction: str = "flow") -> str:
    """`ss_base_model_version` of a LoRA trained on this family (ai-toolkit's value)."""
    return LORA_VERSION


def pipeline_class():
    from diffusers import ZImagePipeline

    return ZImagePipeline


# --- training: which linears get LoRA, and the LoRA file's keys ----------------------------------------------
# Kinds as network.dit_targets names them → module names inside a block. Main blocks are `layers.N`; the
# refiners (`noise_refiner.N`, `context_refiner.N`) are left out by default, as ai-toolkit does.
LORA_MODULES = {"attention": ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0"),
                "feed_forward": ("feed_forward.w1", "feed_forward.w2", "feed_forward.w3"),
                "adaLN": ("adaLN_modulation.0",)}
LORA_BLOCKS = ("layers.",)
REFINER_BLOCKS = ("noise_refiner.", "context_refiner.")
LORA_PREFIX = "diffusion_model."


def lora_key(module_name: str, part: str) -> str:
    """File key of one LoRA matrix (part 'lora_A' or 'lora_B'), as ai-toolkit writes and ComfyUI/diffusers load."""
    return f"{LORA_PREFIX}{module_name}.{part}.weight"
