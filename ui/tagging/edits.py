"""Tagging tab, the editor's state and handlers: one TagEditor per browser session, the tag table, filters,
batch operations, one image and its caption, undo, save and restore. editor.py lays the section out
and wires these handlers to its components.

The editor lives on the server, one per browser session (a 10,000-caption dataset is not shipped back and
forth through a gr.State); edits stay pending until Save, which backs up every original it changes.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import gradio as gr

from core.dataset.captions import BACKUP_DIR
from core.dataset.tags import IDENTITY_SHARE, SaveReport, TagEditor, split_tags
from core.errors import DanluError
from core.state_files import notices
from ui import i18n, stale_ask
from ui.i18n import t
from ui.tagging.state import EDIT_LOCK, EDITORS, error_line, session_key, unsaved

OPS = ["remove", "replace", "add_front", "add_back", "trigger_first", "dedupe"]  # apply_op's batch operations
# what `view` fills: table, identity, filtered, index, name, image, caption, shown_for, pending, backups
VIEW_OUTPUTS = 10


def table_frame(ed: TagEditor, sort: str, search: str, lang: str):
    import pandas as pd

    n = len(ed) or 1
    rows = [(tag, k, f"{100 * k / n:.0f}%", t("tagging.flag", lang) if flag else "")
            for tag, k, flag in ed.table(sort, search)]
    cols = [t(f"tagging.col_{c}", lang) for c in ("tag", "count", "share", "flag")]
    return pd.DataFrame(rows, columns=cols)


def identity_text(ed: TagEditor, lang: str) -> str:
    pct = int(IDENTITY_SHARE * 100)
    flagged = ed.identity_tags()
    if not flagged:
        return t("tagging.no_identity", lang, pct=pct)
    return t("tagging.identity", lang, pct=pct, tags=", ".join(f"**{tag}** ({share:.0%})" for tag, share in flagged))


def selection(ed: TagEditor, include: str, exclude: str, mode: str) -> list[int]:
    return ed.filter(split_tags(include), split_tags(exclude), mode.lower())


def apply_op(ed: TagEditor, op: str, tags: str, new: str, regex: bool, indices: list[int] | None,
             dry_run: bool = False) -> int:
    """One batch operation on the chosen images; returns how many captions it changes."""
    names = split_tags(tags)
    if op == "remove":
        return ed.remove(names, indices, dry_run)
    if op == "replace":
        if not tags.strip():
            return 0
        old = tags.strip() if regex else (names[0] if names else "")
        return ed.replace(old, new, regex=regex, indices=indices, dry_run=dry_run)
    if op in ("add_front", "add_back"):
        return ed.add(names, "front" if op == "add_front" else "back", indices, dry_run)
    if op == "trigger_first":
        return ed.trigger_first(None, indices, dry_run)
    if op == "dedupe":
        return ed.remove_duplicates(indices, dry_run)
    raise ValueError(op)


def shown_name(ed: TagEditor, path: Path) -> Path:
    """A caption's name as the page shows it: relative to the loaded folder."""
    return path.relative_to(ed.folder) if ed.folder in path.parents else Path(path.name)


def pending_text(ed: TagEditor, lang: str, limit: int = 8) -> str:
    """The unsaved count and what changes in the first few captions (− removed, + added)."""
    pending = ed.pending
    if not pending:
        return t("tagging.clean", lang)
    lines = [t("tagging.pending", lang, n=len(pending))]
    for i in pending[:limit]:
        removed, added = ed.diff(i)
        name = shown_name(ed, ed.items[i].caption)
        change = " ".join([f"−{x}" for x in removed] + [f"+{x}" for x in added]) or t("tagging.reordered", lang)
        lines.append(f"- `{name}`: {change}")
    if len(pending) > limit:
        lines.append(f"- … (+{len(pending) - limit})")
    return "\n".join(lines)


def image_view(ed: TagEditor, indices: list[int], pos: int):
    """(PIL thumbnail, caption text, name, image path) of the pos-th image of the filtered set."""
    from PIL import Image

    if not indices:
        return None, "", "", ""
    pos = max(0, min(int(pos or 0), len(indices) - 1))
    item = ed.items[indices[pos]]
    try:
        with Image.open(item.image) as im:
            im.thumbnail((512, 512))
            pic = im.convert("RGB")
    except OSError:
        pic = None
    mark = " •" if item.changed else ""
    shown = item.image.relative_to(ed.folder) if ed.folder in item.image.parents else item.image
    return pic, item.text(), f"`{shown}`{mark}", str(item.image)


