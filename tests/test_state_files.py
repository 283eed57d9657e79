"""Damaged state files are set aside, never silently replaced: each file Danlu reads back as its own state is
damaged here, and the test checks that its bytes are kept beside it, that the shell (stderr) and the page's
notices say so, and that what can be rebuilt is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_runs_supervisor import make_cfg

from core import state_files
from core.queue import Queue

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
