"""The XYZ grid's run list: runs at any depth under the outputs folder, labelled by their path there, and the
earlier runs a new run of the same name moved aside, labelled as such."""

from __future__ import annotations

import os

from core.runs import layout as L
from ui import tab_grid  # noqa: F401 - registers the grid's strings
from ui.grid_jobs import compare_choices, list_runs


def _run(folder, age: float, loras: int = 0):
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("", encoding="utf-8")
    for i in range(loras):
        (folder / f"demo-{i + 1:06d}.safetensors").write_bytes(b"x")
    os.utime(folder / "config.toml", (1e9 - age, 1e9 - age))
    return folder


def test_runs_at_any_depth_and_earlier_runs_are_labelled(tmp_path):
    demo = _run(tmp_path / "demo" / "runs" / "demo", 0, loras=2)
    earlier = _run(demo / L.PREVIOUS / "20261207-135403", 10, loras=1)
    top = _run(tmp_path / "cat", 20)
    assert list_runs(tmp_path) == [
        ("demo/runs/demo  (2 LoRA)", str(demo)),
        ("demo/runs/demo · earlier run (moved to .previous/20261207-135403 at 2026-12-07 13:54:03)  (1 LoRA)",
         str(earlier)),
        ("cat  (0 LoRA)", str(top))]
    zh = [label for label, _ in list_runs(tmp_path, "zh")]
    assert zh[1] == "demo/runs/demo · 较早的一次运行（2026-12-07 13:54:03 移到 .previous/20261207-135403）  (1 LoRA)"
    assert [p for _, p in compare_choices(tmp_path, "en")] == ["", str(demo), str(earlier), str(top)]
