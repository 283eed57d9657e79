"""What you see in a field is what is used: a value typed into the run form and left by a click (no Enter) is the
one the Export, Start and Queue buttons use, and the one the Config tab shows."""

from __future__ import annotations

import re
from pathlib import Path

from browser_util import settle
from test_ui_params_browser import clean_settings  # noqa: F401 - no remembered settings left behind

from core import config as cfgmod

# A value for every text field of the beginner view, each unlike its default (spaces and a quote included), and
# three numbers. Every field's commit events are checked in test_form_commit.py; the expert view is left out here
# because each commit redraws the whole form, which a loaded 2-core machine does in seconds per field.
TYPED = {
    "model.base": "/tmp/typed/base model.safetensors",
    "dataset.dir": "/tmp/typed/it's a set",
    "dataset.resolutions": "512, 768",
    "dataset.trigger_word": "typed_trigger",
    "saving.output_dir": "/tmp/typed/out",
    "sampling.prompts": "typed one\ntyped two",
    "training.epochs": "7",
    "optimizer.lr": "0.0003",
    "network.rank": "24",
    "saving.name": "typed-name",  # last: the click that leaves it is the Export button's
}


def box(page, path: str):
    section, name = path.split(".")
    return page.locator(f"#params-{section}-{name} input, #params-{section}-{name} textarea").first


def type_into(page, path: str, text: str) -> None:
    """Type as a user does: click, select what is there, type key by key (new lines with Enter); no Enter at the
    end of a one-line field, and nothing else: the caller's next click is what leaves the field."""
    field = box(page, path)
    field.click()
    field.press("Control+A")
    for i, line in enumerate(text.split("\n")):
        if i:
            field.press("Enter")
        field.press_sequentially(line, delay=5)


def expected(path: str, text: str):
    spec = cfgmod.field_spec(path)
    if spec.type is list:
        items = [s.strip() for s in re.split(r"[\n,]", text) if s.strip()]
        return [int(s) for s in items] if spec.item is int else items
    return spec.type(text)


def test_typed_values_left_by_a_click_are_used(page, app_server, artifacts, clean_settings):
    page.click("#tab-params-button")
    page.wait_for_selector("#params-hints:has-text('Alpha scales')")  # the page has loaded its settings
    settle(page, "#params-saving-name")
    assert {p for p in TYPED if cfgmod.field_spec(p).type in (str, list)} == {
        s.path for s in cfgmod.schema() if s.basic and s.choices is None and s.type in (str, list)}
    for path, text in TYPED.items():
        type_into(page, path, text)
    # The last field is left by this click: Export writes the settings as shown.
    page.click("#params-export")
    message = page.locator("#params-message")
    message.get_by_text("Exported").wait_for()
    exported = Path(re.search(r"Exported: (\S+\.toml)", message.inner_text()).group(1))
    cfg = cfgmod.to_dict(cfgmod.load(exported))
    assert exported.name == "typed-name.toml"
    for path, text in TYPED.items():
        section, name = path.split(".")
        assert cfg[section][name] == expected(path, text), path
    # The commits reach the config too: the live TOML preview shows every typed value.
    page.wait_for_function("t => document.querySelector('#params-toml textarea').value.includes(t)",
                           arg='name = "typed-name"')
    preview = page.locator("#params-toml textarea").input_value()
    assert 'trigger_word = "typed_trigger"' in preview and "epochs = 7" in preview
    page.screenshot(path=artifacts / "form_commit_params.png", full_page=True)

    # A name typed and left by a click on another tab: Start and Queue use it. This one cannot be a file name,
    # so its commit is refused (the form's line says why) and only what is shown can put it in their answers.
    type_into(page, "saving.name", "typed/start")
    page.click("#tab-train-button")
    page.click("#train-start")
    start_msg = page.locator("#train-message")
    start_msg.get_by_text("typed/start").first.wait_for()
    assert "cannot be used as a file name" in start_msg.inner_text()
    start_msg.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "form_commit_start.png", full_page=False)
    page.click("#train-queue-add")
    page.locator("#train-queue-message").get_by_text("typed/start").first.wait_for()
    page.locator("#train-queue-message").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "form_commit_queue.png", full_page=False)
    page.click("#tab-params-button")
    assert "typed/start" in page.locator("#params-message").inner_text()  # the field's own refusal
    assert box(page, "saving.name").input_value() == "typed/start"  # left as typed, not put back

    # A valid name typed and left by opening the Config tab: the tab shows the run with it.
    type_into(page, "saving.name", "typed-config")
    page.click("#tab-config-button")
    page.wait_for_function("t => document.querySelector('#config-current textarea').value.includes(t)",
                           arg='name = "typed-config"')
    assert 'trigger_word = "typed_trigger"' in page.locator("#config-current textarea").input_value()
    page.screenshot(path=artifacts / "form_commit_config.png", full_page=False)


def test_config_tab_load_says_what_changes_and_asks_first(page, artifacts, clean_settings):
    page.click("#tab-params-button")
    page.wait_for_selector("#params-hints:has-text('Alpha scales')")  # the page has loaded its settings
    settle(page, "#params-saving-name")
    type_into(page, "saving.name", "before-load")
    page.click("#tab-config-button")
    page.wait_for_function("t => document.querySelector('#config-current textarea').value.includes(t)",
                           arg='name = "before-load"')
    editor = page.locator("#config-text .cm-content")
    editor.click()
    editor.fill('[network]\nrank = 8\n\n[saving]\nname = "from-file"\n')
    page.click("#config-load")
    message = page.locator("#config-message")
    message.get_by_text("Loading this changes 2 settings").wait_for()
    said = message.inner_text()
    assert "Run name (saving.name): 'before-load' → 'from-file'" in said and "(network.rank): 32 → 8" in said
    apply = page.locator("#config-apply")
    assert apply.inner_text().strip() == "Apply these 2 changes"
    apply.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "config_load_asks.png", full_page=False)
    # Nothing has changed yet; Cancel keeps it so.
    assert 'name = "before-load"' in page.locator("#config-current textarea").input_value()
    page.click("#config-cancel")
    message.get_by_text("Cancelled").wait_for()
    assert not apply.is_visible()
    assert 'name = "before-load"' in page.locator("#config-current textarea").input_value()
    # Load again and apply: the settings change, the form and the current TOML show it.
    page.click("#config-load")
    apply.wait_for(state="visible")
    apply.click()
    message.get_by_text("Applied 2 changes").wait_for()
    page.wait_for_function("t => document.querySelector('#config-current textarea').value.includes(t)",
                           arg='name = "from-file"')
    assert "rank = 8" in page.locator("#config-current textarea").input_value()
    page.screenshot(path=artifacts / "config_load_applied.png", full_page=True)
    page.click("#tab-params-button")
    page.wait_for_function("() => document.querySelector('#params-saving-name input').value === 'from-file'")
    assert box(page, "network.rank").input_value() == "8"
