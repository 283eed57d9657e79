"""FLUX.1 (dev, schnell) and Chroma's training seam (the stages and their signatures: training/families/__init__.py).

FLUX's conventions (reference/flux.md, checked in diffusers 0.42.1's pipeline_flux.py, transformer_flux.py and
scheduling_flow_match_euler_discrete.py):

- latents are the VAE's (x - shift_factor)·scaling_factor (training.parts.encode_latents), packed 2×2 into
  (B, h/2·w/2, 64) tokens with the pipeline's own ``_pack_latents``; ``img_ids`` rows are [0, row, col] of the
  packed grid and ``txt_ids`` zeros, both 2-D as the transformer takes them;
- the transformer is given sigma itself (the pipeline passes t/1000; the model multiplies by 1000 inside) and
  returns the velocity ε − x0 as the scheduler integrates it: sign +1, no time reversal (Z-Image's is the opposite);
- dev's distilled guidance input gets 1.0 while training (sd-scripts' recommended value, ai-toolkit's and
  OneTrainer's default); schnell has no guidance input; Chroma has neither guidance nor CLIP;
- text: T5 (512 tokens for dev and Chroma, 256 for schnell, as sd-scripts) and CLIP-L's pooled output through the
  pipeline's own ``encode_prompt``; Chroma: T5 run with the tokenizer's mask, and a **bool** transformer mask of
  the real tokens plus one padding token, as ChromaPipeline and sd-scripts build it (the pipeline's float 0/1 mask
  is added to the scores by SDPA and masks nothing: diffusers #13619);
- Chroma with gradient checkpointing: diffusers 0.42.1 calls the single-stream blocks without their mask when
  checkpointing (transformer_chroma.py ``forward``), so the seam gives the model a checkpointing function that
  puts the batch's mask back (``_masked_checkpoint``).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from core import family_facts
from core.config import RunConfig
from training import block_swap, dop, flow, precision
from training.parts import Parts

DENOISER_LABEL = "transformer"
# FLUX.1-dev's scheduler figures (FlowMatchEulerDiscreteScheduler: shift 3.0, dynamic shift from 0.5 at 256 tokens
# to 1.15 at 4096 tokens of 2×2 patches); a loaded base's scheduler config replaces them where it states them.
FLUX_SHIFT = flow.DynamicShift(base_shift=0.5, max_shift=1.15, base_tokens=256, max_tokens=4096, patch=2)
# time = sigma (float32; the transformer casts it to its own dtype, as it does the pipeline's), velocity = +output
FLOW = flow.FlowSpec(shift=3.0, output_sign=1.0, reversed_time=False, time_dtype="float32", dynamic=FLUX_SHIFT)
TRAINING_GUIDANCE = 1.0
# kept in their precision under fp8 storage: the sinusoidal time (and guidance) features and Chroma's approximator,
# which makes every block's modulation from them
FP8_KEEP = ("time_text_embed", "distilled_guidance_layer")
INT8_BLOCKS = ("transformer_blocks.", "single_transformer_blocks.")
# network.dit_targets' kinds → the names models/families/flux/lora.py gives them (sd-scripts' lora_flux trains all
# three; Chroma's blocks have no modulation linears, so "modulation" adds nothing there)
TARGET_KINDS = {"attention": "attention", "feed_forward": "mlp", "adaLN": "modulation"}


def _chroma(parts: Parts) -> bool:
    return parts.family == "chroma"


def flow_spec(scheduler_config: dict) -> flow.FlowSpec:
    """The FlowSpec with the base's own scheduler figures (schnell's static shift is 1.0, dev's 3.0)."""
    c = scheduler_config
    dynamic = flow.DynamicShift(float(c.get("base_shift", FLUX_SHIFT.base_shift)),
                                float(c.get("max_shift", FLUX_SHIFT.max_shift)),
                                int(c.get("base_image_seq_len", FLUX_SHIFT.base_tokens)),
                                int(c.get("max_image_seq_len", FLUX_SHIFT.max_tokens)), FLUX_SHIFT.patch)
    return replace(FLOW, shift=float(c.get("shift", FLOW.shift)), dynamic=dynamic)


