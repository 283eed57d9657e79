"""Noise shapes for the SD UNet families: multi-resolution (pyramid) noise as sd-scripts trains it.

`pyramid` follows sd-scripts' `pyramid_noise_like` (library/custom_train_functions.py, after the
multi-resolution noise report by J. Whitaker): Gaussian noise drawn at ever coarser sizes (each a random factor
of 2–4 smaller than the last) is upscaled bilinearly and added with weight discount**i, then the sum is scaled back
to unit standard deviation. The result carries far more low-frequency energy than plain Gaussian noise.
"""

from __future__ import annotations

from typing import Any


def pyramid(noise: Any, iterations: int, discount: float) -> Any:
    """`noise` (b, c, h, w) plus `iterations` upscaled coarser noises weighted discount**i, at unit std."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = noise.shape
    out = noise.float()
    for i in range(iterations):
        r = 2.0 + 2.0 * torch.rand(()).item()  # not always 2×: a random factor in [2, 4)
        hn, wn = max(1, int(h / r**i)), max(1, int(w / r**i))
        coarse = torch.randn(b, c, hn, wn, device=noise.device, dtype=torch.float32)
        out = out + F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * discount**i
        if hn == 1 or wn == 1:
            break  # down to 1×1
    return (out / out.std()).to(noise.dtype)
