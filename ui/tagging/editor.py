"""Tagging tab, the editor: the tag table, filters, bulk operations, one image and its caption, pending edits.

This module lays the section out and wires it; the editor's handlers are in edits.py, its state in state.py.
The editor lives on the server, one per browser session (a 10,000-caption dataset is not shipped back and
forth through a gr.State); edits stay pending until Save, which backs up every original it changes.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from core.dataset.tags import TagEditor
from ui import choices, i18n, stale_ask
from ui.context import AppContext
from ui.i18n import t
from ui.tagging import edits as E
from ui.tagging import help as tag_help
from ui.tagging.edits import OPS, table_frame

i18n.add({
    "tagging.filtered": ("筛选出 {n} / {total} 张图片。", "{n} of {total} images match the filter."),
    "tagging.preview": ("将修改 {n} 条标注。", "Captions this will change: {n}."),
    "tagging.applied": ("已修改 {n} 条标注（尚未保存）。", "Captions changed: {n} (not saved yet)."),
    "tagging.undone": ("已撤销：{name}", "Undone: {name}"),
    "tagging.nothing_to_undo": ("没有可撤销的操作。", "Nothing to undo."),
    "tagging.saved": ("✔ 已保存 {n} 条标注；原文件备份在 {folder}",
                      "✔ Captions saved: {n}; originals backed up in {folder}"),
    "tagging.conflict": ("⚠ {n} 条标注在本页读取之后被其他页面或程序修改过，没有写入：{names}。"
                         "请选择：保留我的（对方的版本会备份）、采用对方的，或并排查看两者。",
                         "⚠ Captions changed on disk by another page or program after this page read them, so "
                         "not written: {n} ({names}). Keep mine (theirs is backed up), take theirs, or show both."),
    "tagging.kept": ("✔ 已写入我的 {n} 条标注；磁盘上原来的版本备份在 {folder}",
                     "✔ My captions written: {n}; the versions they replaced are backed up in {folder}"),
    "tagging.took": ("✔ 已采用磁盘上的 {n} 条标注（“撤销”可找回我的修改）。",
                     "✔ Took the captions on disk: {n} (Undo brings my edits back)."),
    "tagging.restored": ("✔ 已恢复 {n} 个文件（恢复前的版本也已备份）。",
                         "✔ Restored {n} files (the versions before the restore are backed up too)."),
    "tagging.restored_damaged": ("⚠ 已恢复 {n} 个文件（恢复前的版本也已备份）；备份中有 {k} 个文件已损坏，没有恢复：",
                                 "⚠ Restored {n} files (the versions before the restore are backed up too); {k} "
                                 "file(s) of the backup were damaged and not restored:"),
    "tagging.no_editor": ("请先填写文件夹并点击“读取标注”。", "Enter a folder and press Load captions first."),
    "tagging.loaded": ("已读取 {n} 张图片的标注。", "Loaded the captions of {n} images."),
    "tagging.encoding": ("⚠ {n} 个标注不是 UTF-8 或带 BOM（保存时会改为 UTF-8）。",
                         "⚠ {n} captions are not UTF-8 or have a BOM (saving rewrites them as UTF-8)."),
    "tagging.unsaved": ("✖ 有 {n} 条未保存的修改：请先保存或放弃修改，再重新读取、打标或恢复。",
                        "✖ {n} unsaved changes: save or discard them before reloading, tagging or restoring."),
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
    "tagging.pending": ("✎ {n} 条标注已修改，尚未保存。", "✎ Changed captions not saved yet: {n}."),
    "tagging.reordered": ("仅顺序改变", "order changed"),
    "tagging.clean": ("✔ 没有未保存的修改。", "✔ No unsaved changes."),
    "tagging.undo": ("撤销", "Undo"),
    "tagging.discard": ("放弃修改", "Discard changes"),
    "tagging.save": ("保存", "Save"),
    "tagging.backups": ("备份", "Backups"),
    "tagging.restore": ("恢复此备份的原文件", "Restore originals from this backup"),
})


def _table_column(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tag table, its filters and the batch operation (the left column)."""
    B = ctx.tr.bind
    c = SimpleNamespace()
    with gr.Row():
        c.search = B(gr.Textbox("", label=t("tagging.search", lang0), elem_id="tagging-search"),
                     label="tagging.search")
        c.sort = B(gr.Radio([(t("tagging.sort_count", lang0), "count"), (t("tagging.sort_name", lang0), "name"),
                             (t("tagging.sort_length", lang0), "length")], value="count",
                            label=t("tagging.sort", lang0), elem_id="tagging-sort"), label="tagging.sort")
    c.table = gr.Dataframe(table_frame(TagEditor(ctx.root, items=[]), "count", "", lang0), interactive=False,
                           elem_id="tagging-table", max_height=420, wrap=True)
    c.identity = gr.Markdown("", elem_id="tagging-identity")
    c.take = B(gr.Button(t("tagging.take_flagged", lang0), size="sm", elem_id="tagging-take-flagged"),
               value="tagging.take_flagged")
    with gr.Row():
        c.include = B(gr.Textbox("", label=t("tagging.include", lang0), elem_id="tagging-include"),
                      label="tagging.include")
        c.exclude_f = B(gr.Textbox("", label=t("tagging.exclude_filter", lang0), elem_id="tagging-not"),
                        label="tagging.exclude_filter")
        c.mode = B(gr.Radio(choices.pairs(["AND", "OR"], lang0), value="AND", label=t("tagging.mode", lang0),
                            elem_id="tagging-mode"), label="tagging.mode", choices=choices.labelled(["AND", "OR"]))
    c.filtered = gr.Markdown("", elem_id="tagging-filtered")
    c.scope = B(gr.Radio([(t("tagging.scope_all", lang0), "all"), (t("tagging.scope_filtered", lang0),
                                                                    "filtered")], value="all",
                         label=t("tagging.scope", lang0), elem_id="tagging-scope"), label="tagging.scope")
    c.op = B(gr.Dropdown([(t(f"tagging.op_{o}", lang0), o) for o in OPS], value="remove",
                         label=t("tagging.op", lang0), elem_id="tagging-op"), label="tagging.op")
    with gr.Row():
        c.op_tags = B(gr.Textbox("", label=t("tagging.op_tags", lang0), elem_id="tagging-op-tags", scale=3),
                      label="tagging.op_tags")
        c.op_new = B(gr.Textbox("", label=t("tagging.op_new", lang0), elem_id="tagging-op-new", scale=2),
                     label="tagging.op_new")
    c.regex = B(gr.Checkbox(False, label=t("tagging.op_regex", lang0), elem_id="tagging-op-regex"),
                label="tagging.op_regex")
    c.preview = i18n.follow(gr.Markdown("", elem_id="tagging-preview"), ctx.lang)
    c.apply = B(gr.Button(t("tagging.apply", lang0), variant="primary", elem_id="tagging-apply"),
                value="tagging.apply")
    return c


