"""The question a save asks when its file changed on disk since the page read it: keep mine / take theirs / show both.

Used by the tag editor's Save (ui/tagging/edits.py) and the Config tab's Save (ui/tab_config.py); the check itself is
core/filestamp.py. The three buttons show only while a question is open; Show both opens the two versions side by
side (this page's on the left, the file on disk on the right), and the question stays open until one is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui import i18n
from ui.context import AppContext
from ui.i18n import t

i18n.add({
    "stale.keep": ("保留我的（对方的版本会备份）", "Keep mine (theirs is backed up)"),
    "stale.theirs": ("采用对方的", "Take theirs"),
    "stale.both": ("并排查看两者", "Show both"),
    "stale.mine_col": ("我的（本页）", "Mine (this page)"),
    "stale.theirs_col": ("对方的（磁盘上现在的）", "Theirs (on disk now)"),
    "stale.deleted": ("（文件已被删除）", "(the file was deleted)"),
})

# what `asking` and `side_by_side` fill: the question's text, its column, the side-by-side row, its two boxes
OUTPUTS = 5


@dataclass
class Ask:
    """The question's components; `outputs` is what `asking` / `side_by_side` return updates for."""

    keep: Any
    theirs: Any
    both: Any
    outputs: list[Any]


def build(ctx: AppContext, prefix: str) -> Ask:
    """The buttons and the side-by-side view, hidden; elem_ids are `<prefix>-keep-mine`, `-take-theirs`, …"""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    # The question beside its buttons: the page's message line may be a screen away from the Save button.
    with gr.Column(visible=False, elem_id=f"{prefix}-conflict") as row:
        question = i18n.follow(gr.Markdown("", elem_id=f"{prefix}-question"), ctx.lang)
        with gr.Row():
            keep = B(gr.Button(t("stale.keep", lang0), variant="primary", elem_id=f"{prefix}-keep-mine"),
                     value="stale.keep")
            theirs = B(gr.Button(t("stale.theirs", lang0), elem_id=f"{prefix}-take-theirs"), value="stale.theirs")
            both = B(gr.Button(t("stale.both", lang0), elem_id=f"{prefix}-show-both"), value="stale.both")
    with gr.Row(visible=False, elem_id=f"{prefix}-both", equal_height=True) as panel:
        mine_box = B(gr.Textbox("", label=t("stale.mine_col", lang0), interactive=False, lines=6, max_lines=20,
                                elem_id=f"{prefix}-both-mine"), label="stale.mine_col")
        theirs_box = B(gr.Textbox("", label=t("stale.theirs_col", lang0), interactive=False, lines=6, max_lines=20,
                                  elem_id=f"{prefix}-both-theirs"), label="stale.theirs_col")
    return Ask(keep, theirs, both, [question, row, panel, mine_box, theirs_box])


def asking(question: Any = None) -> list[Any]:
    """Updates asking `question` (a text in both languages) with the three buttons, or, given None, closing the
    question and its side-by-side view."""
    return [question or "", gr.update(visible=question is not None), gr.update(visible=False), gr.update(value=""),
            gr.update(value="")]


def side_by_side(pairs: list[tuple[str, str, str | None]], lang: str) -> list[Any]:
    """Updates opening the two versions of each (name, mine, theirs or None when deleted), the question kept open.

    With several files each box lists them in the same order, one headed block per file, so they line up."""
    def column(which: int) -> str:
        blocks = []
        for name, *texts in pairs:
            body = texts[which]
            blocks.append((f"── {name} ──\n" if len(pairs) > 1 else "") +
                          (t("stale.deleted", lang) if body is None else body))
        return "\n\n".join(blocks)

    return [gr.update(), gr.update(visible=True), gr.update(visible=True), gr.update(value=column(0)),
            gr.update(value=column(1))]
