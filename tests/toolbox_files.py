"""Small random LoRA files for the toolbox tests: kohya (lora_down/lora_up/alpha) or peft (lora_A/lora_B) keys."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

# name → weight shape (out, in) or (out, in, k, k): a linear, a 1×1 and a 3×3 convolution of an SD UNet
KOHYA_MODULES = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (40, 32),
    "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32, 1, 1),
    "lora_unet_down_blocks_0_resnets_0_conv1": (32, 16, 3, 3),
    "lora_te_text_model_encoder_layers_0_mlp_fc1": (64, 24),
}
PEFT_MODULES = {"diffusion_model.layers.0.attention.to_q": (48, 40),
                "diffusion_model.layers.0.feed_forward.w1": (56, 40)}


def lora_tensors(modules: dict[str, tuple[int, ...]], rank: int, alpha: float | None, seed: int = 0,
                 peft: bool = False) -> dict[str, torch.Tensor]:
    """Random factors of the given rank (conv: down (r, in, k, k), up (out, r, 1, 1)); alpha None writes none."""
    g = torch.Generator().manual_seed(seed)
    down_s, up_s = ("lora_A.weight", "lora_B.weight") if peft else ("lora_down.weight", "lora_up.weight")
    out: dict[str, torch.Tensor] = {}
    for name, shape in modules.items():
        r = min(rank, shape[0], shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1))
        down = torch.randn(r, *shape[1:], generator=g)
        up = torch.randn(shape[0], r, *([1, 1] if len(shape) == 4 else []), generator=g)
        out[f"{name}.{down_s}"], out[f"{name}.{up_s}"] = down, up
        if alpha is not None:
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def write_lora_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata or {})
    return path


def delta(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """ΔW (2-D, fp64) of one module of either layout: up @ down · alpha / rank (scale 1 without alpha)."""
    down = tensors.get(f"{name}.lora_down.weight", tensors.get(f"{name}.lora_A.weight")).double()
    up = tensors.get(f"{name}.lora_up.weight", tensors.get(f"{name}.lora_B.weight")).double()
    alpha = tensors.get(f"{name}.alpha")
    scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
    return up.flatten(1) @ down.flatten(1) * scale
