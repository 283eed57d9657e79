"""Caption files: encodings users really have, atomic UTF-8 writes, backups and restore."""

from __future__ import annotations

import pytest

from core.dataset.captions import BACKUP_DIR, caption_path, list_backups, read_caption, restore_backup, write_caption
from core.errors import DanluError


def test_plain_utf8(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("sks, 1girl, 红发\r\n".encode())
    r = read_caption(p)
    assert (r.text, r.encoding, r.had_bom, r.problem) == ("sks, 1girl, 红发", "utf-8", False, None)


def test_utf8_bom_is_stripped_and_flagged(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbf" + "sks, 长发".encode())
    r = read_caption(p)
    assert r.text == "sks, 长发" and r.had_bom and r.problem == "bom"
    assert not r.text.startswith("\ufeff")


def test_gbk_caption_decoded_and_flagged(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("sks, 黑色头发, 微笑".encode("gbk"))
    r = read_caption(p)
    assert r.text == "sks, 黑色头发, 微笑"
    assert r.encoding in ("gbk", "gb18030") and r.problem == "not_utf8"


def test_utf16_caption(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("sks, smile".encode("utf-16"))
    r = read_caption(p)
    assert r.text == "sks, smile" and r.problem == "not_utf8" and r.had_bom


def test_empty_and_missing(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"  \n")
    assert read_caption(tmp_path / "e.txt").problem == "empty"
    assert read_caption(tmp_path / "missing.txt").problem == "empty"


def test_write_is_utf8_without_bom_and_backs_up_under_dataset(tmp_path):
    subset = tmp_path / "ds" / "10_sks"
    subset.mkdir(parents=True)
    cap = subset / "img1.txt"
    original = "sks, 黑发".encode("gbk")
    cap.write_bytes(original)
    backup = write_caption(cap, "sks, 黑发, smile")
    assert cap.read_bytes() == "sks, 黑发, smile".encode()
    assert backup is not None and backup.read_bytes() == original
    # <dataset>/.danlu_backup/<stamp>/10_sks/img1.txt: the relative path is kept
    rel = backup.relative_to(tmp_path / "ds" / BACKUP_DIR)
    assert rel.parts[1:] == ("10_sks", "img1.txt")
    assert read_caption(cap).problem is None
    # nothing left behind by the atomic write
    assert sorted(p.name for p in subset.iterdir()) == ["img1.txt"]


def test_write_new_file_has_no_backup_and_same_text_is_skipped(tmp_path):
    cap = tmp_path / "5_x" / "a.txt"
    assert write_caption(cap, "a, b") is None
    assert cap.read_text(encoding="utf-8") == "a, b"
    assert write_caption(cap, "a, b") is None
    assert not (tmp_path / BACKUP_DIR).exists()


def test_same_stamp_keeps_the_first_original(tmp_path):
    cap = tmp_path / "5_x" / "a.txt"
    cap.parent.mkdir()
    cap.write_text("v1", encoding="utf-8")
    b1 = write_caption(cap, "v2", stamp="s1")
    b2 = write_caption(cap, "v3", stamp="s1")
    assert b1 == b2 and b1.read_text(encoding="utf-8") == "v1"


def test_restore_puts_originals_back_and_is_itself_undoable(tmp_path):
    ds = tmp_path / "ds"
    for i in range(3):
        p = ds / "3_a" / f"{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"orig {i}", encoding="utf-8")
    for i in range(3):
        write_caption(ds / "3_a" / f"{i}.txt", f"edited {i}", stamp="20260101-000000-000")
    backups = list_backups(ds)
    assert [b.stamp for b in backups] == ["20260101-000000-000"] and len(backups[0].files) == 3
    restored = restore_backup(ds, "20260101-000000-000")
    assert len(restored) == 3
    assert [(ds / "3_a" / f"{i}.txt").read_text(encoding="utf-8") for i in range(3)] == [f"orig {i}" for i in range(3)]
    # the edited versions were kept in a newer backup
    newest = list_backups(ds)[0]
    assert newest.stamp != "20260101-000000-000"
    assert (newest.folder / "3_a" / "0.txt").read_text(encoding="utf-8") == "edited 0"
    with pytest.raises(DanluError):
        restore_backup(ds, "../x")


def test_caption_extension_needs_a_dot(tmp_path):
    assert caption_path(tmp_path / "a.png") == tmp_path / "a.txt"
    assert caption_path(tmp_path / "a.png", ".caption") == tmp_path / "a.caption"
    with pytest.raises(DanluError) as e:
        caption_path(tmp_path / "a.png", "txt")
    assert "dot" in e.value.en and "点" in e.value.zh
