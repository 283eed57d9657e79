"""The SD UNet families' training seam (sd15, sd2, sdxl): load the base, encode captions the way the pipelines do,
the ε / v-prediction loss, and the sample pipeline. The stages and their signatures: training/families/__init__.py.

Text encoding mirrors diffusers' pipelines so what is trained is what inference sees: SD1/SD2 use the
last hidden state (clip skip n: the n-th from the end, through the final layer norm); SDXL concatenates
the penultimate hidden states of both encoders and takes the pooled output of the second (the family's
``pooled_text`` trait, core.family_facts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import family_facts
from core.config import RunConfig
from training.parts import Parts

DENOISER_LABEL = "UNet"


def load_parts(cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Base model components, frozen, on `device` in `dtype` (the LoRA weights stay fp32)."""
    import sys

    from diffusers import DDPMScheduler

    from models.loading import resolve_family

    pipe = open_base(cfg)
    row = family_facts.get(cfg.model.family)
    family = row.name if row is not None else resolve_family(pipe)  # "auto": what the loaded pipeline is
    sched_config = dict(pipe.scheduler.config)
    pred = cfg.model.prediction_type if cfg.model.prediction_type != "auto" else \
        sched_config.get("prediction_type", "epsilon")
    noise_scheduler = DDPMScheduler.from_config(sched_config, prediction_type=pred,
                                                rescale_betas_zero_snr=bool(cfg.model.zero_terminal_snr))
    pooled = family_facts.has(family, "pooled_text")  # SDXL: a second text encoder gives the pooled vector
    tes = [pipe.text_encoder] + ([pipe.text_encoder_2] if pooled else [])
    toks = [pipe.tokenizer] + ([pipe.tokenizer_2] if pooled else [])
    for m in [pipe.unet, pipe.vae, *tes]:
        m.requires_grad_(False)
        m.eval()
    pipe.unet.to(device, dtype=dtype)
    pipe.vae.to(device, dtype=_vae_dtype(pooled, dtype))
    for te in tes:
        te.to(device, dtype=dtype)
    return Parts(family, pred, pipe.unet, pipe.vae, tes, toks, noise_scheduler, sched_config, sys.modules[__name__])


def open_base(cfg: RunConfig, dtype: Any = None, device: str = "cpu"):
    """The base pipeline (single file, diffusers folder or hub id) as the user gave it."""
    from models.generate import open_pipeline

    return open_pipeline(cfg.model.base, family=cfg.model.family, prediction_type=cfg.model.prediction_type,
                         vae=cfg.model.vae or None, device=device, torch_dtype=dtype)


def sample_pipeline(cfg: RunConfig, lora_path: Path, device: str, dtype: Any, family: str):
    """A fresh base pipeline with the saved file applied as a user's UI applies it: diffusers' LoRA loader, or
    for LoHa, LoKr and DoRA (which diffusers drops or cannot load) merged as WebUI and ComfyUI compute them."""
    from models import generate
    from training.export import merged_in_samples

    pipe = open_base(cfg, dtype, device)
    if merged_in_samples(cfg):
        from models.lycoris import merge_file

        merge_file(pipe, lora_path, family)
    else:
        generate.load_lora(pipe, lora_path, "sample")
    return pipe


def lora_plan(cfg: RunConfig, parts: Parts) -> tuple[dict, Any]:
    """(training.lora.inject's keywords for the UNet, the block-wise plan or None): sd-scripts' block dims."""
    from training import blocks

    plan = blocks.from_config(cfg.network, parts.family)
    return {"family": parts.family, "blocks": plan}, plan


def store_fp8(denoiser: Any) -> int:
    from training import precision

    return precision.store_fp8(denoiser)


def text_encoder_on_cpu(cfg: RunConfig) -> bool:
    return False


def _vae_dtype(sdxl_vae: bool, dtype: Any):
    import torch

    # The original SDXL VAE overflows in fp16 (black images); keep it in fp32 there.
    return torch.float32 if sdxl_vae and dtype == torch.float16 else dtype


