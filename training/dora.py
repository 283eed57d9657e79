"""DoRA in the convention WebUI and ComfyUI apply: LyCORIS's input-axis decomposition (``wd_on_output=False``).

The merged weight is W' = (W + ΔW) · m / ‖W + ΔW‖, the norm taken per input column (over the output rows and the
kernel), m one magnitude per input channel, initialised to W's column norms so that an untrained layer is W.
A1111 (``extensions-builtin/Lora/network.py`` ``apply_weight_decompose``) and ComfyUI
(``comfy/weight_adapter/base.py`` ``weight_decompose``) merge a file's ``dora_scale`` of shape (1, in)
(conv (1, in, 1, 1)) exactly so. peft's own DoRA keeps one magnitude per output row, which neither applies.

Since W' = (W + ΔW) · diag(c) with c = m / ‖W + ΔW‖ per input channel, the layer's output is the plain LoRA layer
applied to c ⊙ x: no merged weight is needed in the forward pass, only the column norms. The norm is detached, as
peft does (DoRA paper §4.3). ΔW is (up · scale) @ down, the product the file stores with alpha = rank, so a loader
that scales before or after the decomposition computes the same weight.
"""

from __future__ import annotations

import types
from typing import Any

from models.lycoris import DORA_MAGNITUDE as MAGNITUDE  # named lora_*: the trainer trains it


def column_norm(weight: Any) -> Any:
    """‖W‖ per input column: over dim 0 and any kernel dims; shape (in,)."""
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)


def scaled_up(layer: Any, adapter: str) -> Any:
    """lora_up · scale, flattened to (out, r): the up-weights the file stores (its alpha = rank)."""
    return layer.lora_B[adapter].weight.flatten(1) * layer.scaling[adapter]


def delta(layer: Any, adapter: str) -> Any:
    """ΔW in the layer's weight shape, fp32."""
    weight = layer.get_base_layer().weight
    down = layer.lora_A[adapter].weight.flatten(1).float()
    return (scaled_up(layer, adapter).float() @ down).reshape(weight.shape)


def merged_weight(layer: Any, adapter: str) -> Any:
    """W' of a DoRA layer (fp32): what the trainer's forward uses, and what a loader must compute from the file."""
    weight = layer.get_base_layer().weight.float()
    merged = weight + delta(layer, adapter)
    magnitude = getattr(layer, MAGNITUDE)[adapter].float()
    scale = magnitude / column_norm(merged)
    return merged * scale.reshape(1, -1, *([1] * (weight.dim() - 2)))


def _forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    adapter = self._danlu_dora_adapter
    base = self.get_base_layer()
    with torch.autocast(x.device.type, enabled=False):  # the norms in fp32 under mixed precision, as loaders merge
        with_delta = base.weight.float() + delta(self, adapter)
        c = getattr(self, MAGNITUDE)[adapter].float() / column_norm(with_delta).detach()
    c = c.reshape(-1, *([1] * (base.weight.dim() - 2))).to(x.dtype)  # linear: (in,); conv: (in, 1, 1)
    xs = x * c
    lora_in = self.lora_dropout[adapter](xs)
    return base(xs, *args, **kwargs) + self.lora_B[adapter](self.lora_A[adapter](lora_in)) * self.scaling[adapter]


def attach(model: Any, adapter: str = "default") -> int:
    """Turn every peft LoRA layer of `model` into an input-axis DoRA layer; return how many."""
    import torch
    from peft.tuners.lora import LoraLayer
    from torch import nn

    count = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
            continue
        weight = module.get_base_layer().weight
        if not isinstance(module.get_base_layer(), (nn.Linear, nn.Conv2d)):
            raise ValueError(f"DoRA supports Linear and Conv2d layers, not {type(module.get_base_layer()).__name__}")
        with torch.no_grad():
            magnitude = nn.Parameter(column_norm(weight.float()).to(weight.device))
        setattr(module, MAGNITUDE, nn.ParameterDict({adapter: magnitude}))
        module._danlu_dora_adapter = adapter
        module.forward = types.MethodType(_forward, module)
        count += 1
    return count
