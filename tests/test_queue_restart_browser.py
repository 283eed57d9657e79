"""The queue across a server restart, in Chromium: a server (its own process) starts the first of two queued runs,
is killed mid-run, a new server on the same outputs folder reattaches to the trainer that kept running, the Train
tab follows it to the end, and the queue goes on to the second run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import ROOT, free_port
from test_runs_supervisor import FAKE_LAUNCHER, make_cfg
from test_ui_train_journey import open_tab, status_has

from core.events import read_events
from core.runs.queue import Queue
from core.runs.supervisor import PROCESS_FILE, pid_alive

SERVER = r"""
import sys, time
from pathlib import Path
root, fake, outputs, models, port = sys.argv[1:6]
sys.path.insert(0, root)
from core.runs.supervisor import supervisor
from ui.app import CSS, ROOT, build_app
supervisor(ROOT).launcher = Path(fake)
demo = build_app(lang="en", outputs_dir=Path(outputs), models_dir=Path(models))
demo.queue()
demo.launch(server_name="127.0.0.1", server_port=int(port), prevent_thread_lock=True, css=CSS, quiet=True,
            allowed_paths=[outputs])
while True:
    time.sleep(1)
"""


def _serve(tmp_path: Path, outputs: Path, name: str) -> tuple[subprocess.Popen, str]:
    script, fake = tmp_path / "server.py", tmp_path / "fake_launcher.py"
    script.write_text(SERVER, encoding="utf-8")
    fake.write_text(FAKE_LAUNCHER, encoding="utf-8")
    port = free_port()
    log = open(tmp_path / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - the server outlives this call
    argv = [sys.executable, str(script), str(ROOT), str(fake), str(outputs), str(tmp_path), str(port)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "FAKE_STEP_S": "1.0"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, (tmp_path / f"{name}.log").read_text(encoding="utf-8")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the server did not answer: {(tmp_path / f'{name}.log').read_text(encoding='utf-8')}")


def _steps(run_dir: Path) -> int:
    return max([e["step"] for e in read_events(run_dir / "events.jsonl")[0] if e["type"] == "progress"], default=0)


def test_a_restarted_server_carries_the_queue_on(browser, tmp_path, artifacts):
    outputs = tmp_path / "runs"
    q = Queue(outputs)
    q.add(make_cfg(tmp_path, name="long", epochs=12))  # 48 steps of 1 s: outlives the restart
    q.add(make_cfg(tmp_path, name="next", epochs=1))
    servers = []
    try:
        first, url = _serve(tmp_path, outputs, "first")
        servers.append(first)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("#danlu-tabs")
        open_tab(page, "train")
        status_has(page, "Running", timeout=90_000)
        run_dir = outputs / "long"
        deadline = time.time() + 60
        while _steps(run_dir) < 2 and time.time() < deadline:
            time.sleep(0.2)
        trainer = json.loads((run_dir / PROCESS_FILE).read_text(encoding="utf-8"))["pid"]

        first.send_signal(signal.SIGKILL)  # the server goes, mid-run; the trainer is in its own session
        first.wait(10)
        at_restart = _steps(run_dir)
        assert at_restart < 48 and [i.state for i in q.items()] == ["running", "queued"]

        second, url = _serve(tmp_path, outputs, "second")
        servers.append(second)
        page.goto(url)
        page.wait_for_selector("#danlu-tabs")
        open_tab(page, "train")
        status_has(page, "Running", timeout=90_000)
        page.wait_for_function("() => (document.querySelector('#train-log textarea')?.value || '')"
                               ".includes('reattached to the running trainer')")
        page.screenshot(path=artifacts / "queue_restarted.png", full_page=True)
        page.locator("#train-queue-status").get_by_text("2 done").wait_for(timeout=180_000)
        assert [i.state for i in q.items()] == ["done", "done"]
        assert _steps(run_dir) == 48 > at_restart
        starts = [e for e in read_events(run_dir / "events.jsonl")[0] if e["type"] == "start"]
        assert len(starts) == 1  # the run was followed, never started again
        assert not pid_alive(trainer)
        page.screenshot(path=artifacts / "queue_restarted_finished.png", full_page=True)
        context.close()
    finally:
        for proc in servers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for item in q.items():
            if item.state == "running":
                q.cancel(item.id)
