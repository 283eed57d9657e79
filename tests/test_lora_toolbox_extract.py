"""LoRA extract: base + a rank-r ΔW gives back that ΔW at rank ≥ r (SD1.5 UNet and text encoder, Z-Image with its
fused qkv), the module names are the family's own, identical inputs write nothing, other families and sizes are
refused by name, and the inputs are never overwritten."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.errors import DanluError
from models.tiny import save_tiny
from models.toolbox.common import open_lora
from models.toolbox.extract import extract_lora
from tests.toolbox_files import delta

SD_KEYS = {  # single-file key → the kohya module extract must name for it
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight":
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
    "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight":
        "lora_te_text_model_encoder_layers_0_mlp_fc1",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return save_tiny("sd15", folder).single_file, save_tiny("zimage", folder).single_file


def _tuned(base, out, keys, rank=2, seed=1):
    """base + a random rank-`rank` ΔW on each of `keys` (rows [a:b] of a fused weight when given as (key, a, b))."""
    g = torch.Generator().manual_seed(seed)
    sd = load_file(str(base))
    deltas = {}
    for key in keys:
        key, a, b = key if isinstance(key, tuple) else (key, 0, sd[key].shape[0])
        w = sd[key]
        d = (torch.randn(b - a, rank, generator=g) @ torch.randn(rank, w[a:b].flatten(1).shape[1], generator=g)) * .01
        sd[key] = w.clone()
        sd[key][a:b] += d.reshape(w[a:b].shape).to(w.dtype)
        deltas[(key, a)] = (sd[key][a:b].float() - w[a:b].float()).flatten(1)  # what the file really holds
    save_file(sd, str(out))
    return deltas


def test_sd_extract_recovers_a_low_rank_delta(tiny, tmp_path):
    base = tiny[0]
    tuned = tmp_path / "tuned.safetensors"
    deltas = _tuned(base, tuned, list(SD_KEYS))
    report = extract_lora(base, tuned, tmp_path / "lora.safetensors", rank=4, precision="float")
    state = load_file(str(report.out))
    assert set(report.ranks) == set(SD_KEYS.values()) and report.skipped > 0
    for key, name in SD_KEYS.items():
        ref = deltas[(key, 0)].double()
        assert torch.allclose(delta(state, name), ref, atol=1e-5 * float(ref.abs().max()))
    assert open_lora(report.out).family == "sd15"
    low = extract_lora(base, tuned, tmp_path / "r1.safetensors", rank=1, precision="float")
    assert set(low.ranks.values()) == {1}


def test_zimage_extract_through_fused_qkv(tiny, tmp_path):
    base = tiny[1]
    header = load_file(str(base))
    qkv = next(k for k in header if k.endswith("layers.0.attention.qkv.weight"))
    d = header[qkv].shape[0] // 3
    tuned = tmp_path / "z-tuned.safetensors"
    deltas = _tuned(base, tuned, [(qkv, d, 2 * d)])  # the k third only
    report = extract_lora(base, tuned, tmp_path / "z.safetensors", rank=3, precision="float")
    state = load_file(str(report.out))
    assert list(report.ranks) == ["diffusion_model.layers.0.attention.to_k"]
    assert not any(k.endswith(".alpha") for k in state)
    ref = deltas[(qkv, d)].double()
    assert torch.allclose(delta(state, "diffusion_model.layers.0.attention.to_k"), ref,
                          atol=1e-5 * float(ref.abs().max()))
    assert open_lora(report.out).family == "zimage"


def test_identical_other_family_and_other_size(tiny, tmp_path):
    base, zbase = tiny
    same = shutil.copy(base, tmp_path / "copy.safetensors")
    report = extract_lora(base, same, tmp_path / "none.safetensors", rank=4)
    assert report.out is None and not (tmp_path / "none.safetensors").exists()
    assert "nothing to extract" in report.text("en") and "没有可提取" in report.text("zh")
    with pytest.raises(DanluError, match="one family") as err:
        extract_lora(base, zbase, tmp_path / "x.safetensors", rank=4)
    assert "SD 1.x" in err.value.en and "Z-Image" in err.value.en
    sd = load_file(str(base))
    key = next(iter(SD_KEYS))
    sd[key] = torch.zeros(sd[key].shape[0], sd[key].shape[1] + 8, dtype=sd[key].dtype)
    save_file(sd, str(tmp_path / "wider.safetensors"))
    with pytest.raises(DanluError, match="different sizes"):
        extract_lora(base, tmp_path / "wider.safetensors", tmp_path / "x.safetensors", rank=4)
    with pytest.raises(DanluError, match="input"):
        extract_lora(base, same, same, rank=4)
