"""Qwen-Image samples (models/families/qwen_image/sample.py): cfg is QwenImagePipeline's true CFG (on with the
negative prompt above 1, the negative unused at 1), the shift the recipe states is the one the scheduler used (and
the graph's ModelSamplingFlux gives the same μ), the PNG's ComfyUI graph sets what the render used, and a sample
from the saved LoRA file equals a fresh QwenImagePipeline render of the same recipe bitwise."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = dict(width=32, height=32, steps=2, seed=3)


@pytest.fixture(scope="module")
def tiny():
    """The tiny pipeline in eval mode, as from_pretrained leaves it; tests change copies of it only."""
    from models.families.qwen_image.tiny import build_tiny

    pipe = build_tiny()
    for part in (pipe.text_encoder, pipe.transformer, pipe.vae):
        part.eval()
    return pipe


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def diffusers_render(pipe, **kw) -> np.ndarray:
    """QwenImagePipeline called with the recipe's values and the sample's packed CPU noise."""
    from models.families.qwen_image import sample

    latents, generator = sample.initial_latents(pipe, SIZE["seed"], 32, 32)
    with torch.no_grad():
        return pixels(pipe(prompt=["a red cat"], num_inference_steps=SIZE["steps"], width=32, height=32,
                           generator=generator, latents=latents, max_sequence_length=512, **kw).images[0])


def test_cfg_is_true_cfg_with_the_negative(tiny):
    """cfg 1: one call a step, the negative unused; cfg 4: the pipeline's true_cfg_scale with the negative prompt,
    an empty negative included (the pipeline skips CFG only when no negative is passed)."""
    from models.families.qwen_image import sample

    plain = pixels(sample.render(tiny, prompt="a red cat", negative_prompt="blurry", cfg=1.0, **SIZE))
    assert np.array_equal(plain, diffusers_render(tiny, true_cfg_scale=1.0))
    assert np.array_equal(plain, pixels(sample.render(tiny, prompt="a red cat", negative_prompt="sharp", cfg=1.0,
                                                      **SIZE)))
    guided = pixels(sample.render(tiny, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE))
    assert np.array_equal(guided, diffusers_render(tiny, true_cfg_scale=4.0, negative_prompt=["blurry"]))
    assert not np.array_equal(guided, plain)
    empty = pixels(sample.render(tiny, prompt="a red cat", negative_prompt="", cfg=4.0, **SIZE))
    assert np.array_equal(empty, diffusers_render(tiny, true_cfg_scale=4.0, negative_prompt=[""]))
    assert not np.array_equal(empty, plain)


def test_batch_renders_each_prompt_from_the_same_noise(tiny):
    """The grid's batched render (prompts of different lengths: padded, masked) gives each prompt's own image,
    within one level of rounding (a batch is another code path than a single prompt)."""
    from models.families.qwen_image import sample

    prompts = ["a red cat", "a dog on a big green hill"]
    kw = dict(negative_prompt="blurry", cfg=4.0, **{**SIZE, "height": 48})
    batch = sample.render_batch(tiny, prompts=prompts, **kw)
    for prompt, image in zip(prompts, batch, strict=True):
        alone = pixels(sample.render(tiny, prompt=prompt, **kw))
        assert image.size == (32, 48) and np.abs(pixels(image) - alone).max() <= 1, prompt
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))


def test_stated_shift_is_the_schedulers(tiny):
    """The μ the recipe states (from the published config) and the 0.02 terminal give the sigmas the pipeline
    stepped through; ComfyUI's ModelSamplingFlux with the graph's max/base shift computes the same μ at any size."""
    from models.families.qwen_image import sample

    sample.render(tiny, prompt="a cat", cfg=1.0, **{**SIZE, "steps": 4})
    mu = sample.mu(sample.SCHEDULER, 32, 32)
    assert mu == pytest.approx(sample.mu(dict(tiny.scheduler.config), 32, 32))
    sigmas = np.linspace(1.0, 1 / 4, 4)
    shifted = math.exp(mu) / (math.exp(mu) + (1 / sigmas - 1))
    scale = (1 - shifted[-1]) / (1 - sample.SCHEDULER["shift_terminal"])
    stretched = 1 - (1 - shifted) / scale
    assert tiny.scheduler.sigmas[:-1].numpy() == pytest.approx(stretched, abs=1e-6)
    assert tiny.scheduler.sigmas[-2] == pytest.approx(0.02)
    # reference/qwen-image.md: 1024² → μ 0.694, 1328² → μ 0.834
    assert sample.mu(sample.SCHEDULER, 1024, 1024) == pytest.approx(0.6935, abs=1e-4)
    assert sample.mu(sample.SCHEDULER, 1328, 1328) == pytest.approx(0.834, abs=1e-3)
    max_shift, base_shift = sample.comfy_max_shift(), sample.SCHEDULER["base_shift"]
    for width, height in ((1328, 800), (512, 512), (2048, 2048)):
        m = (max_shift - base_shift) / (4096 - 256)  # comfy_extras/nodes_model_advanced.py ModelSamplingFlux
        comfy_mu = width * height / (8 * 8 * 2 * 2) * m + base_shift - m * 256
        assert comfy_mu == pytest.approx(sample.mu(sample.SCHEDULER, width, height), abs=1e-9)


def recipe(**kw) -> dict:
    return {"prompt": "a red cat", "negative_prompt": "blurry", "steps": 30, "sampler": "euler", "cfg": 4.0,
            "seed": 7, "width": 1328, "height": 800, "clip_skip": 1, "model": "", "model_hash": "",
            "loras": [{"name": "my_lora", "weight": 0.8}], **kw}


def graph_of(r: dict) -> dict[str, dict]:
    return {n["class_type"]: n["inputs"] for n in json.loads(r["png_chunks"]["prompt"]).values()}


def test_recipe_states_what_comfyui_users_set(tmp_path):
    from core.errors import DanluError
    from models.families.qwen_image import sample

    r, args = sample.sample_recipe(recipe(base="Qwen/Qwen-Image"), {"cfg": 4.0, "steps": 30})
    assert (r["cfg"], args["cfg"], r["sampler"], r["schedule"]) == (4.0, 4.0, "euler", "Simple")
    assert r["extra"]["Shift"] == f"{sample.mu(sample.SCHEDULER, 1328, 800):.4f}"
    assert (r["extra"]["Shift terminal"], r["extra"]["Max tokens"]) == ("0.02", 512)
    assert "norm" in r["extra"]["CFG normalization"] and "ComfyUI base" not in r["extra"]
    g = graph_of(r)
    assert g["UNETLoader"]["unet_name"] == "qwen_image_bf16.safetensors"
    assert g["CLIPLoader"] == {"clip_name": "qwen_2.5_vl_7b.safetensors", "type": "qwen_image", "device": "default"}
    assert g["VAELoader"]["vae_name"] == "qwen_image_vae.safetensors"
    assert (g["ModelSamplingFlux"]["width"], g["ModelSamplingFlux"]["height"]) == (1328, 800)
    assert g["ModelSamplingFlux"]["base_shift"] == 0.5
    assert g["ModelSamplingFlux"]["max_shift"] == pytest.approx(sample.comfy_max_shift(), abs=1e-6)
    assert (g["KSampler"]["cfg"], g["KSampler"]["steps"], g["KSampler"]["seed"]) == (4.0, 30, 7)
    assert (g["KSampler"]["sampler_name"], g["KSampler"]["scheduler"]) == ("euler", "simple")
    graph = json.loads(r["png_chunks"]["prompt"])
    assert graph[graph["8"]["inputs"]["negative"][0]]["inputs"]["text"] == "blurry"
    assert graph["8"]["inputs"]["model"] == ["4", 0] and graph["4"]["inputs"]["model"] == ["10", 0]
    assert g["LoraLoaderModelOnly"] == {"model": ["1", 0], "lora_name": "my_lora.safetensors", "strength_model": 0.8}

    folder = tmp_path / "my-qwen"
    folder.mkdir()
    r, _ = sample.sample_recipe(recipe(base=str(folder), cfg=1.0), {"cfg": 1.0})
    assert graph_of(r)["UNETLoader"]["unet_name"] == "" and "my-qwen" in r["extra"]["ComfyUI base"]
    assert "CFG normalization" not in r["extra"] and graph_of(r)["KSampler"]["cfg"] == 1.0
    with pytest.raises(DanluError) as e:
        sample.sample_recipe(recipe(cfg=0.5), {"cfg": 0.5})
    assert e.value.key == "sampling.cfg" and "1" in e.value.zh


def test_size_must_be_a_multiple_of_16(tiny):
    from core.errors import DanluError
    from models.families.qwen_image import sample

    with pytest.raises(DanluError) as e:
        sample.render(tiny, prompt="a cat", cfg=1.0, width=40, height=32, steps=1)
    assert e.value.key == "sampling.width" and "Qwen-Image" in str(e.value) and "16" in e.value.zh


def test_sample_from_saved_file_equals_fresh_diffusers_render(tiny, tmp_path):
    """A trained adapter saved by lora_state, rendered the way samples are (models.generate's load_lora and
    render) equals a fresh pipeline given the file by load_lora_weights and called with the recipe's values."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from models import generate
    from models.families.qwen_image import lora

    trained = copy.deepcopy(tiny.transformer)
    trained.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=lora.lora_target_modules(trained),
                                   init_lora_weights=False))
    path = tmp_path / "my_lora.safetensors"
    save_file(lora.lora_state({"transformer": trained}), path)

    ours_pipe = copy.deepcopy(tiny)
    generate.set_lora_weights(ours_pipe, {generate.load_lora(ours_pipe, path, "my_lora"): 1.0})
    ours = pixels(generate.render(ours_pipe, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE))
    base = pixels(generate.render(tiny, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE))
    assert not np.array_equal(ours, base)  # the file changes the image

    theirs_pipe = copy.deepcopy(tiny)
    theirs_pipe.load_lora_weights(str(path))
    assert np.array_equal(ours, diffusers_render(theirs_pipe, true_cfg_scale=4.0, negative_prompt="blurry"))
