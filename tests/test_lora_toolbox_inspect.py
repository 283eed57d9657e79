"""LoRA inspect and metadata edit: ranks, alphas, conv layers, parts, loaders, training settings; the edited copy
keeps every tensor byte; not-a-LoRA, truncated and pickle files are named and refused."""

from __future__ import annotations

import json
import pickle

import pytest
from PIL import Image

from core.errors import DanluError
from models.toolbox.common import open_lora
from models.toolbox.inspect import edit_metadata, inspect_lora
from tests.toolbox_files import KOHYA_MODULES, PEFT_MODULES, english_words, lora_tensors, write_lora_file

META = {"ss_network_dim": "8", "ss_network_alpha": "4.0", "ss_base_model_version": "sd_v1",
        "ss_sd_model_name": "base.safetensors", "ss_new_sd_model_hash": "abc123", "ss_learning_rate": "0.0001",
        "ss_tag_frequency": json.dumps({"5_cat": {"cat": 12, "solo": 3}}), "modelspec.title": "Cat",
        "danlu_config": "[network]\nrank = 8\n"}


@pytest.fixture
def kohya(tmp_path):
    return write_lora_file(tmp_path / "cat.safetensors", lora_tensors(KOHYA_MODULES, 8, 4.0), META)


def test_info_reads_the_file(kohya):
    info = inspect_lora(kohya)
    assert info.family == "sd15" and info.layout == "kohya" and info.network == "LoCon"
    assert set(info.ranks.values()) == {8} and set(info.alphas.values()) == {4.0}
    assert info.conv_modules == ["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert info.parts == {"unet": 3, "text_encoder": 1}
    assert info.base == {"name": "base.safetensors", "hash": "abc123"} and info.precision == "fp32"
    assert info.tag_frequency == {"cat": 12, "solo": 3} and info.training["ss_learning_rate"] == "0.0001"
    assert all(missed == [] for missed in info.loaders.values()) and set(info.loaders) == {"WebUI", "ComfyUI",
                                                                                           "diffusers"}
    assert "rank: 8" in info.report("en") and "秩：8" in info.report("zh")
    assert info.run_toml.startswith("[network]") and "rank = 8" in info.report("en")


def test_chinese_report_says_everything_in_chinese(kohya):
    """Every label of the zh report, and every value the report words itself (network, rank, loaders), is
    Chinese but for ZH_NAMES; the file's own values (names, hashes, settings, the TOML) are shown as they are."""
    zh = inspect_lora(kohya).report("zh")
    labels = [line.partition("：")[0] for line in zh.splitlines() if "：" in line]
    assert {"文件", "网络", "秩", "学习率", "常见标签", "训练配置（TOML）", "标题"} <= set(labels), labels
    heads = ("网络：", "秩：", "WebUI：", "ComfyUI：", "diffusers：")
    worded = [line for line in zh.splitlines() if line.startswith(heads)]
    assert len(worded) == 5 and "4 个模块：文本编码器 1、UNet 3" in zh and "读取全部键" in zh
    for text in labels + worded:
        assert not english_words(text), text


def test_info_peft_layout_and_loader_gaps(tmp_path):
    state = lora_tensors(PEFT_MODULES, 4, None, peft=True)
    q = "diffusion_model.layers.0.attention.to_q"
    state[f"{q}.extra"] = state[f"{q}.lora_A.weight"].clone()
    info = inspect_lora(write_lora_file(tmp_path / "z.safetensors", state))
    assert info.family == "zimage" and info.layout == "peft" and "WebUI" not in info.loaders
    assert info.loaders["ComfyUI"] == ["diffusion_model.layers.0.attention.to_q.extra"]
    assert set(info.alphas.values()) == {4.0}


def test_edit_metadata_keeps_tensor_bytes(kohya, tmp_path):
    cover = tmp_path / "cover.jpg"
    Image.new("RGB", (900, 600), (200, 30, 30)).save(cover)
    out = edit_metadata(kohya, tmp_path / "cat-meta.safetensors", title="猫", trigger_words=["mycat", " orange "],
                        description="A cat.", cover=cover)
    meta = open_lora(out).metadata
    assert meta["modelspec.title"] == "猫" and meta["modelspec.trigger_phrase"] == "mycat, orange"
    assert meta["modelspec.thumbnail"].startswith("data:image/png;base64,")
    assert meta["ss_learning_rate"] == "0.0001"
    old, new = kohya.read_bytes(), out.read_bytes()
    n_old, n_new = (int.from_bytes(b[:8], "little") for b in (old, new))
    assert old[8 + n_old:] == new[8 + n_new:]
    assert inspect_lora(out).trigger_words == ["mycat", "orange"]
    cleared = edit_metadata(out, tmp_path / "cleared.safetensors", title="")
    assert "modelspec.title" not in open_lora(cleared).metadata
    with pytest.raises(DanluError, match="input"):
        edit_metadata(kohya, kohya, title="x")


def test_bad_files_are_named(tmp_path, kohya):
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(kohya.read_bytes()[:-100])
    with pytest.raises(DanluError, match="truncated"):
        open_lora(truncated)
    pick = tmp_path / "evil.safetensors"
    pick.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(DanluError, match="pickle"):
        open_lora(pick)
    full = write_lora_file(tmp_path / "model.safetensors", {"model.diffusion_model.x.weight": lora_tensors(
        {"m": (4, 4)}, 2, None)["m.lora_down.weight"]})
    with pytest.raises(DanluError, match="no LoRA modules"):
        open_lora(full)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a model at all")
    with pytest.raises(DanluError, match="not a safetensors"):
        open_lora(text)
