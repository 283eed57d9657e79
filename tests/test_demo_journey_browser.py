"""The newcomer's journey, in Chromium, on a fresh outputs folder, for the SD1.5 demo and the Z-Image demo: the
first screen offers the demo → one click makes and selects it → the Model tab lists and picks the demo model → the
Dataset tab shows its images → the demo tagger tags them → the Parameters form takes typed values → the real trainer
runs and each epoch's samples appear while it trains → "Open this run in the XYZ grid" selects the run → a grid is
rendered → a click on a cell shows its recipe with its prompt.

It is also the page's one run of the real trainer (`launcher.py train` as a child, followed to the end: its command
line, the last step, a log that reads as lines).

Screenshots of every step are written to test-artifacts/journey_<family>_*.png. The wall time of each journey is
printed (pytest -s shows it)."""

from __future__ import annotations

import json
import re
import time

import pytest
from browser_util import settle
from conftest import free_port

from core.runs.supervisor import supervisor
from models.demo import DEMO_PROMPTS
from ui import start
from ui.app import ROOT

MODEL_FILE = {"sd15": "tiny-sd15.safetensors", "zimage": "tiny-zimage"}
# Short runs: 12 images × 10 repeats at batch 4 is 30 steps an epoch; two epochs, a save and samples after each.
TYPED = {"training-epochs": "2", "training-batch_size": "4", "saving-every_n_epochs": "1"}


@pytest.fixture(scope="module")
def newcomer_app(tmp_path_factory):
    """A Danlu of its own on an empty outputs folder and an empty models folder, as on a fresh clone."""
    from ui.app import CSS, build_app

    outputs, models_dir = tmp_path_factory.mktemp("journey-outputs"), tmp_path_factory.mktemp("journey-models")
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=models_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True,
                allowed_paths=[str(outputs)])
    yield f"http://127.0.0.1:{port}/", outputs
    demo.close()


def _field(page, selector: str) -> str:
    return page.locator(f"{selector} input, {selector} textarea").first.input_value()


def _tab(page, tab: str) -> None:
    page.click(f"#tab-{tab}-button")
    page.wait_for_selector(f"#tab-{tab}-button[aria-selected=true]")


@pytest.mark.parametrize("family", ["sd15", "zimage"])
def test_newcomer_journey(family, browser, newcomer_app, artifacts, one_torch_thread):
    url, outputs = newcomer_app
    began = time.monotonic()

    def shot(page, name: str) -> None:
        page.screenshot(path=artifacts / f"journey_{family}_{name}.png", full_page=True)

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector("#danlu-tabs")
    try:
        _journey(page, family, outputs, shot)
    except Exception:
        shot(page, "failed")  # what the page showed when a step did not come
        raise
    print(f"\n{family} demo journey in the browser: {time.monotonic() - began:.0f} s")
    context.close()


