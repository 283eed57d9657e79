"""core/runs/supervisor.py with a stand-in trainer that speaks the event protocol: start, follow, stop,
escalate, kill, resume, one run at a time, and the error a dying child leaves behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from core import config as cfgmod
from core.errors import DanluError
from core.runs.summary import summarize
from core.runs.supervisor import Supervisor, command_text, run_dir_for

# A launcher stand-in: `fake.py train CONFIG [--resume]`. Its behaviour comes from saving.name:
# 'crash' reports an error and exits 1, 'stubborn' ignores STOP, 'silent' dies without an event.
FAKE_LAUNCHER = r'''
import json, os, sys, time, tomllib
from pathlib import Path
args = sys.argv[1:]
assert args[0] == "train", args
cfg = tomllib.loads(Path(args[1]).read_text(encoding="utf-8"))
run = Path(args[1]).parent
name = cfg["saving"]["name"]
steps_per_epoch, epochs = 4, cfg["training"]["epochs"]
total = steps_per_epoch * epochs
delay = float(os.environ.get("FAKE_STEP_S", "0.05"))
def emit(type, **f):
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": type, "time": time.time(), **f}) + "\n")
state = run / "state.json"
step = json.loads(state.read_text())["step"] if "--resume" in args and state.exists() else 0
emit("start", total_steps=total, epochs=epochs, steps_per_epoch=steps_per_epoch, images=2, command=sys.argv)
print(f"training {name}: {total} steps, from step {step}", flush=True)
if name == "silent":
    os._exit(3)
while step < total:
    step += 1
    epoch = (step - 1) // steps_per_epoch + 1
    time.sleep(delay)
    emit("progress", step=step, total=total, epoch=epoch, epochs=epochs, loss=1.0 / step, loss_avg=1.0 / step,
         lr=1e-4, samples_per_s=20.0, eta_s=(total - step) * delay)
    print(f"step {step}/{total} loss {1.0 / step:.4f}", flush=True)
    if name == "crash" and step == 3:
        emit("error", message="CUDA out of memory.", message_zh="显存不足。", hint="Lower the batch size.",
             hint_zh="请降低批大小。", log_tail="Traceback ...\nOutOfMemoryError")
        emit("done", status="failed", files=[])
        sys.exit(1)
    if step % steps_per_epoch == 0:
        f = run / f"{name}-{epoch:06d}.safetensors"
        f.write_bytes(b"x" * 1000 * epoch)
        emit("saved", file=f.name, epoch=epoch, step=step, size=f.stat().st_size)
        (run / "samples").mkdir(exist_ok=True)
        png = run / "samples" / f"{name}-e{epoch:06d}-00.png"
        from PIL import Image
        Image.new("RGB", (64, 64), (200, 30 * epoch % 255, 40)).save(png)
        emit("sample", png=str(png.relative_to(run)), epoch=epoch, step=step, prompt_index=0, prompt="demo",
             parameters="demo\nSteps: 8")
        state.write_text(json.dumps({"step": step}))
        if (run / "STOP").exists() and name != "stubborn":
            print("stop requested: saved, exiting", flush=True)
            emit("done", status="stopped", files=[f.name])
            sys.exit(0)
final = run / f"{name}.safetensors"
final.write_bytes(b"y" * 5000)
emit("saved", file=final.name, epoch=epochs, step=step, size=final.stat().st_size)
emit("done", status="finished", files=[final.name])
print("done", flush=True)
'''


@pytest.fixture
def fake(tmp_path) -> Path:
    path = tmp_path / "fake_launcher.py"
    path.write_text(FAKE_LAUNCHER, encoding="utf-8")
    return path


def make_cfg(tmp_path: Path, name: str = "fake", epochs: int = 3) -> cfgmod.RunConfig:
    cfg = cfgmod.default_config()
    cfg.saving.output_dir = str(tmp_path / "runs")
    cfg.saving.name = name
    cfg.training.epochs = epochs
    return cfg


def sup(tmp_path: Path, fake: Path, **kw) -> Supervisor:
    return Supervisor(tmp_path, launcher=fake, echo=False, **kw)


def test_run_finishes_with_events_files_and_exact_command(tmp_path, fake):
    s = sup(tmp_path, fake)
    run = s.start(make_cfg(tmp_path))
    assert run.config_path == tmp_path / "runs" / "fake" / "config.toml"
    assert cfgmod.load(run.config_path).saving.name == "fake"
    assert run.argv == [sys.executable, str(fake), "train", str(run.config_path)]
    assert str(run.config_path) in run.command and run.command.startswith("cd ")
    run = s.wait(30)
    assert run.status == "finished" and run.returncode == 0
    info = summarize(run)
    assert (info["step"], info["total"], info["epoch"]) == (12, 12, 3)
    assert [Path(f["file"]).name for f in info["saved"]] == ["fake-000001.safetensors", "fake-000002.safetensors",
                                                             "fake-000003.safetensors", "fake.safetensors"]
    assert info["saved"][1]["size"] == 2000 and len(info["losses"]) == 12
    assert len(info["samples"]) == 3 and Path(info["samples"][0]["png"]).exists()
    assert any("step 12/12" in line for line in run.log)


def test_second_start_is_refused_with_the_reason(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    s = sup(tmp_path, fake)
    s.start(make_cfg(tmp_path))
    with pytest.raises(DanluError) as e:
        s.start(make_cfg(tmp_path, name="other"))
    assert "already in progress" in e.value.en and "一次只训练一个" in e.value.hint_zh
    s.kill()
    s.wait(10)


def test_stop_is_graceful_and_resume_continues(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    s = sup(tmp_path, fake)
    cfg = make_cfg(tmp_path, epochs=4)
    s.start(cfg)
    while not summarize(s.poll())["step"]:
        time.sleep(0.05)
    assert s.stop() and s.run.status == "stopping"
    run = s.wait(30)
    assert run.status == "stopped" and run.returncode == 0
    stopped_at = summarize(run)["step"]
    assert stopped_at % 4 == 0 and stopped_at < 16  # finished the epoch's step, saved, left
    monkeypatch.setenv("FAKE_STEP_S", "0.01")
    run = s.start(cfg, resume=True)
    assert run.argv[-1] == "--resume" and not (run.run_dir / "STOP").exists()
    run = s.wait(30)
    info = summarize(run)
    assert run.status == "finished" and info["step"] == 16
    assert info["losses"][0][0] == 1 and len(info["losses"]) == 16  # the chart spans both parts


def test_new_start_never_overwrites_an_old_run(tmp_path, fake):
    s = sup(tmp_path, fake)
    cfg = make_cfg(tmp_path, epochs=1)
    s.start(cfg)
    s.wait(30)
    s.start(cfg)
    s.wait(30)
    old = list((tmp_path / "runs" / "fake" / ".previous").iterdir())
    assert len(old) == 1 and (old[0] / "fake.safetensors").exists() and (old[0] / "console.log").exists()
    assert (tmp_path / "runs" / "fake" / "fake.safetensors").exists()  # the new run's own file


def test_resume_without_a_run_is_refused(tmp_path, fake):
    with pytest.raises(DanluError, match="Nothing to resume"):
        sup(tmp_path, fake).start(make_cfg(tmp_path, name="never"), resume=True)


def test_trainer_error_and_hint_reach_the_page(tmp_path, fake):
    s = sup(tmp_path, fake)
    s.start(make_cfg(tmp_path, name="crash"))
    run = s.wait(30)
    assert run.status == "failed" and run.returncode == 1
    assert run.error["message"] == "CUDA out of memory." and run.error["hint_zh"] == "请降低批大小。"
    assert "OutOfMemoryError" in run.error["log_tail"]


def test_silent_death_shows_exit_code_and_log_tail(tmp_path, fake):
    s = sup(tmp_path, fake)
    s.start(make_cfg(tmp_path, name="silent"))
    run = s.wait(30)
    assert run.status == "failed" and "exited with code 3" in run.error["message"]
    assert "training silent" in run.error["log_tail"]


def test_killed_from_outside_is_explained(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    s = sup(tmp_path, fake)
    run = s.start(make_cfg(tmp_path))
    time.sleep(0.5)
    os.kill(run.pid, signal.SIGKILL)
    run = s.wait(10)
    assert run.status == "failed" and "SIGKILL" in run.error["message"] and "memory" in run.error["hint"]


def test_stop_escalates_to_sigterm_when_the_trainer_ignores_it(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    s = sup(tmp_path, fake, stop_timeout=0.5, kill_timeout=2)
    s.start(make_cfg(tmp_path, name="stubborn", epochs=50))
    time.sleep(0.3)
    t0 = time.time()
    s.stop()
    run = s.wait(10)
    assert time.time() - t0 < 5 and run.status == "failed" and run.returncode == -signal.SIGTERM


def test_kill_button(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    s = sup(tmp_path, fake)
    s.start(make_cfg(tmp_path))
    time.sleep(0.3)
    assert s.kill()
    run = s.wait(10)
    assert run.status == "failed" and "from this page" in run.error["message"]
    assert not s.kill()


def test_paths_and_command_quoting(tmp_path):
    cfg = make_cfg(tmp_path)
    cfg.saving.output_dir = "outputs"
    assert run_dir_for(cfg, tmp_path) == tmp_path / "outputs" / "fake"
    text = command_text(["python", "launcher.py", "train", "/a b/训练/config.toml"], Path("/x y"))
    assert text == "cd '/x y' && python launcher.py train '/a b/训练/config.toml'"
