"""The Tools tab in Chromium: a LoRA dropped on Inspect is described, Resize and Merge write their files under
outputs/tools/ with progress and a green status line, and a refused input is said in red."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from toolbox_files import random_kohya


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tools")
    return random_kohya(folder / "style_a.safetensors", 1), random_kohya(folder / "style_b.safetensors", 2)


def _open(page, section: str) -> None:
    acc = page.locator(f"#tools-{section}")
    if not acc.locator("button.label-wrap.open").count():
        acc.locator("button.label-wrap").first.click()
    page.locator(f"#tools-{section}-start").wait_for()


def _status(page, section: str, text: str, css: str = "danlu-ok") -> str:
    status = page.locator(f"#tools-{section}-status")
    status.get_by_text(text).first.wait_for(timeout=45_000)
    assert css in (status.get_attribute("class") or ""), status.get_attribute("class")
    return status.inner_text()


def test_inspect_resize_merge(page, app_server, loras, artifacts):
    started = time.monotonic()
    a, b = loras
    outputs = app_server[2]
    page.get_by_role("tab", name="Tools").click()

    page.locator("#tools-inspect-file input[type=file]").set_input_files(str(a))
    said = _status(page, "inspect", "family:")
    assert "SD 1.x" in said and "rank: 4" in said and "ComfyUI: takes every key" in said
    page.screenshot(path="/tmp/h6_tools_inspect.png", full_page=True)

    _open(page, "resize")
    page.locator("#tools-resize-file input[type=file]").set_input_files(str(a))
    page.locator("#tools-resize-rank input").fill("2")
    page.locator("#tools-resize-out input, #tools-resize-out textarea").first.fill("style_a_small")
    page.click("#tools-resize-start")
    said = _status(page, "resize", "Saved to")
    assert (outputs / "tools" / "style_a_small.safetensors").is_file() and "4 → 2" in said
    page.locator("#tools-resize-progress").get_by_text("done in").wait_for()
    page.screenshot(path="/tmp/h6_tools_resize.png", full_page=True)

    _open(page, "merge")
    page.click("#tools-merge-start")  # no files yet: refused, in red
    _status(page, "merge", "Pick a file first", css="danlu-error")
    page.locator("#tools-merge-files input[type=file]").set_input_files([str(a), str(b)])
    page.locator("#tools-merge-weights input, #tools-merge-weights textarea").first.fill("0.7, 0.3")
    page.click("#tools-merge-start")
    said = _status(page, "merge", "Saved to")
    assert "concatenated (exact), rank 8" in said
    merged = list((outputs / "tools").glob("style_a-style_b-merged*.safetensors"))
    assert len(merged) == 1
    page.screenshot(path="/tmp/h6_tools_merge.png", full_page=True)
    expect(page.locator("#tools-merge-file")).to_contain_text(merged[0].stem)  # the download offered
    page.screenshot(path=artifacts / "tools_merge.png", full_page=True)
    print(f"tools journey: {time.monotonic() - started:.1f} s")
