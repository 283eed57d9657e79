"""Tiny base models with the real architectures: SD1.5, SD2.x (epsilon or v), SDXL, Z-Image, FLUX.1 and Chroma.

Random weights, seeded, built from nothing (no download), small enough to train on a CPU in
seconds. Tests, the demo and the CPU benchmarks use them; the loaders treat them like any base.
Images are 64×64 px by default (latents 8×8: the VAE downsamples by 8 as the real one does); Z-Image's, FLUX's
and Chroma's are 32×32 px (latents 4×4, 2×2 patches of 2×2: the pipelines need sizes divisible by 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import family_facts
from core.fsutil import temp_path_for
from models import families
from models.bpe import write_tokenizer
from models.ldm import diffusers_to_ldm

FAMILIES = (*family_facts.names(selectable_only=True), *family_facts.ALIASES)  # "sd2v": SD2 with v-prediction
TINY_RESOLUTION = 64
TINY_RESOLUTIONS = {"zimage": 32, "flux": 32, "chroma": 32, "qwen_image": 32}


def _text_config(vocab_size: int, hidden: int, layers: int, projection: int | None = None, act: str = "quick_gelu"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                          num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=77,
                          hidden_act=act, projection_dim=projection or hidden, bos_token_id=vocab_size - 2,
                          eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)


def build_tiny(family: str = "sd15", seed: int = 0):
    """Build a tiny pipeline of `family` with seeded random weights. Returns the diffusers pipeline."""
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES}")
    if (dit := families.dit_module(family)) is not None:  # a DiT family builds its own (families/<f>/tiny.py)
        return families.part(dit, "tiny").build_tiny(seed=seed)
    with tempfile.TemporaryDirectory(prefix="danlu-tok-") as tmp:  # saved with the pipeline, not beside it
        tok_dir = write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tok_dir)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8,
                        sample_size=TINY_RESOLUTION, scaling_factor=0.13025 if family == "sdxl" else 0.18215)
    sched_kwargs = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                        steps_offset=1, timestep_spacing="leading")
    if family == "sdxl":
        unet = UNet2DConditionModel(
            sample_size=TINY_RESOLUTION // 8, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(32, 64, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                                 "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8), use_linear_projection=True,
            cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=32)
        te1 = CLIPTextModel(_text_config(vocab, 32, 3, act="quick_gelu"))
        te2 = CLIPTextModelWithProjection(_text_config(vocab, 32, 3, projection=32, act="gelu"))
        scheduler = EulerDiscreteScheduler(**sched_kwargs)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                         tokenizer_2=tokenizer_2, unet=unet,
                                         scheduler=scheduler)
    else:
        sd2 = family.startswith("sd2")
        unet = UNet2DConditionModel(
            sample_size=TINY_RESOLUTION // 8, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(32, 32, 64, 64),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=32, attention_head_dim=(2, 4, 8, 8) if sd2 else 8,
            use_linear_projection=sd2, norm_num_groups=32)
        te = CLIPTextModel(_text_config(vocab, 32, 4, act="gelu" if sd2 else "quick_gelu"))
        if family == "sd2v":
            sched_kwargs["prediction_type"] = "v_prediction"
        scheduler = EulerDiscreteScheduler(**sched_kwargs)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipe


def tiny_resolution(family: str) -> int:
    """The image size tiny models of `family` are made for (64 px; Z-Image 32 px)."""
    return TINY_RESOLUTIONS.get(family, TINY_RESOLUTION)


@dataclass
class TinyModel:
    family: str
    folder: Path              # diffusers folder
    single_file: Path | None  # single-file checkpoint (LDM key names; Z-Image: transformer only), when written
    prefixed_file: Path | None = None  # Z-Image: the transformer file with `model.diffusion_model.` names


def save_tiny(family: str, out_dir: Path, seed: int = 0, single_file: bool = True) -> TinyModel:
    """Build a tiny model and save it as a diffusers folder (and as one .safetensors checkpoint).

    Z-Image is saved as real releases are split: the diffusers folder `tiny-zimage/` and, beside it, the
    transformer alone in original/ComfyUI names, `tiny-zimage.safetensors` (bare names) and
    `tiny-zimage-comfy.safetensors` (`model.diffusion_model.` names).
    """
    out_dir = Path(out_dir)
    folder = out_dir / f"tiny-{family}"
    pipe = build_tiny(family, seed=seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    if (dit := families.dit_module(family)) is not None:
        files = (families.part(dit, "tiny").save_transformer_files(pipe, out_dir, f"tiny-{family}") if single_file
                 else (None, None))
        return TinyModel(family, folder, *files)
    path = None
    if single_file:
        path = save_single_file(pipe, out_dir / f"tiny-{family}.safetensors", family=family)
    return TinyModel(family, folder, path)


def save_single_file(pipe: Any, path: Path, family: str, metadata: dict[str, str] | None = None,
                     dtype: Any = None) -> Path:
    """Write `pipe` as one safetensors checkpoint with the original key names; returns the path.

    The header carries modelspec metadata (architecture, prediction type, resolution) so that
    detection does not have to guess. Written to a temporary name and renamed, so a crash never
    leaves a half file under the real name.
    """
    from safetensors.torch import save_file

    path = Path(path)
    sd = diffusers_to_ldm(pipe, family)
    sd = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    # safetensors refuses tensors that share memory; the fused qkv and transposes are fresh, others are views.
    sd = {k: v.clone() for k, v in sd.items()}
    prediction = getattr(pipe.scheduler.config, "prediction_type", "epsilon")
    resolution = int(pipe.unet.config.sample_size) * (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    meta = families.modelspec_for(family, prediction, resolution, title=path.stem)
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        save_file(sd, str(tmp), metadata=meta)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
