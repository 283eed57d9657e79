"""Train tab logic without a browser: start checks, button states, what a failed run shows."""

from __future__ import annotations

from pathlib import Path

from core import config as cfgmod
from core.runs import Run
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
