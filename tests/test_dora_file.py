"""DoRA in LyCORIS's input-axis form: a saved module merged by WebUI's and ComfyUI's formulas = the trained weight.

The two loaders' merges are written out here from their public source:
- A1111 ``extensions-builtin/Lora/network.py``: ``finalize_updown`` scales up @ down by alpha / dim, then
  ``apply_weight_decompose``: merged = updown + W; norm = merged.transpose(0, 1).reshape(in, -1).norm(dim=1)
  reshaped (1, in, …); result (merged · dora_scale / norm − W) · multiplier. Releases before that order applied
  the alpha / dim scale after the decomposition; with alpha = rank (what Danlu writes for DoRA) both agree.
- ComfyUI ``comfy/weight_adapter/base.py`` ``weight_decompose``: lora_diff · alpha; weight_calc = W + lora_diff;
  the same input-column norm of weight_calc; weight_calc · (dora_scale / norm); W + strength · (weight_calc − W).
"""

from __future__ import annotations

import pytest
from merged_files import assert_file_renders_like, assert_sample_is_the_trained_model, render, tiny_with_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _a1111(w, down, up, alpha, dora_scale, multiplier=1.0, scale_first=True):
    rank = down.shape[0]
    updown = (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
    scale = alpha / rank
    if scale_first:
        updown = updown * scale
    merged = updown + w
    norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1, keepdim=True)
    norm = norm.reshape(merged.shape[1], *[1] * (w.dim() - 1)).transpose(0, 1)
    updown = merged * (dora_scale / norm) - w
    return w + updown * (1.0 if scale_first else scale) * multiplier


def _comfy(w, down, up, alpha, dora_scale, strength=1.0):
    lora_diff = (up.flatten(1) @ down.flatten(1)).reshape(w.shape) * (alpha / down.shape[0])
    calc = w + lora_diff
    norm = calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1, keepdim=True)
    norm = norm.reshape(calc.shape[1], *[1] * (calc.dim() - 1)).transpose(0, 1)
    calc = calc * (dora_scale / norm)
    return w + strength * (calc - w)


def _trained(family: str):
    """DoRA (rank 4, alpha 2, LoCon convs) on UNet and text encoders, up-weights and magnitudes moved off init."""
    def randomise(name, p, gen):
        import torch

        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=gen) * 0.3
        elif "lora_dora_scale" in name:
            p.data = p.data * (1 + 0.2 * torch.randn(p.shape, generator=gen))

    return tiny_with_adapter(family, randomise, conv_dim=4, use_dora=True)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_loaders_merge_the_trained_weight(family, tmp_path):
    import torch
    from safetensors.torch import load_file

    from models.lora_file import peft_to_kohya, save_lora
    from models.lora_names import base_name, tuner_layers
    from models.lycoris import group_modules
    from training.dora import merged_weight

    pipe, comps = _trained(family)
    in_memory = render(pipe)
    path = tmp_path / "d.safetensors"
    save_lora(path, peft_to_kohya(comps, family), {"ss_network_module": "networks.lora"}, "float")
    groups = group_modules(load_file(str(path)))
    n = 0
    with torch.no_grad():
        for component, model in comps.items():
            for name, layer in tuner_layers(model):
                t = groups[base_name(component, model, name, family)]
                w = layer.get_base_layer().weight.float()
                assert t["dora_scale"].shape == (1, w.shape[1], *[1] * (w.dim() - 2))  # LyCORIS's input axis
                assert float(t["alpha"]) == t["lora_down.weight"].shape[0]  # scale 1: both A1111 orders agree
                ref = merged_weight(layer, "default")
                args = (w, t["lora_down.weight"], t["lora_up.weight"], float(t["alpha"]), t["dora_scale"])
                for got in (_a1111(*args), _a1111(*args, scale_first=False), _comfy(*args)):
                    assert torch.allclose(got, ref, rtol=0, atol=1e-6 * float(ref.abs().max())), name
                # the trainer's forward pass is the layer with that weight
                x = torch.randn(2, w.shape[1], *([6, 6] if w.dim() == 4 else []))
                base = layer.get_base_layer()
                y = torch.nn.functional.linear(x, ref, base.bias) if w.dim() == 2 else \
                    base._conv_forward(x, ref, base.bias)
                assert torch.allclose(layer(x), y, rtol=1e-4, atol=1e-5), name
                n += 1
    assert n == len(groups)
    assert_file_renders_like(path, family, in_memory, len(groups))


def test_untrained_dora_is_the_base_layer():
    import torch

    from models.tiny import build_tiny
    from training.lora import inject

    pipe = build_tiny("sd15", seed=0)
    inject(pipe.unet, rank=4, alpha=2.0, component="unet", conv_dim=4, use_dora=True)
    from models.lora_names import tuner_layers

    for _, layer in list(tuner_layers(pipe.unet))[:6]:
        w = layer.get_base_layer().weight
        x = torch.randn(2, w.shape[1], *([6, 6] if w.dim() == 4 else []))
        assert torch.equal(layer(x), layer.get_base_layer()(x))


def test_dora_run_trains_the_magnitude_and_samples_from_the_file(tmp_path):
    """A DoRA run: the magnitudes train (they leave W's column norms), the file holds them as dora_scale (1, in),
    and the sample PNG rendered from the file = the trained layers' image."""
    from PIL import Image
    from safetensors.torch import load_file

    from models.tiny import save_tiny
    from training.dora import column_norm
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    base = save_tiny("sd15", tmp_path / "base")
    cfg = tiny_config(base.single_file or base.folder, flat_dataset(tmp_path / "flat"), tmp_path / "runs", "d",
                      network__use_dora=True, training__epochs=1)
    result = train(cfg, command="pytest")
    saved = load_file(str(cfg.run_dir / "d.safetensors"))
    scales = {k: v for k, v in saved.items() if k.endswith(".dora_scale")}
    assert scales and all(v.shape[0] == 1 for v in scales.values())
    moved = [float((layer.lora_dora_scale["default"].detach() - column_norm(layer.get_base_layer().weight.float()))
                   .abs().max()) for layer in result.models["unet"].modules() if hasattr(layer, "lora_dora_scale")]
    assert max(moved) > 0
    png = [p for p in result.samples if p.name.startswith("d-")][-1]
    assert "Lora applied: dora deltas merged" in Image.open(png).info["parameters"]

    assert_sample_is_the_trained_model(cfg, result, png)
