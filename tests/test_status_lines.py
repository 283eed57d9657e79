"""One status mechanism in every tab (error red, warning orange, ok green), a new action clears the previous
result, and every visible string draws on a machine without a colour-emoji font."""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from pathlib import Path

import pytest

from core import config as cfgmod
from core.config import hints as hintmod
from core.errors import DanluError

# Text ranges (ASCII, Latin-1, Greek, general punctuation, CJK and its punctuation, fullwidth forms, arrows, maths)
# and the symbols the page uses: all in DejaVu Sans or WenQuanYi Micro Hei. Colour emoji (✅ ❌ 📝 …) are not.
RANGES = [(0x20, 0x7E), (0xA0, 0xFF), (0x370, 0x3FF), (0x2010, 0x206F), (0x2190, 0x21FF), (0x2200, 0x22FF),
          (0x3000, 0x303F), (0x4E00, 0x9FFF), (0xFF00, 0xFFEF)]
SYMBOLS = set("✔✖⚠ℹ•■▶◀★⚑✎")
FONTS = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
         Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")]


def _every_string() -> dict[str, tuple[str, str]]:
    import ui
    from ui import i18n

    for module in pkgutil.iter_modules(ui.__path__):
        importlib.import_module(f"ui.{module.name}")  # each tab adds its strings at import
    return dict(i18n.STRINGS)


def _allowed(ch: str) -> bool:
    return ch in "\n\t" or ch in SYMBOLS or any(lo <= ord(ch) <= hi for lo, hi in RANGES)


def test_every_visible_string_uses_characters_common_fonts_draw():
    strings = _every_string()
    assert len(strings) > 300
    bad = {f"{key}: {ch!r} {unicodedata.name(ch, '?')}" for key, pair in strings.items() for text in pair
           for ch in text if not _allowed(ch)}
    assert not bad, sorted(bad)
    assert not _allowed("❌") and not _allowed("✅") and not _allowed("📝")  # the allow-list does refuse emoji


def test_the_allowed_symbols_are_in_dejavu_or_wenquanyi():
    if not all(f.exists() for f in FONTS):
        pytest.skip("DejaVu Sans and WenQuanYi Micro Hei are not installed here")
    from fontTools.ttLib import TTCollection, TTFont

    cmaps = [set(TTFont(FONTS[0]).getBestCmap()), set(TTCollection(FONTS[1]).fonts[0].getBestCmap())]
    used = {ch for pair in _every_string().values() for text in pair for ch in text if ord(ch) > 0x7E}
    missing = [ch for ch in sorted(used | SYMBOLS) if not any(ord(ch) in c for c in cmaps)]
    assert not missing, missing


def test_a_missing_dataset_folder_is_red_and_clears_the_previous_scan(tmp_path, demo_run):
    from ui import tab_dataset

    config = cfgmod.to_dict(cfgmod.load(demo_run))
    parent = config["dataset"]["dir"]
    shown = tab_dataset.on_open(parent, "", "", False, False, config, "en")[0]
    assert shown[3] and shown[7]  # a summary and thumbnails of the demo's scan
    out = tab_dataset.on_open(str(tmp_path / "nope"), "", "", False, False, config, "en")[0]
    assert "Folder not found" in out[2] and out[2].classes == ["danlu-error"]
    state, page, _, summary, steps, _, rows, items, label = out[:9]
    assert (state, page, summary, steps, rows, items, label) == ({}, 0, "", "", [], [], "")
    empty = tab_dataset.on_open("", "", "", False, False, config, "zh")[0]
    assert empty[2].classes == ["danlu-warn"] and empty[7] == []


def test_tagging_errors_are_red_with_a_symbol_every_font_has():
    from ui import i18n
    from ui.tagging.state import error_line

    err = error_line(DanluError("Folder gone.", "文件夹不见了。"), "zh")
    assert err.startswith("✖") and "文件夹不见了" in err and err.classes == ["danlu-error"]
    assert err.to("en").startswith("✖ Folder gone.")
    assert i18n.failed(OSError("disk full"), "en") == "✖ OSError: disk full"
    assert i18n.text("tagging.unsaved", "en", level="error", n=2).classes == ["danlu-error"]


def test_the_lr_hint_scales_only_the_lr_it_was_given_for():
    cfg = cfgmod.default_config()
    cfg.optimizer.lr, cfg.training.batch_size = 1e-4, 4
    assert hintmod.lr_batch_hint(cfg, 1e-4, 1) is not None  # the batch changed under the chosen LR
    cfg.optimizer.lr = 3e-4  # an imported (or loaded, or preset) LR: the user's choice for this batch
    assert hintmod.lr_batch_hint(cfg, 1e-4, 1) is None


def test_an_import_clears_the_preset_summary_and_is_the_new_lr_reference(tmp_path):
    from ui.app import build_app

    demo = build_app(lang="en", outputs_dir=tmp_path / "outputs", models_dir=tmp_path / "models")
    on_import = next(b.fn for b in demo.fns.values() if getattr(b.fn, "__name__", "") == "on_import")
    imported = cfgmod.default_config()
    imported.optimizer.lr, imported.training.batch_size = 3e-4, 4
    path = cfgmod.save(imported, tmp_path / "mine.toml")
    config = cfgmod.to_dict(cfgmod.default_config())
    new, message, summary, ref = on_import(str(path), config, "en")
    assert "Imported" in message and message.classes == ["danlu-ok"]
    assert summary == "" and ref == (3e-4, 4)  # the last preset's summary goes; the LR hint scales from here
    (tmp_path / "bad.toml").write_text("[network\n", encoding="utf-8")
    kept, refused, summary, ref = on_import(str(tmp_path / "bad.toml"), config, "en")
    assert kept is config and refused.classes == ["danlu-error"] and refused.startswith("✖")
    assert summary == {"__type__": "update"} and ref == {"__type__": "update"}  # a refused file changes nothing
