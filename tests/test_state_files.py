"""Damaged state files are set aside, never silently replaced: each file Danlu reads back as its own state is
damaged here, and the test checks that its bytes are kept beside it, that the shell (stderr) and the page's
notices say so, and that what can be rebuilt is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_runs_supervisor import make_cfg

from core import state_files
from core.runs.queue import Queue

DAMAGES = {"garbage": b"\x00\xffnot json at all", "truncated": b'{"paused": false, "items": [{"id": "q0001", "na',
           "wrong shape": b'{"items": {"q0001": "queued"}}', "empty": b""}


def aside_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.damaged-*"))


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_queue_is_set_aside_and_rebuilt_from_its_run_files(tmp_path, capsys, damage):
    q = Queue(tmp_path / "runs")
    a, b, c = (q.add(make_cfg(tmp_path, name=n, epochs=1)) for n in ("first", "second", "third"))
    q.move(c.id, -2)
    q.cancel(b.id)
    q.path.write_bytes(DAMAGES[damage])

    items = Queue(tmp_path / "runs").items()  # a restarted server reads the damaged file

    assert [(i.id, i.name, i.state) for i in items] == [(a.id, "first", "queued"), (b.id, "second", "queued"),
                                                         (c.id, "third", "queued")]  # order of creation, all waiting
    assert q.paused()  # nothing starts before the user has looked at the rebuilt order
    kept = aside_of(q.path)
    assert len(kept) == 1 and kept[0].read_bytes() == DAMAGES[damage]  # the damaged bytes are never lost
    err = capsys.readouterr().err
    assert "queue.json" in err and str(kept[0]) in err and "3 run file(s)" in err
    notice = Queue(tmp_path / "runs").damage_notices()[-1]
    assert notice.aside == kept[0] and "3 个运行文件" in notice.text("zh")
    d = q.add(make_cfg(tmp_path, name="fourth", epochs=1))  # the next id follows the rebuilt ones
    assert d.id == "q0004" and [i.name for i in q.items()][-1] == "fourth"
    assert len(aside_of(q.path)) == 1  # the rebuilt file reads cleanly: nothing else is set aside


def test_a_folder_where_the_queue_file_was_is_moved_aside(tmp_path, capsys):
    q = Queue(tmp_path / "runs")
    q.add(make_cfg(tmp_path, name="only", epochs=1))
    q.path.unlink()
    q.path.mkdir()
    assert [i.name for i in q.items()] == ["only"]
    assert aside_of(q.path)[0].is_dir() and q.path.is_file()
    assert "queue.json" in capsys.readouterr().err


def test_read_state_keeps_a_file_a_writer_still_appends_to(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\xff\xfe")
    got = state_files.read_state(path, lambda raw: json.loads(raw), ("The log", "日志"), ("Nothing else.", "无。"),
                                 copy=True)
    assert got is None and path.read_bytes() == b"\xff\xfe" and aside_of(path)[0].read_bytes() == b"\xff\xfe"
    assert state_files.read_state(tmp_path / "missing.json", json.loads, ("x", "x"), ("", "")) is None
    assert not aside_of(tmp_path / "missing.json")


def test_a_damaged_trainer_record_is_set_aside_and_nothing_is_reattached(tmp_path, capsys):
    from core.runs.supervisor import PROCESS_FILE, Supervisor

    record = tmp_path / "runs" / "one" / PROCESS_FILE
    record.parent.mkdir(parents=True)
    record.write_bytes(b'{"pid": 12, "argv": "python launch')
    assert Supervisor(tmp_path).reattach(tmp_path / "runs") is None
    assert not record.exists() and aside_of(record)[0].read_bytes() == b'{"pid": 12, "argv": "python launch'
    assert "trainer.json" in capsys.readouterr().err


def test_damaged_saved_settings_are_kept_aside_and_the_page_is_told(tmp_path, capsys):
    from ui.tab_params import saved_settings

    path = tmp_path / "last_settings.toml"
    assert saved_settings(path) == (None, None)
    path.write_bytes(b"[network]\nrank = 8\n[training\nepochs = ")
    config, notice = saved_settings(path)
    assert config is None and notice is not None and notice.aside == aside_of(path)[0]
    assert not path.exists() and notice.aside.read_bytes().startswith(b"[network]")
    assert "TOML" in notice.text("en") and "保存的设置" in notice.text("zh")
    assert str(path) in capsys.readouterr().err
    path.write_text('[network]\nrank = 12\n', encoding="utf-8")
    config, notice = saved_settings(path)
    assert config["network"]["rank"] == 12 and notice is None


def test_an_event_log_with_damaged_lines_is_copied_aside_and_its_readable_events_used(tmp_path, capsys):
    from core.events import read_events

    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "start", "time": 1}\n\x00\xff garbage\n{"type": "progress", "step": 1}\n'
                     b'{"type": "done", "sta')
    events, offset = read_events(path)
    assert [e["type"] for e in events] == ["start", "progress"] and offset == len(path.read_bytes()) - 21
    kept = aside_of(path)
    assert len(kept) == 1 and kept[0].read_bytes() == path.read_bytes()  # copied: the trainer may still append
    assert "1 line(s)" in capsys.readouterr().err
    read_events(path)
    assert len(aside_of(path)) == 1 and not capsys.readouterr().err  # told once, not at every look


def test_a_damaged_caption_backup_is_set_aside_and_not_restored(tmp_path, capsys):
    from core.dataset.captions import list_backups, restore_backup, write_caption

    (tmp_path / "a.png").write_bytes(b"")
    for name, text in (("a.txt", "first a"), ("b.txt", "first b")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        write_caption(tmp_path / name, text.replace("first", "second"), stamp="s1", dataset_root=tmp_path)
    backup = list_backups(tmp_path)[0]
    (backup.folder / "a.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")  # noise where a caption was
    restored = restore_backup(tmp_path, "s1")
    assert restored == [(tmp_path / "b.txt").resolve()]
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "second a"  # the current caption is untouched
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "first b"
    assert aside_of(backup.folder / "a.txt") and "a.txt" in capsys.readouterr().err
    assert [f.name for f in list_backups(tmp_path)[-1].files] == ["b.txt"]


def test_a_damaged_downloaded_tag_list_is_moved_aside_for_a_new_download(tmp_path, capsys):
    from core.errors import DanluError
    from taggers.wd14 import TAGS_FILE, load_labels

    blob = tmp_path / "blobs" / "3f1a"
    blob.parent.mkdir()
    blob.write_bytes(b"tag_id,name,category,count\n9,general,9,1\n1,1gi")  # a download cut short
    snapshot = tmp_path / "snapshots" / "main"
    snapshot.mkdir(parents=True)
    (snapshot / TAGS_FILE).symlink_to(blob)
    with pytest.raises(DanluError) as e:
        load_labels(snapshot / TAGS_FILE)
    assert "downloaded anew" in e.value.hint_en and not blob.exists() and aside_of(blob)
    assert "selected_tags.csv" in capsys.readouterr().err
    own = tmp_path / "mine" / TAGS_FILE  # the user's own folder: refused, never moved
    own.parent.mkdir()
    own.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DanluError) as e:
        load_labels(own)
    assert str(own) in e.value.en and own.exists() and not aside_of(own)


def test_a_damaged_downloaded_captioner_config_is_moved_aside(tmp_path, capsys):
    from core.errors import DanluError
    from taggers.captioners import model_kind

    blob = tmp_path / "blobs" / "9c2e"
    blob.parent.mkdir()
    blob.write_bytes(b'{"model_type": "florence2", "vision_con')
    snapshot = tmp_path / "snapshots" / "main"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(blob)
    with pytest.raises(DanluError) as e:
        model_kind(snapshot)
    assert "download it anew" in e.value.hint_en and not blob.exists() and len(aside_of(blob)) == 1
    assert "config.json" in capsys.readouterr().err


def test_the_queue_notice_shows_until_the_rebuilt_queue_is_resumed(tmp_path):
    from ui.train_queue import status

    q = Queue(tmp_path / "runs")
    q.add(make_cfg(tmp_path, name="only", epochs=1))
    assert "⚠" not in status(q, "idle", "en")["value"]
    q.path.write_bytes(b"{")
    shown = status(q, "idle", "zh")
    assert shown["value"].startswith("⚠ 运行队列") and shown["elem_classes"] == ["danlu-warn"]
    q.set_paused(False)  # the user looked at the order and resumed it
    shown = status(q, "idle", "en")
    assert "⚠" not in shown["value"] and shown["elem_classes"] == []
