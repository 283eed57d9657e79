"""The event protocol the Train tab follows: one JSON object per line, read incrementally."""

from __future__ import annotations

import json

import pytest

from core.events import EventWriter, read_events


def test_events_round_trip_and_incremental_tail(tmp_path):
    path = tmp_path / "run" / "events.jsonl"
    w = EventWriter(path)
    w.emit("start", total_steps=10, epochs=2, steps_per_epoch=5, images=10, command="python -m training r.toml")
    w.emit("progress", step=1, total=10, epoch=1, epochs=2, loss=float("nan"), loss_avg=0.5, lr=1e-4,
           samples_per_s=2.0, eta_s=9.0)
    events, offset = read_events(path)
    assert [e["type"] for e in events] == ["start", "progress"]
    assert all(isinstance(e["time"], float) for e in events)
    assert events[1]["loss"] is None  # NaN is not JSON
    assert read_events(path, offset) == ([], offset)

    with open(path, "a", encoding="utf-8") as f:  # a line still being written is left for the next read
        f.write('{"type": "warning", "message": "half')
    assert read_events(path, offset) == ([], offset)
    with open(path, "a", encoding="utf-8") as f:
        f.write(' done", "message_zh": "一半"}\nnot json\n')
    w.emit("done", status="finished", files=[tmp_path / "a.safetensors"])
    events, offset2 = read_events(path, offset)
    assert [e["type"] for e in events] == ["warning", "done"]
    assert events[0]["message_zh"] == "一半" and events[1]["files"] == [str(tmp_path / "a.safetensors")]
    assert offset2 == path.stat().st_size
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["type"] == "start"


def test_unknown_type_and_missing_file(tmp_path):
    with pytest.raises(ValueError):
        EventWriter(tmp_path / "e.jsonl").emit("bogus")
    assert read_events(tmp_path / "none.jsonl", 7) == ([], 7)
