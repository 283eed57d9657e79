"""Precision of the frozen base and of the LoRA: full bf16 (training.full_bf16) and the fp8-stored base
(training.fp8_base), as sd-scripts' --full_bf16 and --fp8_base.

fp8 base: each frozen Linear/Conv2d of the denoiser keeps its weight as float8_e4m3fn (one byte per value) and
turns it back into the compute precision (the autocast one under mixed precision, else its input's) inside its own
forward, so only one layer's weight exists in the compute precision at a time. Plain tensor casts: it runs on the
CPU as on any GPU. The LoRA's layers (trainable) are left as they are.
"""

from __future__ import annotations

import types
from typing import Any


def _fp8_dtypes() -> tuple:
    import torch

    return tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                 if hasattr(torch, n))


def _dtype(x: Any) -> Any:
    """What the layer computes in: the autocast precision under mixed precision, else the input's."""
    import torch

    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


def _linear(self: Any, x: Any) -> Any:
    import torch.nn.functional as F

    dtype = _dtype(x)
    bias = None if self.bias is None else self.bias.to(dtype)
    return F.linear(x, self.weight.to(dtype), bias)


def _conv(self: Any, x: Any) -> Any:
    dtype = _dtype(x)
    bias = None if self.bias is None else self.bias.to(dtype)
    return self._conv_forward(x, self.weight.to(dtype), bias)


def store_fp8(model: Any, keep: tuple[str, ...] = ()) -> int:
    """Store the frozen Linear/Conv2d weights of `model` as float8_e4m3fn, upcast per layer in forward; biases, norms
    and the trainable (LoRA) layers stay as they are, and so do the layers under the module names in `keep` (those
    whose caller reads their weight's dtype to cast its input). Returns the number of layers stored in fp8."""
    import torch

    n = 0
    for name, module in model.named_modules():
        if type(module) not in (torch.nn.Linear, torch.nn.Conv2d) or module.weight.requires_grad:
            continue
        if any(name == k or name.startswith(k + ".") for k in keep):
            continue
        if module.weight.dtype in _fp8_dtypes():
            continue
        module.weight.data = module.weight.data.to(torch.float8_e4m3fn)
        module.forward = types.MethodType(_linear if isinstance(module, torch.nn.Linear) else _conv, module)
        n += 1
    return n


def compute_dtype(model: Any) -> Any:
    """The precision the model computes in: that of its first frozen floating-point parameter that is not stored in
    fp8 (the LoRA's own weights may be fp32 on a 16-bit base), else of its first floating-point one."""
    fp8 = _fp8_dtypes()
    params = [p for p in model.parameters() if p.is_floating_point() and p.dtype not in fp8]
    return next((p.dtype for p in params if not p.requires_grad), params[0].dtype)


def keep_lora_dtype(models: dict[str, Any], full_bf16: bool) -> None:
    """The LoRA's weights: fp32 whatever the base precision, or bf16 with full bf16 (no fp32 copy)."""
    import torch

    dtype = torch.bfloat16 if full_bf16 else torch.float32
    for m in models.values():
        for p in m.parameters():
            if p.requires_grad:
                p.data = p.data.to(dtype)
