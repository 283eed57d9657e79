"""Run folders and the training child process: start, follow, stop, kill, resume.

The UI never trains in its own process. It writes ``<run_dir>/config.toml`` and runs the same
command a shell user would (``python launcher.py train <run_dir>/config.toml``), echoes the
child's output to the console, and follows ``events.jsonl``. The Supervisor lives as long as the
server, so a reloaded page or a second tab reattaches to the running job. One run at a time.

The child writes its output to ``<run_dir>/console.log`` (not a pipe), so it outlives a server that
stops, and ``<run_dir>/trainer.json`` names its process while it runs: after a restart the page
finds it there (``Supervisor.reattach``) and shows its log and progress again; Stop works as before.

Stopping is graceful first: a ``STOP`` file asks the trainer to finish the step, save and exit;
if it has not exited after ``stop_timeout`` it gets SIGTERM, then SIGKILL after ``kill_timeout``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.errors import DanluError
from core.events import STOP_FILE, read_events
from core.fsutil import atomic_write_text
from core.processes import command_text, exit_error, pid_alive, pid_text
from core.runs import layout as run_layout
from core.state_files import read_state

ACTIVE = ("starting", "running", "stopping")
LOG_LINES = 5000
CONSOLE_FILE = "console.log"     # everything the trainer prints, stdout and stderr
PROCESS_FILE = "trainer.json"    # pid and command of the trainer while it runs
FOLLOW_S = 0.2


def _parse_process_file(raw: bytes) -> dict:
    """trainer.json as Supervisor writes it (a pid and an argv list), else ValueError/KeyError/TypeError."""
    info = json.loads(raw.decode("utf-8"))
    if int(info["pid"]) <= 0 or not isinstance(info["argv"], list) or not isinstance(info.get("cwd", ""), str):
        raise ValueError("no process id and command")
    float(info.get("started", 0))
    return info


def run_dir_for(cfg: cfgmod.RunConfig, root: Path) -> Path:
    """<output_dir>/<name>, a relative output_dir taken from the project folder (the child's cwd)."""
    return run_layout.run_dir(cfg, root)


@dataclass
class Run:
    """One training child and what it has reported."""

    run_dir: Path
    config_path: Path
    argv: list[str]
    cwd: Path
    resume: bool
    status: str = "starting"          # starting, running, stopping, finished, stopped, failed
    pid: int | None = None
    returncode: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    stop_requested: float | None = None
    killed: bool = False
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    events: list[dict] = field(default_factory=list)
    events_offset: int = 0
    version: int = 0                  # bumped on every change, so the page redraws only when needed
    error: dict | None = None
    proc: Any = None
    adopted: bool = False             # started by an earlier server of this folder, found by reattach()
    console_offset: int = 0
    archived: Path | None = None      # where a new run moved the earlier results of its folder (.previous/<stamp>)

    @property
    def command(self) -> str:
        return command_text(self.argv, self.cwd)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def current_events(self) -> list[dict]:
        """Events since the latest start (a resumed run appends to the same file)."""
        starts = [i for i, e in enumerate(self.events) if e.get("type") == "start"]
        return self.events[starts[-1]:] if starts else self.events


class Supervisor:
    """Starts and follows one training child at a time."""

    def __init__(self, root: Path, python: str = sys.executable, launcher: Path | None = None,
                 stop_timeout: float = 120.0, kill_timeout: float = 10.0, echo: bool = True):
        self.root = Path(root)
        self.python = python
        self.launcher = Path(launcher) if launcher else self.root / "launcher.py"
        self.stop_timeout = stop_timeout
        self.kill_timeout = kill_timeout
        self.echo = echo
        self.run: Run | None = None
        self._lock = threading.RLock()

    # --- starting -------------------------------------------------------------------------
    def argv(self, config_path: Path, resume: bool = False) -> list[str]:
        argv = [self.python, str(self.launcher), "train", str(config_path)]
        return argv + ["--resume"] if resume else argv

    def start(self, cfg: cfgmod.RunConfig, resume: bool = False) -> Run:
        """Write <run_dir>/config.toml and start the trainer. Raises DanluError when a run is active
        or a resume has nothing to resume from."""
        with self._lock:
            if self.run is None:  # a restarted server: a trainer from before may still run in this folder
                self.reattach(run_dir_for(cfg, self.root).parent)
            if self.run is not None and self.run.active:
                raise DanluError(f"A run is already in progress: {self.run.run_dir.name} ({self.run.status}).",
                                 f"已有训练在进行：{self.run.run_dir.name}（{self.run.status}）。",
                                 "Wait for it to finish, or stop it first; Danlu trains one run at a time.",
                                 "请等它结束或先停止它；丹炉一次只训练一个任务。", key="run")
            run_dir = run_dir_for(cfg, self.root)
            archived = None
            if resume:
                if not (run_dir / "config.toml").exists():
                    raise DanluError(f"Nothing to resume in {run_dir}.", f"{run_dir} 中没有可续训的运行。",
                                     "Start the run first; resume continues a stopped run with the same name.",
                                     "请先开始训练；续训会接着同名的、已停止的运行。", key="saving.name")
            elif run_dir.exists():  # an earlier run of this name: its results go to .previous/, never away
                archived = run_layout.set_aside_earlier_run(run_dir, by_page=True)
            run_dir.mkdir(parents=True, exist_ok=True)
            config_path = run_dir / "config.toml"
            text = cfgmod.dumps(cfg)
            if config_path.exists() and config_path.read_text(encoding="utf-8") != text:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                config_path.replace(run_dir / f"config.{stamp}.toml")  # the settings of the earlier part
            atomic_write_text(config_path, text)
            (run_dir / STOP_FILE).unlink(missing_ok=True)  # a stale STOP would end the new run at once
            run = Run(run_dir, config_path, self.argv(config_path, resume), self.root, resume)
            run.archived = archived
            if archived:
                run.log.append(f"[danlu] the earlier run's files were moved to {archived}")
            if resume:  # keep the earlier part's events: the loss chart continues
                run.events, run.events_offset = read_events(run_dir / "events.jsonl")
            else:
                run.events_offset = 0
            self._spawn(run)
            self.run = run
            return run

    def _spawn(self, run: Run) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        kwargs: dict[str, Any] = {"start_new_session": True} if os.name != "nt" else \
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        console = run.run_dir / CONSOLE_FILE
        try:
            run.console_offset = console.stat().st_size if console.exists() else 0
            with open(console, "ab") as out:  # a file, not a pipe: the trainer outlives a server that stops
                run.proc = subprocess.Popen(run.argv, cwd=run.cwd, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, **kwargs)
        except OSError as e:
            raise DanluError(f"Could not start the trainer: {e}", f"无法启动训练进程：{e}",
                             "Check that Python and launcher.py exist at the paths in the command.",
                             "请检查命令中的 Python 和 launcher.py 路径是否存在。", key="run") from None
        run.pid = run.proc.pid
        run.status = "running"
        run.log.append(f"[danlu] {run.command}")
        atomic_write_text(run.run_dir / PROCESS_FILE, json.dumps(
            {"pid": run.pid, "argv": run.argv, "cwd": str(run.cwd), "resume": run.resume, "started": run.started}))
        threading.Thread(target=self._follow, args=(run,), daemon=True, name=f"danlu-run-{run.pid}").start()

    def reattach(self, folder: Path) -> Run | None:
        """After a restart: adopt the trainer still running in a run folder under `folder` (newest first).

        Its log is read back from console.log and its events from events.jsonl; from then on it is followed,
        stopped and killed like a run started by this server. None when there is none (or a run is active here).
        """
        with self._lock:
            if self.run is not None and self.run.active:
                return None
            found = []
            for info_path in Path(folder).glob(f"*/{PROCESS_FILE}"):
                info = read_state(info_path, _parse_process_file, ("The trainer record", "训练进程记录"),
                                  ("No trainer is followed from it; if that run still trains, stop it in the "
                                   "system's task manager.", "不会据此跟随训练进程；若该运行仍在训练，请在系统任务"
                                   "管理器中结束它。"))
                if info is None:
                    continue
                pid, argv = int(info["pid"]), [str(a) for a in info["argv"]]
                run_dir = info_path.parent
                events, offset = read_events(run_dir / "events.jsonl")
                run = Run(run_dir, run_dir / "config.toml", argv, Path(info.get("cwd", self.root)),
                          bool(info.get("resume")), pid=pid, started=float(info.get("started", time.time())),
                          events=events, events_offset=offset, adopted=True)
                if run.current_events() and run.current_events()[-1].get("type") == "done" \
                        or not pid_alive(pid, argv):
                    info_path.unlink(missing_ok=True)  # it ended while no server watched: nothing to follow
                    continue
                found.append(run)
            if not found:
                return None
            run = max(found, key=lambda r: r.started)
            run.status = "stopping" if (run.run_dir / STOP_FILE).exists() else "running"
            console = run.run_dir / CONSOLE_FILE
            size = console.stat().st_size if console.exists() else 0
            run.console_offset = max(0, size - 256 * 1024)  # the recent past is enough to read back
            run.log.append(f"[danlu] reattached to the running trainer (pid {pid_text(run.pid)}): {run.command}")
            self.run = run
            threading.Thread(target=self._follow, args=(run,), daemon=True, name=f"danlu-run-{run.pid}").start()
            return run

    # --- following ------------------------------------------------------------------------
    def _follow(self, run: Run) -> None:
        """Read the child's output from console.log until it exits, then settle the final status."""
        partial = b""
        first = run.adopted and run.console_offset > 0  # read back from the middle of a line: drop that part
        while True:
            alive = self._alive(run)
            try:
                with open(run.run_dir / CONSOLE_FILE, "rb") as f:
                    f.seek(run.console_offset)
                    data = f.read()
            except OSError:
                data = b""
            run.console_offset += len(data)
            *lines, partial = (partial + data).split(b"\n")
            if first and lines:
                lines, first = lines[1:], False
            for raw in lines:
                # tqdm-style progress redraws with \r: keep the last state of the line.
                line = raw.decode("utf-8", errors="replace").rstrip("\r").rsplit("\r", 1)[-1]
                with self._lock:
                    run.log.append(line)
                    run.version += 1
                if self.echo:
                    print(line, flush=True)
            if not alive:
                break
            time.sleep(FOLLOW_S)
        code = run.proc.wait() if run.proc is not None else None
        with self._lock:
            if partial:
                run.log.append(partial.decode("utf-8", errors="replace").rsplit("\r", 1)[-1])
            self._poll_events(run)
            run.returncode = code
            run.ended = time.time()
            self._settle(run)
            run.version += 1
            (run.run_dir / PROCESS_FILE).unlink(missing_ok=True)

    @staticmethod
    def _alive(run: Run) -> bool:
        if run.proc is not None:
            return run.proc.poll() is None
        return pid_alive(run.pid, run.argv)

    def _settle(self, run: Run) -> None:
        events = run.current_events()
        done = next((e for e in reversed(events) if e.get("type") == "done"), None)
        err = next((e for e in reversed(events) if e.get("type") == "error"), None)
        code = run.returncode
        if done and (code == 0 or code is None and run.adopted):  # an adopted child's exit code is unknown
            run.status = done.get("status", "finished")
        elif code == 0:
            run.status = "stopped" if run.stop_requested else "finished"
        else:
            run.status = "failed"
        if run.status == "failed":
            tail = list(run.log)[-40:]
            if err:
                run.error = {k: err.get(k, "") for k in ("message", "message_zh", "hint", "hint_zh")}
                run.error["log_tail"] = err.get("log_tail") or "\n".join(tail)
            else:
                run.error = exit_error(code, run.killed)
                run.error["log_tail"] = "\n".join(tail)

    def _poll_events(self, run: Run) -> None:
        new, run.events_offset = read_events(run.run_dir / "events.jsonl", run.events_offset)
        if new:
            run.events.extend(new)
            run.version += 1

    def poll(self) -> Run | None:
        """The current (or last) run with its events brought up to date."""
        with self._lock:
            if self.run is not None and self.run.active:
                self._poll_events(self.run)
            return self.run

    # --- stopping -------------------------------------------------------------------------
    def stop(self) -> bool:
        """Ask the trainer to finish the step, save and exit; escalate if it does not."""
        with self._lock:
            run = self.run
            if run is None or not run.active:
                return False
            atomic_write_text(run.run_dir / STOP_FILE, "stop requested from the Danlu page\n")
            run.stop_requested = time.time()
            run.status = "stopping"
            run.version += 1
        threading.Thread(target=self._escalate, args=(run,), daemon=True).start()
        return True

    def _escalate(self, run: Run) -> None:
        if self._wait(run, self.stop_timeout):
            return
        self._signal(run, signal.SIGTERM)
        if not self._wait(run, self.kill_timeout):
            self._signal(run, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)

    def kill(self) -> bool:
        """End the child now (SIGKILL); what was saved stays, resume continues from it."""
        with self._lock:
            run = self.run
            if run is None or run.ended is not None or not self._alive(run):
                return False
            run.killed = True
            run.version += 1
        self._signal(run, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        return True

    @classmethod
    def _wait(cls, run: Run, timeout: float) -> bool:
        if run.proc is not None:
            try:
                run.proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.time() + timeout
        while cls._alive(run):
            if time.time() > deadline:
                return False
            time.sleep(FOLLOW_S)
        return True

    @classmethod
    def _signal(cls, run: Run, sig: int) -> None:
        if not cls._alive(run):
            return
        try:
            if os.name != "nt":
                os.killpg(run.pid, sig)  # the whole group (its own session): data-loader workers too
            elif run.proc is None:
                os.kill(run.pid, signal.SIGTERM)  # TerminateProcess: Windows has no gentler call for a stranger
            elif sig == signal.SIGTERM:
                run.proc.terminate()
            else:
                run.proc.kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def wait(self, timeout: float | None = None) -> Run | None:
        """Block until the current run has settled (for tests and the command line)."""
        deadline = None if timeout is None else time.time() + timeout
        while self.run is not None and (self.run.active or self.run.ended is None):
            if deadline is not None and time.time() > deadline:
                break
            time.sleep(0.05)
        return self.poll()


_SUPERVISORS: dict[Path, Supervisor] = {}


def supervisor(root: Path) -> Supervisor:
    """The one Supervisor of this server for a project folder (shared by all pages and tabs)."""
    key = Path(root).resolve()
    if key not in _SUPERVISORS:
        _SUPERVISORS[key] = Supervisor(key)
    return _SUPERVISORS[key]
