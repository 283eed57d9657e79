"""The Parameters tab in Chromium: preset summary, expert view, live TOML, hints, import, and the
last settings coming back after a reload."""

from __future__ import annotations

import re

import pytest
from browser_util import choose

from ui.tab_params import LAST_SETTINGS


@pytest.fixture
def clean_settings(app_server):
    """Leave no remembered settings behind for the other browser tests of the session."""
    path = app_server[2] / LAST_SETTINGS
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def toml_has(page, text: str, timeout: float = 30_000) -> None:
    page.wait_for_function("t => document.querySelector('#params-toml textarea').value.includes(t)", arg=text,
                           timeout=timeout)


def field(page, section: str, name: str):
    return page.locator(f"#params-{section}-{name} input, #params-{section}-{name} textarea").first


def test_params_tab_preset_hints_toml_and_restore(page, app_server, demo_run, artifacts, clean_settings):
    page.click("#tab-params-button, button[role=tab]:has-text('Parameters')")
    page.locator("#params-import input[type=file]").set_input_files(str(demo_run))
    page.wait_for_selector("#params-message:has-text('Imported')")
    toml = page.locator("#params-toml textarea")
    toml_has(page, 'name = "demo"', timeout=90_000)  # the first refresh imports torch for the CUDA check
    # The step count comes from the real dataset: 12 images × 10 repeats.
    page.wait_for_selector("#params-steps:has-text('12×10')")

    choose(page, "#params-preset", "Anime / illustration SD1.5")
    page.click("#params-preset-load")
    summary = page.locator("#params-preset-summary")
    summary.get_by_text("Learning rate").wait_for()
    assert "settings changed" in summary.inner_text()
    toml_has(page, 'lr = 0.0002')
    assert field(page, "training", "epochs").input_value() == "10"

    # Batch 2 → 4: the LR hint offers the scaled value and the button applies it.
    batch = field(page, "training", "batch_size")
    batch.fill("4")
    batch.press("Tab")
    page.wait_for_selector("#params-apply-lr", state="visible")
    assert "4e-4" in page.locator("#params-hints").inner_text()
    page.click("#params-apply-lr")
    toml_has(page, 'lr = 0.0004')

    # A conflict: Prodigy with LR ≠ 1.
    choose(page, "#params-optimizer-name", "Prodigy", exact=True)
    page.wait_for_selector("#params-hints:has-text('Prodigy')")
    assert re.search(r"≈ \d+\.\d GB", page.locator("#params-memory").inner_text())

    page.click("#params-export")
    page.wait_for_selector("#params-message:has-text('Exported')")
    page.wait_for_function("document.querySelector('#params-download').innerText.includes('.toml')")
    assert "demo" in page.locator("#params-download").inner_text()

    page.get_by_text("Expert", exact=True).click()
    page.wait_for_selector("#params-training-gradient_checkpointing", state="visible")
    # An SD base: its own fields are shown, the Z-Image (DiT) ones are not.
    page.wait_for_selector("#params-training-clip_skip", state="visible")
    assert not page.locator("#params-network-dit_targets").is_visible()
    assert not page.locator("#params-model-training_adapter").is_visible()
    page.screenshot(path=artifacts / "params_expert.png", full_page=True)

    # The last settings come back on the next visit.
    toml_has(page, 'Prodigy')
    page.reload()
    page.wait_for_selector("#danlu-tabs")
    page.click("#tab-params-button, button[role=tab]:has-text('Parameters')")
    toml_has(page, 'Prodigy')
    assert field(page, "training", "batch_size").input_value() == "4"
    assert 'name = "demo"' in toml.input_value()
    page.screenshot(path=artifacts / "params_restored.png", full_page=False)

