"""Two pages, one dataset: a caption saved from page A and then from page B (which read it before A's save) is not
silently replaced; B is asked, and each answer (show both, take theirs, keep mine) does what it says."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from core.dataset.captions import BACKUP_DIR


def _open(browser, url: str, dataset: Path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.click("#tab-tagging-button, button[role=tab]:has-text('Tagging')")
    page.locator("#tagging-dir textarea, #tagging-dir input").first.fill(str(dataset))
    page.click("#tagging-load")
    page.wait_for_selector("#tagging-message:has-text('Loaded the captions of 2 images')")
    page.wait_for_function("document.querySelector('#tagging-caption textarea').value === 'cat, red'")
    return context, page


def _edit_and_save(page, text: str) -> None:
    page.locator("#tagging-caption textarea").fill(text)
    page.click("#tagging-caption-apply")
    page.wait_for_selector("#tagging-pending:has-text('not saved yet: 1.')")
    page.click("#tagging-save")


def _shot(page, artifacts: Path, name: str, at: str = "#tagging-save") -> None:
    page.locator(at).scroll_into_view_if_needed()
    page.screenshot(path=artifacts / name, full_page=False)


def test_second_page_is_asked_and_each_answer_does_what_it_says(browser, app_server, tmp_path, artifacts):
    started = time.monotonic()
    subset = tmp_path / "dataset" / "10_cat"
    subset.mkdir(parents=True)
    for name, text in (("a", "cat, red"), ("b", "cat, blue")):
        Image.new("RGB", (32, 32), (200, 80, 80)).save(subset / f"{name}.png")
        (subset / f"{name}.txt").write_text(text, encoding="utf-8")
    caption = subset / "a.txt"
    ctx_a, page_a = _open(browser, app_server[0], tmp_path / "dataset")
    ctx_b, page_b = _open(browser, app_server[0], tmp_path / "dataset")   # B reads before A saves
    print(f"two pages loaded at {time.monotonic() - started:.1f} s")
    try:
        _edit_and_save(page_a, "cat, red, hat")
        page_a.wait_for_selector("#tagging-message:has-text('Captions saved: 1;')")
        assert caption.read_text(encoding="utf-8") == "cat, red, hat"

        # B's save notices A's and asks; nothing of A's is lost.
        _edit_and_save(page_b, "cat, green")
        page_b.wait_for_selector("#tagging-message:has-text('changed on disk by another page')")
        page_b.wait_for_selector("#tagging-question:has-text('changed on disk by another page')")
        assert "10_cat/a.txt" in page_b.locator("#tagging-question").inner_text()
        print(f"asked at {time.monotonic() - started:.1f} s")
        assert caption.read_text(encoding="utf-8") == "cat, red, hat"
        assert page_b.locator("#tagging-both").is_hidden()
        _shot(page_b, artifacts, "stale_caption_asked.png", "#tagging-conflict")

        # Show both: B's text beside the one on disk; the question stays open.
        page_b.click("#tagging-show-both")
        page_b.wait_for_selector("#tagging-both", state="visible")
        assert page_b.locator("#tagging-both-mine textarea").input_value() == "cat, green"
        assert page_b.locator("#tagging-both-theirs textarea").input_value() == "cat, red, hat"
        assert page_b.locator("#tagging-conflict").is_visible()
        _shot(page_b, artifacts, "stale_caption_both.png", "#tagging-both")

        # Take theirs: A's caption in B's editor, nothing written, the question gone.
        page_b.click("#tagging-take-theirs")
        page_b.wait_for_selector("#tagging-message:has-text('Took the captions on disk: 1')")
        page_b.wait_for_function("document.querySelector('#tagging-caption textarea').value === 'cat, red, hat'")
        page_b.wait_for_selector("#tagging-pending:has-text('No unsaved changes')")
        assert page_b.locator("#tagging-conflict").is_hidden() and page_b.locator("#tagging-both").is_hidden()
        assert caption.read_text(encoding="utf-8") == "cat, red, hat"

        # B has read A's version now, so B's next save is not asked; then A, which has not, is.
        _edit_and_save(page_b, "cat, red, hat, scarf")
        page_b.wait_for_selector("#tagging-message:has-text('Captions saved: 1;')")
        _edit_and_save(page_a, "cat, red, cap")
        page_a.wait_for_selector("#tagging-conflict", state="visible")
        assert caption.read_text(encoding="utf-8") == "cat, red, hat, scarf"

        # Keep mine: A's text written, B's kept in the dataset's backup folder.
        page_a.click("#tagging-keep-mine")
        page_a.wait_for_selector("#tagging-message:has-text('My captions written: 1')")
        page_a.wait_for_selector("#tagging-pending:has-text('No unsaved changes')")
        assert page_a.locator("#tagging-conflict").is_hidden()
        assert caption.read_text(encoding="utf-8") == "cat, red, cap"
        backups = {p.read_text(encoding="utf-8") for p in (tmp_path / "dataset" / BACKUP_DIR).rglob("a.txt")}
        assert "cat, red, hat, scarf" in backups
        _shot(page_a, artifacts, "stale_caption_kept.png")
        assert (subset / "b.txt").read_text(encoding="utf-8") == "cat, blue"
    finally:
        ctx_a.close()
        ctx_b.close()
    print(f"two-page caption conflict: {time.monotonic() - started:.1f} s")
