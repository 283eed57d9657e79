"""The Train tab in Chromium on the demo: preset, start, live progress and samples, a second tab
reattaching, stop, resume, finish, files, the XYZ button, and a child killed from outside.

The trainer here is the event-protocol stand-in from test_runs_supervisor (fast and exact about
when it stops); the newcomer's journey (test_demo_journey_browser) runs the real trainer through the same page.
"""

from __future__ import annotations

import os
import signal

import pytest
from browser_util import choose, settle
from test_runs_supervisor import FAKE_LAUNCHER

from core.runs.supervisor import supervisor
from ui.app import ROOT
from ui.tab_params import LAST_SETTINGS


@pytest.fixture
def fake_trainer(app_server, tmp_path, monkeypatch):
    sup = supervisor(ROOT)
    assert sup.run is None or not sup.run.active
    fake = tmp_path / "fake_launcher.py"
    fake.write_text(FAKE_LAUNCHER, encoding="utf-8")
    monkeypatch.setattr(sup, "launcher", fake)
    monkeypatch.setenv("FAKE_STEP_S", "6.0")  # 16 steps: time to reload the page and press Stop on a loaded machine
    # (a reload took 20-30 s, the first look after it as long again, under a load average of 13 on 2 cores)
    yield sup
    sup.kill()
    sup.wait(10)
    (app_server[2] / LAST_SETTINGS).unlink(missing_ok=True)


def open_tab(page, tab_id: str) -> None:
    page.click(f"#tab-{tab_id}-button, button[role=tab][id$='{tab_id}']")


def load_demo(page, demo_run) -> None:
    open_tab(page, "params")
    page.locator("#params-import input[type=file]").set_input_files(str(demo_run))
    page.wait_for_selector("#params-message:has-text('Imported')")
    settle(page, "#params-sweep")  # the form's fields stop moving before anything is clicked


def status_has(page, text: str, timeout: float = 60_000) -> None:
    page.locator("#train-status").get_by_text(text).first.wait_for(timeout=timeout)


def step_at_least(page, n: int) -> None:
    page.wait_for_function(
        "n => Number(document.querySelector('#train-progress-bar')?.dataset.step || 0) >= n", arg=n)


def test_train_journey(page, app_server, demo_run, artifacts, fake_trainer, monkeypatch):
    sup = fake_trainer
    load_demo(page, demo_run)
    choose(page, "#params-preset", "VRAM 24 GB")
    page.click("#params-preset-load")
    page.locator("#params-preset-summary").get_by_text("Batch size").wait_for()

    open_tab(page, "train")
    page.click("#train-start")
    page.wait_for_selector("#train-message:has-text('Started'), #train-message:has-text('already holds results')")
    if page.locator("#train-taken").is_visible():  # an earlier test of this session trained "demo": start over
        page.click("#train-over")
    page.wait_for_selector("#train-message:has-text('Started')")
    step_at_least(page, 1)
    command = page.locator("#train-command textarea").input_value()
    assert "launcher" in command and " train " in command and "demo/config.toml" in command
    assert page.locator("#train-start").is_disabled() and page.locator("#train-stop").is_enabled()
    page.wait_for_selector("#train-samples img")  # the first epoch's sample

    page.screenshot(path=artifacts / "train_running.png", full_page=True)

    # A reloaded page reattaches to the running job.
    page.reload()
    page.wait_for_selector("#danlu-tabs")
    open_tab(page, "train")
    status_has(page, "Running")
    assert page.locator("#train-stop").is_enabled()

    # Stop: the trainer finishes its step, saves and exits; resume becomes possible.
    page.click("#train-stop")
    status_has(page, "Stopped")
    assert page.locator("#train-resume").is_enabled() and page.locator("#train-stop").is_disabled()
    stopped_at = int(page.locator("#train-progress-bar").get_attribute("data-step"))
    assert 0 < stopped_at < 16
    page.screenshot(path=artifacts / "train_stopped.png", full_page=True)

    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    page.click("#train-resume")
    page.wait_for_selector("#train-message:has-text('Resumed')")
    status_has(page, "Finished")
    files = page.locator("#train-files")
    files.locator("span.text", has_text="demo.safetensors").last.wait_for()
    assert files.get_by_text("demo-000001.safetensors").count() >= 1
    assert page.locator("#train-samples img").count() >= 4  # one per epoch, grouped in rows
    page.fill("#train-search textarea, #train-search input", "loss 0.0625")
    page.wait_for_function("document.querySelector('#train-log textarea').value.trim() === 'step 16/16 loss 0.0625'")
    page.wait_for_timeout(500)  # the chart draws asynchronously
    page.screenshot(path=artifacts / "train_finished.png", full_page=True)
    page.fill("#train-search textarea, #train-search input", "")

    page.click("#train-grid")
    page.wait_for_selector("button[role=tab][aria-selected=true]:has-text('XYZ')")
    open_tab(page, "train")

    # The name holds results: Start asks first and offers a free name, continuing, or starting over.
    monkeypatch.setenv("FAKE_STEP_S", "2")  # slow enough that the run is still going when it is killed at step 2
    page.click("#train-start")
    page.wait_for_selector("#train-message:has-text('already holds results')")
    assert page.locator("#train-new-name input").input_value() == "demo-2"
    assert sup.run.status == "finished"  # nothing started yet
    page.screenshot(path=artifacts / "train_name_taken.png", full_page=True)
    # Starting over keeps the finished run (moved aside, and the page says where); the child is killed from outside.
    page.click("#train-over")
    page.wait_for_selector("#train-message:has-text('Started')")
    page.wait_for_selector("#train-message:has-text('.previous')")
    assert page.locator("#train-taken").is_hidden()
    step_at_least(page, 2)
    os.kill(sup.run.pid, signal.SIGKILL)
    status_has(page, "Failed")
    error = page.locator("#train-error")
    error.get_by_text("SIGKILL").first.wait_for()
    assert "memory" in error.inner_text() and "step 2/16" in error.inner_text()
    assert page.locator("#train-start").is_enabled() and page.locator("#train-resume").is_enabled()
    assert page.locator("#train-stop").is_disabled() and page.locator("#train-kill").is_disabled()
    earlier = max((sup.run.run_dir / ".previous").iterdir())  # the newest moved-aside run: the one finished above
    page.screenshot(path=artifacts / "train_killed.png", full_page=True)

    # The buttons work after a failure: resume continues from the last saved state.
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    page.click("#train-resume")
    status_has(page, "Finished")

    # The finished run moved aside stays visible: the run picker shows its status, files and samples.
    choose(page, "#train-pick", f"moved aside {earlier.name}")
    status_has(page, "Finished")
    page.locator("#train-status").get_by_text(".previous").first.wait_for()
    page.locator("#train-files span.text", has_text="demo.safetensors").last.wait_for()
    assert page.locator("#train-samples img").count() >= 4
    page.screenshot(path=artifacts / "train_earlier_run.png", full_page=True)
