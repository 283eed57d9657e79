"""The run queue: an ordered list of run TOMLs on disk, trained one after another (one GPU).

    <outputs>/.danlu/queue/
        queue.json          the order, each item's state, and the pause flag
        items/<id>.toml     the run's settings as they were when queued (later edits of the form do not change it)
        queue.lock          held for the moment of a read-modify-write, so two Danlu servers on one outputs
                            folder never claim the same item (nor start two runs at once)

An item is queued, running, done, failed or cancelled. A failed item keeps the trainer's error and hint (from the
run's events.jsonl). The runner (core.runs.queue_runner) starts items through the one Supervisor of the server, so a
queued run is the same child process, log and Train tab as a run started by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import config as cfgmod
from core.errors import DanluError
from core.events import read_events
from core.fsutil import atomic_write_text
from core.state_files import Notice, notices, read_state

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
QUEUE_DIR = Path(".danlu") / "queue"
LOCK_STALE_S = 60.0   # the lock is held for milliseconds; one this old was left by a process that died


@dataclass
class Item:
    id: str
    name: str
    config: str                       # items/<id>.toml, relative to the queue folder
    state: str = "queued"
    added: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    run_dir: str = ""
    owner: dict | None = None         # {"pid", "host", "token"} of the runner that started it
    cancel: bool = False              # cancel asked while it runs: its runner stops it
    error: dict | None = None         # message, message_zh, hint, hint_zh
    note: str = ""                    # where it came from (a sweep: what differs)


def _parse_queue(raw: bytes) -> dict:
    """queue.json as written by Queue, or ValueError: a file that parses but is not a queue is damaged too."""
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        raise ValueError("not a queue: no list of items")
    for raw_item in data.get("items", []):
        item = Item(**raw_item)  # TypeError on a missing or unknown field
        if item.state not in STATES or not isinstance(item.config, str):
            raise ValueError(f"item {item.id!r} has no valid state")
        # Removing an item deletes its settings file: one named outside items/ (.., an absolute path) is not ours
        parts = Path(item.config).parts
        if len(parts) != 2 or parts[0] != "items" or parts[1] in (".", "..") or "\\" in item.config \
                or not item.config.endswith(".toml"):
            raise ValueError(f"item {item.id!r} names a settings file outside items/: {item.config!r}")
    if not isinstance(data.get("next", 1), int):
        raise ValueError("'next' is not a number")
    return data


def _id_number(stem: str) -> int:
    """q0012 → 12; a name of another form sorts first."""
    digits = stem[1:]
    return int(digits) if digits.isdigit() else 0


def new_owner() -> dict:
    """The identity of one runner: its process, machine, and a token (two runners in one process differ)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex[:12]}


def owner_alive(owner: dict | None) -> bool:
    """Is the runner that claimed an item still there? On another machine it is assumed to be."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    from core.runs.supervisor import pid_alive

    return pid_alive(int(owner.get("pid") or 0))


def error_of(run_dir: Path) -> dict | None:
    """The error event of the run's latest start in its events.jsonl (message and hint in both languages)."""
    events, _ = read_events(Path(run_dir) / "events.jsonl")
    starts = [i for i, e in enumerate(events) if e.get("type") == "start"]
    events = events[starts[-1]:] if starts else events
    err = next((e for e in reversed(events) if e.get("type") == "error"), None)
    return {k: str(err.get(k) or "") for k in ("message", "message_zh", "hint", "hint_zh")} if err else None


def outcome_of(run_dir: Path) -> str | None:
    """The status of the run's last `done` event (finished, stopped, failed), None when it has not ended."""
    events, _ = read_events(Path(run_dir) / "events.jsonl")
    starts = [i for i, e in enumerate(events) if e.get("type") == "start"]
    events = events[starts[-1]:] if starts else events
    done = next((e for e in reversed(events) if e.get("type") == "done"), None)
    return str(done.get("status", "finished")) if done else None


