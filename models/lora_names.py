"""LoRA module names: kohya's (what WebUI, ComfyUI and diffusers load for the SD families) and peft's layers.

The bottom of the LoRA code: models/lora_file.py writes files with these names, models/lycoris.py and the toolbox
find a key's layer with them, and a DiT family's file layout (models/families/<family>/lora.py) walks the layers.
"""

from __future__ import annotations

import re
from typing import Any

PREFIXES = {"unet": "lora_unet", "text_encoder": "lora_te", "text_encoder_2": "lora_te2"}
SDXL_PREFIXES = {"unet": "lora_unet", "text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
DIT_PREFIX = "diffusion_model."  # DiT families: diffusion_model.<diffusers name>.lora_A/lora_B.weight, no alpha


# --- names -----------------------------------------------------------------------------------------

def _sdxl_sai_name(name: str, layers_per_block: int) -> str:
    """diffusers SDXL UNet module path → the SAI (LDM) path kohya uses. Dots kept."""
    n = layers_per_block + 1  # SAI input/output blocks per diffusers block (resnets + sampler)
    resnet_parts = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
                    "conv_shortcut": "skip_connection"}

    def resnet_inner(rest: str) -> str:
        head, _, tail = rest.partition(".")
        return ".".join(filter(None, [resnet_parts.get(head, head), tail]))

    m = re.match(r"down_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        sub = "1" if kind == "attentions" else "0"
        return f"input_blocks.{1 + n * i + j}.{sub}.{rest if kind == 'attentions' else resnet_inner(rest)}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv(.*)", name)
    if m:
        return f"input_blocks.{n * (int(m[1]) + 1)}.0.op{m[2]}"
    m = re.match(r"mid_block\.(attentions|resnets)\.(\d+)\.(.+)", name)
    if m:
        if m[1] == "attentions":
            return f"middle_block.1.{m[3]}"
        return f"middle_block.{2 * int(m[2])}.{resnet_inner(m[3])}"
    m = re.match(r"up_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        sub = "1" if kind == "attentions" else "0"
        return f"output_blocks.{n * i + j}.{sub}.{rest if kind == 'attentions' else resnet_inner(rest)}"
    raise ValueError(f"no SAI name for SDXL UNet module {name!r}")


def kohya_name(component: str, module_name: str, family: str, *, layers_per_block: int = 2,
               upsampler_index: int = 1) -> str:
    """kohya base name of one adapted module (``lora_unet_…``, ``lora_te_…``, ``lora_te1_…``, ``lora_te2_…``)."""
    sdxl = family == "sdxl"
    prefix = (SDXL_PREFIXES if sdxl else PREFIXES)[component]
    name = module_name
    if component == "unet" and sdxl:
        m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv(.*)", name)
        if m:  # the upsampler sits after the attention in blocks that have one
            name = (f"output_blocks.{(layers_per_block + 1) * int(m[1]) + layers_per_block}"
                    f".{upsampler_index}.conv{m[2]}")
        else:
            name = _sdxl_sai_name(name, layers_per_block)
    elif component != "unet" and not name.startswith("text_model."):
        name = "text_model." + name  # newer transformers drop the text_model level; the file keeps it
    return f"{prefix}_{name.replace('.', '_')}"


def lora_layers(model: Any, adapter: str = "default"):
    """(module path, peft LoRA layer) for every layer carrying `adapter`."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            yield name.removeprefix("base_model.model."), module


def folded_pairs(model: Any, label: str, adapter: str = "default"):
    """(module path, lora_A, lora_B × scaling), fp32 CPU, for every layer carrying `adapter`: the trained delta
    with alpha/rank (peft's scaling, rslora included) folded into lora_B, as a DiT family's file holds it. DoRA
    has no such file: refused, naming the family (`label`)."""
    from core.errors import DanluError

    for name, layer in lora_layers(model, adapter):
        if getattr(layer, "lora_magnitude_vector", None) and adapter in layer.lora_magnitude_vector:
            raise DanluError(f"DoRA is not supported for {label} LoRA files.", f"{label} 的 LoRA 文件不支持 DoRA。",
                             "Turn DoRA off.", "请关闭 DoRA。", key="network.use_dora")
        down = layer.lora_A[adapter].weight.detach().float().cpu().contiguous()
        up = layer.lora_B[adapter].weight.detach().float().cpu() * float(layer.scaling[adapter])
        yield name, down, up.contiguous()


def base_name(component: str, model: Any, name: str, family: str) -> str:
    """kohya base name of module `name` of a diffusers model, with the block layout read from its config."""
    config = getattr(model, "config", None)
    lpb = getattr(config, "layers_per_block", 2) if component == "unet" else 2
    up_types = list(getattr(config, "up_block_types", []) or []) if component == "unet" else []
    ups = 1
    m = re.match(r"up_blocks\.(\d+)\.upsamplers", name)
    if m and up_types and "CrossAttn" in up_types[int(m[1])]:
        ups = 2
    return kohya_name(component, name, family, layers_per_block=lpb, upsampler_index=ups)


def module_bases(component: str, model: Any, family: str):
    """(kohya base name, layer) for every Linear/Conv2d of a plain (un-injected) model: how loaders find a key's
    layer."""
    from torch import nn

    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            try:
                yield base_name(component, model, name, family), module
            except ValueError:  # a layer kohya never targets (time embedding, conv_in, …)
                continue


def tuner_layers(model: Any, adapter: str = "default"):
    """(module path, peft LoRA/LoHa/LoKr layer) for every layer carrying `adapter`."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and adapter in getattr(module, "scaling", {}):
            yield name.removeprefix("base_model.model."), module
