"""Train tab logic without a browser: start checks, button states, what a failed run shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import config as cfgmod
from core.errors import DanluError
from core.runs.supervisor import Run
from ui.tab_train import buttons, fmt_eta, fmt_size, loss_frame, render, smooth, start_checks


def make_run(tmp_path: Path, status: str, **kw) -> Run:
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text("", encoding="utf-8")
    return Run(run_dir, run_dir / "config.toml", ["python", "launcher.py", "train", "x"], tmp_path, False,
               status=status, **kw)


def test_start_is_refused_with_reasons_in_the_users_language():
    cfg = cfgmod.default_config()
    problems = start_checks(cfg, "en")
    assert len(problems) == 2 and "model.base" in problems[0] and "dataset.dir" in problems[1]
    cfg.model.base, cfg.dataset.dir = "/nowhere/base.safetensors", "/nowhere/data"
    cfg.optimizer.name, cfg.training.device = "AdamW8bit", "cpu"
    problems = start_checks(cfg, "zh")
    assert len(problems) == 1 and "NVIDIA" in problems[0] and "AdamW" in problems[0]


def test_buttons_follow_the_run_state(tmp_path):
    assert buttons(None)["start"]["interactive"] and not buttons(None)["stop"]["interactive"]
    running = buttons(make_run(tmp_path, "running"))
    assert not running["start"]["interactive"] and running["stop"]["interactive"] and running["kill"]["interactive"]
    assert not running["resume"]["interactive"] and not running["grid"]["visible"]
    stopping = buttons(make_run(tmp_path, "stopping"))
    assert not stopping["stop"]["interactive"] and stopping["kill"]["interactive"]
    (tmp_path / "runs" / "demo" / "demo-000002.safetensors").write_bytes(b"x")
    for status in ("stopped", "failed"):
        b = buttons(make_run(tmp_path, status))
        assert b["start"]["interactive"] and b["resume"]["interactive"] and b["grid"]["visible"]
        assert not b["stop"]["interactive"] and not b["kill"]["interactive"]
    assert not buttons(make_run(tmp_path, "finished"))["resume"]["interactive"]


def test_failed_run_shows_the_trainers_error_hint_and_log(tmp_path):
    run = make_run(tmp_path, "failed", error={"message": "CUDA out of memory.", "message_zh": "显存不足。",
                                               "hint": "Lower the batch size.", "hint_zh": "请降低批大小。",
                                               "log_tail": "step 3\n```\nOutOfMemoryError"})
    run.log.extend(["step 1", "step 2 loss 0.5"])
    view = render(run, "zh", "loss")
    assert "显存不足。" in view["error"] and "请降低批大小。" in view["error"] and "OutOfMemoryError" in view["error"]
    assert view["error"].count("```") == 2  # a fence in the log cannot break the page's code block
    assert view["log"] == "step 2 loss 0.5"
    assert "失败" in view["status"] and "cd " in view["command"]


def test_small_formatters():
    assert fmt_eta(3725) == "1:02:05" and fmt_eta(None) == "–"
    assert fmt_size(1000) == "1000 B" and fmt_size(5 * 1024 * 1024) == "5.0 MB"
    assert smooth([1.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]
    assert loss_frame([], "en") is None
    frame = loss_frame([(1, 2.0), (2, 1.0)], "en")
    assert list(frame["series"]) == ["raw", "raw", "smoothed", "smoothed"] and str(frame["loss"].dtype) == "float64"


def test_after_a_server_restart_the_tab_reattaches_and_stop_works(tmp_path, monkeypatch):
    """A server starts a run and dies; the next server's tab finds the trainer, shows its log and progress; Stop."""
    import os
    import subprocess
    import sys
    import time

    from test_runs_supervisor import FAKE_LAUNCHER, make_cfg

    from core.runs.summary import summarize
    from core.runs.supervisor import PROCESS_FILE, Supervisor
    from ui.tab_train import current_run

    fake = tmp_path / "fake_launcher.py"
    fake.write_text(FAKE_LAUNCHER, encoding="utf-8")
    cfg_path = cfgmod.save(make_cfg(tmp_path, epochs=50), tmp_path / "run.toml")
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    server = ("import os, sys; from pathlib import Path; from core import config; "
              "from core.runs.supervisor import Supervisor\n"
              f"s = Supervisor(Path({str(tmp_path)!r}), launcher=Path({str(fake)!r}), echo=False)\n"
              f"s.start(config.load({str(cfg_path)!r}))\nos._exit(0)  # the server dies, the trainer goes on\n")
    subprocess.run([sys.executable, "-c", server], check=True, cwd=Path(__file__).resolve().parent.parent,
                   timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    run_dir = tmp_path / "runs" / "fake"
    deadline = time.time() + 30
    while "step 2/" not in (run_dir / "console.log").read_text(encoding="utf-8") and time.time() < deadline:
        time.sleep(0.05)
    assert (run_dir / PROCESS_FILE).exists()

    with pytest.raises(DanluError, match="already in progress"):  # a Start before the page looked is refused too
        Supervisor(tmp_path, launcher=fake, echo=False).start(make_cfg(tmp_path, epochs=50), resume=True)
    sup = Supervisor(tmp_path, launcher=fake, echo=False)  # the restarted server's, with no run of its own
    run = current_run(sup, tmp_path / "runs")
    assert run is not None and run.adopted and run.status == "running" and run.pid
    assert current_run(sup, tmp_path / "runs") is run
    time.sleep(0.5)
    view = render(sup.poll(), "en", "")
    assert "step 1/200" in view["log"] and "reattached" in view["log"]
    assert summarize(run)["step"] >= 2 and "data-total=\"200\"" in view["progress"]
    b = view["buttons"]
    assert b["stop"]["interactive"] and b["kill"]["interactive"] and not b["start"]["interactive"]

    assert sup.stop() and sup.run.status == "stopping"
    run = sup.wait(30)
    assert run.status == "stopped" and "stop requested: saved, exiting" in "\n".join(run.log)
    assert not (run_dir / PROCESS_FILE).exists()
    assert buttons(run)["resume"]["interactive"]
    assert Supervisor(tmp_path, launcher=fake, echo=False).reattach(tmp_path / "runs") is None  # nothing left


def test_a_trainer_that_ended_while_no_server_watched_is_not_reattached(tmp_path):
    import json
    import subprocess
    import sys

    from core.runs.supervisor import PROCESS_FILE, Supervisor
    from ui.tab_train import current_run

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = make_run(tmp_path, "running").run_dir
    (run_dir / PROCESS_FILE).write_text(json.dumps({"pid": int(ended.stdout), "argv": ["python", "x", "train",
                                                                                      str(run_dir / "config.toml")]}))
    (run_dir.parent / "broken").mkdir()
    (run_dir.parent / "broken" / PROCESS_FILE).write_text("{not json")
    assert current_run(Supervisor(tmp_path, echo=False), tmp_path / "runs") is None
    assert not (run_dir / PROCESS_FILE).exists()
