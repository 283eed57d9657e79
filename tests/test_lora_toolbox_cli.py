"""`launcher.py lora ...`: info, meta, resize from the shell; bad input exits 2 with the message in both languages
or the user's language."""

from __future__ import annotations

import json

import pytest

import launcher
from models.toolbox.cli import main
from models.toolbox.common import open_lora
from tests.toolbox_files import KOHYA_MODULES, lora_tensors, write_lora_file


@pytest.fixture
def lora(tmp_path):
    return write_lora_file(tmp_path / "a.safetensors", lora_tensors(KOHYA_MODULES, 8, 8.0), {"ss_network_dim": "8"})


def test_info_meta_resize(lora, tmp_path, capsys):
    assert launcher.HANDLERS["lora"] == ("models.toolbox.cli", "main") and "lora" in launcher.SUBCOMMANDS
    assert main(["info", str(lora), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "kohya" and set(info["ranks"].values()) == {8}
    assert main(["--lang", "zh", "info", str(lora)]) == 0 and "秩：8" in capsys.readouterr().out
    out = tmp_path / "b.safetensors"
    assert main(["meta", str(lora), "-o", str(out), "--title", "B", "--trigger", "x, y"]) == 0
    assert open_lora(out).metadata["modelspec.trigger_phrase"] == "x, y"
    small = tmp_path / "c.safetensors"
    assert main(["--lang", "en", "resize", str(out), "-o", str(small), "--rank", "2"]) == 0
    assert "8 → 2" in capsys.readouterr().out
    assert open_lora(small).metadata["modelspec.title"] == "B"


def test_bad_input_exits_2(lora, tmp_path, capsys):
    assert main(["--lang", "zh", "resize", str(lora), "-o", str(lora), "--rank", "2"]) == 2
    assert "会被覆盖" in capsys.readouterr().err
    notes = tmp_path / "notes.safetensors"
    notes.write_text("not a model")
    assert main(["--lang", "en", "info", str(notes)]) == 2
    assert "cannot be read as a LoRA" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["resize", str(lora)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error:" in err and "参数有误" in err
