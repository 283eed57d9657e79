"""Block-wise learning rates and dims/alphas of the UNet, numbered and parsed as sd-scripts' networks/lora.py does.

SD1.5/SD2: 25 blocks. 0–11 are the 12 down (input) blocks, 12 the mid block, 13–24 the 12 up (output) blocks; in a
LoRA name ``down_blocks_i_{resnets|attentions}_j`` is block 1 + 3i + j, ``down_blocks_i_downsamplers`` 1 + 3i + 2,
``up_blocks_…`` the same from 13, ``mid_block_…`` 12. Block 0 (conv_in) has no LoRA.
SDXL: 23 blocks, read from the SAI names: 0 (time/label embedding, no LoRA), ``input_blocks_k`` 1 + k (1–9),
``middle_block_k`` 10 + k, ``output_blocks_k`` 13 + k, 22 (out, no LoRA).

Only the UNet takes part: the text encoders keep network.rank/alpha and the text-encoder LR. A block whose LR weight
is 0 (or not above block_lr_zero_threshold) or whose dim is 0 gets no LoRA at all: its modules are absent from the
file, which WebUI and ComfyUI load as they are.

Pure Python (the checks use it); training/blocks.py applies it to a UNet's modules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

NUM_OF_BLOCKS = 12          # down and up blocks of SD1.5/SD2
NUM_OF_MID_BLOCKS = 1
SDXL_NUM_OF_BLOCKS = 9      # input and output blocks of SDXL
SDXL_NUM_OF_MID_BLOCKS = 3
PRESETS = ("cosine", "sine", "linear", "reverse_linear", "zeros")
LR_KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
DIM_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas")
RE_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")


def total_blocks(sdxl: bool) -> int:
    return 1 + SDXL_NUM_OF_BLOCKS * 2 + SDXL_NUM_OF_MID_BLOCKS + 1 if sdxl else NUM_OF_BLOCKS * 2 + NUM_OF_MID_BLOCKS


def side_blocks(sdxl: bool) -> int:
    """Values of down_lr_weight / up_lr_weight."""
    return SDXL_NUM_OF_BLOCKS if sdxl else NUM_OF_BLOCKS


def mid_blocks(sdxl: bool) -> int:
    return SDXL_NUM_OF_MID_BLOCKS if sdxl else NUM_OF_MID_BLOCKS


def block_index(lora_name: str, sdxl: bool) -> int:
    """Block of a kohya LoRA name (``lora_unet_…``); -1 for a name outside the blocks."""
    if not sdxl:
        m = RE_UPDOWN.search(lora_name)
        if m:
            i, kind, j = int(m[2]), m[3], int(m[4])
            idx = 3 * i + 2 if kind in ("upsamplers", "downsamplers") else 3 * i + j
            return 1 + idx if m[1] == "down" else NUM_OF_BLOCKS + 1 + idx
        return NUM_OF_BLOCKS if "mid_block_" in lora_name else -1
    if not lora_name.startswith("lora_unet_"):
        return -1
    name = lora_name[len("lora_unet_"):]
    if name.startswith(("time_embed_", "label_emb_")):
        return 0
    for head, first in (("input_blocks_", 1), ("middle_block_", 10), ("output_blocks_", 13)):
        if name.startswith(head):
            return first + int(name.split("_")[2])
    return 22 if name.startswith("out_") else -1


def is_set(n: Any) -> bool:
    """Any block-wise option given (block_lr_zero_threshold alone does nothing)."""
    return any(str(getattr(n, k)).strip() for k in (*LR_KEYS, *DIM_KEYS))


def network_args(n: Any) -> dict[str, str]:
    """The options as sd-scripts' network_args (strings, as given), for ss_network_args."""
    args = {k: str(getattr(n, k)).strip() for k in (*LR_KEYS, *DIM_KEYS) if str(getattr(n, k)).strip()}
    if n.block_lr_zero_threshold and any(k in args for k in LR_KEYS):
        args["block_lr_zero_threshold"] = str(n.block_lr_zero_threshold)
    return args


def _bad(key: str, en: str, zh: str, hint_en: str, hint_zh: str) -> ConfigError:
    return ConfigError(en, zh, hint_en, hint_zh, key=f"network.{key}")


