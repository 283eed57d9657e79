"""`launcher.py tag DIR`: the shell path writes the same captions, with backups, and explains failures."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from core.dataset.captions import BACKUP_DIR
from taggers.cli import main
from taggers.tiny import make_tiny_tagger

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _ds(root):
    sub = root / "5_sks"
    sub.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (30, 20 + i), (200, 40 * i, 10)).save(sub / f"{i}.png")
    (sub / "0.txt").write_text("hand written", encoding="utf-8")
    return sub


def test_cli_tags_with_trigger_and_prepend(tmp_path, capsys):
    sub = _ds(tmp_path / "ds")
    tagger = make_tiny_tagger(tmp_path / "tagger", dynamic=False, v3=False)
    rc = main([str(tmp_path / "ds"), "--model", str(tagger), "--trigger", "sks", "--policy", "prepend",
               "--exclude", "no_humans", "--general-threshold", "0.2"])
    out = capsys.readouterr().out
    assert rc == 0 and "4 written" in out and "one image per run" in out and "on CPU" in out
    first = (sub / "0.txt").read_text(encoding="utf-8")
    assert first.startswith("sks, ") and first.endswith(", hand written") and "no humans" not in first
    assert (tmp_path / "ds" / BACKUP_DIR).is_dir()
    assert all((sub / f"{i}.txt").read_text(encoding="utf-8").startswith("sks, ") for i in range(4))


def test_cli_missing_folder_is_a_readable_error(tmp_path, capsys):
    tagger = make_tiny_tagger(tmp_path / "tagger")
    assert main([str(tmp_path / "nope"), "--model", str(tagger)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_launcher_dispatches_tag(tmp_path):
    _ds(tmp_path / "ds")
    tagger = make_tiny_tagger(tmp_path / "tagger")
    r = subprocess.run([sys.executable, str(ROOT / "launcher.py"), "tag", str(tmp_path / "ds"), "--model", str(tagger),
                        "--policy", "overwrite"], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "DANLU_LANG": "en"})
    assert r.returncode == 0, r.stderr
    assert "4 written" in r.stdout and "originals backed up" in r.stdout
