"""Small helpers for the browser tests."""

from __future__ import annotations


def choose(page, selector: str, name: str, *, exact: bool = False) -> None:
    """Open the dropdown `selector` (an element id like "#grid-run") and pick the option `name` from that
    dropdown's own list: gradio keeps an earlier dropdown's list in the page for a moment, so a page-wide
    option lookup can find two."""
    box = page.locator(selector)
    box.locator("input").first.click()
    box.get_by_role("option", name=name, exact=exact).first.click()
