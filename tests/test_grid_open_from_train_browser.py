""""Open this run in the XYZ grid →" from the Train tab, in Chromium, for a demo run trained where the demo puts
it (outputs/<demo>/runs/demo, two folders below the outputs folder): the grid tab opens with that run chosen in
its list, its epoch files listed, and no error. The trainer is the event-protocol stand-in of the Train journey."""

from __future__ import annotations

from browser_util import choose
from test_ui_train_journey import fake_trainer, load_demo, open_tab, status_has  # noqa: F401 - a fixture

from core import config as cfgmod


def test_grid_button_selects_the_run(page, app_server, artifacts, fake_trainer, monkeypatch):  # noqa: F811
    from models.demo import make_demo

    outputs = app_server[2]
    run_toml = make_demo(outputs / "gridopen")
    cfg = cfgmod.load(run_toml)
    cfg.training.epochs = 2
    cfgmod.save(cfg, run_toml)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "not in the list of choices" in m.text else None)

    open_tab(page, "grid")  # the grid tab seen once before the run exists: its list has no such run yet
    load_demo(page, run_toml)
    open_tab(page, "train")
    monkeypatch.setenv("FAKE_STEP_S", "0.1")  # nothing here happens during the run
    page.click("#train-start")
    page.wait_for_selector("#train-message:has-text('Started')")
    status_has(page, "Finished", timeout=60_000)
    run_dir = outputs / "gridopen" / "runs" / "demo"
    assert (run_dir / "demo-000002.safetensors").is_file()

    page.click("#train-grid")
    page.wait_for_selector("button[role=tab][aria-selected=true]:has-text('XYZ')")
    run_box = page.locator("#grid-run input").first
    # the run chosen, then its label with the files it holds now (the list the tab had before may show for a moment)
    page.wait_for_function("() => document.querySelector('#grid-run input')?.value === 'gridopen/runs/demo  (3 LoRA)'")
    page.wait_for_selector("#grid-epochs label:has-text('demo-000002')")
    assert page.locator("#grid-epochs label").count() == 3  # two epochs and the final file
    page.wait_for_timeout(500)  # a late error toast would show by now
    page.screenshot(path=artifacts / "grid_opened_from_train.png", full_page=True)
    assert page.locator(".toast-body.error").count() == 0 and not errors
    # a later visit keeps the user's own choice: the run the Train tab opened is chosen once
    other = outputs / "gridopen" / "other"
    other.mkdir()
    (other / "config.toml").write_bytes((run_dir / "config.toml").read_bytes())
    page.click("#grid-refresh")
    choose(page, "#grid-run", "gridopen/other  (0 LoRA)")
    open_tab(page, "train")
    open_tab(page, "grid")
    page.wait_for_timeout(1000)
    assert run_box.input_value() == "gridopen/other  (0 LoRA)"