def _tokens(tokenizer, captions: list[str], max_token_length: int):
    """Token ids in 77-token chunks (BOS + 75 + EOS each), as WebUI does for long prompts: (B, chunks, 77)."""
    import torch

    n_chunks = max(1, max_token_length // 75)
    ids = tokenizer(captions, truncation=True, max_length=75 * n_chunks + 2, padding="max_length",
                    return_tensors="pt").input_ids
    if n_chunks == 1:
        return ids[:, None, :]
    bos, eos = ids[:, :1], ids[:, -1:]
    body = ids[:, 1:-1]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    chunks = []
    for c in range(n_chunks):
        part = body[:, 75 * c: 75 * (c + 1)]
        end = torch.where(part[:, -1:] == pad, pad, eos)
        chunks.append(torch.cat([bos, part, end], dim=1))
    return torch.stack(chunks, dim=1)


def encode_text(parts: Parts, captions: list[str], cfg: RunConfig, device=None):
    """(encoder_hidden_states, pooled or None) for a batch of captions, gradients flowing into TE LoRA.

    The text encoders may be wrapped for data parallelism (``.module``); the device is then passed in.
    """
    import torch

    clip_skip, max_token_length = cfg.training.clip_skip, cfg.training.max_token_length
    if len(parts.text_encoders) == 1:
        te, tok = parts.text_encoders[0], parts.tokenizers[0]
        inner = getattr(te, "module", te)
        ids = _tokens(tok, captions, max_token_length).to(device or inner.device)
        b, n, L = ids.shape
        out = te(ids.reshape(b * n, L), output_hidden_states=clip_skip > 1)
        if clip_skip > 1:
            hidden = getattr(inner, "text_model", inner).final_layer_norm(out.hidden_states[-clip_skip])
        else:
            hidden = out.last_hidden_state
        return hidden.reshape(b, n * L, -1), None
    states, pooled = [], None
    for i, (te, tok) in enumerate(zip(parts.text_encoders, parts.tokenizers)):
        ids = _tokens(tok, captions, max_token_length).to(device or getattr(te, "module", te).device)
        b, n, L = ids.shape
        out = te(ids.reshape(b * n, L), output_hidden_states=True)
        states.append(out.hidden_states[-2].reshape(b, n * L, -1))
        if i == 1:
            pooled = out.text_embeds.reshape(b, n, -1)[:, 0]
    return torch.cat(states, dim=-1), pooled


def collate_text(hidden: list, pooled: list) -> tuple[Any, Any]:
    """Cached per-caption features back into a batch: every caption is padded to the same length."""
    import torch

    return torch.stack(hidden), None if pooled[0] is None else torch.stack(pooled)


def sdxl_time_ids(items: list, device):
    """SDXL size conditioning: original (h, w), crop top-left, target (h, w), per image, in float32.

    The UNet turns these numbers into sinusoid features (its add_time_proj) and casts only the result to the
    compute dtype; a bf16 tensor here would round them first (a crop offset of 301 becomes 300, an original size of
    3000 becomes 3008), as sd-scripts avoids by embedding them in float32."""
    import torch

    rows = []
    for it in items:
        left, top = it.crop_ltrb[0], it.crop_ltrb[1]
        rows.append([it.original[1], it.original[0], top, left, it.size[1], it.size[0]])
    return torch.tensor(rows, device=device, dtype=torch.float32)


def loss(parts: Parts, unet, latents, text: tuple, items: list, cfg: RunConfig, class_text=None):
    """Diffusion loss of one batch: noise (with offset), random timesteps, ε or v target, min-SNR weight."""
    import torch
    import torch.nn.functional as F

    from training import noise as noise_shapes

    t = cfg.training
    sched = parts.noise_scheduler
    b = latents.shape[0]
    noise = torch.randn_like(latents)
    if t.noise_offset:
        noise = noise + t.noise_offset * torch.randn(b, latents.shape[1], 1, 1, device=latents.device)
    if t.multires_noise_iterations:  # after the offset, as sd-scripts does
        noise = noise_shapes.pyramid(noise, t.multires_noise_iterations, t.multires_noise_discount)
    steps = torch.randint(0, sched.config.num_train_timesteps, (b,), device=latents.device)
    pred, target = _prediction(parts, unet, latents, noise, steps, text, items)
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
    return (per_sample * loss_weight(sched, steps, t, parts.prediction_type).to(per_sample.device)).mean()


def predict_at(parts: Parts, unet, latents, noise, level: float, text: tuple, items: list):
    """(prediction, target) at one noise level in [0, 1] of the schedule: the validation pass's measure."""
    import torch

    steps = torch.tensor([int(level * (parts.noise_scheduler.config.num_train_timesteps - 1))],
                         device=latents.device)
    return _prediction(parts, unet, latents, noise, steps, text, items)


def _prediction(parts: Parts, unet, latents, noise, steps, text: tuple, items: list):
    from training.precision import compute_dtype

    sched = parts.noise_scheduler
    hidden, pooled = text
    noisy = sched.add_noise(latents, noise, steps)
    dtype = compute_dtype(unet)  # not the fp8 storage of an fp8 base
    kwargs = {}
    if pooled is not None:
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled.to(dtype),
                                       "time_ids": sdxl_time_ids(items, latents.device)}
    pred = unet(noisy.to(dtype), steps, encoder_hidden_states=hidden.to(dtype), **kwargs).sample
    target = noise if parts.prediction_type == "epsilon" else sched.get_velocity(latents, noise, steps)
    return pred, target


def snr(sched: Any, steps: Any):
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) of each timestep (0 at the last one under zero terminal
    SNR, where alpha_bar is 0)."""
    ac = sched.alphas_cumprod.to(steps.device)[steps].float()
    return ac / (1 - ac)


def loss_weight(sched: Any, steps: Any, t: Any, prediction_type: str):
    """Per-sample loss weight of the SNR options (1 when none is on).

    Min-SNR: min(SNR, gamma) / SNR for epsilon, min(SNR, gamma) / (SNR + 1) for v-prediction (the v loss already
    carries a factor SNR + 1). Debiased estimation (sd-scripts): 1 / sqrt(SNR) for epsilon, 1 / (SNR + 1) for
    v-prediction, SNR clamped to at most 1000 as sd-scripts does and to at least 0.001 so the zero-SNR last step of a
    rescaled schedule stays finite.
    scale_v_pred_loss_like_noise_pred / v_pred_like_loss: training.noise.v_loss_weight."""
    import torch

    s = snr(sched, steps)
    weight = torch.ones_like(s)
    if t.min_snr_gamma:
        denominator = s + 1 if prediction_type == "v_prediction" else torch.clamp(s, min=1e-3)  # 0/0 under ZTSNR
        weight = weight * torch.clamp(s, max=t.min_snr_gamma) / denominator
    if t.debiased_estimation:  # sd-scripts: 1 / (SNR + 1) for v-prediction, else 1 / sqrt(SNR)
        clamped = torch.clamp(s, min=1e-3, max=1000.0)
        weight = weight / (clamped + 1 if prediction_type == "v_prediction" else torch.sqrt(clamped))
    scale_like_noise, v_pred_like = (getattr(t, "scale_v_pred_loss_like_noise_pred", False),
                                     getattr(t, "v_pred_like_loss", 0.0))
    if scale_like_noise or v_pred_like:
        from training.noise import v_loss_weight

        weight = weight * v_loss_weight(s, scale_like_noise, v_pred_like)
    return weight
