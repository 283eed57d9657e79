"""Multi-resolution in Chromium: the Parameters tab's field, step count, estimate and TOML, then the Dataset tab's
steps and gallery, for the demo dataset trained at 256 and 384."""

from __future__ import annotations

import pytest
from browser_util import settle
from playwright.sync_api import expect
from test_ui_params_browser import clean_settings  # noqa: F401 - the fixture: no remembered settings left behind

pytestmark = pytest.mark.usefixtures("clean_settings")
WAIT = 90_000  # ms: the step count and the estimate are recomputed after each change, on a loaded machine


def test_resolutions_field_counts_and_shows_each_resolution(page, app_server, demo_run, artifacts):
    page.set_default_timeout(90_000)
    page.click("#tab-params-button, button[role=tab]:has-text('Parameters')")
    page.locator("#params-import input[type=file]").set_input_files(str(demo_run))
    page.wait_for_selector("#params-steps:has-text('12×10')")  # the demo: 12 images × 10 repeats, batch 2
    settle(page, "#params-dataset-resolutions")
    box = page.locator("#params-dataset-resolutions input, #params-dataset-resolutions textarea").first
    expect(box).to_be_visible(timeout=WAIT)  # a basic field, beside the resolution
    box.fill("256, 384")
    box.press("Tab")
    steps = page.locator("#params-steps")
    expect(steps).to_contain_text("12×10×2 = 240 images×repeats×resolutions", timeout=WAIT)
    expect(steps).to_contain_text("Resolutions: 256 px 120 samples / 60 batches, 384 px 120 samples / 60 batches",
                                  timeout=WAIT)
    expect(page.locator("#params-memory")).to_contain_text("384 px, the largest of 256/384", timeout=WAIT)
    page.wait_for_function("() => /resolutions = \\[\\s*256,\\s*384,?\\s*\\]/.test("
                           "document.querySelector('#params-toml textarea').value)")
    steps.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "multi_resolution_params.png", full_page=True)

    box.fill("256, 300")  # not on the 64 px grid: refused, naming the field, and the plan stays as it was
    box.press("Tab")
    expect(page.locator("#params-message")).to_contain_text("dataset.resolutions: 300 is not a multiple of 64",
                                                            timeout=WAIT)

    page.get_by_role("tab", name="3 Dataset").click()
    page.fill("#dataset-path textarea, #dataset-path input", str(demo_run.parent / "dataset"))
    page.click("#dataset-open")
    dsteps = page.locator("#dataset-steps")
    expect(dsteps).to_contain_text("Resolutions: 256 px 120 samples", timeout=WAIT)
    expect(dsteps).to_contain_text("240", timeout=WAIT)
    gallery = page.locator("#dataset-gallery")
    gallery.locator("img").first.wait_for()
    expect(gallery).to_contain_text("→ 256×256 / 384×384", timeout=WAIT)
    page.screenshot(path=artifacts / "multi_resolution_dataset.png", full_page=True)
