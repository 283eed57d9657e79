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


# --- layouts and shapes for the resize / extract / inspect tests ---------------------------------------------------

# name → weight shape (out, in) or (out, in, k, k): a linear, a 1×1 and a 3×3 convolution of an SD UNet, a text layer
KOHYA_MODULES = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (40, 32),
    "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32, 1, 1),
    "lora_unet_down_blocks_0_resnets_0_conv1": (32, 16, 3, 3),
    "lora_te_text_model_encoder_layers_0_mlp_fc1": (64, 24),
}
PEFT_MODULES = {"diffusion_model.layers.0.attention.to_q": (48, 40),
                "diffusion_model.layers.0.feed_forward.w1": (56, 40)}


def lora_tensors(modules: dict[str, tuple[int, ...]], rank: int, alpha: float | None, seed: int = 0,
                 peft: bool = False) -> dict:
    """Random fp32 factors of the given rank (conv: down (r, in, k, k), up (out, r, 1, 1)); alpha None writes none."""
    import torch

    g = torch.Generator().manual_seed(seed)
    down_s, up_s = ("lora_A.weight", "lora_B.weight") if peft else ("lora_down.weight", "lora_up.weight")
    out = {}
    for name, shape in modules.items():
        r = min(rank, shape[0], shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1))
        out[f"{name}.{down_s}"] = torch.randn(r, *shape[1:], generator=g)
        out[f"{name}.{up_s}"] = torch.randn(shape[0], r, *([1, 1] if len(shape) == 4 else []), generator=g)
        if alpha is not None:
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def write_lora_file(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """The tensors as they are (no casting, no key checks): files other trainers write, odd keys included."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata or {})
    return path


def delta(tensors: dict, name: str):
    """ΔW (2-D, fp64) of one module of either layout: up @ down · alpha / rank (scale 1 without alpha)."""
    down = tensors.get(f"{name}.lora_down.weight", tensors.get(f"{name}.lora_A.weight")).double()
    up = tensors.get(f"{name}.lora_up.weight", tensors.get(f"{name}.lora_B.weight")).double()
    alpha = tensors.get(f"{name}.alpha")
    scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
    return up.flatten(1) @ down.flatten(1) * scale


# Names a Chinese report keeps as they are: formats, libraries, programs and the settings users know by them
ZH_NAMES = {"LoRA", "LoCon", "LoHa", "LoKr", "DoRA", "kohya", "peft", "lycoris", "rank", "alpha", "UNet", "CLIP",
            "TOML", "SHA", "WebUI", "ComfyUI", "diffusers", "modelspec", "gamma", "MiB", "fp"}


def english_words(text: str) -> set[str]:
    """The Latin-letter words of `text` that are not among ZH_NAMES."""
    import re

    return set(re.findall(r"[A-Za-z]+", text)) - ZH_NAMES
