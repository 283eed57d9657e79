"""The Z-Image LoRA file: ai-toolkit's key format, alpha folded into lora_B, metadata; every key loaded by diffusers
and mapped by ComfyUI's rules; the saved file reproduces the in-memory adapter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.image_parity import assert_images_within_rounding, assert_same_lora_weights
from tests.lora_logs import load_lora_capturing_logs
from tests.zimage_comfy import comfy_merge

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RANK = 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("zimage", tmp_path_factory.mktemp("zimage"))


def trained(folder, alpha: float, refiners: bool = False, seed: int = 0):
    """A fresh pipeline whose transformer carries a random (non-zero) peft LoRA, as after some training."""
    from diffusers import ZImagePipeline
    from peft import LoraConfig

    from models.families.zimage import lora

    pipe = ZImagePipeline.from_pretrained(folder)
    targets = lora.lora_target_modules(pipe.transformer, refiners=refiners)
    torch.manual_seed(seed)
    pipe.transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=alpha, target_modules=targets,
                                            init_lora_weights=False), adapter_name="default")
    with torch.no_grad():  # a small delta, as training leaves it
        for name, p in pipe.transformer.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)
    return pipe, targets


def save(pipe, path, alpha: float, precision: str = "float"):
    from models import lora_file
    from models.families import zimage

    meta = {"ss_network_module": "networks.lora", "ss_network_dim": RANK, "ss_network_alpha": alpha,
            "ss_base_model_version": zimage.LORA_VERSION, lora_file.CONFIG_KEY: "[model]\nbase = 'x'\n"}
    state = lora_file.peft_to_kohya({"transformer": pipe.transformer}, "zimage")
    lora_file.save_lora(path, state, meta, precision)
    return path


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    pipe, targets = trained(tiny.folder, alpha=RANK)
    path = save(pipe, tmp_path_factory.mktemp("lora") / "my_lora.safetensors", RANK)
    return pipe, targets, path


def test_keys_and_metadata(saved):
    from safetensors import safe_open

    from models.lora_file import lora_family

    _, targets, path = saved
    with safe_open(str(path), "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    expected = {f"diffusion_model.{t}.{p}.weight" for t in targets for p in ("lora_A", "lora_B")}
    assert keys == expected and len(targets) == 8 * 2  # 8 linears in each of the 2 main blocks, no refiners
    assert (meta["ss_base_model_version"], meta["ss_output_name"]) == ("zimage", "my_lora")
    assert meta["ss_network_alpha"] == str(RANK) and meta["modelspec.architecture"] == "z-image/lora"
    assert meta["sshs_model_hash"] and meta["sshs_legacy_hash"] and "danlu_config" in meta
    assert lora_family(path) == "zimage"


def test_every_key_loads_in_diffusers_and_weights_equal_the_trained_ones(saved, tiny):
    from diffusers import ZImagePipeline

    pipe, targets, path = saved
    fresh = ZImagePipeline.from_pretrained(tiny.folder)
    log = load_lora_capturing_logs(fresh, path, "file")
    for word in ("unexpected", "missing", "no lora keys", "not loaded", "were not used", "newly initialized"):
        assert word not in log, log
    assert_same_lora_weights({"t": pipe.transformer}, "default", {"t": fresh.transformer}, "file")


def test_alpha_is_folded_into_lora_b(tiny, tmp_path):
    from diffusers import ZImagePipeline
    from safetensors import safe_open

    from models.lora_names import lora_layers

    alpha = 3.0  # scale 0.75: not a power of two, so the fold rounds like any fp32 product
    pipe, targets = trained(tiny.folder, alpha=alpha, refiners=True)
    path = save(pipe, tmp_path / "a.safetensors", alpha)
    with safe_open(str(path), "pt") as f:
        assert not any(k.endswith(".alpha") for k in f.keys()) and f.metadata()["ss_network_alpha"] == str(RANK)
        assert any(k.startswith("diffusion_model.context_refiner.0.") for k in f.keys())
    fresh = ZImagePipeline.from_pretrained(tiny.folder)
    fresh.load_lora_weights(str(path), adapter_name="file")
    trained_layers = dict(lora_layers(pipe.transformer, "default"))
    for name, layer in lora_layers(fresh.transformer, "file"):
        mine = trained_layers.pop(name)
        assert layer.scaling["file"] == 1.0
        want = mine.scaling["default"] * (mine.lora_B["default"].weight @ mine.lora_A["default"].weight)
        got = layer.lora_B["file"].weight @ layer.lora_A["file"].weight
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert not trained_layers


def test_comfyui_rules_map_every_key_and_merge_as_diffusers_does(saved, tiny):
    from diffusers import ZImagePipeline
    from safetensors.torch import load_file

    from models.families.zimage import load

    _, _, path = saved
    lora = load_file(str(path))
    original = load_file(str(tiny.single_file))  # the ComfyUI-named transformer (fused qkv)
    merged, not_loaded = comfy_merge(original, lora)
    assert not not_loaded  # ComfyUI would print no "lora key not loaded"
    fresh = ZImagePipeline.from_pretrained(tiny.folder)
    fresh.load_lora_weights(str(path), adapter_name="file")
    fresh.fuse_lora(lora_scale=1.0)
    fresh.unload_lora_weights()
    fused = load.to_file_keys(fresh.transformer.state_dict())
    assert fused.keys() == merged.keys()
    changed = [k for k in merged if not torch.equal(merged[k], original[k])]
    assert any(k.endswith("attention.qkv.weight") for k in changed) and any(k.endswith("attention.out.weight")
                                                                          for k in changed)
    for k in merged:
        torch.testing.assert_close(fused[k], merged[k], rtol=1e-6, atol=1e-6)


def test_sample_from_the_file_matches_the_in_memory_adapter(saved, tiny):
    from diffusers import ZImagePipeline

    from models import generate

    pipe, _, path = saved
    fresh = ZImagePipeline.from_pretrained(tiny.folder)
    generate.load_lora(fresh, path, "file")
    args = dict(prompt="a photo of a cat", steps=4, cfg=3.0, seed=7, width=32, height=32)
    a, b = generate.render(pipe, **args), generate.render(fresh, **args)
    base = generate.render(ZImagePipeline.from_pretrained(tiny.folder), **args)
    assert not np.array_equal(np.asarray(a), np.asarray(base))  # the LoRA changes the image ...
    assert_images_within_rounding(np.asarray(a), np.asarray(b), 255)  # ... the same way from memory and file


def test_bf16_file_reports_its_rounding(saved, tmp_path):
    from models import lora_file

    pipe, _, _ = saved
    state = lora_file.peft_to_kohya({"transformer": pipe.transformer}, "zimage")
    report = lora_file.save_lora(tmp_path / "b.safetensors", state, {"ss_base_model_version": "zimage",
                                                                     "ss_network_dim": RANK}, "bf16")
    assert 0 < report.max_rel_error < 2 ** -7 and report.values == sum(v.numel() for v in state.values())
    assert json.dumps(report.text())


def test_real_size_targets_and_comfyui_names():
    """On the real 6B layout (meta tensors): ai-toolkit's default targets, 240 linears; rank 16 is about 42.5 M
    parameters; every target has a ComfyUI weight of the right shape."""
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    from models.families import zimage
    from models.families.zimage import load, lora
    from tests.zimage_comfy import comfy_target

    with init_empty_weights():
        model = ZImageTransformer2DModel()
    targets = lora.lora_target_modules(model)
    assert len(targets) == 8 * 30 and not any(t.startswith(("noise_refiner", "context_refiner")) for t in targets)
    modules = dict(model.named_modules())
    params = sum(16 * (modules[t].in_features + modules[t].out_features) for t in targets)
    assert params == pytest.approx(42.5e6, rel=0.01)
    original = {k: v.shape for k, v in load.to_file_keys(model.state_dict()).items()}
    for t in targets:
        key, rows = comfy_target(t, zimage.DIM)
        shape = original[key]
        assert (rows.stop - rows.start if rows else shape[0], shape[1]) == tuple(modules[t].weight.shape)
    refiners = lora.lora_target_modules(model, refiners=True)
    assert len(refiners) == 240 + 2 * 8 + 2 * 7  # context refiners have no adaLN
