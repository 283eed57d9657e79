"""The LoRA on the model parts, as the loop needs them before the optimizer: which modules get it (the UNet with
sd-scripts' block-wise dims, a DiT family's transformer targets, the text encoders), its precision (fp32 or full
bf16), the frozen base stored in fp8 (training.fp8_base), then the parts on the device, and gradient
checkpointing."""

from __future__ import annotations

from typing import Any

from core import family_facts
from core.config import RunConfig
from training import lora, precision


def attach(cfg: RunConfig, parts, device, log) -> tuple[dict[str, Any], list[str], Any]:
    """(trained modules by component — "unet" is the denoiser: the UNet, or a DiT family's transformer —, the
    text-encoder component names, the block-wise plan or None)."""
    n = cfg.network
    comp_names = ["text_encoder", "text_encoder_2"][:len(parts.text_encoders)]
    trained: dict[str, Any] = {}  # "unet" is the denoiser: the UNet, or a DiT family's transformer
    setup = parts.setup  # the family's training seam: which modules get the LoRA, what stays in its precision
    targets, block_plan = setup.lora_plan(cfg, parts) if n.train_unet else ({}, None)
    if n.train_unet:
        layers = lora.inject(parts.unet, rank=n.rank, alpha=n.alpha, dropout=n.dropout, use_dora=n.use_dora,
                             conv_dim=n.conv_dim, conv_alpha=n.conv_alpha, component="unet", algo=n.type,
                             rank_dropout=n.rank_dropout, module_dropout=n.module_dropout, **targets)
        trained["unet"] = parts.unet
        log(f"LoRA on {layers} {setup.DENOISER_LABEL} layers")
        if block_plan is not None:
            log(f"Block-wise (sd-scripts' block numbers): LR weights {block_plan.lr or 'all 1'}; dims "
                f"{block_plan.dims}; alphas {block_plan.alphas}"
                + (f"; conv dims {block_plan.conv_dims}; conv alphas {block_plan.conv_alphas}"
                   if block_plan.conv_dims else ""))
    # a family whose text-encoder LoRA no UI loads keeps it frozen (core.checks says so)
    if n.train_text_encoder and family_facts.has(parts.family, "text_encoder_trainable"):
        for name, te in zip(comp_names, parts.text_encoders):
            layers = lora.inject(te, rank=n.rank, alpha=n.alpha, dropout=n.dropout, use_dora=n.use_dora,
                                 component=name, algo=n.type, rank_dropout=n.rank_dropout,
                                 module_dropout=n.module_dropout)
            if layers:  # FLUX's T5 has no CLIP linears: it stays frozen and out of the optimizer
                trained[name] = te
                log(f"LoRA on {layers} {name} layers")
    precision.keep_lora_dtype(trained, cfg.training.full_bf16)  # fp32 whatever the base dtype, or full bf16
    place = getattr(setup, "place_denoiser", None)  # a family that may keep blocks in CPU memory places its own
    if cfg.training.fp8_base:  # after the LoRA is added (and a DiT's adapter merged), so the LoRA keeps its precision
        log(f"{setup.store_fp8(parts.unet)} frozen {setup.DENOISER_LABEL} layers stored in fp8 (float8_e4m3fn)")
        te_stays = setup.text_encoder_on_cpu(cfg)  # cached text features: encoded on the CPU (a trained one moves)
        encoders = [te for name, te in zip(comp_names, parts.text_encoders) if not te_stays or name in trained]
        for m in ([] if place else [parts.unet]) + [parts.vae, *encoders]:
            m.to(device)
    if place is not None:
        place(cfg, parts.unet, device, log)
    if cfg.training.gradient_checkpointing:
        parts.unet.enable_gradient_checkpointing()
        for name in comp_names:
            if name in trained:
                trained[name].gradient_checkpointing_enable()
    n_params = sum(p.numel() for m in trained.values() for p in m.parameters() if p.requires_grad)
    log(f"{n_params:,} trainable parameters; alpha {n.alpha or n.rank} / rank {n.rank} = scale "
        f"{(n.alpha or n.rank) / n.rank:g}")
    return trained, comp_names, block_plan
