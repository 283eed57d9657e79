"""The trainer as a process: stop and resume, `accelerate launch` with two CPU processes, errors, killed saves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import config as cfgmod
from core.events import read_events
from training.tiny_run import flat_dataset, tiny_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DANLU_LANG": "en"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd15", tmp_path_factory.mktemp("base"), single_file=False).folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return flat_dataset(tmp_path_factory.mktemp("flat"))


def _train(toml: Path, *extra: str) -> subprocess.Popen:
    """The trainer as a child; its output goes to a file so a full pipe can never block it."""
    out = open(toml.with_suffix(".out"), "w+", encoding="utf-8")  # noqa: SIM115 - closed by _finish
    proc = subprocess.Popen([sys.executable, "-m", "training", str(toml), *extra], cwd=ROOT, env=ENV,
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    proc.out_file = out
    return proc


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    proc.wait(timeout=timeout)
    proc.out_file.seek(0)
    text = proc.out_file.read()
    proc.out_file.close()
    return text


def _events(run_dir: Path) -> list[dict]:
    return read_events(run_dir / "events.jsonl")[0]


def test_stop_then_resume_ends_at_the_same_step_with_the_same_weights(base, dataset, tmp_path):
    from safetensors.torch import load_file

    from training.loop import train

    cfg = tiny_config(base, dataset, tmp_path / "runs", "stop", training__epochs=10, saving__every_n_epochs=0,
                      sampling__prompts=[])
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    proc = _train(toml)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        # the first step always reports (later ones every few seconds): stop as soon as it shows
        if any(e["type"] == "progress" for e in _events(cfg.run_dir)):
            (cfg.run_dir / "STOP").touch()
            break
        time.sleep(0.1)
    out = _finish(proc, 240)
    assert proc.returncode == 0, out
    events = _events(cfg.run_dir)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "stopped", out
    stopped_at = next(e["step"] for e in events if e["type"] == "saved")
    assert 1 <= stopped_at < 40
    assert (cfg.run_dir / f"stop-step{stopped_at:08d}.safetensors").is_file()
    assert not (cfg.run_dir / "STOP").exists()

    proc = _train(toml, "--resume")
    out = _finish(proc, 300)
    assert proc.returncode == 0, out
    events = _events(cfg.run_dir)
    assert events[-1]["status"] == "finished"
    resumed = [e for e in events[events.index([e for e in events if e["type"] == "start"][-1]):]
               if e["type"] == "progress"]
    assert resumed[0]["step"] == stopped_at + 1 and resumed[-1]["step"] == resumed[-1]["total"] == 40
    assert "Resumed from" in (cfg.run_dir / "train.log").read_text(encoding="utf-8")

    # the same run without the stop: same data order, RNG, optimizer and schedule give the same weights
    import torch

    torch.set_num_threads(1)
    ref = tiny_config(base, dataset, tmp_path / "ref", "stop", training__epochs=10, saving__every_n_epochs=0,
                      sampling__prompts=[])
    train(ref)
    a = load_file(str(cfg.run_dir / "stop.safetensors"))
    b = load_file(str(ref.run_dir / "stop.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_accelerate_launch_two_cpu_processes(base, dataset, tmp_path):
    cfg = tiny_config(base, dataset, tmp_path / "runs", "ddp", sampling__prompts=[])
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    accelerate = Path(sys.executable).with_name("accelerate")
    # --multi_gpu selects torchrun; with no GPU each process trains on the CPU (gloo)
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training", str(toml)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = _events(cfg.run_dir)
    start = events[0]
    # 4 batches per epoch shared by 2 processes: half the steps of a single process
    assert start["steps_per_epoch"] == 2 and start["total_steps"] == 4
    assert [e["type"] for e in events].count("start") == 1  # only the main process writes events
    assert events[-1]["status"] == "finished"
    assert sorted(p.name for p in cfg.run_dir.glob("*.safetensors")) == ["ddp-000001.safetensors", "ddp.safetensors"]


def test_missing_dataset_is_an_error_event_and_exit_2(base, tmp_path):
    cfg = tiny_config(base, tmp_path / "nowhere", tmp_path / "runs", "bad")
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    proc = subprocess.run([sys.executable, "-m", "training", str(toml)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert "Dataset folder not found" in proc.stdout and str(tmp_path / "nowhere") in proc.stdout
    events = _events(cfg.run_dir)
    err = next(e for e in events if e["type"] == "error")
    assert "nowhere" in err["message"] and err["message_zh"] and err["hint"]
    assert events[-1] == {**events[-1], "type": "done", "status": "failed"}


def test_unreadable_image_is_skipped_with_a_warning(base, dataset, tmp_path):
    import shutil

    from training.loop import train

    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    (ds / "2_flat" / "broken.png").write_bytes(b"not a png at all")
    # also: fp16 asked for on the CPU (a warning, fp32 training), no latent cache, flips
    cfg = tiny_config(base, ds, tmp_path / "runs", "skip", training__epochs=1, sampling__prompts=[],
                      training__mixed_precision="fp16", dataset__cache_latents="none", dataset__flip_aug=True)
    result = train(cfg)
    assert result.status == "finished" and result.total_steps == 4
    warnings = [e for e in _events(cfg.run_dir) if e["type"] == "warning"]
    assert any("broken.png" in w["message"] and "broken.png" in w["message_zh"] for w in warnings)
    assert any("fp32" in w["message"] for w in warnings)

    # a fresh run in the same folder moves the earlier files aside instead of overwriting them
    first = (cfg.run_dir / "skip.safetensors").read_bytes()
    cfg.training.max_train_steps = 1
    train(cfg)
    kept = list((cfg.run_dir / ".previous").glob("*/skip.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == first
    assert (cfg.run_dir / "skip.safetensors").read_bytes() != first


KILL_SCRIPT = """
import sys, torch
from models.lora_file import save_lora
state = {f"lora_unet_m{i}.lora_down.weight": torch.randn(256, 4096) for i in range(96)}
print("saving", flush=True)
while True:
    save_lora(sys.argv[1], state, {"ss_network_dim": "256"}, "float")
"""


def test_out_of_memory_gets_concrete_advice():
    from training.cli import _as_user_error

    class OutOfMemoryError(RuntimeError):
        pass

    err = _as_user_error(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert err is not None and "batch size 1" in err.text("en") and "梯度检查点" in err.text("zh")
    assert _as_user_error(ValueError("something else")) is None


def test_killed_during_save_leaves_no_partial_file(tmp_path):
    """The file is written under a temporary name and renamed: a kill leaves the old file or none, never half."""
    from safetensors.torch import load_file

    target = tmp_path / "lora.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(target)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".lora.safetensors.*.tmp")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".lora.safetensors.*.tmp")), "the kill did not land during a write"
    for path in tmp_path.glob("*.safetensors"):
        assert len(load_file(str(path))) == 96  # complete, or absent
