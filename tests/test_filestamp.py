"""Saving only what nobody changed since it was read: core/filestamp.py and the tag editor's save."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from core.dataset.captions import BACKUP_DIR
from core.dataset.tags import TagEditor
from core.filestamp import FileChanged, fingerprint, overwrite_keeping_theirs, read_stamped, save_if_unchanged


def test_save_if_unchanged_writes_when_the_file_is_as_read(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_bytes(b"a = 1\n")
    data, read = read_stamped(f)
    assert data == b"a = 1\n" and read.exists and read.size == 6
    now = save_if_unchanged(f, b"a = 2\n", read)
    assert f.read_bytes() == b"a = 2\n" and now.sha256 != read.sha256
    # The fingerprint returned is the one to pass on the next save.
    save_if_unchanged(f, b"a = 3\n", now)
    assert f.read_bytes() == b"a = 3\n"


def test_a_change_since_reading_is_refused_with_what_is_there_now(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_bytes(b"a = 1\n")
    _, read = read_stamped(f)
    f.write_bytes(b"a = 9\n")             # another page saved meanwhile
    with pytest.raises(FileChanged) as caught:
        save_if_unchanged(f, b"a = 2\n", read)
    assert caught.value.theirs == b"a = 9\n" and f.read_bytes() == b"a = 9\n"
    assert str(f) in caught.value.message("en") and str(f) in caught.value.message("zh")


def test_same_size_same_mtime_rewrite_is_still_a_change(tmp_path: Path) -> None:
    """A coarse mtime (FAT, some network mounts) cannot hide a rewrite: the hash decides."""
    f = tmp_path / "a.txt"
    f.write_bytes(b"red")
    _, read = read_stamped(f)
    f.write_bytes(b"tan")
    os.utime(f, ns=(read.mtime_ns, read.mtime_ns))
    with pytest.raises(FileChanged):
        save_if_unchanged(f, b"blue", read)


def test_a_touch_alone_or_the_same_text_is_not_a_change(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"red")
    _, read = read_stamped(f)
    os.utime(f, ns=(read.mtime_ns + 5_000_000_000,) * 2)
    save_if_unchanged(f, b"blue", read)
    assert f.read_bytes() == b"blue"
    # The other page wrote exactly what this one is saving: nothing to ask.
    f.write_bytes(b"green")
    assert save_if_unchanged(f, b"green", read) == fingerprint(f)


def test_never_read_and_deleted_files(tmp_path: Path) -> None:
    f = tmp_path / "new.toml"
    save_if_unchanged(f, b"x = 1\n", None)          # a new file: nothing to lose
    with pytest.raises(FileChanged):                # it exists now, and this page never read it
        save_if_unchanged(f, b"x = 2\n", None)
    _, read = read_stamped(f)
    f.unlink()
    with pytest.raises(FileChanged) as caught:
        save_if_unchanged(f, b"x = 3\n", read)
    assert caught.value.theirs is None and "deleted" in caught.value.message("en")


def test_keep_mine_backs_up_theirs(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_bytes(b"theirs\n")
    now, backup = overwrite_keeping_theirs(f, b"mine\n")
    assert f.read_bytes() == b"mine\n" and backup is not None and backup.read_bytes() == b"theirs\n"
    assert backup.parent == f.parent and backup.name.startswith("run.toml.") and now == fingerprint(f)


def _dataset(tmp_path: Path, captions: dict[str, str]) -> Path:
    folder = tmp_path / "10_cat"
    folder.mkdir()
    for name, text in captions.items():
        Image.new("RGB", (8, 8)).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def test_two_editors_second_save_asks_and_keep_mine_backs_up_the_first(tmp_path: Path) -> None:
    folder = _dataset(tmp_path, {"a": "cat, red", "b": "cat, blue"})
    page_a, page_b = TagEditor(folder), TagEditor(folder)
    page_a.set_caption(0, "cat, red, hat")
    assert page_a.save().written == [folder / "a.txt"]
    page_b.set_caption(0, "cat, green")
    page_b.set_caption(1, "cat, blue, sky")       # b.txt was not touched by A: it is saved
    report = page_b.save()
    assert report.conflicts == [0] == page_b.conflicts and report.written == [folder / "b.txt"]
    assert (folder / "a.txt").read_text() == "cat, red, hat" and page_b.pending == [0]
    assert page_b.theirs(0) == "cat, red, hat"
    kept = page_b.keep_mine()
    assert (folder / "a.txt").read_text() == "cat, green" and not page_b.pending and not page_b.conflicts
    assert [p.read_text() for p in kept.backups] == ["cat, red, hat"]
    assert kept.backups[0].is_relative_to(tmp_path / BACKUP_DIR)
    # Saved once more from B: the file is B's own now, so no question.
    page_b.set_caption(0, "cat")
    assert page_b.save().conflicts == []


def test_bulk_operation_then_take_theirs(tmp_path: Path) -> None:
    folder = _dataset(tmp_path, {"a": "cat, red", "b": "cat, blue", "c": "dog"})
    page_a, page_b = TagEditor(folder), TagEditor(folder)
    page_a.remove(["cat"])
    page_a.save()
    assert page_b.remove(["red", "blue"]) == 2       # a bulk edit made on what B read before A's save
    report = page_b.save()
    assert report.conflicts == [0, 1] and not report.written
    assert page_b.take_theirs() == 2
    assert [it.text() for it in page_b.items] == ["red", "blue", "dog"] and not page_b.pending
    assert (folder / "a.txt").read_text() == "red" and not page_b.conflicts
    assert page_b.undo() == "theirs" and page_b.pending == [0, 1]  # B's own edit can be had back


def test_discard_closes_the_question_and_keep_mine_then_writes_nothing(tmp_path: Path) -> None:
    folder = _dataset(tmp_path, {"a": "cat, red"})
    page_a, page_b = TagEditor(folder), TagEditor(folder)
    page_a.set_caption(0, "cat, hat")
    page_a.save()
    page_b.set_caption(0, "cat, green")
    assert page_b.save().conflicts == [0]
    assert page_b.discard() == 1 and page_b.conflicts == []
    assert page_b.keep_mine().written == [] and (folder / "a.txt").read_text() == "cat, hat"
