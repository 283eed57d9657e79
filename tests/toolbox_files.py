"""Small LoRA files for the toolbox's tests, made without a model: random kohya factors on a few SD1.5 names."""

from __future__ import annotations

from pathlib import Path

MODULES = {  # kohya name → (out, in) of a few SD1.5-named layers (tiny widths)
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (32, 32),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (32, 48),
    "lora_unet_mid_block_attentions_0_proj_in": (64, 64),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (48, 48),
}


def random_kohya(path: Path, seed: int, rank: int = 4, alpha: float = 2.0) -> Path:
    """A kohya LoRA file (fp16, as trainers save by default) with random factors on MODULES."""
    import torch

    from models.lora_file import base_model_version, save_lora

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, (out, inp) in MODULES.items():
        state[f"{name}.lora_down.weight"] = torch.randn(rank, inp, generator=gen) * 0.1
        state[f"{name}.lora_up.weight"] = torch.randn(out, rank, generator=gen) * 0.1
        state[f"{name}.alpha"] = torch.tensor(alpha)
    save_lora(path, state, {"ss_network_dim": rank, "ss_network_alpha": alpha, "ss_network_module": "networks.lora",
                            "ss_base_model_version": base_model_version("sd15")}, precision="fp16")
    return path
