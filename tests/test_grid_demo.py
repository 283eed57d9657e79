"""The XYZ grid on a real (short) demo training run: cells equal the training samples, and the browser journey."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser_util import choose
from PIL import Image

from models.grid.plan import check_versions, plan_from_run
from models.grid.render import run_grid

ROOT = Path(__file__).resolve().parent.parent
RUN = "griddemo"


@pytest.fixture(scope="module")
def trained_demo(app_server, tmp_path_factory) -> Path:
    """The demo trained for 2 epochs (one repeat, batch 4: six steps) into the app's outputs."""
    from models.demo import make_demo

    outputs = app_server[2]
    run_dir = outputs / RUN
    if (run_dir / f"{RUN}.safetensors").is_file():
        return run_dir
    root = tmp_path_factory.mktemp("griddemo")
    toml = make_demo(root)
    (root / "dataset" / "10_demo").rename(root / "dataset" / "1_demo")
    # relative to the project folder, as the demo's own output_dir is: the events must still lead to the files
    sets = [f"saving.output_dir={os.path.relpath(outputs, ROOT)}", f"saving.name={RUN}", "training.epochs=2",
            "saving.every_n_epochs=1",
            "sampling.steps=4", "dataset.bucket_no_upscale=true", "training.batch_size=4", "saving.save_state=false"]
    cmd = [sys.executable, str(ROOT / "launcher.py"), "train", str(toml)]
    for item in sets:
        cmd += ["--set", item]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run_dir


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_cells_equal_the_training_samples(trained_demo):
    """At the run's sample settings (weight 1, each sample prompt) a cell is that epoch's sample, pixel for pixel."""
    events = [json.loads(line) for line in (trained_demo / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    samples = [e for e in events if e["type"] == "sample"]
    assert len(samples) == 4  # 2 epochs × 2 prompts
    plan = plan_from_run(trained_demo, weights=[1.0], all_prompts=True)
    assert [p.stem for p in plan.loras] == [f"{RUN}-000001", RUN]
    result = run_grid(plan)
    assert check_versions(plan) == []  # the LoRA records this very base's hash
    for sample in samples:
        x = 0 if sample["epoch"] == 1 else 1
        cell = result.out_dir / result.cells[(sample["prompt_index"], 0, x)]["png"]
        assert (pixels(cell) == pixels(sample["png"])).all(), (cell, sample["png"])
        with Image.open(cell) as im:  # and the recipe agrees with the sample's, apart from nothing
            assert im.text["parameters"] == sample["parameters"]


def test_the_train_tab_finds_the_samples(trained_demo):
    """The run summary (the Train tab's "Samples by epoch") lists every sample of the run, by where it is."""
    from core.events import read_events
    from core.runs.summary import summarize
    from core.runs.supervisor import Run

    events, _ = read_events(trained_demo / "events.jsonl")
    info = summarize(Run(trained_demo, trained_demo / "config.toml", [], ROOT, False, events=events))
    assert [Path(s["png"]).parent for s in info["samples"]] == [trained_demo / "samples"] * 4
    assert [Path(f["file"]).parent for f in info["saved"]] == [trained_demo] * 2 and info["saved"][0]["exists"]


def test_browser_journey_3x3(trained_demo, page, artifacts):
    """After the demo run: pick it, add the base column, three weights → a 3×3 grid in the page; a click shows
    the cell's recipe."""
    page.click("#tab-grid-button, button[role=tab]:has-text('XYZ grid')")
    page.click("#grid-refresh")
    choose(page, "#grid-run", f"{RUN}  (2 LoRA)")
    page.wait_for_selector(f"#grid-epochs label:has-text('{RUN}-000001')")
    page.check("#grid-base-column input")
    page.fill("#grid-weights textarea, #grid-weights input", "0.5, 0.8, 1.0")
    page.click("#grid-start")
    page.wait_for_selector("#grid-message:has-text('Grid saved')", timeout=300_000)
    assert "Cells 9/9" in page.inner_text("#grid-progress")
    img = page.locator("#grid-image img")
    img.wait_for()
    natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    saved = max((trained_demo / "grids").glob("grid-*/grid.png"))
    with Image.open(saved) as im:
        assert tuple(natural) == im.size  # the whole grid is shown, not a thumbnail
        assert '"base (no LoRA), griddemo-000001, griddemo"' in im.text["parameters"]
    data = json.loads((saved.parent / "grid.json").read_text(encoding="utf-8"))
    assert len(data["cells"]) == 9 and {c["x"] for c in data["cells"]} == {0, 1, 2}
    page.screenshot(path=artifacts / "grid_tab_3x3.png", full_page=True)
    # click the middle of cell (y=1, x=2): the final file at weight 0.8
    box = img.bounding_box()
    left, top, right, bottom = next(c["box"] for c in data["cells"] if (c["y"], c["x"]) == (1, 2))
    scale = box["width"] / natural[0]
    page.mouse.click(box["x"] + (left + right) / 2 * scale, box["y"] + (top + bottom) / 2 * scale)
    page.wait_for_function("() => document.querySelector('#grid-recipe textarea').value.includes('<lora:')")
    recipe = page.input_value("#grid-recipe textarea")
    assert recipe.startswith(f"demo, a red square <lora:{RUN}:0.8>") and "Seed: 1234" in recipe
    page.screenshot(path=artifacts / "grid_tab_cell.png", full_page=True)
    # zoom to the picture's own pixels: shown at natural width inside a scrolling box
    page.fill("#grid-zoom input[type=number]", "100")
    page.press("#grid-zoom input[type=number]", "Enter")
    page.wait_for_function("() => document.querySelector('#grid-image img').style.width !== ''")
    assert round(img.bounding_box()["width"]) == natural[0]
