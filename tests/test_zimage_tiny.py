"""The tiny Z-Image: real classes, seeded, saved as a diffusers folder and as ComfyUI-style transformer files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("zimage", tmp_path_factory.mktemp("zimage"))


def test_folder_loads_and_generates(tiny):
    from diffusers import DiffusionPipeline

    from models.tiny import tiny_resolution

    pipe = DiffusionPipeline.from_pretrained(tiny.folder)
    assert type(pipe).__name__ == "ZImagePipeline"
    assert pipe.vae.config.latent_channels == 16
    assert (pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor) == (0.1159, 0.3611)
    assert pipe.scheduler.config.shift == 3.0 and not pipe.scheduler.config.use_dynamic_shifting
    size = tiny_resolution("zimage")
    image = pipe("a photo of a cat", num_inference_steps=2, guidance_scale=0.0, height=size, width=size,
                 generator=torch.Generator("cpu").manual_seed(0), output_type="np").images[0]
    assert image.shape == (size, size, 3) and np.isfinite(image).all() and image.std() > 0


def test_chat_template_renders_a_user_turn_as_qwen3_and_comfyui(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny.folder / "tokenizer")
    messages = [{"role": "user", "content": "a photo of a cat"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert text == "<|im_start|>user\na photo of a cat<|im_end|>\n<|im_start|>assistant\n"
    no_think = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert no_think == text + "<think>\n\n</think>\n\n"
    ids = tok(text).input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.decode(ids) == text
    assert tok.pad_token == "<|endoftext|>"


def test_seeded():
    from models.tiny import build_tiny

    a, b, c = build_tiny("zimage", seed=3), build_tiny("zimage", seed=3), build_tiny("zimage", seed=4)
    wa, wb, wc = (p.transformer.layers[0].attention.to_q.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert torch.equal(a.text_encoder.embed_tokens.weight, b.text_encoder.embed_tokens.weight)


@pytest.mark.parametrize("which", ["single_file", "prefixed_file"])
def test_transformer_file_loads_in_diffusers_single_file_loader(tiny, which):
    from diffusers import ZImageTransformer2DModel
    from safetensors import safe_open

    path = getattr(tiny, which)
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    prefixed = which == "prefixed_file"
    assert all(k.startswith("model.diffusion_model.") == prefixed for k in keys)
    assert any(k.endswith("layers.0.attention.qkv.weight") for k in keys)
    assert not any("to_q" in k or "text_encoder" in k or "vae" in k or k.startswith("decoder.") for k in keys)
    folder = ZImageTransformer2DModel.from_pretrained(tiny.folder, subfolder="transformer")
    single = ZImageTransformer2DModel.from_single_file(str(path), config=str(tiny.folder), subfolder="transformer")
    a, b = folder.state_dict(), single.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_adapter_file(tiny, tmp_path):
    from diffusers import ZImageTransformer2DModel
    from safetensors import safe_open

    from models.families.zimage.tiny import save_training_adapter

    transformer = ZImageTransformer2DModel.from_pretrained(tiny.folder, subfolder="transformer")
    path = save_training_adapter(tmp_path / "adapter.safetensors", transformer, rank=4)
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        a = f.get_tensor("diffusion_model.layers.0.attention.to_k.lora_A.weight")
        b = f.get_tensor("diffusion_model.layers.0.attention.to_k.lora_B.weight")
    assert all(k.startswith("diffusion_model.layers.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
               for k in keys)
    assert len(keys) == 2 * 8 * len(transformer.layers) and not any("alpha" in k for k in keys)
    assert a.shape[0] == 4 and b.shape[1] == 4 and b.abs().sum() > 0