def _not_numbers(key: str, text: str) -> ConfigError:
    return _bad(key, f"network.{key} = {text!r} is not a comma-separated list of numbers.",
                f"network.{key} = {text!r} 不是逗号分隔的数字列表。",
                "Write the values separated by commas, e.g. 1,1,0.5.", "请用逗号分隔各个值，例如 1,1,0.5。")


def _numbers(key: str, text: str, kind: type) -> list:
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise _not_numbers(key, text) from None
    if kind is int and any(not v.is_integer() for v in values):
        raise _bad(key, f"network.{key} = {text!r}: dims are whole numbers.",
                   f"network.{key} = {text!r}：dim 必须是整数。",
                   "Write whole numbers, e.g. 4,8,8.", "请填写整数，例如 4,8,8。")
    return [int(v) for v in values] if kind is int else values


def _preset(key: str, text: str, count: int) -> list[float]:
    """sd-scripts' named curves over the down or up blocks, optionally '+number' added to each value."""
    name, _, plus = text.partition("+")
    try:
        base = float(plus) if plus else 0.0
    except ValueError:
        base = math.nan
    if name not in PRESETS or math.isnan(base):
        raise _bad(key, f"network.{key} = {text!r} is neither {count} comma-separated weights nor a preset.",
                   f"network.{key} = {text!r} 既不是 {count} 个逗号分隔的权重，也不是预设。",
                   f"Give {count} weights (e.g. 1,1,0.5,…) or one of {', '.join(PRESETS)}, optionally with "
                   "+number (e.g. sine+0.5).",
                   f"请给出 {count} 个权重（例如 1,1,0.5,…），或预设之一：{'、'.join(PRESETS)}，可加 +数字"
                   "（例如 sine+0.5）。")
    steps = range(count)
    if name in ("cosine", "sine"):
        order = reversed(steps) if name == "cosine" else steps
        return [math.sin(math.pi * (i / (count - 1)) / 2) + base for i in order]
    if name in ("linear", "reverse_linear"):
        return [i / (count - 1) + base for i in (steps if name == "linear" else reversed(steps))]
    return [base] * count


def _lr_list(key: str, text: str, count: int) -> list[float]:
    """Weights of one part, padded with 1 or cut to `count` as sd-scripts does (lr_weight_notes says so)."""
    if "," in text or key == "mid_lr_weight":
        try:  # an empty entry is 0, as sd-scripts reads it
            values = [float(s) if s.strip() else 0.0 for s in text.split(",")]
        except ValueError:
            raise _not_numbers(key, text) from None
    else:
        values = _preset(key, text, count)
    return (values + [1.0] * count)[:count]


def lr_weight_notes(n: Any, sdxl: bool) -> list[tuple[str, int, int]]:
    """(key, given, expected) for each weight list that sd-scripts pads with 1 or cuts."""
    notes = []
    for key in LR_KEYS:
        text = str(getattr(n, key)).strip()
        count = mid_blocks(sdxl) if key == "mid_lr_weight" else side_blocks(sdxl)
        if text and ("," in text or key == "mid_lr_weight") and len(text.split(",")) != count:
            notes.append((key, len(text.split(",")), count))
    return notes


def lr_weights(n: Any, sdxl: bool) -> list[float] | None:
    """The LR weight of each block (total_blocks long), or None when no weight is given."""
    texts = {k: str(getattr(n, k)).strip() for k in LR_KEYS}
    if not any(texts.values()):
        return None
    parts = {}
    for key, text in texts.items():
        count = mid_blocks(sdxl) if key == "mid_lr_weight" else side_blocks(sdxl)
        values = _lr_list(key, text, count) if text else [1.0] * count
        if text:  # a weight not above the threshold turns its blocks off
            values = [w if w > n.block_lr_zero_threshold else 0.0 for w in values]
        parts[key] = values
    weights = parts["down_lr_weight"] + parts["mid_lr_weight"] + parts["up_lr_weight"]
    return [1.0, *weights, 1.0] if sdxl else weights  # SDXL: the embedding and out blocks, no LoRA there


