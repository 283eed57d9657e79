"""The Tools tab's metadata edit, through its handlers: the form is filled from the inspected file, Save writes a NEW
file under outputs/tools/ whose tensor bytes equal the input's, with the fields set (an emptied field removed), and
the input is left as it was; no file is refused in red, in both languages."""

from __future__ import annotations

import hashlib

from PIL import Image
from toolbox_files import random_kohya

from ui import i18n
from ui.tab_tools import meta_fields, save_metadata


def _tensor_bytes(path) -> bytes:
    """Everything after a safetensors file's header: the tensor data."""
    data = path.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little"):]


def test_save_writes_a_new_file_with_the_fields_and_the_same_tensors(tmp_path):
    from models.toolbox.inspect import inspect_lora

    src = random_kohya(tmp_path / "style.safetensors", 3)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta_fields(src) == ("", "", "", None) and meta_fields(None) == ("", "", "", None)
    cover = tmp_path / "cover.png"
    Image.new("RGB", (900, 600), (200, 40, 40)).save(cover)
    tools = tmp_path / "outputs" / "tools"

    steps = list(save_metadata(tools, str(src), " Red style ", "redstyle，red coat", "A red look.", str(cover), "",
                               "zh"))
    status, file = steps[-1][2], steps[-1][3]
    assert status.classes == i18n.LEVELS["ok"] and "逐字节未变" in status and "unchanged byte" in status.to("en")
    assert "标题：Red style · 触发词：redstyle, red coat · 说明：A red look. · 封面：有" in status
    out = tools / "style-meta.safetensors"
    assert file["value"] == str(out) and file["visible"]
    assert _tensor_bytes(out) == _tensor_bytes(src)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # the input is never written
    info = inspect_lora(out)
    assert info.modelspec["modelspec.title"] == "Red style" and info.trigger_words == ["redstyle", "red coat"]
    title, triggers, description, image = meta_fields(out)  # the form, filled from the new file
    assert (title, triggers, description) == ("Red style", "redstyle, red coat", "A red look.")
    assert image.size == (512, 341) and image.convert("RGB").getpixel((10, 10)) == (200, 40, 40)

    # Emptied fields are removed; a second save never replaces the first result.
    status = list(save_metadata(tools, str(out), "", "", "", None, "", "en"))[-1][2]
    again = tools / "style-meta-meta.safetensors"
    assert status.classes == i18n.LEVELS["ok"] and again.is_file()
    assert "title: none · trigger words: none · description: none · cover: none" in status
    assert _tensor_bytes(again) == _tensor_bytes(src)
    assert not any(k in inspect_lora(again).metadata for k in ("modelspec.title", "modelspec.trigger_phrase",
                                                               "modelspec.description", "modelspec.thumbnail"))
    list(save_metadata(tools, str(src), "x", "", "", None, "", "en"))
    assert (tools / "style-meta-2.safetensors").is_file() and out.is_file()


def test_save_without_a_file_is_refused_in_red(tmp_path):
    status = list(save_metadata(tmp_path, None, "t", "", "", None, "", "en"))[-1][2]
    assert status.classes == i18n.LEVELS["error"]
    assert "Pick a file first" in status and "请先选择文件" in status.to("zh")
    assert not list(tmp_path.iterdir())
