"""Faults mid-run: the tiny SD1.5 trainer killed (SIGKILL, at a named point: training/faults.py) while caching, in a
step, in a save, between a save's file and its state, and while rendering a sample leaves only complete files, and
`--resume` ends at the weights of the uninterrupted run; a save that finds the disk full says so, keeps what was
saved, and stops with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import config as cfgmod
from core.events import read_events
from training import faults
from training.tiny_run import flat_dataset, tiny_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DANLU_LANG": "en"}
ENV.pop(faults.ENV, None)
EPOCHS = 3  # 4 images, batch 2: 2 steps per epoch, so a step can be killed inside an epoch


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd15", tmp_path_factory.mktemp("base"), single_file=False).folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return flat_dataset(tmp_path_factory.mktemp("flat"), count=4, repeats=1)


def _config(base: Path, dataset: Path, out: Path, **overrides) -> Path:
    cfg = tiny_config(base, dataset, out, "fault", training__epochs=EPOCHS, dataset__cache_latents="disk",
                      sampling__steps=2, **overrides)
    toml = out / "run.toml"
    out.mkdir(parents=True, exist_ok=True)
    cfgmod.save(cfg, toml)
    return toml


def _run(toml: Path, *extra: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {**ENV, faults.ENV: fault} if fault else ENV
    return subprocess.run([sys.executable, "-m", "training", str(toml), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def reference(base, dataset, tmp_path_factory) -> dict:
    """The uninterrupted run's final weights. Without samples: they restore the RNG they use, so they do not change
    what is trained (the faulted runs below render them and must still match)."""
    toml = _config(base, dataset, tmp_path_factory.mktemp("reference"), sampling__prompts=[])
    proc = _run(toml)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _weights(cfgmod.load(toml).run_dir / "fault.safetensors")


def _only_complete_files(run_dir: Path, out: Path) -> None:
    """Every LoRA, state and cache file loads, every PNG decodes, events.jsonl parses up to its last full line."""
    from PIL import Image

    for path in [*run_dir.rglob("*.safetensors"), *(out / ".cache").rglob("*.safetensors")]:
        assert _weights(path), path
    for path in run_dir.rglob("*.png"):
        with Image.open(path) as im:
            im.load()
    data = (run_dir / "events.jsonl").read_bytes()
    for line in data[:data.rfind(b"\n")].split(b"\n"):
        json.loads(line)
    for progress in run_dir.rglob("progress.json"):
        json.loads(progress.read_text(encoding="utf-8"))


def _state_step(run_dir: Path) -> int | None:
    progress = run_dir / "state" / "progress.json"
    return json.loads(progress.read_text(encoding="utf-8"))["step"] if progress.is_file() else None


def _files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("*.safetensors"))


# One run, faulted again and again and resumed each time (a process each: the fault counts its own passes).
# 3 epochs of 2 steps: files after steps 2 and 4 (each with its state and one sample), the final file after 6.
# (fault, resume, what the run folder holds after it: LoRA files, the state's step, the step a resume starts at)
CHAIN = [
    ("kill@caching:2", False, [], None, None),              # before any save: started again, cache reused
    ("kill@step:3", False, ["fault-000001.safetensors"], 2, None),  # mid-step: the epoch-1 file and its state
    ("kill@save:1", True, ["fault-000001.safetensors"], 2, 2),      # before the epoch-2 file is written
    # between a file and its state: the file is there, the state is the previous one (resume writes it again)
    ("kill@state:1", True, ["fault-000001.safetensors", "fault-000002.safetensors"], 2, 2),
    # while rendering a sample: the state was written before it, so the newest file is where resume goes on
    ("kill@sample:1", True, ["fault-000001.safetensors", "fault-000002.safetensors"], 4, 2),
]


def test_killed_runs_leave_complete_files_and_resume_to_the_uninterrupted_weights(base, dataset, reference,
                                                                                     tmp_path):
    import torch

    from core.runs.supervisor import Supervisor
    from ui.tab_train import render
    from ui.train_runs import past_run

    out = tmp_path / "out"
    toml = _config(base, dataset, out)
    run_dir = cfgmod.load(toml).run_dir
    for fault, resume, files, state_step, resumed_at in CHAIN:
        proc = _run(toml, *(["--resume"] if resume else []), fault=fault)
        said = f"{fault}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        assert proc.returncode == -signal.SIGKILL, said
        _only_complete_files(run_dir, out)
        assert _files(run_dir) == files, said
        assert _state_step(run_dir) == state_step, said
        if resumed_at is not None:
            log = (run_dir / "train.log").read_text(encoding="utf-8")
            assert log[log.rindex("Resumed from"):].split("\n")[0].endswith(f"at step {resumed_at} of 6"), said
    # the state went with the newest file: the resume below starts at step 4
    saved = [e["step"] for e in read_events(run_dir / "events.jsonl")[0] if e["type"] == "saved"]
    assert saved[-1] == _state_step(run_dir) == 4

    # The final save finds the disk full: exit 2 with the message in both languages, the epoch files and the state
    # kept, no temporary file left.
    proc = _run(toml, "--resume", fault="enospc@save:1")
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "The disk is full: fault.safetensors could not be written" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    events = read_events(run_dir / "events.jsonl")[0]
    error = next(e for e in reversed(events) if e["type"] == "error")
    assert "磁盘空间已满" in error["message_zh"] and "fault.safetensors" in error["message_zh"]
    assert "resume" in error["hint"] and events[-1]["type"] == "done" and events[-1]["status"] == "failed"
    # the Train tab shows the run as failed, the message in the user's language, and offers Resume
    shown = {lang: render(past_run(run_dir, Supervisor(ROOT, echo=False), 50), lang, "") for lang in ("zh", "en")}
    assert "磁盘空间已满" in shown["zh"]["error"] and "The disk is full" in shown["en"]["error"]
    assert "resume" in shown["en"]["error"] and shown["zh"]["buttons"]["resume"]["interactive"]
    assert _files(run_dir) == ["fault-000001.safetensors", "fault-000002.safetensors"]
    assert _state_step(run_dir) == 4
    assert not list(run_dir.glob(".*.tmp")), "a failed write leaves no temporary file"
    _only_complete_files(run_dir, out)

    proc = _run(toml, "--resume")  # space freed: the run goes on from the kept state to the end
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _only_complete_files(run_dir, out)
    # the epoch-1 and the final file's samples; the epoch-2 sample was being rendered when the run was killed, and a
    # resume goes on after that file rather than rendering it again
    assert len(list(run_dir.glob("samples/*.png"))) == 2
    final = _weights(run_dir / "fault.safetensors")
    # the same code path in the same kind of process, from the states it saved: equal bit for bit
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[k], reference[k]) for k in final)


def test_fault_spec_is_checked():
    assert faults.parse("kill@step:3") == ("kill", "step", 3)
    assert faults.parse("enospc@save") == ("enospc", "save", 1)
    for bad in ("kill@stpe:3", "boom@step", "kill@step:0", "kill@step:x", "kill"):
        with pytest.raises(ValueError, match="DANLU_FAULT"):
            faults.parse(bad)


def test_enospc_fault_raises_at_the_nth_pass_only(monkeypatch):
    import errno

    monkeypatch.setenv(faults.ENV, "enospc@sample:2")
    monkeypatch.setattr(faults, "_passed", {})
    faults.point("save")  # another point: not counted
    faults.point("sample")
    with pytest.raises(OSError) as caught:
        faults.point("sample")
    assert caught.value.errno == errno.ENOSPC
    faults.point("sample")  # once only
