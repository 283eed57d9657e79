"""LoRA injection through peft on the layers kohya targets (reference/lora-format.md §3).

UNet: every Linear/Conv2d inside a Transformer2DModel (attention, feed-forward, proj_in/out).
Text encoders: every Linear inside CLIPAttention / CLIPMLP. LoCon (conv_dim > 0) adds ResnetBlock2D,
Downsample2D and Upsample2D: their 3×3 convs get conv_dim/conv_alpha, their Linear and 1×1 layers
rank/alpha, as sd-scripts does.
"""

from __future__ import annotations

from typing import Any

ADAPTER = "default"


def _unet_targets(unet: Any, conv_dim: int) -> tuple[list[str], list[str]]:
    """(rank/alpha targets, conv_dim/conv_alpha targets) of the UNet."""
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from torch import nn

    plain, convs = [], []
    for name, module in unet.named_modules():
        if isinstance(module, Transformer2DModel):
            plain += [f"{name}.{c}" for c, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        elif conv_dim and isinstance(module, (ResnetBlock2D, Downsample2D, Upsample2D)):
            for c, m in module.named_modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
                    convs.append(f"{name}.{c}")
                elif isinstance(m, (nn.Linear, nn.Conv2d)):
                    plain.append(f"{name}.{c}")
    return plain, convs


def _text_targets(text_encoder: Any) -> list[str]:
    from torch import nn

    targets = []
    for name, module in text_encoder.named_modules():
        if type(module).__name__ in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
            targets += [f"{name}.{c}" for c, m in module.named_modules() if isinstance(m, nn.Linear)]
    return targets


def _dit_targets(model: Any, family: str, kinds: list[str], refiners: bool) -> list[str]:
    """The block linears of a DiT family of the chosen kinds: its family module names them."""
    from models import families

    return families.dit_module(family).lora_target_modules(model, tuple(kinds), refiners)


def inject(model: Any, *, rank: int, alpha: float, dropout: float = 0.0, use_dora: bool = False,
           conv_dim: int = 0, conv_alpha: float = 1.0, component: str = "unet", family: str = "",
           dit_targets: list[str] | None = None, dit_refiners: bool = False) -> int:
    """Add the LoRA adapter to `model` in place; return the number of adapted layers.

    alpha 0 means alpha = rank (scale 1), as in sd-scripts. A DiT denoiser (`dit_targets` given) gets LoRA on
    its blocks' linears of those kinds; its family file names them.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if component == "unet" and dit_targets is not None:
        plain, convs = _dit_targets(model, family, dit_targets, dit_refiners), []
    elif component == "unet":
        plain, convs = _unet_targets(model, conv_dim)
    else:
        plain, convs = _text_targets(model), []
    targets = plain + convs
    if not targets:
        return 0
    alpha = alpha or float(rank)
    pattern_rank = {f"^{t}$": conv_dim for t in convs}
    pattern_alpha = {f"^{t}$": conv_alpha or float(conv_dim) for t in convs}
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, use_dora=use_dora,
                        target_modules=targets, rank_pattern=pattern_rank, alpha_pattern=pattern_alpha,
                        init_lora_weights=True)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    model.requires_grad_(False)
    count = 0
    for name, param in model.named_parameters():
        if "lora_" in name:  # lora_A, lora_B and DoRA's lora_magnitude_vector
            param.requires_grad_(True)
            count += "lora_A" in name
    return count


def lora_parameters(model: Any) -> list:
    return [p for p in model.parameters() if p.requires_grad]
