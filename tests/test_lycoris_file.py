"""LyCORIS LoHa / LoKr: the file's keys and metadata, its deltas = the in-training layers', samples from the file."""

from __future__ import annotations

import pytest
from merged_files import assert_file_renders_like, assert_sample_is_the_trained_model, render, tiny_with_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HADA = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"}


def _trained(family: str, algo: str, conv_dim: int):
    """LoHa/LoKr (rank 4, alpha 2) on UNet and text encoders, every factor made non-zero."""
    def randomise(name, p, gen):
        import torch

        p.data = torch.randn(p.shape, generator=gen) * 0.2

    return tiny_with_adapter(family, randomise, conv_dim=conv_dim, algo=algo)


@pytest.mark.parametrize("family,algo", [("sd15", "loha"), ("sdxl", "lokr"), ("sd15", "lokr")])
def test_file_keys_deltas_and_samples(family, algo, tmp_path):
    import torch
    from safetensors.torch import load_file

    from models.lora_file import peft_to_kohya, save_lora
    from models.lora_names import base_name, tuner_layers
    from models.lycoris import group_modules, module_delta

    pipe, comps = _trained(family, algo, conv_dim=4)
    in_memory = render(pipe)
    path = tmp_path / "x.safetensors"
    save_lora(path, peft_to_kohya(comps, family), {"ss_network_module": "lycoris.kohya"}, "float")
    saved = load_file(str(path))
    groups = group_modules(saved)

    # WebUI's and ComfyUI's names: kohya module names, LyCORIS suffixes, an alpha per module
    assert all(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in saved)
    suffixes = {frozenset(t) for t in groups.values()}
    if algo == "loha":
        assert suffixes == {frozenset(HADA)}
    else:
        assert all("lokr_w1" in s and "alpha" in s and ("lokr_w2" in s or {"lokr_w2_a", "lokr_w2_b"} <= s)
                   for s in suffixes)
    assert any(part in b for b in groups for part in ("resnets", "_in_layers_", "_out_layers_")), "conv layers"
    if family == "sdxl":
        assert any(b.startswith("lora_unet_input_blocks_") for b in groups)
        assert any(b.startswith("lora_te2_") for b in groups)

    # each module's ΔW by the loaders' formula = the in-training layer's delta (peft), to fp32 rounding
    n = 0
    for component, model in comps.items():
        for name, layer in tuner_layers(model):
            base = base_name(component, model, name, family)
            ref = layer.get_delta_weight("default").detach()
            got = module_delta(groups[base], tuple(layer.get_base_layer().weight.shape))
            assert torch.allclose(got, ref, rtol=0, atol=1e-7 * float(ref.abs().max())), base
            n += 1
    assert n == len(groups)

    # the sample path: a fresh pipeline with the file merged renders the in-training model's image
    assert_file_renders_like(path, family, in_memory, len(groups))


def test_lokr_full_factors_train_at_scale_one():
    """A LoKr layer whose factors are both full matrices is applied at scale 1 by WebUI and ComfyUI (alpha ignored,
    as LyCORIS trains it): the trainer uses that scale, so the file needs no rescaling."""
    from peft.tuners.lokr import LoKrLayer

    _, comps = _trained("sd15", "lokr", conv_dim=0)
    layers = [m for m in comps["unet"].modules() if isinstance(m, LoKrLayer)]
    full = [m for m in layers if "default" in m.lokr_w2]
    split = [m for m in layers if "default" in m.lokr_w2_a]
    assert all(m.scaling["default"] == 1.0 for m in full)
    assert all(m.scaling["default"] == 0.5 for m in split)
    assert full or split


def test_loha_run_saves_lycoris_file_and_samples_from_it(tmp_path):
    """A LoHa run (with LoCon convs): the file's metadata as LyCORIS writes it, the sample PNG = the trained layers'
    image, its recipe says how the file was applied."""
    import json

    from PIL import Image

    from models.lora_file import read_metadata
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    base = save_tiny("sd15", tmp_path / "base")
    cfg = tiny_config(base.single_file or base.folder, flat_dataset(tmp_path / "flat"), tmp_path / "runs", "h",
                      network__type="loha", network__conv_dim=4, training__epochs=1)
    result = train(cfg, command="pytest")
    meta = read_metadata(cfg.run_dir / "h.safetensors")
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "1.0", "algo": "loha"}
    png = [p for p in result.samples if p.name.startswith("h-")][-1]
    assert "Lora applied: loha deltas merged" in Image.open(png).info["parameters"]

    assert_sample_is_the_trained_model(cfg, result, png)

