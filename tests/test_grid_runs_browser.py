"""The XYZ grid tab in Chromium with runs as the Z axis: two tiny runs of a sweep, the best epoch by validation loss
and its neighbour preselected, the second run picked to compare, a runs × epochs grid rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_util import choose
from test_grid_runs import set_validation

from training.tiny_run import flat_dataset, tiny_config


@pytest.fixture(scope="module")
def two_runs(app_server, tmp_path_factory) -> list[Path]:
    import torch

    from models.tiny import save_tiny
    from training.loop import train

    root = tmp_path_factory.mktemp("gridruns")
    base = save_tiny("sd15", root / "base").folder
    data = flat_dataset(root / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folders = []
    try:
        for rank in (2, 4):
            cfg = tiny_config(base, data, app_server[2], f"sweep-rank{rank}", network__rank=rank, training__epochs=3,
                              dataset__validation_split=0.25, sampling__steps=2, saving__save_state=False)
            train(cfg)
            set_validation(cfg.run_dir, {1: 0.3, 2: 0.35, 3: 0.4})  # best: epoch 1, its neighbour: epoch 2
            folders.append(cfg.run_dir)
    finally:
        torch.set_num_threads(threads)
    return folders


def test_runs_by_epochs_grid_in_the_page(two_runs, page, artifacts):
    a, b = two_runs
    page.click("#tab-grid-button, button[role=tab]:has-text('XYZ grid')")
    page.click("#grid-refresh")
    choose(page, "#grid-run", "sweep-rank2")
    page.wait_for_selector("#grid-epochs label:has-text('sweep-rank2-000002')")
    checked = page.locator("#grid-epochs input:checked")
    page.wait_for_function("() => document.querySelectorAll('#grid-epochs input:checked').length === 2")
    assert checked.count() == 2 and not page.locator("#grid-epochs label", has_text="sweep-rank2").last \
        .locator("input").is_checked()  # the final file is not a neighbour of the best epoch
    choose(page, "#grid-compare", "sweep-rank4")
    page.keyboard.press("Escape")
    page.fill("#grid-weights textarea, #grid-weights input", "1")
    page.click("#grid-start")
    page.wait_for_selector("#grid-message:has-text('Grid saved')", timeout=300_000)
    assert "Cells 4/4" in page.inner_text("#grid-progress")
    saved = max((a / "grids").glob("compare-*/grid.json"))
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["z_labels"] == ["sweep-rank2", "sweep-rank4"] and data["x_labels"] == ["epoch 1", "epoch 2"]
    page.screenshot(path=artifacts / "grid_runs_by_epochs.png", full_page=True)
