"""Tagging tab, the editor: the tag table, filters, bulk operations, one image and its caption, pending edits.

The editor lives on the server, one per browser session (a 10,000-caption dataset is not shipped back and
forth through a gr.State); edits stay pending until Save, which backs up every original it changes.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import gradio as gr

from core.errors import DanluError
from core.tags import IDENTITY_SHARE, TagEditor, split_tags
from ui import i18n, tab_tag_help
from ui.context import AppContext
from ui.i18n import t
from ui.tagging_auto import _err, _key

OPS = ["remove", "replace", "add_front", "add_back", "trigger_first", "dedupe"]

i18n.add({
    "tagging.filtered": ("筛选出 {n} / {total} 张图片。", "{n} of {total} images match the filter."),
    "tagging.preview": ("将修改 {n} 条标注。", "Captions this will change: {n}."),
    "tagging.applied": ("已修改 {n} 条标注（尚未保存）。", "Captions changed: {n} (not saved yet)."),
    "tagging.undone": ("已撤销：{name}", "Undone: {name}"),
    "tagging.nothing_to_undo": ("没有可撤销的操作。", "Nothing to undo."),
    "tagging.saved": ("✅ 已保存 {n} 条标注；原文件备份在 {folder}",
                      "✅ Captions saved: {n}; originals backed up in {folder}"),
    "tagging.restored": ("✅ 已恢复 {n} 个文件（恢复前的版本也已备份）。",
                         "✅ Restored {n} files (the versions before the restore are backed up too)."),
    "tagging.no_editor": ("请先填写文件夹并点击“读取标注”。", "Enter a folder and press Load captions first."),
    "tagging.loaded": ("已读取 {n} 张图片的标注。", "Loaded the captions of {n} images."),
    "tagging.encoding": ("⚠ {n} 个标注不是 UTF-8 或带 BOM（保存时会改为 UTF-8）。",
                         "⚠ {n} captions are not UTF-8 or have a BOM (saving rewrites them as UTF-8)."),
    "tagging.unsaved": ("❌ 有 {n} 条未保存的修改：请先保存或放弃修改，再重新读取、打标或恢复。",
                        "❌ {n} unsaved changes: save or discard them before reloading, tagging or restoring."),
    "tagging.no_images": ("这个文件夹里没有图片。", "This folder has no images."),
    "tagging.editor": ("标签编辑", "Tag editor"),
    "tagging.search": ("搜索标签", "Search tags"),
    "tagging.sort": ("排序", "Sort by"),
    "tagging.sort_count": ("数量", "count"),
    "tagging.sort_name": ("名称", "name"),
    "tagging.sort_length": ("长度", "length"),
    "tagging.col_tag": ("标签", "Tag"),
    "tagging.col_count": ("图片数", "Images"),
    "tagging.col_share": ("占比", "Share"),
    "tagging.col_flag": ("特征？", "Identity?"),
    "tagging.flag": ("⚑ 可能是特征", "⚑ likely identity"),
    "tagging.identity": ("⚑ 出现在 {pct}% 以上图片中的标签，可能是角色/画风本身的特征：{tags}。"
                         "删掉它们，触发词会学会这些特征；保留它们，则之后可以用提示词改变。",
                         "⚑ Tags on {pct}% or more of the images probably describe "
                         "the identity or style itself: {tags}. Remove them so the trigger word learns them, or keep "
                         "them to be able to change them in prompts."),
    "tagging.no_identity": ("没有出现在 {pct}% 以上图片中的标签。", "No tag is on {pct}% or more of the images."),
    "tagging.take_flagged": ("把标记的标签填入操作框", "Put the flagged tags in the box"),
    "tagging.include": ("包含标签", "With tags"),
    "tagging.exclude_filter": ("不含标签（NOT）", "Without tags (NOT)"),
    "tagging.mode": ("包含方式", "Match"),
    "tagging.scope": ("批量操作范围", "Batch operations apply to"),
    "tagging.scope_all": ("全部图片", "all images"),
    "tagging.scope_filtered": ("筛选出的图片", "the filtered images"),
    "tagging.op": ("批量操作", "Batch operation"),
    "tagging.op_remove": ("删除标签", "Remove tags"),
    "tagging.op_replace": ("替换 / 重命名", "Replace / rename"),
    "tagging.op_add_front": ("添加到前面（触发词之后）", "Add at the front (after the trigger)"),
    "tagging.op_add_back": ("添加到后面", "Add at the back"),
    "tagging.op_trigger_first": ("触发词移到最前", "Move the trigger word first"),
    "tagging.op_dedupe": ("删除重复标签", "Remove duplicate tags"),
    "tagging.op_tags": ("标签（逗号分隔；点表格中的标签可填入）", "Tags (comma-separated; click a tag in the table)"),
    "tagging.op_new": ("替换为", "Replace with"),
    "tagging.op_regex": ("正则表达式（整条标签匹配，可用 \\1）", "Regular expression (whole tag, \\1 allowed)"),
    "tagging.apply": ("应用", "Apply"),
    "tagging.image": ("单张编辑", "One image"),
    "tagging.index": ("第几张（筛选范围内）", "Image (in the filtered set)"),
    "tagging.prev": ("◀ 上一张", "◀ Previous"),
    "tagging.next": ("下一张 ▶", "Next ▶"),
    "tagging.caption": ("标注（第一行为标签）", "Caption (the first line holds the tags)"),
    "tagging.caption_apply": ("应用此标注", "Apply this caption"),
    "tagging.pending": ("📝 {n} 条标注已修改，尚未保存。", "📝 Changed captions not saved yet: {n}."),
    "tagging.reordered": ("仅顺序改变", "order changed"),
    "tagging.clean": ("✅ 没有未保存的修改。", "✅ No unsaved changes."),
    "tagging.undo": ("撤销", "Undo"),
    "tagging.discard": ("放弃修改", "Discard changes"),
    "tagging.save": ("保存", "Save"),
    "tagging.backups": ("备份", "Backups"),
    "tagging.restore": ("恢复此备份的原文件", "Restore originals from this backup"),
})


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


def pending_text(ed: TagEditor, lang: str, limit: int = 8) -> str:
    """The unsaved count and what changes in the first few captions (− removed, + added)."""
    pending = ed.pending
    if not pending:
        return t("tagging.clean", lang)
    lines = [t("tagging.pending", lang, n=len(pending))]
    for i in pending[:limit]:
        removed, added = ed.diff(i)
        item = ed.items[i]
        name = item.caption.relative_to(ed.folder) if ed.folder in item.caption.parents else item.caption.name
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


_EDITORS: dict[str, TagEditor] = {}       # one editor per browser session


_EDIT_LOCK = threading.RLock()             # a blur and a click of one page may run at once


def _locked(fn):
    """Run a handler that reads or changes an editor under the lock (quick: no model runs under it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _EDIT_LOCK:
            return fn(*args, **kwargs)
    return wrapper


def unsaved(key: str, lang: str) -> str:
    """A refusal message when the session's editor holds unsaved edits (reloading would drop them), else ''."""
    ed = _EDITORS.get(key)
    n = len(ed.pending) if ed is not None else 0
    return i18n.text("tagging.unsaved", lang, n=n) if n else ""


def build(ctx: AppContext, folder, trigger, ext, load, tagged, model) -> None:  # noqa: C901 - wires the editor
    """The editor section: loads the folder's captions on Load and after an auto-tagger run."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    B(gr.Markdown(f"### {t('tagging.editor', lang0)}"), value="tagging.editor")
    message = i18n.follow(gr.Markdown("", elem_id="tagging-message"), ctx.lang)  # its text in both languages
    with gr.Row():
        with gr.Column(scale=5):
            with gr.Row():
                search = B(gr.Textbox("", label=t("tagging.search", lang0), elem_id="tagging-search"),
                           label="tagging.search")
                sort = B(gr.Radio([(t("tagging.sort_count", lang0), "count"), (t("tagging.sort_name", lang0), "name"),
                                   (t("tagging.sort_length", lang0), "length")], value="count",
                                  label=t("tagging.sort", lang0), elem_id="tagging-sort"), label="tagging.sort")
            table = gr.Dataframe(table_frame(TagEditor(ctx.root, items=[]), "count", "", lang0), interactive=False,
                                 elem_id="tagging-table", max_height=420, wrap=True)
            identity = gr.Markdown("", elem_id="tagging-identity")
            take = B(gr.Button(t("tagging.take_flagged", lang0), size="sm", elem_id="tagging-take-flagged"),
                     value="tagging.take_flagged")
            with gr.Row():
                include = B(gr.Textbox("", label=t("tagging.include", lang0), elem_id="tagging-include"),
                            label="tagging.include")
                exclude_f = B(gr.Textbox("", label=t("tagging.exclude_filter", lang0), elem_id="tagging-not"),
                              label="tagging.exclude_filter")
                mode = B(gr.Radio(["AND", "OR"], value="AND", label=t("tagging.mode", lang0),
                                  elem_id="tagging-mode"), label="tagging.mode")
            filtered = gr.Markdown("", elem_id="tagging-filtered")
            scope = B(gr.Radio([(t("tagging.scope_all", lang0), "all"), (t("tagging.scope_filtered", lang0),
                                                                          "filtered")], value="all",
                               label=t("tagging.scope", lang0), elem_id="tagging-scope"), label="tagging.scope")
            op = B(gr.Dropdown([(t(f"tagging.op_{o}", lang0), o) for o in OPS], value="remove",
                               label=t("tagging.op", lang0), elem_id="tagging-op"), label="tagging.op")
            with gr.Row():
                op_tags = B(gr.Textbox("", label=t("tagging.op_tags", lang0), elem_id="tagging-op-tags", scale=3),
                            label="tagging.op_tags")
                op_new = B(gr.Textbox("", label=t("tagging.op_new", lang0), elem_id="tagging-op-new", scale=2),
                           label="tagging.op_new")
            regex = B(gr.Checkbox(False, label=t("tagging.op_regex", lang0), elem_id="tagging-op-regex"),
                      label="tagging.op_regex")
            preview = i18n.follow(gr.Markdown("", elem_id="tagging-preview"), ctx.lang)
            apply = B(gr.Button(t("tagging.apply", lang0), variant="primary", elem_id="tagging-apply"),
                      value="tagging.apply")
        with gr.Column(scale=4):
            B(gr.Markdown(f"**{t('tagging.image', lang0)}**"), value="tagging.image")
            index = B(gr.Slider(0, 1, 0, step=1, label=t("tagging.index", lang0), elem_id="tagging-index"),
                      label="tagging.index")
            with gr.Row():
                prev = B(gr.Button(t("tagging.prev", lang0), size="sm", elem_id="tagging-prev"), value="tagging.prev")
                nxt = B(gr.Button(t("tagging.next", lang0), size="sm", elem_id="tagging-next"), value="tagging.next")
            name = gr.Markdown("", elem_id="tagging-image-name")
            image = gr.Image(None, type="pil", interactive=False, show_label=False, elem_id="tagging-image",
                             height=320)
            caption = B(gr.Textbox("", lines=4, label=t("tagging.caption", lang0), elem_id="tagging-caption"),
                        label="tagging.caption")
            cap_apply = B(gr.Button(t("tagging.caption_apply", lang0), elem_id="tagging-caption-apply"),
                          value="tagging.caption_apply")
    dropped = tab_tag_help.build(ctx, model, op_tags, op_new, caption)
    pending = gr.Markdown("", elem_id="tagging-pending")
    with gr.Row():
        undo = B(gr.Button(t("tagging.undo", lang0), elem_id="tagging-undo"), value="tagging.undo")
        discard = B(gr.Button(t("tagging.discard", lang0), elem_id="tagging-discard"), value="tagging.discard")
        save = B(gr.Button(t("tagging.save", lang0), variant="primary", elem_id="tagging-save"), value="tagging.save")
    with gr.Row():
        backups = B(gr.Dropdown([], label=t("tagging.backups", lang0), elem_id="tagging-backups", scale=3),
                    label="tagging.backups")
        restore = B(gr.Button(t("tagging.restore", lang0), elem_id="tagging-restore", scale=1),
                    value="tagging.restore")

    # ------------------------------------------------------------ wiring
    view_in = [ctx.lang, sort, search, include, exclude_f, mode, index]
    shown_for = gr.State("")   # the image the caption box was filled for
    view_out = [table, identity, filtered, index, name, image, caption, shown_for, pending, backups]

    @_locked
    def view(request: gr.Request, lang: str, sort_by: str, query: str, inc: str, exc: str, how: str, pos: int):
        ed = _EDITORS.get(_key(request))
        if ed is None:
            return [gr.update()] * len(view_out)
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
        refusal = unsaved(_key(request), lang)
        if refusal:
            return refusal
        try:
            ed = TagEditor(Path(path.strip()), extension or ".txt", trig)
        except DanluError as e:
            return _err(e, lang)
        _EDITORS[_key(request)] = ed
        if not len(ed):
            return i18n.text("tagging.no_images", lang)
        bad = sum(it.problem in ("bom", "not_utf8") for it in ed.items)
        return i18n.both(lambda lg: t("tagging.loaded", lg, n=len(ed)) + (
            "\n\n" + t("tagging.encoding", lg, n=bad) if bad else ""), lang)

    def editor_or_msg(request: gr.Request, lang: str) -> tuple[TagEditor | None, str]:
        ed = _EDITORS.get(_key(request))
        return ed, ("" if ed else i18n.text("tagging.no_editor", lang))

    def scoped(ed: TagEditor, where: str, inc: str, exc: str, how: str) -> list[int] | None:
        return selection(ed, inc, exc, how) if where == "filtered" else None

    @_locked
    def on_preview(request: gr.Request, lang: str, o: str, tg: str, nw: str, rx: bool, where: str, inc: str,
                   exc: str, how: str):
        ed = _EDITORS.get(_key(request))
        if ed is None:
            return ""
        try:
            n = apply_op(ed, o, tg, nw, rx, scoped(ed, where, inc, exc, how), True)
            return i18n.text("tagging.preview", lang, n=n)
        except DanluError as e:
            return _err(e, lang)

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
            return _err(e, lang)

    @_locked
    def on_caption(request: gr.Request, lang: str, text: str, shown_for: str):
        """Apply the text box to the image it was filled for (never to whatever the index points at now)."""
        ed = _EDITORS.get(_key(request))
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

    @_locked
    def on_save(request: gr.Request, lang: str):
        ed, msg = editor_or_msg(request, lang)
        if ed is None:
            return msg
        try:
            report = ed.save()
        except OSError as e:
            return f"❌ {e}"
        return i18n.text("tagging.saved", lang, n=len(report.written), folder=f"`.danlu_backup/{report.stamp}/`")

    @_locked
    def on_restore(request: gr.Request, lang: str, stamp: str | None):
        ed, msg = editor_or_msg(request, lang)
        if ed is None or not stamp:
            return msg
        if ed.pending:
            return unsaved(_key(request), lang)
        try:
            return i18n.text("tagging.restored", lang, n=len(ed.restore(stamp)))
        except DanluError as e:
            return _err(e, lang)

    def on_pick(evt: gr.SelectData, current: str):
        row = evt.row_value if getattr(evt, "row_value", None) else None
        tag = str(row[0]) if row else str(evt.value)
        tags = split_tags(current)
        return ", ".join(tags if tag in tags else tags + [tag])

    @_locked
    def on_take(request: gr.Request, current: str):
        ed = _EDITORS.get(_key(request))
        if ed is None:
            return current
        tags = split_tags(current)
        return ", ".join(tags + [tag for tag, _ in ed.identity_tags() if tag not in tags])

    op_in = [ctx.lang, op, op_tags, op_new, regex, scope, include, exclude_f, mode]
    load.click(on_load, [folder, trigger, ext, ctx.lang], message).then(view, view_in, view_out)
    tagged.then(on_load, [folder, trigger, ext, ctx.lang], message).then(view, view_in, view_out)
    apply.click(on_apply, [*op_in, trigger], message).then(view, view_in, view_out).then(on_preview, op_in, preview)
    gr.on([op.change, op_tags.change, op_new.change, regex.change, scope.change], on_preview, op_in, preview,
          show_progress="hidden")
    gr.on([sort.change, search.change, include.submit, exclude_f.submit, mode.change, index.release, ctx.lang.change],
          view, view_in, view_out, show_progress="hidden")
    prev.click(lambda i: max(0, int(i or 0) - 1), index, index).then(view, view_in, view_out)
    nxt.click(lambda i: int(i or 0) + 1, index, index).then(view, view_in, view_out)
    caption.blur(on_caption, [ctx.lang, caption, shown_for], message, show_progress="hidden"
                 ).then(view, view_in, view_out, show_progress="hidden")
    cap_apply.click(on_caption, [ctx.lang, caption, shown_for], message).then(view, view_in, view_out)
    undo.click(on_undo, ctx.lang, message).then(view, view_in, view_out)
    discard.click(on_discard, ctx.lang, message).then(view, view_in, view_out)
    save.click(on_save, ctx.lang, message).then(view, view_in, view_out)
    restore.click(on_restore, [ctx.lang, backups], message).then(view, view_in, view_out)
    table.select(on_pick, op_tags, op_tags)
    take.click(on_take, op_tags, op_tags)
    dropped.then(view, view_in, view_out)
    def relabel(lang: str):
        return (gr.update(choices=[(t(f"tagging.sort_{s}", lang), s) for s in ("count", "name", "length")]),
                gr.update(choices=[(t("tagging.scope_all", lang), "all"), (t("tagging.scope_filtered", lang),
                                                                           "filtered")]),
                gr.update(choices=[(t(f"tagging.op_{o}", lang), o) for o in OPS]))

    ctx.lang.change(relabel, ctx.lang, [sort, scope, op], show_progress="hidden")
