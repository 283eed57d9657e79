"""What a family's training setup (training/families/<setup>.py) hands the loop: the frozen base model's parts.

The loop, the caches, the validation pass and the sample renders read these fields and call the setup's stages
through ``parts.setup``; none of them asks which family it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass
class Parts:
    family: str                 # the facts row's name (core.family_facts): sd15 | sd2 | sdxl | zimage | …
    prediction_type: str        # epsilon | v_prediction | flow
    unet: Any                   # the denoiser: the UNet, or a DiT family's transformer
    vae: Any
    text_encoders: list
    tokenizers: list
    noise_scheduler: Any
    scheduler_config: dict
    setup: ModuleType           # the family's training seam: training/families/<setup>.py
    pipe: Any = None            # DiT families: the loaded pipeline, whose encode_prompt the trainer uses
    flow: Any = None            # flow families: training.flow.FlowSpec
    # a seam's own cache of frozen features (FLUX: T5's rows while CLIP-L's LoRA trains and is encoded each step)
    seam_cache: dict = field(default_factory=dict)

    @property
    def is_flow(self) -> bool:
        return self.flow is not None


def encode_latents(parts: Parts, pixels):
    """(B, 3, H, W) in [-1, 1] → scaled latents (deterministic: the distribution's mode).

    VAEs with a shift (the 16-channel FLUX/Z-Image one) are centred first, as their pipelines undo it. A family whose
    VAE is normalised otherwise (Qwen-Image's per-channel mean/std of a video VAE) has its own ``encode_latents``
    stage in its training seam.
    """
    import torch

    own = getattr(parts.setup, "encode_latents", None)
    if own is not None:
        return own(parts, pixels)
    vae = parts.vae
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.no_grad():
        dist = vae.encode(pixels.to(vae.device, dtype=vae.dtype)).latent_dist
        return (dist.mode().float() - shift) * vae.config.scaling_factor