def set_caption_for(ed: TagEditor, image: str, text: str) -> int | None:
    """Set the caption of the image at path `image`; its index, or None when the editor has no such image."""
    for i, item in enumerate(ed.items):
        if str(item.image) == image:
            ed.set_caption(i, text)
            return i
    return None


def _locked(fn):
    """Run a handler that reads or changes an editor under the lock (quick: no model runs under it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with EDIT_LOCK:
            return fn(*args, **kwargs)
    return wrapper


@_locked
def view(request: gr.Request, lang: str, sort_by: str, query: str, inc: str, exc: str, how: str, pos: int):
    """Everything the editor shows, redrawn after each change: the table, the filter count, the image and its
    caption, what is pending, the backups."""
    ed = EDITORS.get(session_key(request))
    if ed is None:
        return [gr.update()] * VIEW_OUTPUTS
    idx = selection(ed, inc, exc, how)
    pos = max(0, min(int(pos or 0), max(len(idx) - 1, 0)))
    pic, text, label, path = image_view(ed, idx, pos)
    stamps = [b.stamp for b in ed.backups()]
    return [table_frame(ed, sort_by, query, lang), identity_text(ed, lang),
            t("tagging.filtered", lang, n=len(idx), total=len(ed)),
            gr.update(maximum=max(len(idx) - 1, 1), value=pos), label, pic, text, path, pending_text(ed, lang),
            gr.update(choices=stamps, value=stamps[0] if stamps else None)]


@_locked
def on_load(request: gr.Request, path: str, trig: str, extension: str, lang: str):
    refusal = unsaved(session_key(request), lang)
    if refusal:
        return refusal
    try:
        ed = TagEditor(Path(path.strip()), extension or ".txt", trig)
    except DanluError as e:
        return error_line(e, lang)
    EDITORS[session_key(request)] = ed
    if not len(ed):
        return i18n.text("tagging.no_images", lang)
    bad = sum(it.problem in ("bom", "not_utf8") for it in ed.items)
    return i18n.both(lambda lg: t("tagging.loaded", lg, n=len(ed)) + (
        "\n\n" + t("tagging.encoding", lg, n=bad) if bad else ""), lang)


def editor_or_msg(request: gr.Request, lang: str) -> tuple[TagEditor | None, str]:
    ed = EDITORS.get(session_key(request))
    return ed, ("" if ed else i18n.text("tagging.no_editor", lang))


def scoped(ed: TagEditor, where: str, inc: str, exc: str, how: str) -> list[int] | None:
    return selection(ed, inc, exc, how) if where == "filtered" else None


@_locked
def on_preview(request: gr.Request, lang: str, o: str, tg: str, nw: str, rx: bool, where: str, inc: str,
               exc: str, how: str):
    ed = EDITORS.get(session_key(request))
    if ed is None:
        return ""
    try:
        n = apply_op(ed, o, tg, nw, rx, scoped(ed, where, inc, exc, how), True)
        return i18n.text("tagging.preview", lang, n=n)
    except DanluError as e:
        return error_line(e, lang)


@_locked
def on_apply(request: gr.Request, lang: str, o: str, tg: str, nw: str, rx: bool, where: str, inc: str,
             exc: str, how: str, trig: str):
    ed, msg = editor_or_msg(request, lang)
    if ed is None:
        return msg
    if o == "trigger_first":
        ed.trigger = split_tags(trig)
    try:
        return i18n.text("tagging.applied", lang, n=apply_op(ed, o, tg, nw, rx, scoped(ed, where, inc, exc, how)))
    except DanluError as e:
        return error_line(e, lang)


@_locked
def on_caption(request: gr.Request, lang: str, text: str, shown_for: str):
    """Apply the text box to the image it was filled for (never to whatever the index points at now)."""
    ed = EDITORS.get(session_key(request))
    i = set_caption_for(ed, shown_for, text) if ed is not None else None
    return gr.update() if i is None else ""


@_locked
def on_undo(request: gr.Request, lang: str):
    ed, msg = editor_or_msg(request, lang)
    if ed is None:
        return msg
    name_ = ed.undo()
    return i18n.text("tagging.undone", lang, name=name_) if name_ else i18n.text("tagging.nothing_to_undo", lang)


@_locked
def on_discard(request: gr.Request, lang: str):
    ed, msg = editor_or_msg(request, lang)
    return msg if ed is None else i18n.text("tagging.applied", lang, n=ed.discard())


def _names(ed: TagEditor, indices: list[int], limit: int = 5) -> str:
    names = [f"`{shown_name(ed, ed.items[i].caption)}`" for i in indices[:limit]]
    return ", ".join(names) + (f" … (+{len(indices) - limit})" if len(indices) > limit else "")


def saved_text(ed: TagEditor, report: SaveReport, lang: str) -> tuple[i18n.Text, i18n.Text | None]:
    """What a save wrote, and the question when captions changed on disk since this page read them (or None)."""
    question = i18n.text("tagging.conflict", lang, level="warn", n=len(report.conflicts),
                         names=_names(ed, report.conflicts)) if report.conflicts else None

    def render(lg: str) -> str:
        lines = []
        if report.written or not report.conflicts:
            lines.append(t("tagging.saved", lg, n=len(report.written), folder=f"`.danlu_backup/{report.stamp}/`"))
        if question:
            lines.append(question.to(lg))
        return "\n\n".join(lines)

    return i18n.both(render, lang, level="warn" if question else "ok"), question


@_locked
def on_save(request: gr.Request, lang: str):
    ed, msg = editor_or_msg(request, lang)
    if ed is None:
        return [msg, *stale_ask.asking()]
    try:
        report = ed.save()
    except OSError as e:
        return [i18n.failed(e, lang), *stale_ask.asking()]
    said, question = saved_text(ed, report, lang)
    return [said, *stale_ask.asking(question)]


@_locked
def on_question(request: gr.Request, lang: str):
    """The question as the editor stands after a load or a discard: closed unless conflicts are still open."""
    ed = EDITORS.get(session_key(request))
    if ed is None or not ed.conflicts:
        return stale_ask.asking()
    return stale_ask.asking(saved_text(ed, SaveReport(conflicts=ed.conflicts), lang)[1])


@_locked
def on_keep_mine(request: gr.Request, lang: str):
    """Write this page's captions over the ones changed on disk; those go to the backup folder first."""
    ed, msg = editor_or_msg(request, lang)
    if ed is None:
        return [msg, *stale_ask.asking()]
    try:
        report = ed.keep_mine()
    except OSError as e:
        return [i18n.failed(e, lang), *stale_ask.asking(gr.update())]   # the question stays open
    return [i18n.text("tagging.kept", lang, level="ok", n=len(report.written),
                      folder=f"`.danlu_backup/{report.stamp}/`"), *stale_ask.asking()]


