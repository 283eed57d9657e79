"""Runs the queue: one item after another through the server's Supervisor (core.runs.supervisor), the same child
process a run started by hand gets.

`tick()` is one look at the world: settle the item that ended, stop one whose cancel was asked, adopt the item of a
runner that has gone (after a server restart the trainer is still running and is reattached), or claim and start
the next. A thread calls it every second in the UI server; `python launcher.py queue run` calls it in the foreground.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

from core import config as cfgmod
from core.errors import DanluError
from core.runs.queue import Item, Queue, error_of, new_owner, outcome_of, owner_alive
from core.runs.supervisor import Run, Supervisor, run_dir_for

STATE_OF_RUN = {"finished": "done", "stopped": "cancelled", "failed": "failed"}
NO_REPORT = {"message": "The trainer ended without a final report.",
             "message_zh": "训练进程结束了，但没有留下最终报告。",
             "hint": "See console.log and train.log in the run folder; files saved so far are kept.",
             "hint_zh": "请查看运行文件夹中的 console.log 和 train.log；已保存的文件都在。"}


def _same(a: Path | str, b: Path | str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


class QueueRunner:
    """Starts queued runs one after another on one Supervisor."""

    def __init__(self, queue: Queue, sup: Supervisor, interval: float = 1.0):
        self.queue = queue
        self.sup = sup
        self.owner = new_owner()
        self.interval = interval
        self.last = "idle"
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._tick_lock = threading.Lock()

    def tick(self) -> str:
        """One step; returns what the runner is doing: idle, paused, busy (a run started by hand), other (another
        server runs an item), running, started, settled."""
        with self._tick_lock:
            self.last = self._tick()
            return self.last

    def _tick(self) -> str:
        run = self.sup.poll()
        for item in self.queue.items():
            if item.state != "running":
                continue
            if not item.owner or item.owner.get("token") != self.owner["token"]:
                if owner_alive(item.owner):
                    return "other"
                self.queue.adopt(item.id, self.owner)  # its runner has gone; the trainer may still be running
            return self._follow(item, run)
        if run is not None and run.active:
            return "busy"
        item = self.queue.claim_next(self.owner, self._run_dir)
        if item is None:
            return "paused" if self.queue.paused() else "idle"
        try:
            self.sup.start(cfgmod.load(self.queue.config_path(item)))
        except DanluError as e:
            if self.sup.run is not None and self.sup.run.active:  # started by hand a moment ago: try again later
                self.queue.release(item.id)
                return "busy"
            self.queue.finish(item.id, "failed", {k: v for k, v in e.to_event().items() if k != "key"})
            return "settled"
        return "started"

    def _run_dir(self, item: Item) -> Path:
        try:
            return run_dir_for(cfgmod.load(self.queue.config_path(item)), self.sup.root)
        except DanluError:
            return Path("")

    def _follow(self, item: Item, run: Run | None) -> str:
        run_dir = Path(item.run_dir)
        if run is None or not _same(run.run_dir, run_dir) or run.started < (item.started or 0) - 5:
            if run is None or not run.active:
                run = self.sup.reattach(run_dir.parent)
            if run is None or not _same(run.run_dir, run_dir):  # its trainer is gone: what did it report?
                state = STATE_OF_RUN.get(outcome_of(run_dir) or "failed", "failed")
                error = (error_of(run_dir) or NO_REPORT) if state == "failed" else None
                self.queue.finish(item.id, state, error)
                return "settled"
        if run.active or run.ended is None:
            if item.cancel and run.status != "stopping":
                self.sup.stop()
            return "running"
        state = STATE_OF_RUN.get(run.status, "failed")
        error = None
        if state == "failed":
            error = error_of(run_dir) or {k: (run.error or {}).get(k, "") for k in
                                          ("message", "message_zh", "hint", "hint_zh")}
            if not error.get("message"):
                error = NO_REPORT
        self.queue.finish(item.id, state, error)
        return "settled"

    # --- in the background ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="danlu-queue")
        self._thread.start()

    def halt(self) -> None:
        self._halt.set()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the runner must outlive one bad look at a file
                traceback.print_exc()
            self._halt.wait(self.interval)

    def run_all(self, timeout: float | None = None) -> str:
        """Tick until nothing is queued or running (or paused): for the command line and tests."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            state = self.tick()
            if state in ("idle", "paused"):
                return state
            if deadline is not None and time.time() > deadline:
                return state
            time.sleep(self.interval)


_RUNNERS: dict[Path, QueueRunner] = {}


def runner(outputs_dir: Path, sup: Supervisor) -> QueueRunner:
    """The one runner of this server for an outputs folder, started on first use."""
    key = Path(outputs_dir).resolve()
    if key not in _RUNNERS:
        _RUNNERS[key] = QueueRunner(Queue(key), sup)
        _RUNNERS[key].start()
    return _RUNNERS[key]
