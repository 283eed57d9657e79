"""In Chromium: the Z-Image demo's local adapter can be chosen, a new SD1.5 base drops the Z-Image state, and every
tab's message line has its level's colour (ok green, warning orange, error red)."""

from __future__ import annotations

import pytest
from browser_util import settle

RED, GREEN = "rgb(180, 35, 24)", "rgb(6, 118, 71)"  # .danlu-error and .danlu-ok in ui/app.py's CSS


@pytest.fixture(scope="module")
def zimage_demo(tmp_path_factory):
    from models.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("zswitch"), "zimage")


def _colour(line) -> str:
    """The computed colour of a message line's first paragraph (the Markdown's prose style is what it must beat)."""
    return line.locator("p").first.evaluate("e => getComputedStyle(e).color")


def _check(page, path) -> None:
    page.locator("#model-path textarea, #model-path input").first.fill(str(path))
    page.locator("#model-check").click()


def test_browser_local_adapter_then_an_sd15_base_drops_the_zimage_state(page, app_server, zimage_demo, demo_run,
                                                                      artifacts):
    base = zimage_demo.parent / "base"
    page.set_default_timeout(90_000)  # a check hashes and re-detects: slow on a loaded 2-core machine
    page.get_by_role("tab", name="Model").click()
    settle(page, "#model-check")  # the page's load (last settings restored) is over before the model is chosen
    _check(page, base / "tiny-zimage")
    page.locator("#model-current").get_by_text("tiny-zimage").wait_for()
    group, message = page.locator("#model-zimage-variant"), page.locator("#model-message")
    group.wait_for(state="visible")
    page.locator("#model-zimage-preset").click()
    message.get_by_text("settings changed").wait_for()

    # "Local file" stays chosen, shows its path box and offers the demo's adapter beside the base.
    page.locator("#model-zimage-adapter").get_by_text("Local file", exact=True).click()
    path_box = page.locator("#model-zimage-adapter-file input, #model-zimage-adapter-file textarea").first
    path_box.wait_for(state="visible")
    message.get_by_text("Filled in the training adapter found beside the base").wait_for()
    assert path_box.input_value() == str(base / "adapter.safetensors")
    page.wait_for_timeout(500)  # the config's change event redraws the group: the choice must survive it
    assert page.locator("#model-zimage-adapter input").nth(2).is_checked() and path_box.is_visible()
    assert _colour(message) == GREEN
    page.screenshot(path=artifacts / "model_switch_local_adapter.png", full_page=True)

    # An SD1.5 file now: family re-detected, the Z-Image questions gone, the preset's 1024 px dropped.
    _check(page, demo_run.parent / "base" / "tiny-sd15.safetensors")
    page.locator("#model-current").get_by_text("tiny-sd15.safetensors").wait_for()
    message.get_by_text("Family changed from zimage to sd15").wait_for()
    group.wait_for(state="hidden")
    assert _colour(message) == GREEN
    assert page.locator("#model-family input[value='auto']").is_checked()
    page.screenshot(path=artifacts / "model_switch_sd15.png", full_page=True)
    page.get_by_role("tab", name="Parameters").click()
    resolution = page.locator("#params-dataset-resolution input").first
    resolution.wait_for()
    assert resolution.input_value() == "256"  # the tiny SD1.5's 64 px, raised to the smallest the schema allows
    assert "family = \"zimage\"" not in page.locator("#params-toml textarea").input_value()

    # A blocking check is red: the Z-Image family forced on the SD1.5 file.
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-family").get_by_text("zimage", exact=True).click()
    message.get_by_text("Fix before training").wait_for()
    assert _colour(message) == RED
    group.wait_for(state="visible")  # the user says Z-Image: its questions, with the run's answers (no adapter)
    assert page.locator("#model-zimage-adapter input").nth(3).is_checked()
    assert not page.locator("#model-zimage-adapter-file input").first.is_visible()
    page.screenshot(path=artifacts / "model_switch_blocking_red.png", full_page=True)
    page.locator("#model-family").get_by_text("auto", exact=True).click()
    message.get_by_text("Set: family auto").wait_for()
    assert _colour(message) == GREEN


def test_browser_dataset_error_is_red_and_clears_the_previous_scan(page, demo_run, artifacts):
    page.set_default_timeout(90_000)
    page.get_by_role("tab", name="Dataset").click()
    folder = page.locator("#dataset-path textarea, #dataset-path input").first
    folder.fill(str(demo_run.parent / "dataset"))
    page.locator("#dataset-open").click()
    gallery = page.locator("#dataset-gallery img, #dataset-gallery .thumbnail-item").first
    gallery.wait_for()
    folder.fill(str(demo_run.parent / "no such folder"))
    page.locator("#dataset-open").click()
    status = page.locator("#dataset-status")
    status.get_by_text("Folder not found").wait_for()
    assert _colour(status) == RED
    page.locator("#dataset-gallery img").first.wait_for(state="detached")
    page.screenshot(path=artifacts / "dataset_not_found_red.png", full_page=True)
