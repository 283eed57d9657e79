"""Qwen-Image's training seam (the stages and their signatures: training/families/__init__.py). Variant "image" only:
the edit variants are recognised but not trained here (their control images are not fed).

Qwen-Image's conventions (reference/qwen-image.md, checked in diffusers 0.42.1's pipeline_qwenimage.py,
transformer_qwenimage.py and autoencoder_kl_qwenimage.py):

- latents: the causal 3-D VAE's posterior mode of a one-frame video (B, 3, 1, H, W), normalised per channel,
  (z − latents_mean) / latents_std, as the pipeline undoes it; the seam keeps them as (B, 16, h, w) (one frame),
  packs them 2×2 into (B, h/2·w/2, 64) tokens with the pipeline's ``_pack_latents`` and gives the transformer
  ``img_shapes`` = [(1, h/2, w/2)] per item for its RoPE (no position-id inputs);
- the transformer is given sigma (the pipeline passes t/1000; the model scales by 1000 inside) and returns the
  velocity ε − x0 as the scheduler integrates it: sign +1, no time reversal; no guidance input;
- the shift grows with the packed token count (μ from 0.5 at 256 to 0.9 at 8192 tokens, e^μ applied: the scheduler
  config's "exponential" time shift equals the static formula with shift e^μ); its static shift is 1.0;
- text: Qwen2.5-VL's last hidden state under the pipeline's prompt template with its 34 system-prompt tokens
  dropped (models/families/qwen_image/load.py ``encode_prompts``), cached per caption without padding and padded
  again per batch with a 0/1 mask, which is None when every token is real, as the pipeline passes it.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from typing import Any

from core.config import RunConfig
from training import dop, flow, precision
from training.families import flux
from training.parts import Parts

DENOISER_LABEL = "transformer"
# Qwen-Image's scheduler figures (base_image_seq_len 256, max_image_seq_len 8192, base_shift 0.5, max_shift 0.9,
# shift 1.0); a loaded base's scheduler config replaces them where it states them.
QWEN_SHIFT = flow.DynamicShift(base_shift=0.5, max_shift=0.9, base_tokens=256, max_tokens=8192, patch=2)
# time = sigma (float32, as the pipeline gives it), velocity = +output
FLOW = flow.FlowSpec(shift=1.0, output_sign=1.0, reversed_time=False, time_dtype="float32", dynamic=QWEN_SHIFT)
# kept in their precision under fp8 storage: the sinusoidal time features' embedder (the modulation reads them)
FP8_KEEP = ("time_text_embed",)


def flow_spec(scheduler_config: dict) -> flow.FlowSpec:
    """The FlowSpec with the base's own scheduler figures."""
    c = scheduler_config
    dynamic = flow.DynamicShift(float(c.get("base_shift", QWEN_SHIFT.base_shift)),
                                float(c.get("max_shift", QWEN_SHIFT.max_shift)),
                                int(c.get("base_image_seq_len", QWEN_SHIFT.base_tokens)),
                                int(c.get("max_image_seq_len", QWEN_SHIFT.max_tokens)), QWEN_SHIFT.patch)
    return replace(FLOW, shift=float(c.get("shift", FLOW.shift)), dynamic=dynamic)


# Loading and samples go through models.generate.open_pipeline as FLUX's do: the family comes from the run.
open_base = flux.open_base
sample_pipeline = flux.sample_pipeline
text_encoder_on_cpu = flux.text_encoder_on_cpu  # Qwen2.5-VL-7B (~16 GB) waits in CPU memory with cached text


def store_fp8(transformer: Any) -> int:
    """training.fp8_base: the frozen linears in fp8, the time embedder kept."""
    return precision.store_fp8(transformer, keep=FP8_KEEP)


def parts_from_pipe(pipe: Any, cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Parts of a loaded QwenImagePipeline for training, placed as FLUX's are (frozen, on `device` in `dtype`; the
    text encoder in CPU memory when text_encoder_on_cpu says so; the transformer there until place_denoiser with
    block swap; int8 on the block linears), with this seam and Qwen-Image's flow conventions."""
    parts = flux.parts_from_pipe(pipe, "qwen_image", cfg, device, dtype, log)
    return replace(parts, setup=sys.modules[__name__], flow=flow_spec(parts.scheduler_config))


