"""SDXL's size conditioning reaches the UNet's sinusoid features as the exact numbers, also in bf16 training."""

from __future__ import annotations

from pathlib import Path

import torch

from models.tiny import build_tiny
from training.data import Item
from training.families import sd as model


def _item(original: tuple[int, int], crop: tuple[int, int]) -> Item:
    left, top = crop
    return Item(Path("x.png"), "", "1_x", (1024, 1024), original, (1024, 1024), (left, top, left + 1024, top + 1024))


def test_time_ids_are_float32_and_exact():
    ids = model.sdxl_time_ids([_item((3000, 1337), (301, 259))], "cpu")
    assert ids.dtype == torch.float32
    # bf16 would have made these 3008, 1336, 300 and 260
    assert ids.tolist() == [[1337.0, 3000.0, 259.0, 301.0, 1024.0, 1024.0]]
    assert torch.tensor([3000.0, 301.0]).to(torch.bfloat16).float().tolist() != [3000.0, 301.0]


def test_a_bf16_unet_embeds_the_float32_numbers():
    """The tiny SDXL UNet in bf16 takes the float32 ids: its add_time_proj sees 301, not 300."""
    unet = build_tiny("sdxl").unet.to(torch.bfloat16)
    seen = []
    unet.add_time_proj.register_forward_hook(lambda mod, args, out: seen.append(args[0].clone()))
    ids = model.sdxl_time_ids([_item((3000, 1337), (301, 259))], "cpu")
    hidden = torch.randn(1, 77, unet.config.cross_attention_dim, dtype=torch.bfloat16)
    pooled_dim = unet.add_embedding.linear_1.in_features - 6 * unet.config.addition_time_embed_dim
    out = unet(torch.randn(1, 4, 8, 8, dtype=torch.bfloat16), torch.tensor([411]), encoder_hidden_states=hidden,
               added_cond_kwargs={"text_embeds": torch.randn(1, pooled_dim, dtype=torch.bfloat16), "time_ids": ids})
    assert out.sample.dtype == torch.bfloat16
    assert seen[0].dtype == torch.float32 and seen[0].tolist() == [1337.0, 3000.0, 259.0, 301.0, 1024.0, 1024.0]
