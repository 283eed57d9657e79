"""core.runs.estimate counts the LoRA's parameters block by block: the per-block table is the real architecture's, and
block-wise dims (a block at dim 0 has no LoRA) give the count that the trainer's own LoRA has. Counted on UNets
built from models/configs on the meta device (no weights, no memory)."""

from __future__ import annotations

import pytest
import torch

from core import config as cfgmod
from core.runs import estimate

SD15_DIMS = ",".join(str(d) for d in [0, 4, 4, 8, 8, 8, 16, 16, 16, 0, 0, 0, 32,
                                      0, 0, 0, 16, 16, 16, 8, 8, 8, 0, 4, 4])


def _unet(fam: str):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(f"models/configs/{fam}/unet"))


def _trained(unet, cfg, fam: str) -> int:
    """Trainable parameters once the trainer's LoRA is injected (training/lora.py with the block plan)."""
    from core.config import blocks
    from training import lora

    n = cfg.network
    lora.inject(unet, rank=n.rank, alpha=n.alpha, conv_dim=n.conv_dim, conv_alpha=n.conv_alpha, family=fam,
                blocks=blocks.from_config(n, fam))
    return sum(p.numel() for p in unet.parameters() if p.requires_grad)


@pytest.mark.parametrize("fam", ["sd15", "sdxl"])
def test_the_block_table_is_the_architectures(fam):
    from core.config.blocks import block_index, total_blocks
    from models.lora_names import base_name
    from training.lora import _unet_targets

    unet = _unet(fam)
    modules = dict(unet.named_modules())
    attn, _ = _unet_targets(unet, 0)
    with_conv, convs = _unet_targets(unet, 1)
    counted = {k: [0] * total_blocks(fam == "sdxl") for k in ("attn", "res", "conv")}
    for kind, paths in (("attn", attn), ("res", [p for p in with_conv if p not in set(attn)]), ("conv", convs)):
        for path in paths:
            m = modules[path]
            per_rank = m.in_features + m.out_features if isinstance(m, torch.nn.Linear) else \
                m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels
            counted[kind][block_index(base_name("unet", unet, path, fam), fam == "sdxl")] += per_rank
    assert counted == estimate.UNET_BLOCK_PER_RANK[fam]


@pytest.mark.parametrize("values", [
    {"network.rank": 8},
    {"network.rank": 8, "network.block_dims": SD15_DIMS},
    {"network.rank": 8, "network.conv_dim": 4, "network.block_dims": SD15_DIMS,
     "network.conv_block_dims": SD15_DIMS.replace("32", "2")},
    {"network.rank": 8, "network.down_lr_weight": "1,1,1,0,0,0,1,1,1,1,1,1"},
])
def test_the_estimate_counts_the_trainers_lora(values):
    cfg = cfgmod.with_values(cfgmod.default_config(), {"network.train_text_encoder": False, **values})
    assert estimate.lora_params(cfg, "sd15") == _trained(_unet("sd15"), cfg, "sd15")


def test_block_dims_change_the_estimate_and_dim_zero_blocks_count_nothing():
    base = cfgmod.with_values(cfgmod.default_config(), {"network.rank": 8, "network.train_text_encoder": False})
    table = estimate.UNET_BLOCK_PER_RANK["sd15"]["attn"]
    assert estimate.lora_params(base, "sd15") == 8 * sum(table)
    dims = [int(d) for d in SD15_DIMS.split(",")]
    blockwise = cfgmod.with_values(base, {"network.block_dims": SD15_DIMS})
    assert estimate.lora_params(blockwise, "sd15") == sum(d * w for d, w in zip(dims, table))
    only_mid = cfgmod.with_values(base, {"network.block_dims": ",".join(["0"] * 12 + ["8"] + ["0"] * 12)})
    assert estimate.lora_params(only_mid, "sd15") == 8 * table[12]  # the other blocks' modules are absent
    m_plain = estimate.estimate_memory(base, "sd15").parts[1][2]
    m_mid = estimate.estimate_memory(only_mid, "sd15").parts[1][2]
    assert m_mid < m_plain / 5


def test_block_swap_leaves_the_swapped_blocks_weights_off_the_card():
    """FLUX's 12 GB preset (16 of 57 blocks swapped) asks less of the card than its 16 GB preset by the swapped
    blocks' share of the fp8 transformer, and says so."""
    def gb(name: str, **values):
        cfg = cfgmod.load(preset=name, overrides=[f"{k}={v}" for k, v in values.items()])
        return estimate.estimate_memory(cfg, "flux")

    plain = gb("flux_dev_12gb", **{"training.blocks_to_swap": 0})
    swapped = gb("flux_dev_12gb")
    share = 11901.0 * 1e6 * (16 - 1) / 57 / estimate.GB  # fp8: one byte a weight; one swapped block on the card
    assert swapped.total_gb == pytest.approx(plain.total_gb - share, abs=1e-6)
    assert "16 of 57 blocks swapped" in swapped.parts[0][0] and "57 个块中 16 个" in swapped.parts[0][1]
    assert gb("flux_dev_12gb", **{"training.blocks_to_swap": 58}).total_gb < swapped.total_gb  # capped at 56 blocks
