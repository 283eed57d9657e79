"""The start panel (step 1, the app itself): the seven steps, the demo made and selected in one click, and the
demo's model and tagger in the Model and Tagging tabs' lists."""

from __future__ import annotations

import re

import pytest
from conftest import free_port

from ui import start, tab_model, tagging_auto
from ui import tab_dataset, tab_grid, tab_params, tab_tagging, tab_train  # noqa: F401 - the tab titles' keys
from ui.i18n import t


@pytest.fixture(scope="module")
def two_demos(tmp_path_factory):
    """An outputs folder holding the SD1.5 demo and the Z-Image demo, made as the page makes them."""
    outputs = tmp_path_factory.mktemp("outputs")
    return outputs, {family: start.make(outputs, family) for family in start.DEMO_FAMILIES}


def test_each_demo_has_its_run_and_both_are_listed(two_demos, tmp_path):
    outputs, runs = two_demos
    assert runs["sd15"] != runs["zimage"] and all(p.is_file() for p in runs.values())
    bases = start.demo_models(outputs)
    assert [start.base_of(runs[f]) for f in ("sd15", "zimage")] == bases
    # The Model tab's list: an empty checkpoints folder, and the two demo models with their families.
    labels = [label for label, _ in tab_model.scan([tmp_path / "checkpoints"], bases)]
    assert len(labels) == 2
    assert labels[0].startswith("tiny-sd15.safetensors") and labels[0].endswith("SD 1.x")
    assert labels[1].startswith("tiny-zimage") and labels[1].endswith("Z-Image")
    # A model already in the folders is listed once.
    in_folder = tab_model.scan([bases[0].parent])
    paths = [path for _, path in tab_model.scan([bases[0].parent], bases)]
    assert str(bases[0]) in [path for _, path in in_folder]
    assert len(paths) == len(set(paths)) == len(in_folder) + 1
    # The Tagging tab offers the catalog's taggers and then the demo's offline one.
    choices = tagging_auto.model_choices(outputs)
    assert choices[:len(tagging_auto.MODEL_CHOICES)] == tagging_auto.MODEL_CHOICES
    assert choices[len(tagging_auto.MODEL_CHOICES):] == [str(start.demo_folder(outputs) / "tagger")]


def test_nothing_listed_before_a_demo_is_made(tmp_path):
    assert start.demo_runs(tmp_path) == [] and start.demo_models(tmp_path) == []
    assert tagging_auto.model_choices(tmp_path) == tagging_auto.MODEL_CHOICES
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "run.toml").write_text("[model\n", encoding="utf-8")  # a broken run file is skipped
    assert start.demo_models(tmp_path) == []


def test_steps_name_the_tabs():
    """Each step line starts with its tab's number and name, in both languages, so the two never disagree."""
    tabs = {2: "model.tab", 3: "dataset.tab", 4: "tagging.tab", 5: "params.tab", 6: "train.tab", 7: "grid.tab"}
    for i, lang in enumerate(("zh", "en")):
        lines = t("start.steps", lang).split("  \n")
        assert len(lines) == 7
        for n, line in enumerate(lines, 1):
            number, name = re.match(r"\*\*(\d) ([^*]+)\*\*", line).groups()
            assert int(number) == n
            if n in tabs:
                assert t(tabs[n], lang).startswith(f"{n} {name.split()[0]}"), (line, t(tabs[n], lang))


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    """An app of its own on an empty outputs folder (the session's app is shared by other browser tests, whose
    model lists must not gain the demo's models)."""
    from ui.app import CSS, build_app

    outputs, models_dir = tmp_path_factory.mktemp("start-outputs"), tmp_path_factory.mktemp("start-checkpoints")
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=models_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    yield f"http://127.0.0.1:{port}/", outputs
    demo.close()


def _value(page, selector: str) -> str:
    return page.locator(f"{selector} input, {selector} textarea").first.input_value()


def test_first_screen_offers_the_demo_and_one_click_selects_it(browser, fresh_app, artifacts):
    url, outputs = fresh_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#danlu-tabs")
    steps = page.locator("#start-steps").inner_text()
    assert "1 The app" in steps and "7 XYZ grid" in steps
    # The empty folder's hint is there on the first render, not only after a language switch.
    page.locator("#model-list-note").get_by_text("No models in the folders").wait_for()
    page.screenshot(path=artifacts / "start_first_screen.png")

    page.click("#start-demo-sd15")
    page.locator("#start-message").get_by_text("is ready and selected").wait_for()
    page.wait_for_selector("button[role=tab][aria-selected=true]:has-text('2 Model')")
    demo = start.demo_folder(outputs)
    page.locator("#model-current").get_by_text("tiny-sd15.safetensors").wait_for()
    page.wait_for_function("() => document.querySelector('#model-list input').value.startsWith('tiny-sd15')")
    page.locator("#model-list-note").get_by_text("1 model found").wait_for()
    page.screenshot(path=artifacts / "start_demo_sd15.png", full_page=True)
    page.click("#tab-dataset-button")  # a tab's fields are in the page once it has been opened
    assert _value(page, "#dataset-path") == str(demo / "dataset")
    page.locator("#dataset-summary").get_by_text("12").first.wait_for()
    page.click("#tab-tagging-button")
    assert _value(page, "#tagging-model") == str(demo / "tagger")
    page.click("#tab-params-button")
    page.wait_for_function("() => document.querySelector('#params-toml textarea').value.includes('name = \"demo\"')")

    # The Z-Image demo: its own folder, and the page follows to it.
    page.click("#start-demo-zimage")
    page.locator("#start-message").get_by_text("The demo (Z-Image) is ready").wait_for()
    page.locator("#model-current").get_by_text("tiny-zimage").wait_for()
    page.locator("#model-list-note").get_by_text("2 models found").wait_for()
    page.click("#tab-dataset-button")
    page.wait_for_function("p => document.querySelector('#dataset-path textarea, #dataset-path input').value == p",
                           arg=str(demo / "zimage" / "dataset"))
    page.click("#tab-params-button")
    page.wait_for_function("() => document.querySelector('#params-toml textarea').value.includes('\"zimage\"')")
    page.screenshot(path=artifacts / "start_demo_zimage.png", full_page=True)

    # A page opened later lists both demo models and the demo tagger.
    page.reload()
    page.wait_for_selector("#danlu-tabs")
    page.locator("#model-list-note").get_by_text("2 models found").wait_for()
    context.close()
