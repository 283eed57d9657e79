"""The block plan (core/config/blocks.py) applied to a UNet: each module's block from its kohya name, the rank and
alpha of each LoRA target, and the trained parameters of each block for the optimizer."""

from __future__ import annotations

from typing import Any

from core.config.blocks import Blocks, block_index, from_config, total_blocks

__all__ = ["block_index", "from_config", "lora_name", "module_ranks", "param_groups", "total_blocks"]


def lora_name(unet: Any, path: str, family: str) -> str:
    """kohya name of a UNet module (its name in the saved file): what the block is read from."""
    from models.lora_names import base_name

    return base_name("unet", unet, path, family)


def module_ranks(unet: Any, family: str, blocks: Blocks, plain: list[str], convs: list[str]
                 ) -> dict[str, tuple[int, float]]:
    """(rank, alpha) of each UNet target that gets LoRA; `convs` are the 3×3 convs (conv dims)."""
    out = {}
    for paths, conv3x3 in ((plain, False), (convs, True)):
        for path in paths:
            rank, alpha = blocks.rank_alpha(lora_name(unet, path, family), conv3x3)
            if rank:
                out[path] = (rank, alpha or float(rank))
    return out


def param_groups(unet: Any, family: str, blocks: Blocks) -> list[tuple[list, float]]:
    """(trained parameters, LR weight) of each UNet block that has LoRA, in block order."""
    from models.lora_names import tuner_layers

    by_block: dict[int, list] = {}
    for path, layer in tuner_layers(unet):
        index = block_index(lora_name(unet, path, family), blocks.sdxl)
        by_block.setdefault(index, []).extend(p for p in layer.parameters() if p.requires_grad)
    return [(params, 1.0 if blocks.lr is None else blocks.lr[i]) for i, params in sorted(by_block.items())]
