"""The XYZ grid tab in Chromium with runs as the Z axis: two tiny runs of a sweep, the best epoch by validation loss
and its neighbour preselected, the second run picked to compare, a runs × epochs grid rendered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from browser_util import choose
from test_grid_runs import set_validation


@pytest.fixture(scope="module")
def two_runs(app_server, sweep_runs) -> list[Path]:
    """Copies of the sweep's rank-2 and rank-4 runs in the app's outputs folder, their best epoch by validation loss
    the first (its neighbour: epoch 2)."""
    folders = []
    for run in sweep_runs[:2]:
        copy = app_server[2] / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("grids"))  # no grid of the shell tests
        set_validation(copy, {1: 0.3, 2: 0.35, 3: 0.4})
        folders.append(copy)
    return folders


def test_runs_by_epochs_grid_in_the_page(two_runs, page, artifacts):
    a, b = two_runs
    page.click("#tab-grid-button, button[role=tab]:has-text('XYZ grid')")
    page.click("#grid-refresh")
    choose(page, "#grid-run", "mylora-rank2")
    page.wait_for_selector("#grid-epochs label:has-text('mylora-rank2-000002')")
    checked = page.locator("#grid-epochs input:checked")
    page.wait_for_function("() => document.querySelectorAll('#grid-epochs input:checked').length === 2")
    assert checked.count() == 2 and not page.locator("#grid-epochs label", has_text="mylora-rank2").last \
        .locator("input").is_checked()  # the final file is not a neighbour of the best epoch
    choose(page, "#grid-compare", "mylora-rank4")
    page.keyboard.press("Escape")
    page.fill("#grid-weights textarea, #grid-weights input", "1")
    page.click("#grid-start")
    page.wait_for_selector("#grid-message:has-text('Grid saved')", timeout=300_000)
    assert "Cells 4/4" in page.inner_text("#grid-progress")
    saved = max((a / "grids").glob("compare-*/grid.json"))
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["z_labels"] == ["mylora-rank2", "mylora-rank4"] and data["x_labels"] == ["epoch 1", "epoch 2"]
    page.screenshot(path=artifacts / "grid_runs_by_epochs.png", full_page=True)
