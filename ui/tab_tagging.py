"""Step 4 打标 Tagging: auto-tag with a WD ONNX tagger, then edit the tags (drop what the trigger should learn).

The editor lives on the server, one per browser session (a 10,000-caption dataset is not shipped back and
forth through a gr.State); edits stay pending until Save, which backs up every original it changes.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from core.tags import TagEditor, split_tags
from taggers.options import TagRequest
from ui import i18n, tab_caption, tab_tag_help, tagging_auto
from ui.context import AppContext
from ui.i18n import t
from ui.tagging_auto import (  # noqa: F401 - the tab's other sections and tests import these from here
    _CANCELS,
    _device_line,
    _err,
    _eta,
    _key,
    get_tagger,
    model_threshold,
    progress_html,
)
from ui.tagging_editor import (  # noqa: F401 - tests and the tab's sections use these names from here
    OPS,
    apply_op,
    identity_text,
    image_view,
    pending_text,
    selection,
    set_caption_for,
    table_frame,
)

TAB_ID = "tagging"
TAB_KEY = "tagging.tab"

i18n.add({
    "tagging.tab": ("4 打标", "4 Tagging"),
    "tagging.intro": ("先用 WD 打标模型自动打标，再编辑标签。**越想学的越不标**：某个特征标得越少，"
                      "触发词就越会吸收它。想让触发词学会的脸、发色、画风等，请从标注中删掉；"
                      "想在提示词里还能改动的，请保留。",
                      "Auto-tag with a WD tagger, then edit the tags. **The less you tag a feature, the more the "
                      "trigger word absorbs it (越想学的越不标)**: remove the face, hair or style tags the trigger "
                      "should learn; keep the ones you want to change in prompts."),
    "tagging.dir": ("训练集文件夹", "Dataset folder"),
    "tagging.dir_info": ("10_name 等子文件夹的上级，或一个图片文件夹；默认取当前配置的 dataset.dir。",
                         "The parent of the 10_name folders, or one image folder; defaults to dataset.dir."),
    "tagging.trigger": ("触发词", "Trigger word"),
    "tagging.load": ("读取标注", "Load captions"),
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
})

_EDITORS: dict[str, TagEditor] = {}       # one editor per browser session


_EDIT_LOCK = threading.RLock()             # a blur and a click of one page may run at once


def _locked(fn):
    """Run a handler that reads or changes an editor under the lock (quick: no model runs under it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _EDIT_LOCK:
            return fn(*args, **kwargs)
    return wrapper


def run_tagger(folder: str, req: TagRequest, lang: str, key: str):
    """The auto-tagger's run, refused while this session's editor holds unsaved edits."""
    return tagging_auto.run_tagger(folder, req, lang, key, refusal=unsaved)


def unsaved(key: str, lang: str) -> str:
    """A refusal message when the session's editor holds unsaved edits (reloading would drop them), else ''."""
    ed = _EDITORS.get(key)
    n = len(ed.pending) if ed is not None else 0
    return t("tagging.unsaved", lang, n=n) if n else ""


def build(ctx: AppContext) -> None:  # noqa: C901 - one place wires the whole tab
    lang0 = ctx.lang.value
    cfg0 = ctx.config.value.get("dataset", {}) if isinstance(ctx.config.value, dict) else {}
    B = ctx.tr.bind
    B(gr.Markdown(t("tagging.intro", lang0)), value="tagging.intro")
    with gr.Row():
        folder = B(gr.Textbox(cfg0.get("dir", ""), label=t("tagging.dir", lang0), info=t("tagging.dir_info", lang0),
                              elem_id="tagging-dir", scale=4), label="tagging.dir", info="tagging.dir_info")
        trigger = B(gr.Textbox(cfg0.get("trigger_word", ""), label=t("tagging.trigger", lang0),
                               elem_id="tagging-trigger", scale=2), label="tagging.trigger")
        load = B(gr.Button(t("tagging.load", lang0), elem_id="tagging-load", scale=1), value="tagging.load")
    ext = gr.State(cfg0.get("caption_extension", ".txt"))
    model, general, character, tagged = tagging_auto.build(ctx, folder, trigger, ext, refusal=unsaved)
    tab_caption.build(ctx, folder, trigger, ext, model, general, character)

    B(gr.Markdown(f"### {t('tagging.editor', lang0)}"), value="tagging.editor")
    message = gr.Markdown("", elem_id="tagging-message")
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
            preview = gr.Markdown("", elem_id="tagging-preview")
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
            return t("tagging.no_images", lang)
        msg = t("tagging.loaded", lang, n=len(ed))
        bad = sum(it.problem in ("bom", "not_utf8") for it in ed.items)
        return msg + ("\n\n" + t("tagging.encoding", lang, n=bad) if bad else "")

    def editor_or_msg(request: gr.Request, lang: str) -> tuple[TagEditor | None, str]:
        ed = _EDITORS.get(_key(request))
        return ed, ("" if ed else t("tagging.no_editor", lang))

    def scoped(ed: TagEditor, where: str, inc: str, exc: str, how: str) -> list[int] | None:
        return selection(ed, inc, exc, how) if where == "filtered" else None

    @_locked
    def on_preview(request: gr.Request, lang: str, o: str, tg: str, nw: str, rx: bool, where: str, inc: str,
                   exc: str, how: str):
        ed = _EDITORS.get(_key(request))
        if ed is None:
            return ""
        try:
            return t("tagging.preview", lang, n=apply_op(ed, o, tg, nw, rx, scoped(ed, where, inc, exc, how), True))
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
            return t("tagging.applied", lang, n=apply_op(ed, o, tg, nw, rx, scoped(ed, where, inc, exc, how)))
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
        return t("tagging.undone", lang, name=name_) if name_ else t("tagging.nothing_to_undo", lang)

    @_locked
    def on_discard(request: gr.Request, lang: str):
        ed, msg = editor_or_msg(request, lang)
        return msg if ed is None else t("tagging.applied", lang, n=ed.discard())

    @_locked
    def on_save(request: gr.Request, lang: str):
        ed, msg = editor_or_msg(request, lang)
        if ed is None:
            return msg
        try:
            report = ed.save()
        except OSError as e:
            return f"❌ {e}"
        return t("tagging.saved", lang, n=len(report.written), folder=f"`.danlu_backup/{report.stamp}/`")

    @_locked
    def on_restore(request: gr.Request, lang: str, stamp: str | None):
        ed, msg = editor_or_msg(request, lang)
        if ed is None or not stamp:
            return msg
        if ed.pending:
            return unsaved(_key(request), lang)
        try:
            return t("tagging.restored", lang, n=len(ed.restore(stamp)))
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

    def on_config(config: dict, cur_dir: str, cur_trig: str):
        try:
            ds = cfgmod.from_dict(config).dataset if config else None
        except DanluError:  # a half-edited config elsewhere must not break this tab
            ds = None
        if ds is None:
            return gr.update(), gr.update(), gr.update()
        return (ds.dir or cur_dir), (ds.trigger_word or cur_trig), ds.caption_extension

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
    ctx.config.change(on_config, [ctx.config, folder, trigger], [folder, trigger, ext], show_progress="hidden")
