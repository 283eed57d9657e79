"""FLUX / Chroma samples (models/families/flux/sample.py): dev's cfg is the distilled guidance with true CFG 1,
schnell takes no guidance, Chroma guides with the negative prompt through a bool mask (padding has no effect), the
shift the recipe states is the one the scheduler used, and the PNG's ComfyUI graph sets what the render used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = dict(width=32, height=32, steps=2, seed=3)


def inference(pipe):
    """The pipeline in eval mode, as from_pretrained leaves it (a freshly built T5 would apply dropout)."""
    for name in ("text_encoder", "text_encoder_2", "transformer", "vae"):
        if getattr(pipe, name, None) is not None:
            getattr(pipe, name).eval()
    return pipe


@pytest.fixture(scope="module")
def dev():
    from models.families.flux.tiny import build_tiny

    return inference(build_tiny(variant="dev"))


@pytest.fixture(scope="module")
def chroma():
    from models.families.chroma.tiny import build_tiny

    return inference(build_tiny())


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_dev_takes_guidance_3_5_and_cfg_is_true_cfg(dev):
    """render(cfg=1) is FluxPipeline(guidance_scale=3.5, true_cfg_scale=1) from the same packed CPU noise, the
    negative prompt unused; render(cfg=2) is true CFG with the negative (diffusers' true_cfg_scale)."""
    from models.families.flux import sample

    def diffusers_render(**kw):
        latents, generator = sample.initial_latents(dev, SIZE["seed"], 32, 32)
        with torch.no_grad():
            return pixels(dev(prompt=["a red cat"], guidance_scale=3.5, num_inference_steps=2, width=32, height=32,
                              generator=generator, latents=latents, max_sequence_length=512, **kw).images[0])

    ours = pixels(sample.render(dev, prompt="a red cat", negative_prompt="blurry", cfg=1.0, **SIZE))
    assert np.array_equal(ours, diffusers_render(true_cfg_scale=1.0))
    other_neg = pixels(sample.render(dev, prompt="a red cat", negative_prompt="sharp", cfg=1.0, **SIZE))
    assert np.array_equal(ours, other_neg)
    guided = pixels(sample.render(dev, prompt="a red cat", negative_prompt="blurry", cfg=2.0, **SIZE))
    assert np.array_equal(guided, diffusers_render(true_cfg_scale=2.0, negative_prompt=["blurry"]))
    assert not np.array_equal(guided, ours)


def test_schnell_takes_no_guidance_input():
    from models.families.flux import sample
    from models.families.flux.tiny import build_tiny

    schnell = inference(build_tiny(variant="schnell"))
    a = sample.render(schnell, prompt="a red cat", negative_prompt="blurry", cfg=1.0, **SIZE)
    b = sample.render(schnell, prompt="a red cat", negative_prompt="sharp", cfg=1.0, **SIZE)
    assert np.array_equal(pixels(a), pixels(b))
    assert schnell.scheduler.sigmas[:-1].tolist() == pytest.approx([1.0, 0.5])  # static shift 1: μ = 0


def test_stated_shift_is_the_schedulers(dev):
    """The μ the recipe states (mu of the published config) gives the sigmas the pipeline stepped through."""
    from models.families.flux import sample

    sample.render(dev, prompt="a cat", cfg=1.0, **{**SIZE, "steps": 4})
    mu = sample.mu(dict(dev.scheduler.config), 32, 32)
    assert mu == pytest.approx(sample.mu(sample.DYNAMIC, 32, 32))
    sigmas = np.linspace(1.0, 1 / 4, 4)
    shifted = np.exp(mu) / (np.exp(mu) + (1 / sigmas - 1))
    assert dev.scheduler.sigmas[:-1].numpy() == pytest.approx(shifted, abs=1e-6)
    assert sample.mu(sample.DYNAMIC, 1024, 1024) == pytest.approx(1.15)
    assert sample.mu(sample.DYNAMIC, 512, 512) == pytest.approx(0.5 + 0.65 * 768 / 3840)


def test_chroma_padding_has_no_effect(chroma):
    """With our bool mask, changing the T5 embeddings of the masked padding leaves the image as it was; with the
    pipeline's own float 0/1 mask (added to the scores, diffusers #13619) the same change shows."""
    from models.families.flux import sample

    args = sample.chroma_prompts(chroma, ["a red cat"], "blurry", cfg=4.0)
    mask = args["prompt_attention_mask"]
    assert mask.dtype == torch.bool and 0 < int(mask.sum()) < mask.shape[1]
    noisy = dict(args, prompt_embeds=torch.where(mask[..., None], args["prompt_embeds"],
                                                 torch.randn_like(args["prompt_embeds"]) * 10))

    def run(prompt_args):
        latents, generator = sample.initial_latents(chroma, SIZE["seed"], 32, 32)
        with torch.no_grad():
            return pixels(chroma(**prompt_args, guidance_scale=4.0, num_inference_steps=2, width=32, height=32,
                                 generator=generator, latents=latents).images[0])

    assert np.array_equal(run(args), run(noisy))
    as_float = {k: v.float() if k.endswith("mask") else v for k, v in args.items()}
    noisy_float = {k: v.float() if k.endswith("mask") else v for k, v in noisy.items()}
    assert not np.array_equal(run(as_float), run(noisy_float))
    assert np.array_equal(run(args), pixels(sample.render(chroma, prompt="a red cat", negative_prompt="blurry",
                                                          cfg=4.0, **SIZE)))


def test_chroma_cfg_guides_with_the_negative(chroma):
    from models.families.flux import sample

    a = sample.render(chroma, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE)
    b = sample.render(chroma, prompt="a red cat", negative_prompt="a dog", cfg=4.0, **SIZE)
    c = sample.render(chroma, prompt="a red cat", negative_prompt="a dog", cfg=1.0, **SIZE)
    d = sample.render(chroma, prompt="a red cat", negative_prompt="blurry", cfg=1.0, **SIZE)
    assert not np.array_equal(pixels(a), pixels(b))
    assert np.array_equal(pixels(c), pixels(d))  # cfg 1: one forward, the negative unused


def recipe(**kw) -> dict:
    return {"prompt": "a red cat", "negative_prompt": "blurry", "steps": 28, "sampler": "euler", "cfg": 3.5,
            "seed": 7, "width": 1024, "height": 768, "clip_skip": 1, "model": "", "model_hash": "",
            "loras": [{"name": "my_lora", "weight": 0.8}], **kw}


def graph_of(r: dict) -> dict[str, dict]:
    return {n["class_type"]: n["inputs"] for n in json.loads(r["png_chunks"]["prompt"]).values()}


def test_dev_recipe_states_what_comfyui_users_set():
    from models.families.flux import sample

    r, args = sample.sample_recipe(recipe(base="black-forest-labs/FLUX.1-dev", cfg=1.0), {"cfg": 1.0, "steps": 28})
    assert (r["cfg"], r["extra"]["Distilled CFG Scale"], args["cfg"]) == (1.0, "3.5", 1.0)
    assert r["extra"]["Shift"] == f"{sample.mu(sample.DYNAMIC, 1024, 768):.4f}" and r["extra"]["Max tokens"] == 512
    g = graph_of(r)
    assert g["UNETLoader"]["unet_name"] == "flux1-dev.safetensors"
    assert g["DualCLIPLoader"] == {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                                   "type": "flux", "device": "default"}
    assert (g["FluxGuidance"]["guidance"], g["KSampler"]["cfg"]) == (3.5, 1.0)
    graph = json.loads(r["png_chunks"]["prompt"])
    assert [graph[n[0]]["class_type"] for n in (graph["8"]["inputs"]["positive"], graph["8"]["inputs"]["negative"])] \
        == ["FluxGuidance", "FluxGuidance"]
    assert (g["ModelSamplingFlux"]["width"], g["ModelSamplingFlux"]["height"]) == (1024, 768)
    assert g["ModelSamplingFlux"]["max_shift"] == 1.15 and g["ModelSamplingFlux"]["base_shift"] == 0.5
    assert g["LoraLoaderModelOnly"]["lora_name"] == "my_lora.safetensors"
    assert (g["EmptySD3LatentImage"]["width"], g["KSampler"]["scheduler"]) == (1024, "simple")


def test_schnell_and_chroma_recipes(tmp_path):
    from models.families.chroma import sample as chroma_sample
    from models.families.flux import sample

    folder = tmp_path / "my-schnell"
    (folder / "transformer").mkdir(parents=True)
    (folder / "transformer" / "config.json").write_text(json.dumps({"guidance_embeds": False}))
    r, _ = sample.sample_recipe(recipe(base=str(folder), steps=4, cfg=1.0), {"cfg": 1.0})
    g = graph_of(r)
    assert r["cfg"] == 1.0 == g["KSampler"]["cfg"] and "Distilled CFG Scale" not in r["extra"]
    assert r["extra"]["Max tokens"] == 256
    assert r["extra"]["Shift"] == "0.0000" and "ModelSamplingFlux" not in g and "FluxGuidance" not in g
    assert g["UNETLoader"]["unet_name"] == "" and "ComfyUI base" in r["extra"]

    r, _ = chroma_sample.sample_recipe(recipe(base="lodestones/Chroma1-HD", cfg=4.0), {"cfg": 4.0})
    g = graph_of(r)
    assert r["cfg"] == 4.0 and g["KSampler"]["cfg"] == 4.0 and "FluxGuidance" not in g
    assert g["CLIPLoader"] == {"clip_name": "t5xxl_fp16.safetensors", "type": "chroma", "device": "default"}
    assert g["UNETLoader"]["unet_name"] == "Chroma1-HD.safetensors"
    negative = json.loads(r["png_chunks"]["prompt"])["6"]["inputs"]["text"]
    assert negative == "blurry" and "ModelSamplingFlux" in g


def test_size_must_be_a_multiple_of_16(dev):
    from core.errors import DanluError
    from models.families.flux import sample

    with pytest.raises(DanluError) as e:
        sample.render(dev, prompt="a cat", cfg=1.0, width=40, height=32, steps=1)
    assert e.value.key == "sampling.width" and "16" in e.value.zh


@pytest.mark.parametrize("family", ["flux", "chroma"])
def test_sample_from_saved_file_equals_fresh_diffusers_render(family, tmp_path):
    """A trained adapter saved in the default layout, rendered the way samples are (models.generate's load_lora
    and render) equals a fresh pipeline given the file by load_lora_weights and called with the recipe's values."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from models import generate
    from models.families.flux import lora, sample

    def fresh():
        if family == "chroma":
            from models.families.chroma.tiny import build_tiny

            return inference(build_tiny())
        from models.families.flux.tiny import build_tiny

        return inference(build_tiny(variant="dev"))

    trained = fresh().transformer
    trained.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=lora.lora_target_modules(trained),
                                   init_lora_weights=False))
    path = tmp_path / "my_lora.safetensors"
    save_file(lora.lora_state({"transformer": trained}), path)

    ours_pipe = fresh()
    generate.set_lora_weights(ours_pipe, {generate.load_lora(ours_pipe, path, "my_lora"): 1.0})
    ours = generate.render(ours_pipe, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE)
    base = generate.render(fresh(), prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE)
    assert not np.array_equal(pixels(ours), pixels(base))  # the file changes the image

    theirs_pipe = fresh()
    theirs_pipe.load_lora_weights(str(path))
    latents, generator = sample.initial_latents(theirs_pipe, SIZE["seed"], 32, 32)
    call = dict(guidance_scale=4.0, num_inference_steps=2, width=32, height=32, generator=generator, latents=latents)
    with torch.no_grad():
        if family == "chroma":  # the prompt through the bool mask: see test_chroma_padding_has_no_effect
            theirs = theirs_pipe(**sample.chroma_prompts(theirs_pipe, ["a red cat"], "blurry", 4.0), **call)
        else:  # cfg 4 is true CFG; the distilled guidance input stays 3.5
            theirs = theirs_pipe(prompt="a red cat", negative_prompt="blurry", true_cfg_scale=4.0,
                                 **dict(call, guidance_scale=3.5))
    assert np.array_equal(pixels(ours), pixels(theirs.images[0]))
