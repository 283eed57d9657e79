"""Noise shapes and noise-level loss weights for the SD UNet families, as sd-scripts trains them.

`pyramid` follows sd-scripts' `pyramid_noise_like` (library/custom_train_functions.py, after the
multi-resolution noise report by J. Whitaker): Gaussian noise drawn at ever coarser sizes (each a random factor
of 2–4 smaller than the last) is upscaled bilinearly and added with weight discount**i, then the sum is scaled back
to unit standard deviation. The result carries far more low-frequency energy than plain Gaussian noise.

`v_loss_weight` is sd-scripts' pair of v-prediction loss options (library/custom_train_functions.py), with
scale = SNR / (SNR + 1), SNR at most 1000: --scale_v_pred_loss_like_noise_pred multiplies a v-prediction loss by
scale (the v loss is the epsilon loss times (SNR + 1) / SNR, so this turns it back into an epsilon-like loss);
--v_pred_like_loss r adds r · loss / scale to an epsilon loss (a v-prediction-like term).
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


def v_loss_weight(snr: Any, scale_like_noise: bool, v_pred_like: float) -> Any:
    """Per-sample loss factor of the two v-prediction loss options (1 when both are off).

    SNR is clamped to at most 1000 as sd-scripts does, and to at least 0.001 so that the zero-SNR last step of a
    rescaled (zero terminal SNR) schedule does not divide by zero."""
    import torch

    scale = snr.clamp(min=1e-3, max=1000.0)
    scale = scale / (scale + 1)
    weight = torch.ones_like(scale)
    if scale_like_noise:
        weight = weight * scale
    if v_pred_like:
        weight = weight * (1 + v_pred_like / scale)  # loss + loss / scale * r
    return weight