def _journey(page, family: str, outputs, shot) -> None:
    # 1 — the first screen says where to start and offers the demo; one click makes and selects it.
    assert "1 The app" in page.locator("#start-steps").inner_text()
    if family == "sd15":  # a fresh clone: the empty folder's hint is there on the first render
        page.locator("#model-list-note").get_by_text("No models in the folders").wait_for()
    shot(page, "1_start")
    page.click(f"#start-demo-{family}")
    page.locator("#start-message").get_by_text("is ready and selected").wait_for()
    demo_root = start.demo_folder(outputs) if family == "sd15" else start.demo_folder(outputs) / family

    # 2 — the Model tab lists the demo model and has checked it.
    page.wait_for_selector("#tab-model-button[aria-selected=true]")
    page.locator("#model-current").get_by_text(MODEL_FILE[family]).first.wait_for()
    assert _field(page, "#model-list").startswith(MODEL_FILE[family])
    shot(page, "2_model")

    # 3 — the Dataset tab has the demo's 12 images.
    _tab(page, "dataset")
    page.wait_for_function("p => document.querySelector('#dataset-path textarea, #dataset-path input').value == p",
                           arg=str(demo_root / "dataset"))
    page.locator("#dataset-summary").get_by_text("12").first.wait_for()
    shot(page, "3_dataset")

    # 4 — the demo tagger is offered and tags the images (the captions are backed up first).
    _tab(page, "tagging")
    assert _field(page, "#tagging-model") == str(start.demo_folder(outputs) / "tagger")
    page.locator("#tagging-policy").get_by_text("overwrite", exact=True).click()  # the demo's images have captions
    page.click("#tagging-run")
    page.wait_for_selector("#tagging-status:has-text('12 written')", timeout=180_000)
    assert "12 originals backed up" in page.locator("#tagging-status").inner_text()
    shot(page, "4_tagging")

    # 5 — typed values, left by a click (no Enter), are the ones the run uses.
    _tab(page, "params")
    settle(page, "#params-toml")
    for field, value in TYPED.items():
        box = page.locator(f"#params-{field} input").first
        box.fill(value)
        page.click("#params-toml")  # leave the field by a click
    page.wait_for_function("() => { const v = document.querySelector('#params-toml textarea').value; return "
                           "/epochs = 2\\b/.test(v) && /batch_size = 4\\b/.test(v) && "
                           "/every_n_epochs = 1\\b/.test(v) }")
    shot(page, "5_params")

    # 6 — the real trainer; each epoch's samples appear while it is still training.
    _tab(page, "train")
    page.click("#train-start")
    page.wait_for_selector("#train-message:has-text('Started')")
    assert supervisor(ROOT).launcher == ROOT / "launcher.py"  # the real trainer, as a shell user runs it
    command = page.locator("#train-command textarea").input_value()
    assert f"{ROOT / 'launcher.py'} train " in command and command.endswith("runs/demo/config.toml"), command
    page.wait_for_function(
        "() => document.querySelectorAll('#train-samples img').length >= 2 && "
        "document.querySelector('#train-status').innerText.includes('Running')", timeout=900_000, polling=500)
    shot(page, "6_training_samples")
    page.locator("#train-status").get_by_text("Finished").wait_for(timeout=900_000)
    page.wait_for_function("() => document.querySelectorAll('#train-samples img').length >= 4")
    files = page.locator("#train-files").inner_text()
    assert "demo-000001.safetensors" in files and "demo.safetensors" in files
    status = page.locator("#train-status").inner_text()
    assert re.search(r"step (\d+)/\1\b", status), status  # the last step is the one shown
    # The log follows its newest line and reads as lines a user can act on: no progress-bar characters, no empty
    # library notices.
    assert page.evaluate("(() => { const t = document.querySelector('#train-log textarea');"
                         " return t.scrollTop + t.clientHeight >= t.scrollHeight - 4; })()")
    log = page.locator("#train-log textarea").input_value()
    assert "█" not in log and "float32: []" not in log, log[-2000:]
    assert family != "sd15" or "Caching latents" in log, log[-2000:]  # the SD demo caches its latents first
    shot(page, "6_trained")

    # 7 — the run opens in the XYZ grid, renders, and a cell's recipe carries its prompt.
    page.click("#train-grid")
    page.wait_for_selector("#tab-grid-button[aria-selected=true]")
    page.wait_for_function("() => (document.querySelector('#grid-run input') || {}).value?.includes('demo')")
    page.wait_for_selector("#grid-epochs label:has-text('demo-000001')")
    assert "not in the list of choices" not in page.content()
    run_dir = demo_root / "runs" / "demo"
    page.fill("#grid-weights textarea, #grid-weights input", "0.5, 1")
    page.click("#grid-start")
    page.wait_for_selector("#grid-message:has-text('Grid saved')", timeout=600_000)
    img = page.locator("#grid-image img")
    img.wait_for()
    saved = max((run_dir / "grids").glob("grid-*/grid.json"))
    data = json.loads(saved.read_text(encoding="utf-8"))
    natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    box = img.bounding_box()
    cell = next(c for c in data["cells"] if c["x"] == 1)
    left, top, right, bottom = cell["box"]
    scale = box["width"] / natural[0]
    page.mouse.click(box["x"] + (left + right) / 2 * scale, box["y"] + (top + bottom) / 2 * scale)
    page.wait_for_function("() => document.querySelector('#grid-recipe textarea').value.includes('<lora:')")
    recipe = page.input_value("#grid-recipe textarea")
    assert any(recipe.startswith(p) for p in DEMO_PROMPTS), recipe
    shot(page, "7_grid_cell")
    if family == "zimage":  # both demos made: a page opened later lists both demo models
        page.reload()
        page.wait_for_selector("#danlu-tabs")
        page.locator("#model-list-note").get_by_text("2 models found").wait_for()
