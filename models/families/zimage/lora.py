"""Z-Image's LoRA: the linears it trains and the file layout ai-toolkit writes and ComfyUI / diffusers load."""

from __future__ import annotations

import re
from typing import Any

from models.families.zimage import (
    DENOISER,
    LORA_BLOCKS,
    LORA_MODELSPEC,
    LORA_MODULES,
    LORA_PREFIX,
    LORA_VERSION,
    PREDICTION,
    REFINER_BLOCKS,
)


def lora_target_modules(transformer, targets=("attention", "feed_forward", "adaLN"), refiners: bool = False):
    """Full module names of the linears that get LoRA: the main blocks (`layers.N`), and the noise/context
    refiners too when asked. Refiners of the context have no adaLN."""
    blocks = LORA_BLOCKS + REFINER_BLOCKS if refiners else LORA_BLOCKS
    suffixes = tuple(s for t in targets for s in LORA_MODULES[t])
    return [name for name, _ in transformer.named_modules() if name.startswith(blocks) and name.endswith(suffixes)
            and re.match(r"^\w+\.\d+\.", name)]


def lora_state(components: dict[str, Any], adapter: str = "default") -> dict[str, Any]:
    """The file's tensors from a peft-injected transformer: `diffusion_model.<name>.lora_A/lora_B.weight`,
    fp32 CPU. No alpha keys: alpha/rank (peft's scaling, rslora included) is folded into lora_B, so every loader
    (diffusers, ComfyUI, ai-toolkit) reads alpha = rank and applies exactly the trained delta."""
    from models.lora_names import folded_pairs

    model = components.get(DENOISER)
    if model is None:
        raise ValueError("Z-Image LoRA files hold the transformer's layers only")
    state = {}
    for name, down, up in folded_pairs(model, "Z-Image", adapter):
        state[lora_key(name, "lora_A")] = down
        state[lora_key(name, "lora_B")] = up
    return state


def lora_key(module_name: str, part: str) -> str:
    """File key of one LoRA matrix (part 'lora_A' or 'lora_B'), as ai-toolkit writes and ComfyUI/diffusers load."""
    return f"{LORA_PREFIX}{module_name}.{part}.weight"


def lora_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Family fields of the file's metadata: alpha is folded, so the file's alpha is its rank."""
    meta = dict(meta)
    if "ss_network_dim" in meta:
        meta["ss_network_alpha"] = str(meta["ss_network_dim"])
    meta.update({"ss_base_model_version": LORA_VERSION, "ss_v2": "False", "modelspec.architecture": LORA_MODELSPEC,
                 "modelspec.prediction_type": PREDICTION})
    meta.pop("ss_v_parameterization", None)
    return meta
