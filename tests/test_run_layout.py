"""core.runs.layout: one owner for the run folder's names and for what happens to an earlier run."""

from __future__ import annotations

import os

from core import config as cfgmod
from core.runs import layout as L


def test_file_names_round_trip():
    assert L.lora_file_name("cat", epoch=2) == "cat-000002.safetensors"
    assert L.lora_file_name("cat", step=500) == "cat-step00000500.safetensors"
    assert L.lora_file_name("cat") == "cat.safetensors"
    for kind, n in (("epoch", 2), ("step", 500), ("final", None)):
        name = L.lora_file_name("my-cat", **({kind: n} if n else {}))
        assert L.parse_lora_file(name, "my-cat") == (kind, n)
    assert L.parse_lora_file("my-000002.safetensors", "my-cat") is None  # another run's file
    assert L.parse_lora_file("cat-000002.png", "cat") is None


def test_lora_files_in_training_order(tmp_path):
    for n in ("c.safetensors", "c-step00000500.safetensors", "c-000004.safetensors", "c-000002.safetensors",
              "other-000001.safetensors"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for *_, p in L.lora_files(tmp_path, "c")] == [
        "c-000002.safetensors", "c-000004.safetensors", "c-step00000500.safetensors", "c.safetensors"]


def test_run_dir_and_listing(tmp_path):
    cfg = cfgmod.merge_dict(cfgmod.default_config(), {"saving": {"output_dir": "outputs", "name": "cat"}})
    assert L.run_dir(cfg, tmp_path) == tmp_path / "outputs" / "cat"
    assert L.run_dir(cfg) == cfg.run_dir
    for name, age in (("old", 100), ("new", 0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.toml").write_text("", encoding="utf-8")
        os.utime(tmp_path / name / "config.toml", (1e9 - age, 1e9 - age))
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in L.list_runs(tmp_path)] == ["new", "old"]


def _earlier_run(folder):
    folder.mkdir(parents=True)
    for n in ("cat-000002.safetensors", "cat.safetensors", "events.jsonl", "train.log", "config.toml",
              "console.log", "my notes.txt"):
        (folder / n).write_text(n, encoding="utf-8")
    (folder / "samples").mkdir()
    (folder / "samples" / "cat-e000002-00.png").write_bytes(b"png")


def test_the_trainer_moves_an_earlier_runs_results_aside(tmp_path):
    folder = tmp_path / "cat"
    _earlier_run(folder)
    dest = L.set_aside_earlier_run(folder)
    assert dest.parent == folder / L.PREVIOUS
    assert sorted(p.name for p in dest.iterdir()) == ["cat-000002.safetensors", "cat.safetensors", "config.toml",
                                                       "events.jsonl", "samples", "train.log"]
    # the page's log of the child that runs this trainer, and the user's own file, stay
    assert sorted(p.name for p in folder.iterdir()) == [".previous", "console.log", "my notes.txt"]
    assert L.set_aside_earlier_run(folder) is None  # nothing left to move


def test_the_page_also_moves_a_failed_runs_logs(tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "config.toml").write_text("", encoding="utf-8")
    assert L.set_aside_earlier_run(folder, by_page=True) is None  # settings alone: no earlier run
    (folder / "console.log").write_text("Traceback", encoding="utf-8")
    dest = L.set_aside_earlier_run(folder, by_page=True)
    assert sorted(p.name for p in dest.iterdir()) == ["config.toml", "console.log"]
    assert L.set_aside_earlier_run(folder) is None  # the trainer: no results, nothing to do


def _run(folder, age: float = 0):
    """A run folder (config.toml) whose settings were written `age` seconds before the others' epoch."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text("", encoding="utf-8")
    os.utime(folder / "config.toml", (1e9 - age, 1e9 - age))
    return folder


def test_runs_are_found_at_any_depth_and_earlier_runs_too(tmp_path):
    top = _run(tmp_path / "cat", 50)
    demo = _run(tmp_path / "demo" / "runs" / "demo", 10)       # launcher.py demo's output_dir
    zdemo = _run(tmp_path / "demo" / "zimage" / "runs" / "demo", 20)
    mine = _run(tmp_path / "projects" / "2026" / "dog", 0)     # an output_dir the user set under outputs
    earlier = _run(demo / L.PREVIOUS / "20261207-135403", 40)  # moved aside by the demo run above
    (tmp_path / "demo" / "run.toml").write_text("", encoding="utf-8")  # a run TOML is not a run folder
    # Danlu's own folders and a run's inner folders are never runs, whatever they hold
    for inner in (tmp_path / ".danlu" / "queue" / "x", demo / "grids" / "g", demo / "samples" / "s",
                  demo / "state" / "s", tmp_path / "cat" / ".cache" / "latents" / "x"):
        _run(inner)
    assert L.list_runs(tmp_path) == [mine, demo, zdemo, earlier, top]  # newest first
    assert L.list_runs(tmp_path, earlier=False) == [mine, demo, zdemo, top]
    assert [L.previous_stamp(p) for p in (earlier, demo)] == ["20261207-135403", None]
    assert L.list_runs(tmp_path / "missing") == []


def test_the_run_moved_aside_is_listed_as_an_earlier_run(tmp_path):
    folder = tmp_path / "sub" / "cat"
    _earlier_run(folder)
    dest = L.set_aside_earlier_run(folder)
    (folder / "config.toml").write_text("", encoding="utf-8")  # the new run writes its settings
    os.utime(dest / "config.toml", (1e9, 1e9))
    assert L.list_runs(tmp_path) == [folder, dest]
    assert L.previous_stamp(dest) == dest.name and L.previous_stamp(folder) is None
