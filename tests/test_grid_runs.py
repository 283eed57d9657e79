"""Runs as an XYZ axis on three tiny SD1.5 runs (a sweep of rank): runs × epochs × weights, the best epoch by
validation loss and its neighbours preselected, each cell that run's own sample recipe; shell and tab."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.events import read_events

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(sweep_runs) -> list[Path]:
    """Three finished runs (rank 2, 4, 8) with files for epochs 1, 2 and the final (3), validation every save."""
    return sweep_runs


def set_validation(run_dir: Path, losses: dict[int, float]) -> None:
    """Give the run's validation events chosen losses (by epoch), so the best epoch is known."""
    path = run_dir / "events.jsonl"
    events, _ = read_events(path)
    for e in events:
        if e["type"] == "validation":
            e["loss"] = losses[e["epoch"]]
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


def test_best_epoch_and_neighbours_are_preselected(runs):
    from models.grid.compare import best_stems, plan_runs

    for run in runs:
        set_validation(run, {1: 0.5, 2: 0.4, 3: 0.45})
    assert best_stems(runs[0]) == ["mylora-rank2-000001", "mylora-rank2-000002", "mylora-rank2"]
    set_validation(runs[0], {1: 0.3, 2: 0.4, 3: 0.45})
    assert best_stems(runs[0]) == ["mylora-rank2-000001", "mylora-rank2-000002"]
    plans, keys, warnings = plan_runs([runs[0], runs[0]], weights=[1.0])
    assert keys == ["epoch 1", "epoch 2"] and "Best epochs" in warnings[-1][0]
    plans, keys, _ = plan_runs(runs, weights=[1.0], epochs="2,final")
    assert keys == ["epoch 2", "final"] and len(plans) == 3
    set_validation(runs[0], {1: 0.5, 2: 0.4, 3: 0.45})


def test_runs_by_epochs_by_weights_each_cell_the_runs_own_sample(runs, tmp_path):
    from models.grid.compare import plan_runs, run_runs

    for run in runs:
        set_validation(run, {1: 0.5, 2: 0.4, 3: 0.45})
    plans, keys, warnings = plan_runs(runs, weights=[0.5, 1.0], out_dir=tmp_path)
    assert keys == ["epoch 1", "epoch 2", "final"]  # every run's best (2) and its neighbours
    labels = [r.name for r in runs]
    result = run_runs(plans, keys, labels, warnings=warnings)
    assert result.status == "finished" and (result.done, result.total) == (18, 18)
    data = json.loads((result.out_dir / "grid.json").read_text(encoding="utf-8"))
    assert data["z_labels"] == labels and data["x_labels"] == ["epoch 1", "epoch 2", "final"]
    assert 'Z Type: Run, Z Values: "mylora-rank2, mylora-rank4, mylora-rank8"' in data["parameters"]
    cells = {(c["z"], c["y"], c["x"]): c for c in data["cells"]}
    # weight 1 (y 1), epoch 2 (x 1) of the rank-8 run is the sample that run rendered after epoch 2
    cell = result.out_dir / cells[(2, 1, 1)]["png"]
    own = runs[2] / "samples" / "mylora-rank8-000002-e000002-00.png"
    assert "<lora:mylora-rank8-000002:1>" in cells[(2, 1, 1)]["parameters"]
    with Image.open(cell) as a, Image.open(own) as b:
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_runs_axis_from_the_shell_and_the_grid_tab(runs, tmp_path, capsys):
    from models.grid.cli import main
    from ui import grid_jobs

    assert main([str(runs[0]), "--runs", str(runs[1]), str(runs[2]), "--weights", "1", "--epochs", "final",
                     "--out", str(tmp_path)]) == 0
    assert "Compare: mylora-rank2 | mylora-rank4 | mylora-rank8: 1 files x 1 weights" in capsys.readouterr().out
    assert grid_jobs.preselected(str(runs[1])) == ["mylora-rank4-000001", "mylora-rank4-000002", "mylora-rank4"]
    steps = list(grid_jobs.render_grid("run", str(runs[0]), ["mylora-rank2"], "1", False, "none", "", 0, "", "",
                                      "en", {}, outputs_dir=tmp_path, compare=[str(runs[1]), str(runs[2])]))
    assert "3 cells: 1 columns × 1 weights × 3 Z" in steps[0][1]
    assert "Grid saved" in steps[-1][3]
