"""Shared steps of the tests of files that the samples merge into the weights (LoHa, LoKr, DoRA)."""

from __future__ import annotations

import numpy as np
from image_parity import assert_images_within_rounding


def tiny_with_adapter(family: str, randomise, **inject_kw):
    """A tiny pipeline with the adapter (rank 4, alpha 2, LoCon convs) on UNet and text encoders; `randomise(name, p,
    gen)` moves each trainable parameter off its initial value."""
    import torch

    from models.tiny import build_tiny
    from training.lora import inject

    pipe = build_tiny(family, seed=0)
    pipe.set_progress_bar_config(disable=True)
    comps = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
    if family == "sdxl":
        comps["text_encoder_2"] = pipe.text_encoder_2
    gen = torch.Generator().manual_seed(1)
    for name, m in comps.items():
        assert inject(m, rank=4, alpha=2.0, component=name, conv_alpha=1.0, **inject_kw) > 0
        for pname, p in m.named_parameters():
            if p.requires_grad:
                randomise(pname, p, gen)
    return pipe, comps


def render(pipe):
    from models.generate import render as render_image

    img = render_image(pipe, prompt="a red square", steps=3, cfg=5.0, seed=3, width=64, height=64, sampler="euler")
    return np.asarray(img, dtype=np.int16)


def assert_file_renders_like(path, family: str, in_memory, modules: int) -> None:
    """A fresh tiny pipeline with the file merged (every module) renders `in_memory`, and not the base image."""
    from models.lycoris import merge_file
    from models.tiny import build_tiny

    fresh = build_tiny(family, seed=0)
    fresh.set_progress_bar_config(disable=True)
    base_img = render(fresh)
    assert merge_file(fresh, path, family) == modules
    from_file = render(fresh)
    assert_images_within_rounding(from_file, in_memory, 255)
    assert np.abs(from_file - base_img).max() > 0


def assert_sample_is_the_trained_model(cfg, result, png) -> None:
    """The run's sample PNG = the trained modules' own image of the same recipe."""
    import torch
    from PIL import Image

    from models.generate import open_pipeline
    from models.generate import render as render_image

    pipe = open_pipeline(cfg.model.base)
    pipe.set_progress_bar_config(disable=True)
    for name in ("unet", "text_encoder"):
        setattr(pipe, name, result.models[name].eval())
    s = cfg.sampling
    with torch.no_grad():
        in_memory = render_image(pipe, prompt=s.prompts[0], negative_prompt=s.negative_prompt, steps=s.steps,
                                 cfg=s.cfg, seed=s.seed, width=s.width, height=s.height, sampler=s.sampler,
                                 clip_skip=cfg.training.clip_skip)
    assert_images_within_rounding(np.asarray(Image.open(png).convert("RGB"), dtype=np.int16),
                                  np.asarray(in_memory, dtype=np.int16), 255)
