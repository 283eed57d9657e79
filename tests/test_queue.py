"""core/runs/queue.py and core/runs/queue_runner.py with the event-protocol stand-in trainer: order, pause, cancel, a
failed run's error and hint, a server restart mid-run, and two servers (two processes) that never claim one item
twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runs_supervisor import FAKE_LAUNCHER, make_cfg

from core.errors import DanluError
from core.runs.queue import Queue
from core.runs.queue_runner import QueueRunner
from core.runs.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake(tmp_path) -> Path:
    path = tmp_path / "fake_launcher.py"
    path.write_text(FAKE_LAUNCHER, encoding="utf-8")
    return path


def runner(tmp_path: Path, fake: Path, q: Queue | None = None) -> QueueRunner:
    return QueueRunner(q or Queue(tmp_path / "runs"), Supervisor(tmp_path, launcher=fake, echo=False), interval=0.05)


def states(q: Queue) -> dict[str, str]:
    return {i.name: i.state for i in q.items()}


def test_add_list_move_remove_and_validation(tmp_path):
    q = Queue(tmp_path / "runs")
    a, b, c = (q.add(make_cfg(tmp_path, name=n, epochs=1)) for n in ("a", "b", "c"))
    assert [i.id for i in q.items()] == [a.id, b.id, c.id] and states(q) == dict.fromkeys("abc", "queued")
    q.move(c.id, -1)
    q.move(a.id, +5)
    assert [i.name for i in q.items()] == ["c", "b", "a"]
    q.remove(b.id)
    assert [i.name for i in q.items()] == ["c", "a"] and not (q.folder / b.config).exists()
    assert (q.folder / c.config).read_text(encoding="utf-8").count('name = "c"') == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nrank = 'eight'\n", encoding="utf-8")
    with pytest.raises(DanluError) as e:
        q.add(bad)
    assert "network.rank" in e.value.en
    assert len(Queue(tmp_path / "runs").items()) == 2  # on disk: a second object (a restarted server) sees it


def test_runs_one_after_another_and_a_failure_keeps_its_error(tmp_path, fake):
    q = Queue(tmp_path / "runs")
    for name in ("one", "crash", "two"):
        q.add(make_cfg(tmp_path, name=name, epochs=1))
    r = runner(tmp_path, fake, q)
    seen_running = set()
    deadline = time.time() + 60
    while r.tick() not in ("idle",) and time.time() < deadline:
        seen_running |= {i.name for i in q.items() if i.state == "running"}
        assert sum(i.state == "running" for i in q.items()) <= 1
        time.sleep(0.05)
    assert states(q) == {"one": "done", "crash": "failed", "two": "done"}
    failed = next(i for i in q.items() if i.name == "crash")
    assert failed.error["message"] == "CUDA out of memory." and failed.error["hint_zh"] == "请降低批大小。"
    assert (tmp_path / "runs" / "two" / "two.safetensors").exists()


def test_pause_after_the_current_run_and_cancel(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    q = Queue(tmp_path / "runs")
    first, second, third = (q.add(make_cfg(tmp_path, name=n, epochs=2)) for n in ("first", "second", "third"))
    r = runner(tmp_path, fake, q)
    assert r.tick() == "started" and q.get(first.id).state == "running"
    q.set_paused(True)
    q.cancel(third.id)
    assert q.get(third.id).state == "cancelled"
    assert r.run_all(timeout=60) == "paused"
    assert states(q) == {"first": "done", "second": "queued", "third": "cancelled"}
    q.set_paused(False)
    assert r.tick() == "started"
    while r.sup.poll().events == [] or not any(e["type"] == "progress" for e in r.sup.poll().events):
        time.sleep(0.05)
    q.cancel(second.id)  # running: its runner asks the trainer to stop (it saves first)
    assert r.run_all(timeout=60) == "idle"
    assert q.get(second.id).state == "cancelled" and r.sup.run.status == "stopped"


def test_a_restarted_server_follows_the_run_and_goes_on(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    q = Queue(tmp_path / "runs")
    q.add(make_cfg(tmp_path, name="long", epochs=2))
    q.add(make_cfg(tmp_path, name="next", epochs=1))
    before = runner(tmp_path, fake, q)
    assert before.tick() == "started"
    pid = before.sup.run.pid
    before.sup.run.proc = None  # the server goes away: its Popen handle with it, the trainer keeps running
    # a new server (new runner, new supervisor): the old runner's owner is in this process, so say it has gone
    after = runner(tmp_path, fake, Queue(tmp_path / "runs"))
    monkeypatch.setattr("core.runs.queue_runner.owner_alive", lambda owner: False)
    assert after.tick() == "running" and after.sup.run.adopted and after.sup.run.pid == pid
    assert after.run_all(timeout=60) == "idle"
    assert states(q) == {"long": "done", "next": "done"}


def test_two_queue_objects_never_start_the_same_item(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.02")
    q = Queue(tmp_path / "runs")
    for n in ("a", "b"):
        q.add(make_cfg(tmp_path, name=n, epochs=1))
    r1, r2 = runner(tmp_path, fake), runner(tmp_path, fake)
    deadline = time.time() + 60
    while time.time() < deadline and {r1.tick(), r2.tick()} & {"started", "running", "other"}:
        assert sum(i.state == "running" for i in q.items()) <= 1
        time.sleep(0.05)
    assert states(q) == {"a": "done", "b": "done"}
    events = [(tmp_path / "runs" / n / "events.jsonl").read_text().splitlines() for n in "ab"]
    starts = [json.loads(line) for lines in events for line in lines if '"start"' in line]
    assert len(starts) == 2  # each trained once


CLAIMER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from core.runs.queue import Queue, new_owner
q, me, got = Queue(sys.argv[2]), new_owner(), []
while True:
    item = q.claim_next(me)
    if item is None:
        if all(i.state != "queued" for i in q.items()):
            break
        continue
    got.append(item.id)
    q.finish(item.id, "done")
print(json.dumps(got))
"""