class Queue:
    """The queue of one outputs folder. Every change is a locked read-modify-write of queue.json."""

    def __init__(self, outputs_dir: str | Path):
        self.outputs_dir = Path(outputs_dir)
        self.folder = self.outputs_dir / QUEUE_DIR
        self.path = self.folder / "queue.json"
        self.lock_path = self.folder / "queue.lock"

    # --- the lock and the file ------------------------------------------------------------
    @contextmanager
    def locked(self, timeout: float = 10.0) -> Iterator[dict]:
        """Hold queue.lock (O_EXCL create) and yield the queue's data; it is written back on a clean exit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = time.time() + timeout
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                self._break_stale_lock()
                if time.time() > deadline:
                    raise DanluError(f"The queue is locked by another process ({self.lock_path}).",
                                     f"队列被另一个进程锁定（{self.lock_path}）。",
                                     "If no other Danlu is running on this outputs folder, delete queue.lock.",
                                     "如果没有其他丹炉在使用这个输出文件夹，请删除 queue.lock。",
                                     key="queue") from None
                time.sleep(0.01)
        try:
            os.write(fd, me.encode())
            os.close(fd)
            data = self._read()
            yield data
            atomic_write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1))
        finally:
            self.lock_path.unlink(missing_ok=True)

    def _break_stale_lock(self) -> None:
        try:
            info = json.loads(self.lock_path.read_text(encoding="utf-8") or "{}")
            age = time.time() - self.lock_path.stat().st_mtime
        except (OSError, ValueError):
            return  # being written or just removed: try again
        from core.runs.supervisor import pid_alive

        dead = info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid") or 0))
        if dead or age > LOCK_STALE_S:
            self.lock_path.unlink(missing_ok=True)

    def _read(self) -> dict:
        data = read_state(self.path, _parse_queue, ("The run queue", "运行队列"), self._rebuild)
        if data is None and self.path.is_file():  # it was damaged: _rebuild wrote the queue again from items/
            data = read_state(self.path, _parse_queue, ("The run queue", "运行队列"), self._rebuild)
        data = data or {}
        data.setdefault("paused", False)
        data.setdefault("items", [])
        data.setdefault("next", len(data["items"]) + 1)
        return data

    def _rebuild(self) -> tuple[str, str]:
        """The queue again from the TOMLs in items/, in their order of creation (the ids count up), all waiting;
        paused, so that nothing starts before the user has looked at the order."""
        found = sorted((self.folder / "items").glob("q*.toml"), key=lambda p: (_id_number(p.stem), p.name))
        items = []
        for path in found:
            try:
                name = cfgmod.load(path).saving.name
            except DanluError:
                name = path.stem  # listed all the same: the user decides what to do with it
            items.append(asdict(Item(path.stem, name, f"items/{path.name}", added=path.stat().st_mtime)))
        numbers = [_id_number(p.stem) for p in found]
        rebuilt = {"paused": True, "items": items, "next": max(numbers, default=0) + 1}
        atomic_write_text(self.path, json.dumps(rebuilt, ensure_ascii=False, indent=1))
        return (f"Rebuilt it from the {len(items)} run file(s) in {self.folder / 'items'}, in the order they were "
                "added, all waiting; the queue is paused: check the order, then resume it.",
                f"已按加入顺序从 {self.folder / 'items'} 中的 {len(items)} 个运行文件重建队列，全部为等待状态；"
                "队列已暂停：请检查顺序后再继续。")

    def damage_notices(self) -> list[Notice]:
        """What was recovered from a damaged queue file in this process (the page shows the latest)."""
        return [n for n in notices() if n.path == self.path]

    # --- reading --------------------------------------------------------------------------
    def items(self) -> list[Item]:
        return [Item(**i) for i in self._read()["items"]]

    def paused(self) -> bool:
        return bool(self._read()["paused"])

    def get(self, item_id: str) -> Item:
        for item in self.items():
            if item.id == item_id:
                return item
        raise self._missing(item_id)

    def config_path(self, item: Item) -> Path:
        return self.folder / item.config

    @staticmethod
    def _missing(item_id: str) -> DanluError:
        return DanluError(f"No queued run {item_id!r}.", f"队列中没有 {item_id!r}。",
                          "`python launcher.py queue list` shows the queue.", "用 `python launcher.py queue list` "
                          "查看队列。", key="queue")

    # --- changing -------------------------------------------------------------------------
    def add(self, cfg: cfgmod.RunConfig | str | Path, note: str = "") -> Item:
        """Queue a run (a config, or a TOML file, validated first); its settings are copied into the queue."""
        if not isinstance(cfg, cfgmod.RunConfig):
            cfg = cfgmod.load(cfg)
        text = cfgmod.dumps(cfg)
        with self.locked() as data:
            item_id = f"q{data['next']:04d}"
            data["next"] += 1
            item = Item(item_id, cfg.saving.name, f"items/{item_id}.toml", note=note)
            atomic_write_text(self.folder / item.config, text)
            data["items"].append(asdict(item))
        return item

    def _edit(self, item_id: str, data: dict) -> dict:
        for raw in data["items"]:
            if raw["id"] == item_id:
                return raw
        raise self._missing(item_id)

    def remove(self, item_id: str) -> None:
        """Take an item off the list (a running one is cancelled first)."""
        with self.locked() as data:
            raw = self._edit(item_id, data)
            if raw["state"] == "running":
                raise DanluError(f"{item_id} is running; cancel it first.", f"{item_id} 正在训练，请先取消。",
                                 "Cancel stops it after saving; then it can be removed.",
                                 "取消会在保存后停止它，之后即可移除。", key="queue")
            data["items"].remove(raw)
        (self.folder / raw["config"]).unlink(missing_ok=True)

    def move(self, item_id: str, delta: int) -> None:
        """Move an item up (delta < 0) or down in the order."""
        with self.locked() as data:
            items = data["items"]
            raw = self._edit(item_id, data)
            i = items.index(raw)
            j = max(0, min(len(items) - 1, i + delta))
            items.insert(j, items.pop(i))

    def set_paused(self, paused: bool) -> None:
        """Paused: the run in progress goes on, the next one does not start."""
        with self.locked() as data:
            data["paused"] = bool(paused)

    def cancel(self, item_id: str) -> Item:
        """A queued item is cancelled at once; a running one is marked, and its runner stops it (saving first)."""
        with self.locked() as data:
            raw = self._edit(item_id, data)
            if raw["state"] == "queued":
                raw["state"], raw["ended"] = "cancelled", time.time()
            elif raw["state"] == "running":
                raw["cancel"] = True
            return Item(**raw)

    def requeue(self, item_id: str) -> None:
        """A failed or cancelled item goes back to queued (at its place in the order)."""
        with self.locked() as data:
            raw = self._edit(item_id, data)
            if raw["state"] in ("failed", "cancelled", "done"):
                raw.update(state="queued", started=None, ended=None, owner=None, cancel=False, error=None)

    def clear_finished(self) -> None:
        with self.locked() as data:
            data["items"] = [i for i in data["items"] if i["state"] not in FINAL]

    # --- the runner's side ----------------------------------------------------------------
    def claim_next(self, owner: dict, run_dir_of=None) -> Item | None:
        """Mark the first queued item running for `owner` and return it; None when paused, empty, or an item is
        already running (one run at a time across every server on this folder)."""
        data = self._read()  # a look without the lock first: an idle runner writes nothing
        if data["paused"] or not any(i["state"] == "queued" for i in data["items"]):
            return None
        with self.locked() as data:
            if data["paused"] or any(i["state"] == "running" for i in data["items"]):
                return None
            raw = next((i for i in data["items"] if i["state"] == "queued"), None)
            if raw is None:
                return None
            raw.update(state="running", owner=owner, started=time.time(), ended=None, error=None)
            if run_dir_of is not None:
                raw["run_dir"] = str(run_dir_of(Item(**raw)))
            return Item(**raw)

    def adopt(self, item_id: str, owner: dict) -> None:
        """A runner takes over a running item whose runner has gone (the trainer itself may still be running)."""
        with self.locked() as data:
            self._edit(item_id, data)["owner"] = owner

    def finish(self, item_id: str, state: str, error: dict | None = None) -> None:
        if state not in STATES:
            raise ValueError(state)
        with self.locked() as data:
            raw = self._edit(item_id, data)
            raw.update(state=state, ended=time.time(), error=error, owner=None if state != "running" else raw["owner"])

    def release(self, item_id: str) -> None:
        """A claimed item that could not be started yet goes back to queued."""
        with self.locked() as data:
            raw = self._edit(item_id, data)
            raw.update(state="queued", owner=None, started=None)
