"""Saved SD1.5 and SDXL LoRA, LoCon, LoHa, LoKr and DoRA files, and a v-prediction SDXL run's file, are taken whole by
WebUI's built-in Lora extension and by ComfyUI, by their own name rules (tests/loader_rules.py): every key loaded,
every module of the file on a layer of the model, no two modules on one layer."""

from __future__ import annotations

import re

import pytest
from loader_rules import comfy_key_map, comfy_load, comfy_model_keys, webui_layer_names, webui_load
from merged_files import tiny_with_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = {"lora": {}, "locon": {"conv_dim": 4}, "loha": {"conv_dim": 4, "algo": "loha"},
         "lokr": {"conv_dim": 4, "algo": "lokr"}, "dora": {"conv_dim": 4, "use_dora": True}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, list[str]]:
    """{family: the tensor names of its tiny base's single-file checkpoint (what WebUI and ComfyUI load)}."""
    from safetensors import safe_open

    from models.tiny import save_tiny

    root = tmp_path_factory.mktemp("bases")
    out = {}
    for family in ("sd15", "sdxl"):
        with safe_open(str(save_tiny(family, root / family).single_file), framework="pt") as f:
            out[family] = list(f.keys())
    return out


def file_keys(path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def assert_taken_whole(keys: list[str], checkpoint: list[str]) -> None:
    bases = {k.split(".", 1)[0] for k in keys}
    # WebUI: nothing in keys_failed_to_match, one module type per module that reads all of its keys
    layers = webui_layer_names(checkpoint)
    modules, failed = webui_load(keys, layers)
    assert not failed, sorted(failed.items())[:5]
    assert len(modules) == len(bases)
    untyped = {k: sorted(m["parts"]) for k, m in modules.items() if m["type"] is None or m["unread"]}
    assert not untyped, list(untyped.items())[:5]
    # OpenCLIP's fused attention (SDXL te2) is patched only when q, k, v and out are all there
    for key in [k for k in modules if re.search(r"_attn_q_proj$", k) and k not in layers]:
        stem = key[:-len("_q_proj")]
        assert {f"{stem}_{p}_proj" for p in ("q", "k", "v", "out")} <= set(modules), stem
    # ComfyUI: no "lora key not loaded", every module patches a weight the model has
    unet, clip = comfy_model_keys(checkpoint)
    left, patched = comfy_load(keys, comfy_key_map(unet, clip))
    assert not left, sorted(left)[:5]
    assert set(patched) == bases and set(patched.values()) <= unet | clip
    assert len(set(patched.values())) == len(bases)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_saved_file_is_taken_whole_by_webui_and_comfyui(family, kind, checkpoints, tmp_path):
    from models.lora_file import peft_to_kohya, save_lora

    _, comps = tiny_with_adapter(family, lambda *a: None, **KINDS[kind])
    path = tmp_path / f"{kind}.safetensors"
    save_lora(path, peft_to_kohya(comps, family), {}, "fp16")
    keys = file_keys(path)
    suffixes = {k.split(".", 1)[1] for k in keys}
    expected = {"lora": "lora_up.weight", "locon": "lora_up.weight", "loha": "hada_w1_a", "lokr": "lokr_w1",
                "dora": "dora_scale"}[kind]
    assert expected in suffixes
    text_encoders = ("lora_te1_", "lora_te2_") if family == "sdxl" else ("lora_te_",)
    assert all(any(k.startswith(p) for k in keys) for p in text_encoders)
    convs = [k for k in keys if re.search(r"(in_layers_2|out_layers_3|_conv1|_conv2|_op|_conv)\.", k)]
    assert bool(convs) == (kind != "lora")  # LoCon's 3x3 convs are part of what is checked
    assert_taken_whole(keys, checkpoints[family])


def test_v_prediction_sdxl_run(checkpoints, tmp_path):
    """A v-prediction SDXL run with zero terminal SNR: the same LoRA names, taken whole by both loaders, and the
    prediction recorded as sd-scripts records it (modelspec.prediction_type 'v', ss_zero_terminal_snr, ss_v2 False,
    the SDXL base version and architecture; sd-scripts writes no ss_v_parameterization)."""
    import torch
    from safetensors.torch import load_file, save_file

    from models.lora_file import read_metadata
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    tiny = save_tiny("sdxl", tmp_path / "base")
    base = tiny.single_file  # with NoobAI's marker keys: a v-prediction ZTSNR base
    save_file({**load_file(str(base)), "v_pred": torch.empty(0), "ztsnr": torch.empty(0)}, str(base))
    cfg = tiny_config(base, flat_dataset(tmp_path / "flat", count=2, repeats=1), tmp_path / "runs", "v",
                      model__prediction_type="v_prediction", model__zero_terminal_snr=True, training__epochs=1,
                      sampling__prompts=[])
    train(cfg, command="pytest")
    path = cfg.run_dir / "v.safetensors"
    assert_taken_whole(file_keys(path), checkpoints["sdxl"])
    meta = read_metadata(path)
    assert meta["modelspec.prediction_type"] == "v" and meta["ss_zero_terminal_snr"] == "True"
    assert meta["ss_v2"] == "False" and meta["ss_base_model_version"].startswith("sdxl_")
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert "ss_v_parameterization" not in meta



@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_block_dims_file_is_taken_whole(family, checkpoints, tmp_path):
    """Block-wise dims (sd-scripts' block_dims / conv_block_dims): every third block at dim 0 has no module in the
    file; the rest is still taken whole by both loaders."""
    from core import config as cfgmod
    from models.lora_file import peft_to_kohya, save_lora
    from models.tiny import build_tiny
    from training import blocks
    from training.lora import inject

    sdxl = family == "sdxl"
    total = blocks.total_blocks(sdxl)
    dims = [0 if i % 3 == 0 else 1 + i % 3 for i in range(total)]
    n = cfgmod.from_dict({"network": {"rank": 4, "alpha": 2.0, "conv_dim": 4, "conv_alpha": 1.0,
                                      "block_dims": ",".join(map(str, dims)),
                                      "conv_block_dims": ",".join(map(str, dims))}}).network
    pipe = build_tiny(family, seed=0)
    comps = {c: getattr(pipe, c) for c in ("unet", "text_encoder", "text_encoder_2") if hasattr(pipe, c)}
    for component, model in comps.items():
        inject(model, rank=4, alpha=2.0, conv_dim=4, conv_alpha=1.0, component=component, family=family,
               blocks=blocks.from_config(n, family))
    path = tmp_path / "blocks.safetensors"
    save_lora(path, peft_to_kohya(comps, family), {}, "fp16")
    keys = file_keys(path)
    with_lora = {blocks.block_index(k.split(".", 1)[0], sdxl) for k in keys if k.startswith("lora_unet_")}
    assert with_lora and all(dims[i] for i in with_lora)
    assert_taken_whole(keys, checkpoints[family])
