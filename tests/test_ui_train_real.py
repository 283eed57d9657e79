"""The real trainer through the Train tab on the demo: the page starts `launcher.py train`, follows
its events to the end, and shows the sample image and the saved file. Kept to two steps."""

from __future__ import annotations

import pytest

from core import config as cfgmod
from core.runs.supervisor import supervisor
from ui.app import ROOT
from ui.tab_params import LAST_SETTINGS

pytest.importorskip("training.cli")


@pytest.fixture
def short_demo(demo_run, tmp_path, app_server):
    cfg = cfgmod.load(demo_run)
    cfg.saving.output_dir = str(tmp_path / "runs")
    cfg.training.max_train_steps = 2
    cfg.training.epochs = 1
    cfg.sampling.steps = 2
    cfg.sampling.prompts = cfg.sampling.prompts[:1]
    path = cfgmod.save(cfg, tmp_path / "short.toml")
    yield path
    sup = supervisor(ROOT)
    sup.kill()
    sup.wait(10)
    (app_server[2] / LAST_SETTINGS).unlink(missing_ok=True)


def test_real_trainer_run_from_the_page(page, short_demo, artifacts):
    sup = supervisor(ROOT)
    assert sup.launcher == ROOT / "launcher.py"
    page.click("#tab-params-button, button[role=tab]:has-text('Parameters')")
    page.locator("#params-import input[type=file]").set_input_files(str(short_demo))
    page.wait_for_selector("#params-message:has-text('Imported')")
    page.click("#tab-train-button, button[role=tab]:has-text('Train')")
    page.click("#train-start")
    page.wait_for_selector("#train-message:has-text('Started')")
    command = page.locator("#train-command textarea").input_value()
    assert f"{ROOT / 'launcher.py'} train " in command and command.endswith("runs/demo/config.toml")
    page.locator("#train-status").get_by_text("Finished").or_(
        page.locator("#train-status").get_by_text("Failed")).first.wait_for(timeout=240_000)
    assert "Finished" in page.locator("#train-status").inner_text(), page.locator("#train-error").inner_text()
    page.locator("#train-files").get_by_test_id("cell-0-0").get_by_text("demo.safetensors").wait_for()
    page.wait_for_selector("#train-samples img")
    assert "step 2/2" in page.locator("#train-status").inner_text()
    assert page.locator("#train-grid").is_visible()
    # The log follows its newest line.
    assert page.evaluate("(() => { const t = document.querySelector('#train-log textarea');"
                         " return t.scrollTop + t.clientHeight >= t.scrollHeight - 4; })()")
    # The log reads as lines a user can act on: no progress-bar characters, no empty library notices.
    log = page.locator("#train-log textarea").input_value()
    assert "Caching latents" in log and "█" not in log and "float32: []" not in log
    page.wait_for_timeout(500)
    page.screenshot(path=artifacts / "train_real_finished.png", full_page=True)
