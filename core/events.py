"""The training event protocol: one JSON object per line in ``<run_dir>/events.jsonl``.

The trainer writes, the UI (or anyone with ``tail -f``) reads. Every event has ``type`` and ``time``
(unix seconds). Types and their fields:

- ``start``    total_steps, epochs, steps_per_epoch, images, command
- ``progress`` step, total, epoch, epochs, loss, loss_avg, lr, samples_per_s, eta_s
- ``saved``    file, epoch, step, size
- ``validation`` epoch, step, loss, images (the validation loss at a save: training/validation.py)
- ``sample``   png, epoch, step, prompt_index, prompt, parameters
- ``warning``  message, message_zh
- ``error``    message, message_zh, hint, hint_zh, log_tail
- ``done``     status ('finished' | 'stopped' | 'failed'), files

Each line is written with one ``write`` call on a file opened in append mode and flushed at once,
so a reader never sees half an event except for the line being written; ``read_events`` leaves an
unterminated last line for the next call.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

EVENT_TYPES = ("start", "caching", "progress", "saved", "validation", "sample", "warning", "error", "done")
DONE_STATUSES = ("finished", "stopped", "failed")
EVENTS_FILE = "events.jsonl"
STOP_FILE = "STOP"


def _plain(value: Any) -> Any:
    """JSON-safe value: paths as strings, NaN/inf as None (JSON has no NaN)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class EventWriter:
    """Appends events to one events.jsonl file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: str, **fields: Any) -> dict:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; expected one of {EVENT_TYPES}")
        event = {"type": type, "time": round(time.time(), 3), **_plain(fields)}
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
        return event


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict], int]:
    """Events from byte `offset` on, and the offset to pass next time (incremental tail).

    A missing file gives no events. A last line without its newline is still being written: it is
    left for the next call. A line that is not valid JSON is skipped rather than stopping the reader.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events, bad = [], 0
    for raw in data[:end].split(b"\n"):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            bad += 1
            continue
        if isinstance(event, dict) and "type" in event:
            events.append(event)
        else:
            bad += 1
    if bad:
        _damaged_lines(path, bad)
    return events, offset + end + 1


_REPORTED: set[Path] = set()


def _damaged_lines(path: Path, bad: int) -> None:
    """Complete lines that are no event: a copy of the file is kept (the trainer may still append to it, so it is
    not moved) and the user is told once per file; the readable events are used."""
    if path in _REPORTED:
        return
    _REPORTED.add(path)
    from core.state_files import report, set_aside

    report(path, set_aside(path, copy=True), ("The event log", "事件日志"),
           (f"{bad} line(s) are not events", f"有 {bad} 行不是事件"),
           ("Its readable events are shown; the unreadable lines are skipped.",
            "已显示其中可读的事件，跳过无法读取的行。"))


def best_validation(events: list[dict]) -> dict | None:
    """The validation event with the lowest loss (the best epoch's), None when the run scored none."""
    scored = [e for e in events if e.get("type") == "validation" and isinstance(e.get("loss"), (int, float))]
    return min(scored, key=lambda e: e["loss"]) if scored else None
