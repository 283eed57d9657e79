"""The tiny-model factory: real architectures, seeded, saved as diffusers folders that diffusers loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from models.tiny import save_tiny

    root = tmp_path_factory.mktemp("tiny")
    return {fam: save_tiny(fam, root, single_file=False) for fam in ("sd15", "sdxl")}


def _render(pipe, seed=0):
    g = torch.Generator("cpu").manual_seed(seed)
    return pipe("demo, a red square", num_inference_steps=3, height=64, width=64, generator=g,
                output_type="np").images[0]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_folder_loads_with_from_pretrained_and_generates(saved, family):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(saved[family].folder)
    expected = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    assert type(pipe).__name__ == expected
    image = _render(pipe)
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all() and image.std() > 0
    assert {p.name for p in (saved[family].folder / "tokenizer").iterdir()} & {"vocab.json", "tokenizer.json"}


def test_same_seed_same_weights():
    from models.tiny import build_tiny

    a, b, c = build_tiny("sd15", seed=1), build_tiny("sd15", seed=1), build_tiny("sd15", seed=2)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_real_architecture_names():
    from models.tiny import build_tiny

    pipe = build_tiny("sdxl")
    names = dict(pipe.unet.named_modules())
    assert "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k" in names
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert pipe.vae_scale_factor == 8
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    sd2v = build_tiny("sd2v")
    assert sd2v.scheduler.config.prediction_type == "v_prediction"
    assert sd2v.unet.config.use_linear_projection


def test_generated_tokenizer_handles_chinese_and_long_prompts():
    from models.tiny import build_tiny

    tok = build_tiny("sd15").tokenizer
    ids = tok("1girl, 猫耳, (smile:1.2), " * 20, truncation=True, max_length=77, padding="max_length").input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id
    assert tok.decode(tok("red square").input_ids, skip_special_tokens=True).strip() == "red square"
