"""core.runs.summary finds a run's samples and files whatever way its events name them: absolute paths (the trainer
now), paths relative to the project folder (earlier trainers, a relative output_dir like the demo's), names relative
to the run folder, and a run folder moved since."""

from __future__ import annotations

import json
from pathlib import Path

from core.runs.summary import summarize
from core.runs.supervisor import Run


def _run(project: Path, run_dir: Path, recorded) -> Run:
    """A finished run whose events name its one sample and one LoRA file as recorded(path)."""
    png = run_dir / "samples" / "demo-e000001-00.png"
    lora = run_dir / "demo-000001.safetensors"
    png.parent.mkdir(parents=True)
    png.write_bytes(b"png")
    lora.write_bytes(b"lora")
    events = [{"type": "start", "total_steps": 2},
              {"type": "saved", "file": recorded(lora), "epoch": 1, "step": 2, "size": 4},
              {"type": "sample", "png": recorded(png), "epoch": 1, "step": 2, "prompt_index": 0, "prompt": "demo"}]
    return Run(run_dir, run_dir / "config.toml", [], project, False, status="finished", events=events)


def test_samples_and_files_are_found_whichever_way_they_were_recorded(tmp_path):
    project = tmp_path / "project"
    ways = {"absolute": lambda p: str(p),
            "project-relative": lambda p: str(p.relative_to(project)),  # outputs/demo/runs/demo/samples/…
            "run-relative": lambda p: str(p.relative_to(p.parent if p.suffix == ".safetensors" else p.parents[1]))}
    for i, (way, recorded) in enumerate(ways.items()):
        run_dir = project / "outputs" / "demo" / "runs" / f"demo{i}"
        info = summarize(_run(project, run_dir, recorded))
        assert [s["png"] for s in info["samples"]] == [str(run_dir / "samples" / "demo-e000001-00.png")], way
        assert info["saved"][0]["exists"] and info["saved"][0]["file"] == str(run_dir / "demo-000001.safetensors")


def test_a_moved_run_folder_still_shows_its_samples(tmp_path):
    old = tmp_path / "old" / "demo"
    run = _run(tmp_path, old, str)
    new = tmp_path / "new" / "demo"
    new.parent.mkdir()
    old.rename(new)
    run.run_dir = new
    info = summarize(run)
    assert [Path(s["png"]) for s in info["samples"]] == [new / "samples" / "demo-e000001-00.png"]
    assert info["saved"][0]["exists"]


def test_a_missing_sample_is_left_out(tmp_path):
    run = _run(tmp_path, tmp_path / "r", str)
    (tmp_path / "r" / "samples" / "demo-e000001-00.png").unlink()
    info = summarize(run)
    assert info["samples"] == [] and json.dumps(info["saved"])
