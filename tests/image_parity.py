"""What parity tests promise.

The same file, recipe and code path twice gives the same image bit for bit: compare those exactly.
Two code paths that compute the same math (peft's in-memory adapter vs the saved file loaded by diffusers; a single
file vs a diffusers folder) must load bitwise-equal weights, but their images may differ by rounding: fp32 GEMM
kernels pick their summation order by CPU (AVX2 vs AVX-512) and by the memory alignment of the weights (a folder's
tensors are read at 8-byte offsets of the file, a converted single file's are fresh aligned allocations).
"""

from __future__ import annotations

import numpy as np

IMAGE_MAX_ABS = 2 / 255  # a rounding difference may move a pixel by one or two 8-bit steps after a few sampler steps
IMAGE_MEAN_ABS = 1e-3  # ... but on average the images are the same


def assert_images_within_rounding(a, b, full_scale: float = 1.0) -> None:
    """a and b (arrays on 0..full_scale: 255 for 8-bit pixels) differ by no more than rounding can explain."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / full_scale
    assert diff.max() <= IMAGE_MAX_ABS and diff.mean() < IMAGE_MEAN_ABS, \
        f"max |Δ| {diff.max():.3g} (bound {IMAGE_MAX_ABS:.3g}), mean {diff.mean():.3g} (bound {IMAGE_MEAN_ABS:g})"


def lora_weights(models: dict, adapter: str) -> dict[str, object]:
    """Every LoRA tensor and scale of `adapter` in the models {'unet': …, …}, by component and layer."""
    from models.lora_names import lora_layers

    out: dict[str, object] = {}
    for component, model in models.items():
        for name, layer in lora_layers(model, adapter):
            key = f"{component}:{name}"
            out[key + ".A"] = layer.lora_A[adapter].weight.detach()
            out[key + ".B"] = layer.lora_B[adapter].weight.detach()
            out[key + ".scale"] = float(layer.scaling[adapter])
    return out


def assert_same_lora_weights(models_a: dict, adapter_a: str, models_b: dict, adapter_b: str) -> None:
    """The two sets of LoRA layers are bitwise equal: same layers, tensors and scales."""
    import torch

    a, b = lora_weights(models_a, adapter_a), lora_weights(models_b, adapter_b)
    assert a and a.keys() == b.keys(), sorted(set(a) ^ set(b))[:5]
    differ = [k for k in a if not (torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k])]
    assert not differ, differ[:5]
