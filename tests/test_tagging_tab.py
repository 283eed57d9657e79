"""Tagging tab logic without a browser: the run generator (progress, cancel, errors), table, flags, batch ops."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from core.dataset.tags import TagEditor
from taggers.options import TagRequest
from taggers.tiny import make_tiny_tagger
from ui import tagging as tab
from ui.tagging import auto, edits, state


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    return make_tiny_tagger(tmp_path_factory.mktemp("tagger"), size=32, dynamic=False, v3=False)


def _dataset(root, n=6):
    sub = root / "3_x"
    sub.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (20, 20 + i), (10 * i, 90, 200)).save(sub / f"{i}.png")
    return root


def _run(folder, model, lang="en", key="k", **kw):
    args = dict(general=0.35, character=0.85, mcut_g=False, mcut_c=False, rating=False, no_char=False, exclude="",
                policy="overwrite", batch=4, trigger="sks", ext=".txt")
    args.update(kw)
    req = TagRequest(str(model), general_threshold=args["general"], character_threshold=args["character"],
                     mcut_general=args["mcut_g"], mcut_character=args["mcut_c"], rating=args["rating"],
                     no_character=args["no_char"], exclude=args["exclude"], policy=args["policy"],
                     batch_size=args["batch"], trigger=args["trigger"], caption_extension=args["ext"])
    return tab.run_tagger(str(folder), req, lang, key)


def test_run_generator_reports_progress_device_and_summary(tmp_path, tagger):
    ds = _dataset(tmp_path / "ds")
    outputs = list(_run(ds, tagger, exclude="no_humans"))
    bar, status = outputs[-1]
    assert "6/6 (100%)" in bar and "images/s" in bar
    assert "Tagging on CPU" in status and "6 written" in status
    assert "Ratings (not written to captions): " in status and "keep_tokens = 1" in status
    text = (ds / "3_x" / "0.txt").read_text(encoding="utf-8")
    assert text.startswith("sks, ") and "no humans" not in text
    zh = list(_run(ds, tagger, lang="zh", policy="skip"))[-1][1]
    assert "在 CPU 上打标" in zh and "跳过（已有标注）6" in zh


def test_run_generator_errors_are_messages(tmp_path, tagger):
    bar, status = list(_run(tmp_path / "missing", tagger))[-1]
    assert status.startswith("✖") and "does not exist" in status
    bar, status = list(_run(tmp_path, tmp_path / "no-model"))[-1]
    assert status.startswith("✖") and "does not exist" in status


def test_cancel_from_another_handler(tmp_path, tagger, monkeypatch):
    ds = _dataset(tmp_path / "ds", n=12)
    real = state.get_tagger(str(tagger))
    slow = type("Slow", (), {})()
    slow.__dict__.update(real.__dict__)
    slow.on_gpu, slow.predict = False, lambda batch: (time.sleep(0.15), real.predict(batch))[1]
    monkeypatch.setattr("ui.tagging.auto.get_tagger", lambda *a, **k: slow)
    gen = _run(ds, tagger, key="cancel-me", batch=1)
    next(gen)
    auto._CANCELS["cancel-me"].set()       # what the Cancel button's handler does
    *_, (bar, status) = gen
    assert "Cancelled" in status and "cancel-me" not in auto._CANCELS
    written = len(list((ds / "3_x").glob("*.txt")))
    assert 0 < written < 12 and f"{written} written" in status


def test_table_flags_and_batch_ops(tmp_path):
    sub = tmp_path / "ds" / "2_a"
    sub.mkdir(parents=True)
    for i, cap in enumerate(["sks, blue eyes, smile", "sks, blue eyes", "sks, blue eyes, hat", "sks, hat", "sks"]):
        Image.new("RGB", (4, 4)).save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text(cap, encoding="utf-8")
    ed = TagEditor(tmp_path / "ds", trigger="sks")
    frame = edits.table_frame(ed, "count", "", "en")
    assert list(frame.columns) == ["Tag", "Images", "Share", "Identity?"]
    assert frame.iloc[0].tolist() == ["sks", 5, "100%", ""]            # the trigger is not flagged
    assert "blue eyes" not in edits.identity_text(ed, "en")              # 60 %
    ed.add(["blue eyes"], "back", [3])
    assert "**blue eyes** (80%)" in edits.identity_text(ed, "en")
    assert "越想学" not in edits.identity_text(ed, "zh") and "触发词会学会" in edits.identity_text(ed, "zh")
    idx = edits.selection(ed, "hat", "", "AND")
    assert idx == [2, 3]
    assert edits.apply_op(ed, "remove", "blue eyes", "", False, idx, dry_run=True) == 2
    assert edits.apply_op(ed, "remove", "blue eyes", "", False, idx) == 2
    assert edits.apply_op(ed, "replace", "blue eyes", "aqua eyes", False, None) == 2
    assert edits.apply_op(ed, "replace", r"(\w+) eyes", r"\1_eyes", True, None) == 2
    assert edits.apply_op(ed, "add_front", "solo", "", False, None) == 5
    assert ed.items[0].tags[:2] == ["sks", "solo"]
    text = edits.pending_text(ed, "en", limit=2)
    assert "not saved yet: 5." in text and "- `2_a/0.txt`: −blue eyes +solo +aqua_eyes" in text and "(+3)" in text
    pic, text, name, path = edits.image_view(ed, [0, 1], 5)             # out of range → last of the set
    assert name.startswith("`2_a/1.png`") and text.startswith("sks, solo") and pic.size == (4, 4)
    assert edits.set_caption_for(ed, path, "sks, edited") == 1 and ed.items[1].tags == ["sks", "edited"]
    assert edits.set_caption_for(ed, str(tmp_path / "other.png"), "x") is None


def test_unsaved_edits_block_tagging_and_reload(tmp_path, tagger):
    ds = _dataset(tmp_path / "ds", n=2)
    ed = TagEditor(ds)
    state.EDITORS["busy"] = ed
    try:
        ed.add(["solo"])
        bar, status = list(_run(ds, tagger, key="busy"))[-1]
        assert "2 unsaved changes" in status and not list((ds / "3_x").glob("*.txt"))
        ed.discard()
        assert state.unsaved("busy", "en") == ""
        assert "2 written" in list(_run(ds, tagger, key="busy"))[-1][1]
    finally:
        state.EDITORS.pop("busy", None)