def load_parts(cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Parts of a Qwen-Image base for training."""
    from core.download import apply

    apply(cfg.model.download_source, cfg.model.hub_mirror)
    return parts_from_pipe(open_base(cfg, dtype), cfg, device, dtype, log)


# Block swap as FLUX's: all but the last training.blocks_to_swap blocks on the device (training/block_swap.py).
blocks_of = flux.blocks_of
place_denoiser = flux.place_denoiser


def lora_plan(cfg: RunConfig, parts: Parts) -> tuple[dict, Any]:
    """(training.lora.inject's keywords: the block linears of the kinds network.dit_targets names, in the words of
    models/families/qwen_image/lora.py, as FLUX's seam maps them), no block plan."""
    kinds = [flux.TARGET_KINDS[k] for k in cfg.network.dit_targets]
    return {"family": parts.family, "dit_targets": kinds, "dit_refiners": cfg.network.dit_refiners}, None


def encode_latents(parts: Parts, pixels: Any) -> Any:
    """(B, 3, H, W) in [-1, 1] → (B, 16, H/8, W/8): the VAE's posterior mode of a one-frame video, normalised per
    channel with the VAE config's latents_mean / latents_std (the pipeline decodes z·std + mean)."""
    import torch

    vae = parts.vae
    with torch.no_grad():
        z = vae.encode(pixels.to(vae.device, dtype=vae.dtype)[:, :, None]).latent_dist.mode().float()
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=z.device).view(shape)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=z.device).view(shape)
    return ((z - mean) / std)[:, :, 0]


def encode_text(parts: Parts, captions: list[str], cfg: RunConfig, device=None) -> tuple[list, None]:
    """One (tokens, 3584) row per caption, as the pipeline encodes a prompt (template, system tokens dropped),
    without its padding: collate_text pads a batch again."""
    from models import families

    load = families.part(families.dit_module("qwen_image"), "load")
    hidden, mask = load.encode_prompts(parts.pipe, list(captions), parts.text_encoders[0].device)
    lengths = [hidden.shape[1]] * hidden.shape[0] if mask is None else mask.sum(dim=1).tolist()
    return [h[:int(n)].to(device) for h, n in zip(hidden, lengths)], None


def free_text_encoder(parts: Parts, log=print) -> None:
    """Qwen2.5-VL-7B (~16 GB in bf16) let go once every caption's features are cached: the steps, the validation
    pass and DOP read the cache, and the samples open their own base."""
    import gc

    import torch

    parts.text_encoders = []
    parts.pipe.text_encoder = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log("Text encoder freed: every caption's features are cached")


def collate_text(hidden: list, pooled: list) -> tuple[Any, Any]:
    """Cached rows as a batch: right-padded with zeros to the longest, with the pipeline's 0/1 mask (None when
    every token is real, as QwenImagePipeline.encode_prompt passes it)."""
    import torch

    longest = max(h.shape[0] for h in hidden)
    embeds = torch.stack([torch.cat([h, h.new_zeros(longest - h.shape[0], h.shape[1])]) for h in hidden])
    mask = torch.stack([torch.arange(longest, device=h.device) < h.shape[0] for h in hidden]).long()
    return embeds, (None if bool(mask.all()) else mask)


def transformer_inputs(parts: Parts, x_t: Any, sigma: Any, text: tuple) -> dict:
    """The transformer's keyword arguments for noisy latents x_t (B, 16, h, w) at noise level sigma (B,), as the
    pipeline builds them."""
    from diffusers import QwenImagePipeline

    dtype = precision.compute_dtype(parts.unet)  # not the fp8 storage of an fp8 base
    b, c, h, w = x_t.shape
    device = x_t.device
    hidden, mask = text
    return {"hidden_states": QwenImagePipeline._pack_latents(x_t.to(dtype), b, c, h, w),
            "encoder_hidden_states": hidden.to(device, dtype),
            "encoder_hidden_states_mask": None if mask is None else mask.to(device),
            "timestep": flow.model_time(parts.flow, sigma, device),
            "img_shapes": [[(1, h // 2, w // 2)]] * b,
            "return_dict": False}


def _forward(parts: Parts, transformer: Any, x_t, sigma, text: tuple):
    """The velocity at noise level sigma, unpacked to the latents' (B, 16, h, w)."""
    from diffusers import QwenImagePipeline

    out = transformer(**transformer_inputs(parts, x_t, sigma, text))[0]
    h, w = x_t.shape[-2:]
    return flow.velocity(parts.flow, QwenImagePipeline._unpack_latents(out.float(), h * 8, w * 8, 8)[:, :, 0])


def loss(parts: Parts, transformer: Any, latents, text: tuple, items: list, cfg: RunConfig, class_text=None):
    """Flow-matching loss of one batch (training/flow.py), with DOP when class_text is given."""
    return flow.loss(parts.flow, partial(_forward, parts, transformer), latents, text, cfg, class_text,
                     partial(dop.lora_off, parts.unet))


def predict_at(parts: Parts, transformer: Any, latents, noise, level: float, text: tuple, items: list):
    """(velocity, target) at noise level sigma = level: the validation pass's measure."""
    import torch

    sigma = torch.tensor([level] * latents.shape[0])
    x_t = flow.noisy(latents, noise, sigma)
    return _forward(parts, transformer, x_t, sigma, text), flow.target(latents, noise)