@dataclass
class Blocks:
    """What each UNet block gets: an LR weight (None: all 1), a dim and alpha, and for 3×3 convs conv dims and
    alphas (None: no conv LoRA)."""

    sdxl: bool
    lr: list[float] | None
    dims: list[int]
    alphas: list[float]
    conv_dims: list[int] | None
    conv_alphas: list[float] | None

    def rank_alpha(self, lora_name: str, conv3x3: bool) -> tuple[int, float]:
        """(rank, alpha) of one module by its kohya name; rank 0 = no LoRA there. Alpha 0 means alpha = rank."""
        i = block_index(lora_name, self.sdxl)
        if i < 0:
            return 0, 0.0
        if conv3x3:
            if self.conv_dims is None:
                return 0, 0.0
            return self.conv_dims[i], self.conv_alphas[i]
        return self.dims[i], self.alphas[i]


def _per_block(key: str, text: str, kind: type, total: int, family_name: str) -> list:
    values = _numbers(key, text, kind)
    if len(values) != total:
        raise _bad(key, f"network.{key} has {len(values)} values; {family_name} has {total} blocks.",
                   f"network.{key} 有 {len(values)} 个值；{family_name} 共有 {total} 个块。",
                   f"Give exactly {total} comma-separated values (down, mid, up as sd-scripts numbers them).",
                   f"请给出正好 {total} 个逗号分隔的值（按 sd-scripts 的编号：down、mid、up）。")
    if any(v < 0 for v in values):
        raise _bad(key, f"network.{key} has a negative value.", f"network.{key} 含有负数。",
                   "Use 0 or more (a dim of 0 = no LoRA in that block).",
                   "请使用 0 或更大的值（dim 为 0 表示该块没有 LoRA）。")
    return values


def from_config(n: Any, family: str) -> Blocks | None:
    """The block plan of a network config for an SD family, or None when no block-wise option is set.

    As sd-scripts: any LR weight or block_dims turns it on; dims default to rank, alphas to alpha; conv dims to
    conv_dim when conv_dim > 0 and conv_block_dims is empty; a block with LR weight 0 gets dim 0."""
    if not is_set(n):
        return None
    sdxl = family == "sdxl"
    lr = lr_weights(n, sdxl)
    total = total_blocks(sdxl)
    name = "SDXL" if sdxl else "SD1.5/SD2"
    text = {k: str(getattr(n, k)).strip() for k in DIM_KEYS}
    if lr is None and not text["block_dims"]:
        given = next(k for k in DIM_KEYS if text[k])
        raise _bad(given, f"network.{given} takes effect only with block_dims or an LR weight (down/mid/up_lr_weight),"
                   " as in sd-scripts.",
                   f"network.{given} 只有在设置了 block_dims 或分层学习率权重（down/mid/up_lr_weight）时才生效"
                   "（与 sd-scripts 相同）。",
                   "Set network.block_dims too, or clear this field.", "请同时设置 network.block_dims，或清空此项。")
    if text["conv_block_alphas"] and not text["conv_block_dims"]:
        raise _bad("conv_block_alphas", "network.conv_block_alphas takes effect only with conv_block_dims, as in "
                   "sd-scripts.",
                   "network.conv_block_alphas 只有在设置了 conv_block_dims 时才生效（与 sd-scripts 相同）。",
                   "Set network.conv_block_dims too, or clear conv_block_alphas.",
                   "请同时设置 network.conv_block_dims，或清空 conv_block_alphas。")
    dims = _per_block("block_dims", text["block_dims"], int, total, name) if text["block_dims"] else [n.rank] * total
    alphas = (_per_block("block_alphas", text["block_alphas"], float, total, name) if text["block_alphas"]
              else [float(n.alpha)] * total)
    if text["conv_block_dims"]:
        conv_dims = _per_block("conv_block_dims", text["conv_block_dims"], int, total, name)
        conv_alphas = (_per_block("conv_block_alphas", text["conv_block_alphas"], float, total, name)
                       if text["conv_block_alphas"] else [float(n.conv_alpha)] * total)
    elif n.conv_dim:
        conv_dims, conv_alphas = [n.conv_dim] * total, [float(n.conv_alpha)] * total
    else:
        conv_dims = conv_alphas = None
    if lr is not None:  # no LR, no LoRA
        dims = [0 if w == 0 else d for d, w in zip(dims, lr)]
        if conv_dims is not None:
            conv_dims = [0 if w == 0 else d for d, w in zip(conv_dims, lr)]
    return Blocks(sdxl, lr, dims, alphas, conv_dims, conv_alphas)

