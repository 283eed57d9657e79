"""Small helpers for the browser tests."""

from __future__ import annotations


def choose(page, selector: str, name: str, *, exact: bool = False) -> None:
    """Open the dropdown `selector` (an element id like "#grid-run") and pick the option `name` from that
    dropdown's own list: gradio keeps an earlier dropdown's list in the page for a moment, so a page-wide
    option lookup can find two."""
    box = page.locator(selector)
    box.locator("input").first.click()
    box.get_by_role("option", name=name, exact=exact).first.click()


def settle(page, selector: str, quiet_ms: int = 800, timeout: float = 60_000) -> None:
    """Wait until `selector` has kept its place for `quiet_ms` and no gradio event shows as pending. After a run
    TOML is loaded, the Parameters tab's hints, steps and estimate arrive later and move what is below them (a
    click made meanwhile can land beside its button); a field in a section just opened is still mounting (text
    typed into it can be replaced by its initial value)."""
    page.wait_for_function(
        """([sel, quiet]) => {
            const el = document.querySelector(sel);
            if (!el || document.querySelector('.pending')) { window.__settle = null; return false; }
            const r = el.getBoundingClientRect(), key = [r.x, r.y, r.width, r.height].join();
            const now = performance.now(), s = window.__settle;
            if (!s || s.sel !== sel || s.key !== key) { window.__settle = {sel, key, since: now}; return false; }
            return now - s.since >= quiet;
        }""", arg=[selector, quiet_ms], polling=100, timeout=timeout)
