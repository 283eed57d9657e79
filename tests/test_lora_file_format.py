"""The kohya file written from peft layers: names, alpha, loaders' view, precision report, hashes, atomicity."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from image_parity import assert_images_within_rounding, assert_same_lora_weights
from lora_logs import load_lora_capturing_logs
from merged_files import tiny_with_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained(family: str, conv_dim: int = 0, use_dora: bool = False):
    """A tiny pipeline with LoRA (rank 4, alpha 2) on UNet and text encoders, up-weights made non-zero."""
    import torch

    def up_weights(name, p, gen) -> None:
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=gen) * 0.3

    return tiny_with_adapter(family, up_weights, conv_dim=conv_dim, use_dora=use_dora)


def _render(pipe):
    from models.generate import render

    img = render(pipe, prompt="a red square", steps=3, cfg=5.0, seed=3, width=64, height=64, sampler="euler")
    return np.asarray(img, dtype=np.int16)


def _load_quietly(pipe, path) -> str:
    """Load through diffusers; return what diffusers and peft said (warnings included)."""
    return load_lora_capturing_logs(pipe, path, "x")


@pytest.mark.parametrize("family,conv_dim", [("sd15", 0), ("sd2", 0), ("sdxl", 4)])
def test_keys_alpha_and_parity(family, conv_dim, tmp_path):
    from safetensors.torch import load_file

    from models.lora_file import lora_family, peft_to_kohya, read_metadata, save_lora
    from models.lora_names import lora_layers
    from models.tiny import build_tiny

    pipe, comps = _trained(family, conv_dim)
    in_memory = _render(pipe)
    state = peft_to_kohya(comps, family)
    path = tmp_path / "x.safetensors"
    meta = {"ss_base_model_version": {"sdxl": "sdxl_base_v1-0", "sd2": "sd_v2"}.get(family, "sd_v1"),
            "ss_network_dim": 4,
            "ss_tag_frequency": {"1_a": {"red": 2}}, "ss_v2": family == "sd2"}
    save_lora(path, state, meta, "float")

    saved = load_file(str(path))
    assert all(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in saved)
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in saved)
    alphas = {k: float(v) for k, v in saved.items() if k.endswith(".alpha")}
    conv_keys = [k for k in alphas if saved[k.replace(".alpha", ".lora_down.weight")].dim() == 4
                 and saved[k.replace(".alpha", ".lora_down.weight")].shape[2] == 3]
    assert all(alphas[k] == 1.0 for k in conv_keys) and len(conv_keys) == (len(conv_keys) if conv_dim else 0)
    assert all(v == 2.0 for k, v in alphas.items() if k not in conv_keys)
    if family == "sdxl":
        assert conv_keys and any(k.startswith("lora_te1_text_model_encoder_layers_0_") for k in saved)
        assert not any("down_blocks" in k or "up_blocks" in k or "mid_block" in k for k in saved)
    else:
        assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in saved)
        assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0")
                   for k in saved)

    meta_read = read_metadata(path)
    assert meta_read["ss_output_name"] == "x" and meta_read["ss_network_dim"] == "4"
    assert meta_read["ss_tag_frequency"] == '{"1_a": {"red": 2}}' and meta_read["ss_v2"] == str(family == "sd2")
    assert lora_family(path) == family

    fresh = build_tiny(family, seed=0)
    fresh.set_progress_bar_config(disable=True)
    base = _render(fresh)
    said = _load_quietly(fresh, path)
    assert "unexpected" not in said and "missing" not in said and "no lora keys" not in said, said
    fresh_comps = {name: getattr(fresh, name) for name in comps}
    assert sum(1 for m in fresh_comps.values() for _ in lora_layers(m, "x")) == len(alphas)
    assert_same_lora_weights(comps, "default", fresh_comps, "x")
    from_file = _render(fresh)
    # peft's in-memory adapter vs the file loaded by diffusers: same weights (above), two code paths (see image_parity)
    assert_images_within_rounding(from_file, in_memory, 255)
    assert np.abs(from_file - base).max() > 0

    from models.generate import set_lora_weights

    set_lora_weights(fresh, {"x": 0.0})
    assert np.abs(_render(fresh) - base).max() == 0  # weight 0 is the base model


def test_precision_report_and_flush_to_zero(tmp_path):
    import torch

    from models.lora_file import cast_state, save_lora

    down = torch.full((2, 8), 1e-8)  # below fp16's smallest subnormal: flushed
    up = torch.randn(8, 2)
    state = {"lora_unet_a.lora_down.weight": down, "lora_unet_a.lora_up.weight": up,
             "lora_unet_a.alpha": torch.tensor(3.0)}
    _, report = cast_state(state, "fp16")
    assert report.flushed == 16 and report.max_rel_error == pytest.approx(1.0)
    _, report = cast_state(state, "bf16")
    assert report.flushed == 0 and 0 < report.max_rel_error < 2 ** -7
    _, report = cast_state(state, "float")
    assert report.flushed == 0 and report.max_rel_error == 0
    assert "flushed to zero" in report.text()
    with pytest.raises(ValueError):
        save_lora(tmp_path / "bad.safetensors", {"unet.x.lora_A.weight": down}, {}, "float")


def test_hashes_follow_sd_scripts(tmp_path):
    import torch
    from safetensors.torch import save

    from models.lora_file import read_metadata, save_lora

    state = {f"lora_unet_m{i}.lora_down.weight": torch.randn(64, 1024) for i in range(8)}  # > 1 MiB
    path = tmp_path / "h.safetensors"
    save_lora(path, state, {"ss_network_dim": "64", "other": "x"}, "float")
    meta = read_metadata(path)
    data = save(state, metadata={"ss_network_dim": "64", "ss_output_name": "h"})  # only ss_* metadata, as sd-scripts
    n = int.from_bytes(data[:8], "little")
    assert meta["sshs_model_hash"] == hashlib.sha256(data[8 + n:]).hexdigest()
    assert meta["sshs_legacy_hash"] == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    # the tensor bytes of the file on disk hash to the same model hash
    raw = path.read_bytes()
    assert hashlib.sha256(raw[8 + int.from_bytes(raw[:8], "little"):]).hexdigest() == meta["sshs_model_hash"]


def test_precision_report_on_sampled_rows_flags_what_the_full_report_flags():
    import torch

    from models.lora_file import REPORT_ROWS, cast_state

    torch.manual_seed(0)
    up = torch.randn(4 * REPORT_ROWS, 4) * 1e-3
    up[137] = 1.0  # the row that carries max|Δ|
    down = torch.randn(4, 320)
    state = {"lora_unet_b.lora_down.weight": down, "lora_unet_b.lora_up.weight": up}
    for precision in ("fp16", "bf16"):
        _, cheap = cast_state(state, precision)
        _, full = cast_state(state, precision, full=True)
        assert 0 < cheap.max_rel_error <= full.max_rel_error
        assert cheap.max_rel_error == pytest.approx(full.max_rel_error, rel=0.5)
    state["lora_unet_b.lora_down.weight"] = torch.full((4, 320), 1e-9)  # flushed in fp16, in every row
    _, cheap = cast_state(state, "fp16")
    assert cheap.max_rel_error == pytest.approx(1.0) and cheap.flushed == 4 * 320


def test_written_file_is_one_serialisation_with_all_metadata(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from models.lora_file import read_metadata, safetensors_hashes, save_lora

    state = {f"lora_unet_m{i}.lora_{part}.weight": torch.randn(8, 33) if part == "down" else torch.randn(33, 8)
             for i in range(3) for part in ("down", "up")}
    path = tmp_path / "one.safetensors"
    save_lora(path, state, {"ss_tag_frequency": {"10_猫": {"猫": 2}}, "danlu_note": "中文"}, "fp16")
    raw = path.read_bytes()
    assert int.from_bytes(raw[:8], "little") % 8 == 0
    meta = read_metadata(path)
    assert meta["danlu_note"] == "中文" and "猫" in meta["ss_tag_frequency"]
    assert safetensors_hashes(raw)[0] == meta["sshs_model_hash"]
    loaded = load_file(str(path))
    assert all(torch.equal(loaded[k], v.half()) for k, v in state.items())
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == sorted(state)


def test_sdxl_sai_names():
    from models.lora_names import kohya_name

    assert kohya_name("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "sdxl") == \
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    assert kohya_name("unet", "down_blocks.2.attentions.1.proj_in", "sdxl") == "lora_unet_input_blocks_8_1_proj_in"
    assert kohya_name("unet", "mid_block.attentions.0.transformer_blocks.0.ff.net.2", "sdxl") == \
        "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2"
    assert kohya_name("unet", "up_blocks.0.attentions.2.proj_out", "sdxl") == "lora_unet_output_blocks_2_1_proj_out"
    assert kohya_name("unet", "down_blocks.0.resnets.1.conv1", "sdxl") == "lora_unet_input_blocks_2_0_in_layers_2"
    assert kohya_name("unet", "down_blocks.0.downsamplers.0.conv", "sdxl") == "lora_unet_input_blocks_3_0_op"
    assert kohya_name("unet", "mid_block.resnets.1.time_emb_proj", "sdxl") == "lora_unet_middle_block_2_emb_layers_1"
    assert kohya_name("text_encoder_2", "encoder.layers.31.mlp.fc2", "sdxl") == \
        "lora_te2_text_model_encoder_layers_31_mlp_fc2"
    assert kohya_name("unet", "down_blocks.1.attentions.0.proj_in", "sd15") == \
        "lora_unet_down_blocks_1_attentions_0_proj_in"