def test_two_processes_claim_each_item_exactly_once(tmp_path):
    q = Queue(tmp_path / "runs")
    for n in range(30):
        q.add(make_cfg(tmp_path, name=f"r{n}", epochs=1))
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMER, encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, str(script), str(ROOT), str(q.outputs_dir)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    every = claimed[0] + claimed[1]
    assert sorted(every) == sorted(i.id for i in q.items()) and len(set(every)) == 30
    assert states(q) == {f"r{n}": "done" for n in range(30)} and not q.lock_path.exists()


def test_a_lock_left_by_a_dead_process_is_broken(tmp_path):
    q = Queue(tmp_path / "runs")
    q.folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    q.lock_path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "time": 0}))
    q.add(make_cfg(tmp_path, name="x", epochs=1))
    assert states(q) == {"x": "queued"}


def test_queue_from_the_shell(tmp_path, fake, monkeypatch, capsys):
    from core.runs import cli as queue_cli
    from core.runs import supervisor as runs

    out = str(tmp_path / "runs")
    tomls = []
    for n in ("a", "b"):
        path = tmp_path / f"{n}.toml"
        from core import config as cfgmod

        cfgmod.save(make_cfg(tmp_path, name=n, epochs=1), path)
        tomls.append(str(path))
    assert queue_cli.main(["--outputs", out, "add", *tomls]) == 0
    ids = [i.id for i in Queue(out).items()]
    assert queue_cli.main(["--outputs", out, "up", ids[1]]) == 0
    assert queue_cli.main(["--outputs", out, "pause"]) == 0
    capsys.readouterr()
    assert queue_cli.main(["--outputs", out, "list"]) == 0
    text = capsys.readouterr().out
    assert "paused" in text and text.index("q0002") < text.index("q0001")
    assert queue_cli.main(["--outputs", out, "resume"]) == 0
    assert queue_cli.main(["--outputs", out, "remove", ids[0]]) == 0
    monkeypatch.setattr(runs, "Supervisor", lambda root, echo: Supervisor(root, launcher=fake, echo=False))
    assert queue_cli.main(["--outputs", out, "run", "--interval", "0.05"]) == 0
    assert states(Queue(out)) == {"b": "done"}