@_locked
def on_take_theirs(request: gr.Request, lang: str):
    ed, msg = editor_or_msg(request, lang)
    if ed is None:
        return [msg, *stale_ask.asking()]
    return [i18n.text("tagging.took", lang, level="ok", n=ed.take_theirs()), *stale_ask.asking()]


@_locked
def on_show_both(request: gr.Request, lang: str):
    """This page's caption and the one on disk, side by side; the question stays open."""
    ed, msg = editor_or_msg(request, lang)
    if ed is None or not ed.conflicts:
        return [msg or gr.update(), *stale_ask.asking()]
    pairs = [(_names(ed, [i]), ed.items[i].text(), ed.theirs(i) if ed.items[i].caption.exists() else None)
             for i in ed.conflicts]
    return [gr.update(), *stale_ask.side_by_side(pairs, lang)]


@_locked
def on_restore(request: gr.Request, lang: str, stamp: str | None):
    ed, msg = editor_or_msg(request, lang)
    if ed is None or not stamp:
        return msg
    if ed.pending:
        return unsaved(session_key(request), lang)
    folder, started = Path(ed.root).resolve() / BACKUP_DIR / stamp, time.time()
    try:
        n = len(ed.restore(stamp))
    except DanluError as e:
        return error_line(e, lang)
    # A backup file that is no caption any more was set aside and skipped (core.dataset.captions.restore_backup):
    # orange, naming where it went and which caption was left as it is.
    damaged = [d for d in notices(started) if d.path.is_relative_to(folder)]
    if not damaged:
        return i18n.text("tagging.restored", lang, level="ok", n=n)
    return i18n.both(lambda lg: "\n".join([t("tagging.restored_damaged", lg, n=n, k=len(damaged))]
                                          + [f"- {d.text(lg)}" for d in damaged]), lang, level="warn")


def on_pick(evt: gr.SelectData, current: str):
    row = evt.row_value if getattr(evt, "row_value", None) else None
    tag = str(row[0]) if row else str(evt.value)
    tags = split_tags(current)
    return ", ".join(tags if tag in tags else tags + [tag])


@_locked
def on_take(request: gr.Request, current: str):
    ed = EDITORS.get(session_key(request))
    if ed is None:
        return current
    tags = split_tags(current)
    return ", ".join(tags + [tag for tag, _ in ed.identity_tags() if tag not in tags])