def open_base(cfg: RunConfig, dtype: Any = None, device: str = "cpu"):
    """The plain base pipeline (FluxPipeline or ChromaPipeline: folder, single file with its parts, or hub id)."""
    from models.generate import open_pipeline
    from training.families import family_of

    return open_pipeline(cfg.model.base, family=family_of(cfg), vae=cfg.model.vae or None, device=device,
                         torch_dtype=dtype)


def sample_pipeline(cfg: RunConfig, lora_path: Path, device: str, dtype: Any, family: str):
    """The plain base with the saved file, loaded as a user loads it (diffusers' load_lora_weights)."""
    pipe = open_base(cfg, dtype).to(device)
    pipe.load_lora_weights(str(lora_path), adapter_name="sample")
    return pipe


def store_fp8(transformer: Any) -> int:
    """training.fp8_base: the frozen linears in fp8, the time/guidance embedders and Chroma's approximator kept."""
    return precision.store_fp8(transformer, keep=FP8_KEEP)


def text_encoder_on_cpu(cfg: RunConfig) -> bool:
    """Low VRAM with cached text features: T5-XXL (4.8 B) stays in CPU memory; each caption is encoded once."""
    low_vram = cfg.model.quantize != "none" or cfg.training.fp8_base or cfg.training.blocks_to_swap > 0
    return low_vram and cfg.dataset.cache_text_encoder_outputs


