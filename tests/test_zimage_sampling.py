"""Z-Image samples: the semantics written in models/families/zimage/sample.py (ComfyUI's cfg, steps = forwards, shift-3
simple sigmas, the Qwen3 template, CPU noise), the PNG recipe, and parity with a fresh diffusers render."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.image_parity import assert_images_within_rounding

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("zimage", tmp_path_factory.mktemp("zimage"))


@pytest.fixture(scope="module")
def lora_file(tiny, tmp_path_factory):
    from tests.test_zimage_lora_file import save, trained

    pipe, _ = trained(tiny.folder, alpha=4)
    return save(pipe, tmp_path_factory.mktemp("lora") / "zlora.safetensors", 4)


def sampling(**kw):
    from core.config import SamplingConfig

    s = SamplingConfig()
    for k, v in {"steps": 3, "cfg": 1.0, "seed": 11, "width": SIZE, "height": SIZE, **kw}.items():
        setattr(s, k, v)
    return s


def test_recipe_states_what_comfyui_users_type():
    from models import generate, recipe

    s = sampling(steps=8, cfg=1.0, negative_prompt="blurry")
    sample = recipe.build(s, prompt="a photo of a cat", clip_skip=2, family="zimage", model="z_image_turbo",
                          model_hash="0123456789", loras=[{"name": "zlora", "weight": 1.0, "hash": "abcdef012345"}])
    text = generate.recipe_text(sample.recipe)
    assert text.splitlines()[0] == "a photo of a cat <lora:zlora:1>"
    assert ("Steps: 8, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Seed: 11, Size: 32x32, "
            "Model hash: 0123456789, Model: z_image_turbo, RNG: CPU") in text
    assert text.endswith('Lora hashes: "zlora: abcdef012345", Shift: 3, Guidance scale: 0, Max tokens: 512, '
                         'ComfyUI: 0.3.76 or newer')
    assert "Clip skip" not in text and sample.args["clip_skip"] == 1 and sample.args["cfg"] == 1.0
    back = generate.parse_parameters(text)
    assert (back["sampler"], back["steps"], back["cfg"], back["params"]["Schedule type"]) == ("euler", 8, 1.0,
                                                                                              "Simple")
    deturbo = recipe.build(sampling(steps=25, cfg=3.0), prompt="p", family="zimage").recipe
    assert "CFG scale: 3" in generate.recipe_text(deturbo) and "Guidance scale: 2" in generate.recipe_text(deturbo)


def test_cfg_below_one_sampler_and_size_are_refused(tiny):
    from core.errors import DanluError
    from models import recipe
    from models.families.zimage import sample

    with pytest.raises(DanluError, match="below 1"):
        recipe.build(sampling(cfg=0.5), prompt="p", family="zimage")
    with pytest.raises(DanluError, match="Euler"):
        sample.render(None, prompt="p", sampler="dpmpp_2m")
    with pytest.raises(DanluError, match="multiple of 16"):
        sample.initial_noise(0, 40, 32)


def _counting(pipe):
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    return calls


@pytest.mark.parametrize("cfg,batch", [(1.0, 1), (3.0, 2)])
def test_steps_are_transformer_forwards_and_cfg_batches_the_negative(tiny, cfg, batch):
    from diffusers import ZImagePipeline

    from models import generate

    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    calls = _counting(pipe)
    generate.render(pipe, prompt="a cat", negative_prompt="a dog", steps=5, cfg=cfg, seed=1, width=SIZE, height=SIZE)
    assert calls == [batch] * 5  # guidance 0: one forward per step; CFG: prompt and negative in one batch of two


@pytest.mark.parametrize("n,exact", [(8, True), (25, True), (9, False)])
def test_sigmas_are_comfyui_simple_with_shift_3(tiny, n, exact):
    from diffusers import ZImagePipeline

    from models import generate

    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    shift = 3.0
    generate.render(pipe, prompt="a cat", steps=n, cfg=1.0, seed=1, width=SIZE, height=SIZE)
    # ComfyUI: ModelSamplingAuraFlow's table sigmas[i] = shift·t/(1 + (shift − 1)·t), t = (i + 1)/1000; `simple`
    # takes sigmas[-(1 + int(x·1000/n))] for x < n, then 0. diffusers: linspace(1, 1/n, n), the same shift, then 0.
    t = [(1000 - int(x * 1000 / n)) / 1000 for x in range(n)]
    comfy = np.array([shift * x / (1 + (shift - 1) * x) for x in t] + [0.0])
    ours = pipe.scheduler.sigmas.numpy()
    assert len(ours) == n + 1
    # equal when n divides 1000 (8, 10, 20, 25, 50 steps); otherwise ComfyUI's table index rounds t by < 1/1000,
    # which the shift (dσ/dt ≤ 3) turns into < 3/1000 in σ
    assert np.abs(ours - comfy).max() < (1e-6 if exact else 3e-3)


def test_prompt_features_use_the_qwen3_template_512_tokens_and_layer_minus_2(tiny):
    from diffusers import ZImagePipeline

    from models.families.zimage import load

    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    prompts = ["a photo of a cat", ""]
    got = load.encode_prompts(pipe, prompts)
    assert prompts == ["a photo of a cat", ""]  # the caller's list is left alone
    for prompt, feats in zip(prompts, got):
        text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"  # as ComfyUI hard-codes it
        ids = pipe.tokenizer([text], padding="max_length", max_length=512, truncation=True, return_tensors="pt")
        assert ids.input_ids.shape[1] == 512
        mask = ids.attention_mask.bool()
        with torch.no_grad():
            hidden = pipe.text_encoder(input_ids=ids.input_ids, attention_mask=mask,
                                       output_hidden_states=True).hidden_states[-2]
        assert torch.equal(feats, hidden[0][mask[0]])


def test_noise_is_comfyuis_cpu_draw():
    from models.families.zimage import sample

    noise, _ = sample.initial_noise(42, 64, 48)
    torch.manual_seed(42)  # ComfyUI's prepare_noise
    assert torch.equal(noise, torch.randn((1, 16, 6, 8), dtype=torch.float32))


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_sample_from_saved_file_equals_fresh_diffusers_render_bitwise(tiny, lora_file, cfg):
    from diffusers import ZImagePipeline

    from models import generate, recipe

    s = sampling(cfg=cfg, negative_prompt="lowres")
    sample = recipe.build(s, prompt="a photo of a cat", family="zimage")
    pipe = generate.open_pipeline(str(tiny.folder), family="zimage")
    generate.load_lora(pipe, lora_file, "sample")
    ours = generate.render(pipe, **sample.args)
    fresh = ZImagePipeline.from_pretrained(tiny.folder)
    fresh.load_lora_weights(str(lora_file))
    theirs = fresh("a photo of a cat", negative_prompt="lowres", num_inference_steps=s.steps, guidance_scale=cfg - 1,
                   height=SIZE, width=SIZE, generator=torch.Generator("cpu").manual_seed(s.seed)).images[0]
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_transformer_file_base_samples_like_the_folder(tiny, lora_file):
    from models import generate

    args = dict(prompt="a photo of a cat", steps=3, cfg=2.0, seed=3, width=SIZE, height=SIZE)
    images = []
    for base in (tiny.folder, tiny.prefixed_file):
        pipe = generate.open_pipeline(str(base))
        generate.load_lora(pipe, lora_file, "sample")
        images.append(np.asarray(generate.render(pipe, **args)))
    assert_images_within_rounding(images[0], images[1], 255)


def test_batch_of_prompts_matches_single_renders(tiny):
    from diffusers import ZImagePipeline

    from models import generate

    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    args = dict(steps=2, cfg=1.0, seed=5, width=SIZE, height=SIZE)
    batch = generate.render_batch(pipe, prompts=["a cat", "a red square"], **args)
    for prompt, image in zip(["a cat", "a red square"], batch):
        assert_images_within_rounding(np.asarray(image), np.asarray(generate.render(pipe, prompt=prompt, **args)),
                                      255)


def test_strength_zero_is_the_base_and_two_files_mix(tiny, lora_file, tmp_path):
    import shutil

    from diffusers import ZImagePipeline

    from models import generate

    args = dict(prompt="a photo of a cat", steps=2, cfg=1.0, seed=2, width=SIZE, height=SIZE)
    base = np.asarray(generate.render(ZImagePipeline.from_pretrained(tiny.folder), **args))
    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    other = shutil.copy(lora_file, tmp_path / "zlora-000002.safetensors")
    generate.load_lora(pipe, lora_file, "a")
    generate.load_lora(pipe, other, "b")
    generate.set_lora_weights(pipe, {"a": 0.0, "b": 0.0})
    assert np.array_equal(np.asarray(generate.render(pipe, **args)), base)
    generate.set_lora_weights(pipe, {"a": 1.0, "b": 0.0})
    one = np.asarray(generate.render(pipe, **args))
    generate.set_lora_weights(pipe, {"a": 0.0, "b": 1.0})
    assert np.array_equal(np.asarray(generate.render(pipe, **args)), one) and not np.array_equal(one, base)


def test_png_carries_the_comfyui_graph_of_the_same_recipe(tmp_path):
    import json

    from PIL import Image

    from models import generate, recipe

    s = sampling(steps=8, cfg=1.0, negative_prompt="lowres", width=1024, height=768)
    sample = recipe.build(s, prompt="a photo of a cat", family="zimage", model="my_zimage", model_hash="0123456789",
                          loras=[{"name": "zlora-000002", "weight": 0.8, "hash": ""}])
    graph = json.loads(sample.recipe["png_chunks"]["prompt"])
    nodes = {n["class_type"]: n["inputs"] for n in graph.values()}
    k = nodes["KSampler"]
    assert (k["steps"], k["cfg"], k["seed"], k["sampler_name"], k["scheduler"], k["denoise"]) == (
        8, 1.0, 11, "euler", "simple", 1.0)
    assert nodes["ModelSamplingAuraFlow"]["shift"] == 3.0 and nodes["CLIPLoader"]["type"] == "lumina2"
    assert (nodes["EmptySD3LatentImage"]["width"], nodes["EmptySD3LatentImage"]["height"]) == (1024, 768)
    assert nodes["UNETLoader"]["unet_name"] == "my_zimage.safetensors"  # the base was this single file
    assert nodes["LoraLoaderModelOnly"] == {"model": ["1", 0], "lora_name": "zlora-000002.safetensors",
                                            "strength_model": 0.8}
    texts = [n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert texts == ["a photo of a cat", "lowres"]
    for node in graph.values():  # every link points at a node of the graph
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in graph and value[1] == 0
    png = generate.save_png(Image.new("RGB", (8, 8)), tmp_path / "s.png", generate.recipe_text(sample.recipe),
                            sample.recipe.get("png_chunks"))
    saved = Image.open(png).text
    assert json.loads(saved["prompt"]) == graph and saved["parameters"].startswith("a photo of a cat")
    hub = recipe.build(s, prompt="p", family="zimage", model="Z-Image-Turbo").recipe  # a folder or hub id
    assert json.loads(hub["png_chunks"]["prompt"])["1"]["inputs"]["unet_name"] == "z_image_turbo_bf16.safetensors"
