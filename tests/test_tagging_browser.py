"""The Tagging tab in Chromium: tag the demo dataset with a local tiny tagger, remove a tag from every image,
save, and find the files changed and the originals backed up."""

from __future__ import annotations

import shutil

from core import config as cfgmod
from core.dataset.captions import BACKUP_DIR, read_caption
from taggers.tiny import make_tiny_tagger


def test_tag_demo_remove_tag_save(page, demo_run, tmp_path, artifacts):
    source = cfgmod.load(demo_run).dataset.dir
    dataset = tmp_path / "dataset"
    shutil.copytree(source, dataset)              # the shared demo stays as other tests expect it
    tagger = make_tiny_tagger(tmp_path / "tagger", size=32)
    subset = dataset / "10_demo"
    before = {p.name: p.read_text(encoding="utf-8") for p in subset.glob("*.txt")}
    assert len(before) == 12

    page.click("#tab-tagging-button, button[role=tab]:has-text('Tagging')")
    page.locator("#tagging-dir textarea, #tagging-dir input").first.fill(str(dataset))
    page.locator("#tagging-trigger textarea, #tagging-trigger input").first.fill("demo")
    model = page.locator("#tagging-model input").first
    model.fill(str(tagger))
    model.press("Enter")
    page.locator("#tagging-policy").get_by_text("overwrite", exact=True).click()
    page.click("#tagging-run")
    page.wait_for_selector("#tagging-status:has-text('12 written')", timeout=60_000)
    status = page.locator("#tagging-status").inner_text()
    assert "Tagging on CPU" in status and "12 originals backed up" in status
    assert "12/12" in page.locator("#tagging-progress").inner_text()
    tagged = {p.name: read_caption(p).text for p in subset.glob("*.txt")}
    assert all(text.startswith("demo, ") and "white background" in text for text in tagged.values())

    # The editor loads the new captions: counts, and the ≥80 % identity flag on the always-on tags.
    table = page.locator("#tagging-table")
    table.get_by_text("white background", exact=True).first.wait_for()
    assert "likely identity" in table.inner_text()
    assert "white background" in page.locator("#tagging-identity").inner_text()

    # clicking a tag in the table puts it in the operation's tag box
    table.locator("[role=gridcell]").filter(has_text="white background").first.click()
    page.wait_for_function("document.querySelector('#tagging-op-tags textarea').value === 'white background'")
    page.wait_for_selector("#tagging-preview:has-text('Captions this will change: 12.')")
    page.click("#tagging-apply")
    page.wait_for_selector("#tagging-message:has-text('Captions changed: 12 ')")
    page.wait_for_selector("#tagging-pending:has-text('not saved yet: 12.')")
    assert "white background" not in page.locator("#tagging-caption textarea").input_value()
    # pending: nothing written yet
    assert all("white background" in read_caption(p).text for p in subset.glob("*.txt"))
    page.screenshot(path=artifacts / "tagging_pending.png", full_page=True)

    page.click("#tagging-save")
    page.wait_for_selector("#tagging-message:has-text('Captions saved: 12;')")
    page.wait_for_selector("#tagging-pending:has-text('No unsaved changes')")
    after = {p.name: read_caption(p).text for p in subset.glob("*.txt")}
    assert all("white background" not in text and text.startswith("demo, ") for text in after.values())
    stamps = sorted(p.name for p in (dataset / BACKUP_DIR).iterdir())
    assert len(stamps) == 2                      # one from tagging, one from the save
    first, second = (dataset / BACKUP_DIR / s / "10_demo" for s in stamps)
    assert {p.name: p.read_text(encoding="utf-8") for p in first.glob("*.txt")} == before
    assert {p.name: read_caption(p).text for p in second.glob("*.txt")} == tagged
    page.locator("#tagging-table").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "tagging_saved.png", full_page=True)

    # per-image edit beside the image, then undo it
    page.click("#tagging-next")
    page.wait_for_selector("#tagging-image-name:has-text('demo_01.png')")
    page.locator("#tagging-caption textarea").fill("demo, edited by hand")
    page.click("#tagging-caption-apply")
    page.wait_for_selector("#tagging-pending:has-text('not saved yet: 1.')")
    assert "demo_01.txt" in page.locator("#tagging-pending").inner_text()
    page.click("#tagging-undo")
    page.wait_for_selector("#tagging-message:has-text('Undone: edit')")
    page.wait_for_selector("#tagging-pending:has-text('No unsaved changes')")
