"""The Train tab's queue in Chromium with the stand-in trainer: three runs queued from the form, the page reloaded
mid-run, one cancelled while it waits, the other two finish one after another."""

from __future__ import annotations

import pytest
from browser_util import choose, settle
from test_ui_params_browser import field, toml_has
from test_ui_train_journey import fake_trainer, load_demo, open_tab, status_has  # noqa: F401 - a fixture

from core.runs.queue import Queue


@pytest.fixture
def clean_queue(app_server):
    q = Queue(app_server[2])
    yield q
    for item in q.items():
        if item.state == "running":
            q.cancel(item.id)
    q.set_paused(False)
    q.clear_finished()


def queue_has(page, text: str, timeout: float = 60_000) -> None:
    page.locator("#train-queue-list span.text", has_text=text).first.wait_for(timeout=timeout)


def pick(page, label: str) -> None:
    choose(page, "#train-queue-item", label)


def test_queue_journey(page, app_server, demo_run, artifacts, fake_trainer, clean_queue, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FAKE_STEP_S", "1.0")
    q = clean_queue
    load_demo(page, demo_run)
    toml_has(page, 'name = "demo"', timeout=90_000)  # the first refresh imports torch for the CUDA check
    for name in ("qa", "qb", "qc"):
        open_tab(page, "params")
        field(page, "saving", "name").fill(name)
        field(page, "saving", "name").press("Enter")
        toml_has(page, f'name = "{name}"')
        open_tab(page, "train")
        page.click("#train-queue-add")
        page.wait_for_selector(f"#train-queue-message:has-text('Queued: {name}')")
        if name == "qa":  # the first starts at once; the queue waits after it until resumed
            status_has(page, "Running")
            page.click("#train-queue-pause")
            page.wait_for_selector("#train-queue-pause:has-text('Resume the queue')")
    assert [i.name for i in q.items()] == ["qa", "qb", "qc"] and q.paused()
    page.screenshot(path=artifacts / "queue_running.png", full_page=True)

    # A reloaded page shows the same queue, still paused.
    page.reload()
    page.wait_for_selector("#danlu-tabs")
    open_tab(page, "train")
    queue_has(page, "qc")
    page.wait_for_selector("#train-queue-pause:has-text('Resume the queue')")
    page.locator("#train-queue-status").get_by_text("Paused").wait_for()

    # The last one is cancelled while it waits; it never starts. Resumed, the queue trains the second.
    pick(page, f"3. qc · queued ({q.items()[2].id})")
    page.click("#train-queue-cancel")
    queue_has(page, "cancelled")
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    page.click("#train-queue-pause")
    page.locator("#train-queue-status").get_by_text("2 done").wait_for(timeout=120_000)
    assert [i.state for i in q.items()] == ["done", "done", "cancelled"]
    assert q.items()[2].started is None
    page.screenshot(path=artifacts / "queue_finished.png", full_page=True)


def test_sweep_from_the_params_tab_becomes_four_queued_runs(page, app_server, demo_run, fake_trainer,  # noqa: F811
                                                            clean_queue, monkeypatch, artifacts):
    monkeypatch.setenv("FAKE_STEP_S", "0.02")
    q = clean_queue
    q.set_paused(True)  # looked at before they run
    load_demo(page, demo_run)
    toml_has(page, 'name = "demo"', timeout=90_000)
    imported = page.locator("#params-message p").first  # a success is green on the line that also shows errors
    assert imported.evaluate("e => getComputedStyle(e).color") == "rgb(6, 118, 71)"
    page.click("#params-sweep button, #params-sweep .label-wrap")
    # The accordion mounts its content when opened: typed before the textbox has finished mounting, the text
    # is replaced by the box's initial empty value (seen on a loaded machine), so it settles first.
    settle(page, "#params-sweep-lines textarea")
    plan = page.locator("#params-sweep-plan")
    page.click("#params-sweep-preview")  # nothing typed yet: refused, in the error colour
    plan.get_by_text("Cannot sweep").wait_for()
    assert plan.locator("p").first.evaluate("e => getComputedStyle(e).color") == "rgb(180, 35, 24)"
    lines = page.locator("#params-sweep-lines textarea")
    lines.fill("network.rank=8,16\noptimizer.lr=1e-4,2e-4")
    settle(page, "#params-sweep-preview")
    assert lines.input_value() == "network.rank=8,16\noptimizer.lr=1e-4,2e-4"
    page.click("#params-sweep-preview")
    plan.get_by_text("4 runs").wait_for(timeout=90_000)  # the preview scans the dataset for the step plan
    assert plan.locator("p").first.evaluate("e => getComputedStyle(e).color") != "rgb(180, 35, 24)"  # not red
    assert "demo-rank16-lr2e-4" in plan.inner_text() and "240 steps" in plan.inner_text()
    assert not q.items()  # a preview queues nothing
    settle(page, "#params-sweep-queue")
    page.click("#params-sweep-queue")
    plan.get_by_text("Queued 4 runs").wait_for(timeout=90_000)
    page.screenshot(path=artifacts / "sweep_queued.png", full_page=True)
    assert [i.name for i in q.items()] == ["demo-rank8-lr1e-4", "demo-rank8-lr2e-4", "demo-rank16-lr1e-4",
                                           "demo-rank16-lr2e-4"]
    open_tab(page, "train")
    queue_has(page, "demo-rank16-lr2e-4")
    page.click("#train-queue-pause")
    page.locator("#train-queue-status").get_by_text("4 done").wait_for(timeout=240_000)
