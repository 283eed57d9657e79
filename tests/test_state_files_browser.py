"""A page opened on an outputs folder whose queue file and saved settings were damaged (a crash mid-write, a disk
that filled up) says so in orange: the queue rebuilt from its run files, paused, the settings' file kept aside
while the defaults are shown, and a run's trainer record set aside on the Train tab. Its own app, since the damage
must be there before the server reads it."""

from __future__ import annotations

import pytest
from conftest import free_port
from test_runs_supervisor import make_cfg
from test_ui_train_journey import open_tab

from core.runs.queue import Queue


@pytest.fixture
def damaged_app(tmp_path, monkeypatch):
    from core.runs.supervisor import supervisor
    from ui.app import CSS, ROOT, build_app

    # The page looks for a trainer left running only when its server runs none: a test process that ran a trainer
    # for an earlier test still follows that run.
    monkeypatch.setattr(supervisor(ROOT), "run", None)

    outputs = tmp_path / "outputs"
    q = Queue(outputs)
    for name in ("portrait", "style"):
        q.add(make_cfg(tmp_path, name=name, epochs=1))
    q.path.write_bytes(b'{"paused": false, "items": [{"id": "q0001", "name": "portr')  # cut off mid-write
    settings = outputs / ".danlu" / "last_settings.toml"
    settings.write_bytes(b"[network]\nrank = 8\n[training\n")
    record = outputs / "portrait" / "trainer.json"  # a trainer's record cut off mid-write before the restart
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(b'{"pid": 12, "argv": "python launch')
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=tmp_path / "models")
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    yield f"http://127.0.0.1:{port}/", q, settings
    demo.close()


def test_the_page_says_what_was_recovered_from_damaged_state_files(browser, damaged_app, artifacts):
    url, q, settings = damaged_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#danlu-tabs")
    open_tab(page, "params")
    message = page.locator("#params-message")
    message.get_by_text("The saved settings").wait_for()
    assert "danlu-warn" in (message.get_attribute("class") or "")
    assert settings.name + ".damaged-" in message.inner_text() and "Config tab can load" in message.inner_text()
    page.screenshot(path=artifacts / "state_files_settings.png")

    open_tab(page, "train")
    status = page.locator("#train-queue-status")
    status.get_by_text("Rebuilt it from the 2 run file(s)").wait_for()
    assert "danlu-warn" in (status.get_attribute("class") or "")
    page.locator("#train-queue-list span.text", has_text="style").first.wait_for()
    assert [(i.name, i.state) for i in q.items()] == [("portrait", "queued"), ("style", "queued")] and q.paused()
    page.locator("#train-queue").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "state_files_queue.png")

    warnings = page.locator("#train-warnings")  # the run view: the trainer record set aside at the restart
    # (a test process that served other apps before may hold their records' notices too: this app's is named)
    record = settings.parent.parent / "portrait" / "trainer.json"
    warnings.get_by_text(f"The trainer record {record}").first.wait_for()
    assert "danlu-warn" in (warnings.get_attribute("class") or "")
    assert f"{record}.damaged-" in warnings.inner_text() and "No trainer is followed" in warnings.inner_text()
    warnings.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "state_files_trainer.png")
    context.close()
