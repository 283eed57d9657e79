"""The Tagging tab in Chromium: sentence captions from a tiny Florence-2 with the trigger first, then the
folder's common tags dropped in one click as a pending, undoable edit."""

from __future__ import annotations

import shutil

from browser_util import choose

from core import config as cfgmod
from core.dataset.captions import read_caption
from taggers.tiny_captioners import make_tiny_florence2


def test_caption_then_drop_common_tags(page, demo_run, tmp_path, artifacts):
    dataset = tmp_path / "dataset"
    shutil.copytree(cfgmod.load(demo_run).dataset.dir, dataset)
    captioner = make_tiny_florence2(tmp_path / "florence2")
    subset = dataset / "10_demo"

    page.click("#tab-tagging-button, button[role=tab]:has-text('Tagging')")
    page.locator("#tagging-dir textarea, #tagging-dir input").first.fill(str(dataset))
    page.locator("#tagging-trigger textarea, #tagging-trigger input").first.fill("demo")
    page.click("#caption-section")                                   # the section starts closed
    model = page.locator("#caption-model input").first
    model.fill(str(captioner))
    model.press("Enter")
    page.locator("#caption-policy").get_by_text("overwrite", exact=True).click()
    page.locator("#caption-style").get_by_text("Short (one sentence)", exact=True).click()
    page.click("#caption-run")
    page.wait_for_selector("#caption-status:has-text('12 written')", timeout=120_000)
    assert "Captioning on CPU" in page.locator("#caption-status").inner_text()
    assert "12/12" in page.locator("#caption-progress").inner_text()
    assert all(read_caption(p).text.startswith("demo, ") for p in subset.glob("*.txt"))
    page.screenshot(path=artifacts / "caption_done.png", full_page=True)

    # common tags of one folder: every caption starts with the trigger, so write one shared tag first
    for p in subset.glob("*.txt"):
        p.write_text(read_caption(p).text + ", shared tag", encoding="utf-8")
    page.click("#tagging-load")
    page.locator("#tagging-table").get_by_text("shared tag", exact=True).first.wait_for()
    choose(page, "#taghelp-folder", "10_demo")
    page.wait_for_selector("#taghelp-frequent:has-text('shared tag · 12/12')")
    page.click("#taghelp-drop")
    page.wait_for_selector("#taghelp-message:has-text('from 12 captions')")
    page.wait_for_selector("#tagging-pending:has-text('not saved yet: 12.')")
    assert all("shared tag" in read_caption(p).text for p in subset.glob("*.txt"))   # nothing written yet
    page.click("#tagging-undo")
    page.wait_for_selector("#tagging-pending:has-text('No unsaved changes')")
