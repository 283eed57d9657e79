"""Shared generation: samplers, CPU-seeded rendering and the A1111 parameters text in every PNG."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import SAMPLERS as CONFIG_SAMPLERS
from models import generate


def test_every_config_sampler_has_a1111_names():
    assert set(generate.SAMPLERS) == set(CONFIG_SAMPLERS)
    assert generate.SAMPLERS["dpmpp_2m_karras"].a1111 == "DPM++ 2M"
    assert generate.SAMPLERS["dpmpp_2m_karras"].schedule == "Karras"


RECIPE = {"prompt": "demo, a red square, (best:1.2)", "negative_prompt": "blurry, lowres", "steps": 20,
          "sampler": "dpmpp_2m_karras", "cfg": 7.5, "seed": 1234, "width": 512, "height": 768,
          "model_hash": "a5ab46cd55", "model": "tiny-sd15", "clip_skip": 2,
          "loras": [{"name": "demo-000002", "weight": 0.8, "hash": "3c4301d90486"}]}


def test_recipe_text_is_a1111_and_parses_back(tmp_path):
    from PIL import Image

    text = generate.recipe_text(RECIPE)
    lines = text.split("\n")
    assert lines[0] == "demo, a red square, (best:1.2) <lora:demo-000002:0.8>"
    assert lines[1] == "Negative prompt: blurry, lowres"
    assert lines[2] == ('Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, '
                        'Size: 512x768, Model hash: a5ab46cd55, Model: tiny-sd15, Clip skip: 2, RNG: CPU, '
                        'Lora hashes: "demo-000002: 3c4301d90486"')
    parsed = generate.parse_parameters(text)
    assert {k: v for k, v in parsed.items() if k != "params"} == RECIPE

    png = tmp_path / "s.png"
    generate.save_png(Image.new("RGB", (8, 8), (1, 2, 3)), png, text)
    assert Image.open(png).info["parameters"] == text
    assert not list(tmp_path.glob("*.tmp"))


def test_render_is_seeded_on_the_cpu():
    import torch

    from models.tiny import build_tiny

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; one thread is faster than several fighting
    try:
        _check_render(build_tiny("sd15"))
    finally:
        torch.set_num_threads(threads)


def _check_render(pipe):
    import torch

    pipe.set_progress_bar_config(disable=True)
    kw = {"prompt": "a red square", "negative_prompt": "blue", "steps": 3, "cfg": 5.0, "width": 64, "height": 64}
    a = np.asarray(generate.render(pipe, seed=1, sampler="euler", **kw), dtype=np.int16)
    torch.manual_seed(999)  # the global RNG must not matter
    b = np.asarray(generate.render(pipe, seed=1, sampler="euler", **kw), dtype=np.int16)
    c = np.asarray(generate.render(pipe, seed=2, sampler="euler", **kw), dtype=np.int16)
    d = np.asarray(generate.render(pipe, seed=1, sampler="euler", clip_skip=2, **kw), dtype=np.int16)
    assert np.abs(a - b).max() == 0 and np.abs(a - c).max() > 0 and np.abs(a - d).max() > 0
    for sampler in generate.SAMPLERS:
        assert generate.render(pipe, seed=1, sampler=sampler, **kw).size == (64, 64)
    with pytest.raises(ValueError):
        generate.render(pipe, seed=1, sampler="euler", **{**kw, "width": 60})