def _image_column(ctx: AppContext, lang0: str, c: SimpleNamespace) -> None:
    """One image of the filtered set and its caption (the right column), added to `c`."""
    B = ctx.tr.bind
    B(gr.Markdown(f"**{t('tagging.image', lang0)}**"), value="tagging.image")
    c.index = B(gr.Slider(0, 1, 0, step=1, label=t("tagging.index", lang0), elem_id="tagging-index"),
                label="tagging.index")
    with gr.Row():
        c.prev = B(gr.Button(t("tagging.prev", lang0), size="sm", elem_id="tagging-prev"), value="tagging.prev")
        c.nxt = B(gr.Button(t("tagging.next", lang0), size="sm", elem_id="tagging-next"), value="tagging.next")
    c.name = gr.Markdown("", elem_id="tagging-image-name")
    c.image = gr.Image(None, type="pil", interactive=False, show_label=False, elem_id="tagging-image",
                       height=320)
    c.caption = B(gr.Textbox("", lines=4, label=t("tagging.caption", lang0), elem_id="tagging-caption"),
                  label="tagging.caption")
    c.cap_apply = B(gr.Button(t("tagging.caption_apply", lang0), elem_id="tagging-caption-apply"),
                    value="tagging.caption_apply")


def _save_rows(ctx: AppContext, lang0: str, c: SimpleNamespace) -> None:
    """Pending edits, undo / discard / save, and the backups to restore from, added to `c`."""
    B = ctx.tr.bind
    c.pending = gr.Markdown("", elem_id="tagging-pending")
    with gr.Row():
        c.undo = B(gr.Button(t("tagging.undo", lang0), elem_id="tagging-undo"), value="tagging.undo")
        c.discard = B(gr.Button(t("tagging.discard", lang0), elem_id="tagging-discard"), value="tagging.discard")
        c.save = B(gr.Button(t("tagging.save", lang0), variant="primary", elem_id="tagging-save"),
                   value="tagging.save")
    c.ask = stale_ask.build(ctx, "tagging")   # asked by Save when a caption changed on disk since it was read
    with gr.Row():
        c.backups = B(gr.Dropdown([], label=t("tagging.backups", lang0), elem_id="tagging-backups", scale=3),
                      label="tagging.backups")
        c.restore = B(gr.Button(t("tagging.restore", lang0), elem_id="tagging-restore", scale=1),
                      value="tagging.restore")