def parts_from_pipe(pipe: Any, family: str, cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Parts of a loaded FLUX/Chroma pipeline for training: frozen, on `device` in `dtype` (text encoders on the
    CPU when text_encoder_on_cpu says so)."""
    transformer = pipe.transformer
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    for m in (transformer, pipe.vae, *encoders):
        m.requires_grad_(False)
        m.eval()
    if cfg.model.quantize == "int8":
        from training.families.zimage import quantize_int8

        log(f"{quantize_int8(transformer, device, INT8_BLOCKS)} transformer linears stored in int8")
    # block swap: the transformer waits in CPU memory until place_denoiser puts all but the swapped blocks on the GPU
    transformer.to("cpu" if cfg.training.blocks_to_swap else device, dtype=dtype)
    pipe.vae.to(device, dtype=dtype)
    te_device = "cpu" if text_encoder_on_cpu(cfg) else device
    clip_lora = cfg.network.train_text_encoder and family_facts.has(family, "text_encoder_trainable")
    for i, e in enumerate(encoders):
        e.to(device if clip_lora and i == 0 else te_device, dtype=dtype)  # a trained CLIP-L trains on the device
    if te_device != device:
        log("T5 kept on the CPU (low VRAM, its features cached); CLIP-L, trained, on the device" if clip_lora else
            "Text encoders kept on the CPU (low VRAM, text features cached)")
    tokenizers = [t for t in (pipe.tokenizer, getattr(pipe, "tokenizer_2", None)) if t is not None]
    return Parts(family, "flow", transformer, pipe.vae, encoders, tokenizers, None, dict(pipe.scheduler.config),
                 sys.modules[__name__], pipe=pipe, flow=flow_spec(dict(pipe.scheduler.config)))


def load_parts(cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Parts of a FLUX.1 or Chroma base for training."""
    from core.download import apply
    from training.families import family_of

    apply(cfg.model.download_source, cfg.model.hub_mirror)
    return parts_from_pipe(open_base(cfg, dtype), family_of(cfg), cfg, device, dtype, log)


def place_denoiser(cfg: RunConfig, transformer: Any, device: Any, log=print) -> None:
    """The transformer on the device once its LoRA is added (and its weights stored in fp8): with block swap, all but
    the last training.blocks_to_swap blocks, whose frozen weights stay in CPU memory (training/block_swap.py)."""
    n = cfg.training.blocks_to_swap
    if not n:
        transformer.to(device)
        return
    blocks = blocks_of(transformer)
    block_swap.install(transformer, blocks, n, device)
    log(f"Block swap: {n} of {len(blocks)} transformer blocks kept in CPU memory, moved in for their forward and "
        "backward passes")


def lora_plan(cfg: RunConfig, parts: Parts) -> tuple[dict, Any]:
    """(training.lora.inject's keywords: the block linears of the kinds network.dit_targets names, from the family's
    lora_target_modules in its own words; Chroma's distilled_guidance_layer is never one), no block plan."""
    kinds = [TARGET_KINDS[k] for k in cfg.network.dit_targets]
    return {"family": parts.family, "dit_targets": kinds, "dit_refiners": cfg.network.dit_refiners}, None


def clip_trained(cfg: RunConfig, parts: Parts) -> bool:
    """FLUX.1's CLIP-L carries a LoRA that trains (network.train_text_encoder; Chroma has no CLIP, its facts row no
    trait): the one case where CLIP-L runs with gradients at each step."""
    if not (cfg.network.train_text_encoder and family_facts.has(parts.family, "text_encoder_trainable")):
        return False
    return any(p.requires_grad for p in parts.text_encoders[0].parameters())


def _clip_pooled(parts: Parts, captions: list[str]) -> Any:
    """CLIP-L's pooled output with gradients into its LoRA, as FluxPipeline._get_clip_prompt_embeds computes it
    (77 tokens padded, pooler_output), through the trained (possibly wrapped) encoder rather than pipe.text_encoder."""
    clip, tokenizer = parts.text_encoders[0], parts.tokenizers[0]
    inner = getattr(clip, "module", clip)
    ids = tokenizer(list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(inner.device)
    return clip(ids, output_hidden_states=False).pooler_output.to(inner.dtype)


def _t5_rows(parts: Parts, captions: list[str], cfg: RunConfig) -> Any:
    """T5's features of each caption (frozen, never trained): encoded once and kept in the seam's cache while the
    captions stay the same (sd-scripts' partial cache when CLIP-L trains); encoded each step when they change."""
    import torch

    from models.families.flux.load import encode_t5

    d = cfg.dataset
    keep = not (d.shuffle_caption or d.caption_dropout_rate or d.caption_tag_dropout_rate)
    rows = parts.seam_cache.setdefault("t5", {})
    missing = [c for c in dict.fromkeys(captions) if c not in rows] if keep else list(captions)
    fresh = {}
    if missing:
        fresh = dict(zip(missing, encode_t5(parts.pipe, missing, parts.text_encoders[1].device)))
        if keep:
            rows.update(fresh)
    return torch.stack([rows[c] if keep else fresh[c] for c in captions])


def encode_text(parts: Parts, captions: list[str], cfg: RunConfig, device=None) -> tuple[Any, Any]:
    """A batch of (T5 hidden (B, T, 4096), and CLIP-L's pooled (B, 768) for FLUX or for Chroma the bool mask (B, T)
    of the real tokens plus one padding token, in the pooled slot as Chroma has no pooled input), as the pipeline
    encodes them (models/families/flux/load.py: 512 T5 tokens for dev and Chroma, 256 for schnell). With CLIP-L's
    LoRA trained, only CLIP-L runs each step (with gradients); T5's rows come from the seam's cache."""
    from models.families.flux.load import encode_prompts

    if clip_trained(cfg, parts):
        return _t5_rows(parts, list(captions), cfg).to(device), _clip_pooled(parts, list(captions)).to(device)
    hidden, pooled, mask = encode_prompts(parts.pipe, list(captions), parts.text_encoders[0].device)
    second = mask if _chroma(parts) else pooled
    return hidden.to(device), second.to(device)  # the loop's cache keeps their rows (row i: caption i)


def collate_text(hidden: list, second: list) -> tuple[Any, Any]:
    """Cached per-caption features as a batch: every caption is padded to the same T5 length, so they stack."""
    import torch

    return torch.stack(list(hidden)), torch.stack(list(second))


def _masked_checkpoint(mask: Any, block: Any, *args: Any) -> Any:
    """diffusers' checkpointing call (non-reentrant), with the attention mask that ChromaTransformer2DModel leaves
    out of its single-stream blocks' checkpointed call put back; the double-stream blocks already pass it."""
    import torch.utils.checkpoint
    from diffusers.models.transformers.transformer_chroma import ChromaSingleTransformerBlock

    if isinstance(block, ChromaSingleTransformerBlock) and len(args) == 3:  # (hidden_states, temb, rotary)
        return torch.utils.checkpoint.checkpoint(block.__call__, *args, attention_mask=mask, use_reentrant=False)
    return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False)


def transformer_inputs(parts: Parts, x_t: Any, sigma: Any, text: tuple) -> dict:
    """The transformer's keyword arguments for noisy latents x_t (B, 16, h, w) at noise level sigma (B,), as the
    pipelines build them."""
    import torch
    from diffusers import FluxPipeline

    transformer = parts.unet
    dtype = precision.compute_dtype(transformer)  # not the fp8 storage of an fp8 base
    b, c, h, w = x_t.shape
    device = x_t.device
    hidden, second = text
    kwargs = {"hidden_states": FluxPipeline._pack_latents(x_t.to(dtype), b, c, h, w),
              "encoder_hidden_states": hidden.to(device, dtype),
              "timestep": flow.model_time(parts.flow, sigma, device),
              "img_ids": FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype),
              "txt_ids": torch.zeros(hidden.shape[1], 3, device=device, dtype=dtype),
              "return_dict": False}
    if _chroma(parts):  # text mask + every image token, bool (a float mask would be added to the scores)
        image = torch.ones(b, (h // 2) * (w // 2), dtype=torch.bool, device=device)
        kwargs["attention_mask"] = torch.cat([second.to(device).bool(), image], dim=1)
    else:
        kwargs["pooled_projections"] = second.to(device, dtype)
        if transformer.config.guidance_embeds:  # dev: float32, as the pipeline gives it
            kwargs["guidance"] = torch.full((b,), TRAINING_GUIDANCE, device=device, dtype=torch.float32)
    return kwargs


def _forward(parts: Parts, transformer: Any, x_t, sigma, text: tuple):
    """The velocity at noise level sigma, unpacked to the latents' (B, 16, h, w)."""
    from diffusers import FluxPipeline

    kwargs = transformer_inputs(parts, x_t, sigma, text)
    if _chroma(parts) and parts.unet.gradient_checkpointing:
        parts.unet._gradient_checkpointing_func = partial(_masked_checkpoint, kwargs["attention_mask"])
    out = transformer(**kwargs)[0]
    h, w = x_t.shape[-2:]
    return flow.velocity(parts.flow, FluxPipeline._unpack_latents(out.float(), h * 8, w * 8, 8))


def blocks_of(transformer: Any) -> list:
    """The transformer's blocks in forward order: the double-stream, then the single-stream ones (Qwen-Image, whose
    seam shares this and place_denoiser, has only the first kind)."""
    return [*transformer.transformer_blocks, *getattr(transformer, "single_transformer_blocks", [])]


def loss(parts: Parts, transformer: Any, latents, text: tuple, items: list, cfg: RunConfig, class_text=None):
    """Flow-matching loss of one batch (training/flow.py), with DOP when class_text is given."""
    return flow.loss(parts.flow, lambda x_t, sigma, txt: _forward(parts, transformer, x_t, sigma, txt), latents,
                     text, cfg, class_text, lambda: dop.lora_off(parts.unet))


def predict_at(parts: Parts, transformer: Any, latents, noise, level: float, text: tuple, items: list):
    """(velocity, target) at noise level sigma = level: the validation pass's measure."""
    import torch

    sigma = torch.tensor([level] * latents.shape[0])
    x_t = flow.noisy(latents, noise, sigma)
    return _forward(parts, transformer, x_t, sigma, text), flow.target(latents, noise)