def build(ctx: AppContext, folder, trigger, ext, load, tagged, model) -> None:
    """The editor section: loads the folder's captions on Load and after an auto-tagger run."""
    lang0 = ctx.lang.value
    ctx.tr.bind(gr.Markdown(f"### {t('tagging.editor', lang0)}"), value="tagging.editor")
    message = i18n.follow(gr.Markdown("", elem_id="tagging-message"), ctx.lang)  # its text in both languages
    with gr.Row():
        with gr.Column(scale=5):
            c = _table_column(ctx, lang0)
        with gr.Column(scale=4):
            _image_column(ctx, lang0, c)
    dropped = tag_help.build(ctx, model, c.op_tags, c.op_new, c.caption)
    _save_rows(ctx, lang0, c)
    c.shown_for = gr.State("")   # the image the caption box was filled for
    _wire(ctx, c, message, folder, trigger, ext, load, tagged, dropped)


def _wire(ctx: AppContext, c: SimpleNamespace, message, folder, trigger, ext, load, tagged, dropped) -> None:
    """Every event of the section: each change runs its handler (edits.py), then redraws the view."""
    view_in = [ctx.lang, c.sort, c.search, c.include, c.exclude_f, c.mode, c.index]
    view_out = [c.table, c.identity, c.filtered, c.index, c.name, c.image, c.caption, c.shown_for, c.pending,
                c.backups]
    assert len(view_out) == E.VIEW_OUTPUTS
    op_in = [ctx.lang, c.op, c.op_tags, c.op_new, c.regex, c.scope, c.include, c.exclude_f, c.mode]
    load.click(E.on_load, [folder, trigger, ext, ctx.lang], message).then(E.view, view_in, view_out).then(
        E.on_question, ctx.lang, c.ask.outputs)
    tagged.then(E.on_load, [folder, trigger, ext, ctx.lang], message).then(E.view, view_in, view_out).then(
        E.on_question, ctx.lang, c.ask.outputs)
    c.apply.click(E.on_apply, [*op_in, trigger], message).then(E.view, view_in, view_out).then(
        E.on_preview, op_in, c.preview)
    gr.on([c.op.change, c.op_tags.change, c.op_new.change, c.regex.change, c.scope.change], E.on_preview, op_in,
          c.preview, show_progress="hidden")
    gr.on([c.sort.change, c.search.change, c.include.submit, c.exclude_f.submit, c.mode.change, c.index.release,
           ctx.lang.change], E.view, view_in, view_out, show_progress="hidden")
    c.prev.click(lambda i: max(0, int(i or 0) - 1), c.index, c.index).then(E.view, view_in, view_out)
    c.nxt.click(lambda i: int(i or 0) + 1, c.index, c.index).then(E.view, view_in, view_out)
    c.caption.blur(E.on_caption, [ctx.lang, c.caption, c.shown_for], message, show_progress="hidden"
                   ).then(E.view, view_in, view_out, show_progress="hidden")
    c.cap_apply.click(E.on_caption, [ctx.lang, c.caption, c.shown_for], message).then(E.view, view_in, view_out)
    c.undo.click(E.on_undo, ctx.lang, message).then(E.view, view_in, view_out)
    c.discard.click(E.on_discard, ctx.lang, message).then(E.view, view_in, view_out).then(
        E.on_question, ctx.lang, c.ask.outputs)
    c.save.click(E.on_save, ctx.lang, [message, *c.ask.outputs]).then(E.view, view_in, view_out)
    c.ask.keep.click(E.on_keep_mine, ctx.lang, [message, *c.ask.outputs]).then(E.view, view_in, view_out)
    c.ask.theirs.click(E.on_take_theirs, ctx.lang, [message, *c.ask.outputs]).then(E.view, view_in, view_out)
    c.ask.both.click(E.on_show_both, ctx.lang, [message, *c.ask.outputs])
    c.restore.click(E.on_restore, [ctx.lang, c.backups], message).then(E.view, view_in, view_out)
    c.table.select(E.on_pick, c.op_tags, c.op_tags)
    c.take.click(E.on_take, c.op_tags, c.op_tags)
    dropped.then(E.view, view_in, view_out)

    def relabel(request: gr.Request, lang: str):
        # The table's headers too: before a folder is loaded it is the empty table, afterwards `view` redraws it.
        loaded = E.editor_or_msg(request, lang)[0] is not None
        return (gr.update(choices=[(t(f"tagging.sort_{s}", lang), s) for s in ("count", "name", "length")]),
                gr.update(choices=[(t("tagging.scope_all", lang), "all"), (t("tagging.scope_filtered", lang),
                                                                           "filtered")]),
                gr.update(choices=[(t(f"tagging.op_{o}", lang), o) for o in OPS]),
                gr.update() if loaded else table_frame(TagEditor(ctx.root, items=[]), "count", "", lang))

    ctx.lang.change(relabel, ctx.lang, [c.sort, c.scope, c.op, c.table], show_progress="hidden").then(
        E.view, view_in, view_out, show_progress="hidden")
