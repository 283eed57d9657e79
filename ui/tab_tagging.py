"""Step 4 打标 Tagging: auto-tag with a WD ONNX tagger, then edit the tags (drop what the trigger should learn).

The editor lives on the server, one per browser session (a 10,000-caption dataset is not shipped back and
forth through a gr.State); edits stay pending until Save, which backs up every original it changes.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from core.tags import IDENTITY_SHARE, TagEditor, split_tags
from taggers.catalog import DEFAULT_TAGGER, TAGGERS, default_thresholds
from taggers.options import DEFAULTS, TagRequest, request_from
from taggers.wd14 import POLICIES
from ui import i18n, tab_caption, tab_tag_help
from ui.context import AppContext
from ui.i18n import t

TAB_ID = "tagging"
TAB_KEY = "tagging.tab"
MODEL_CHOICES = list(TAGGERS)   # taggers/catalog.py
OPS = ["remove", "replace", "add_front", "add_back", "trigger_first", "dedupe"]

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
    "tagging.auto": ("自动打标（WD1.4 / WD v3）", "Auto-tagger (WD1.4 / WD v3)"),
    "tagging.model": ("打标模型", "Tagger model"),
    "tagging.model_info": ("从列表选择（从 Hugging Face 下载并缓存），或填 hub id（org/name）或本地文件夹"
                           "（含 model.onnx 与 selected_tags.csv）。",
                           "Pick one (downloaded from Hugging Face and cached), or type a hub id (org/name) or a "
                           "local folder holding model.onnx and selected_tags.csv."),
    "tagging.general": ("普通标签阈值", "General tag threshold"),
    "tagging.character": ("角色标签阈值", "Character tag threshold"),
    "tagging.mcut_general": ("普通标签用 MCut 自动阈值", "MCut threshold for general tags"),
    "tagging.mcut_character": ("角色标签用 MCut 自动阈值", "MCut threshold for character tags"),
    "tagging.rating": ("添加分级标签（general/sensitive…）", "Add the rating tag (general/sensitive…)"),
    "tagging.no_character": ("不写角色标签", "Write no character tags"),
    "tagging.exclude": ("排除的标签（逗号分隔）", "Tags never written (comma-separated)"),
    "tagging.policy": ("已有标注时", "When a caption exists"),
    "tagging.policy_info": ("skip 跳过；overwrite 覆盖；append 追加在后；prepend 插在前。修改前都会备份原文件。",
                            "skip, overwrite, append after, prepend before. Every original is backed up first."),
    "tagging.batch": ("批大小", "Batch size"),
    "tagging.run": ("开始打标", "Tag images"),
    "tagging.cancel": ("取消", "Cancel"),
    "tagging.on_cpu": ("在 CPU 上打标", "Tagging on CPU"),
    "tagging.on_gpu": ("在 GPU（CUDA）上打标", "Tagging on GPU (CUDA)"),
    "tagging.fallback": ("⚠ 在 CPU 上打标（很慢）：{why}", "⚠ Tagging on CPU (slow): {why}"),
    "tagging.downloading": ("下载 {name}", "Downloading {name}"),
    "tagging.speed": ("{rate:.2f} 张/秒 · 剩余约 {eta}", "{rate:.2f} images/s · ETA {eta}"),
    "tagging.starting": ("准备中…", "Starting…"),
    "tagging.cancelling": ("正在取消，已完成的部分会保留…", "Cancelling; finished images are kept…"),
    "tagging.failed": ("❌ 无法读取的图片：", "❌ Images that could not be read:"),
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
    "tagging.filtered": ("筛选出 {n} / {total} 张图片。", "{n} of {total} images match the filter."),
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
    "tagging.preview": ("将修改 {n} 条标注。", "Captions this will change: {n}."),
    "tagging.applied": ("已修改 {n} 条标注（尚未保存）。", "Captions changed: {n} (not saved yet)."),
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
    "tagging.undone": ("已撤销：{name}", "Undone: {name}"),
    "tagging.nothing_to_undo": ("没有可撤销的操作。", "Nothing to undo."),
    "tagging.discard": ("放弃修改", "Discard changes"),
    "tagging.save": ("保存", "Save"),
    "tagging.saved": ("✅ 已保存 {n} 条标注；原文件备份在 {folder}",
                      "✅ Captions saved: {n}; originals backed up in {folder}"),
    "tagging.backups": ("备份", "Backups"),
    "tagging.restore": ("恢复此备份的原文件", "Restore originals from this backup"),
    "tagging.restored": ("✅ 已恢复 {n} 个文件（恢复前的版本也已备份）。",
                         "✅ Restored {n} files (the versions before the restore are backed up too)."),
    "tagging.no_editor": ("请先填写文件夹并点击“读取标注”。", "Enter a folder and press Load captions first."),
    "tagging.loaded": ("已读取 {n} 张图片的标注。", "Loaded the captions of {n} images."),
    "tagging.encoding": ("⚠ {n} 个标注不是 UTF-8 或带 BOM（保存时会改为 UTF-8）。",
                         "⚠ {n} captions are not UTF-8 or have a BOM (saving rewrites them as UTF-8)."),
    "tagging.keep_tokens": ("触发词已放在最前：若在“调参”中打开了打乱标注，请把 keep_tokens 设为 {n}，"
                            "触发词就不会被打乱。",
                            "The trigger is first: if you shuffle captions (Parameters), set keep_tokens = {n} so "
                            "shuffling never moves it."),
    "tagging.unsaved": ("❌ 有 {n} 条未保存的修改：请先保存或放弃修改，再重新读取、打标或恢复。",
                        "❌ {n} unsaved changes: save or discard them before reloading, tagging or restoring."),
    "tagging.no_images": ("这个文件夹里没有图片。", "This folder has no images."),
})

_EDITORS: dict[str, TagEditor] = {}       # one editor per browser session
_CANCELS: dict[str, threading.Event] = {}
_TAGGERS: dict[tuple[str, str], Any] = {}  # reuse the onnxruntime session between runs


_EDIT_LOCK = threading.RLock()             # a blur and a click of one page may run at once


def model_threshold(model: str) -> float:
    """The general-tag default of a tagger (its card's P=R point, taggers/catalog.py), to two decimals."""
    return round(default_thresholds(model or "")[0], 2)


def _locked(fn):
    """Run a handler that reads or changes an editor under the lock (quick: no model runs under it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _EDIT_LOCK:
            return fn(*args, **kwargs)
    return wrapper


def _key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def _err(e: Exception, lang: str) -> str:
    return f"❌ {e.text(lang)}" if isinstance(e, DanluError) else f"❌ {type(e).__name__}: {e}"


# ---------------------------------------------------------------- auto-tagger

def _eta(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def progress_html(done: int, total: int, label: str) -> str:
    pct = 100 * done / total if total else 0
    return (f'<div id="tagging-bar" style="margin:4px 0">'
            f'<div style="background:#e4e7ec;border-radius:6px;height:14px">'
            f'<div style="width:{pct:.1f}%;background:#12b76a;height:14px;border-radius:6px"></div></div>'
            f'<div style="font-size:0.9em">{done}/{total} ({pct:.0f}%) · {label}</div></div>')


def get_tagger(model: str, device: str = "auto", download: Any = None) -> Any:
    """The tagger for model, reusing the last session; only one is kept (EVA02-large holds ~1.3 GB)."""
    from taggers.wd14 import Tagger, resolve_model

    folder = resolve_model(model, download)
    key = (str(folder), device)
    if key not in _TAGGERS:
        _TAGGERS.clear()
        _TAGGERS[key] = Tagger(folder, device=device)
    return _TAGGERS[key]


def unsaved(key: str, lang: str) -> str:
    """A refusal message when the session's editor holds unsaved edits (reloading would drop them), else ''."""
    ed = _EDITORS.get(key)
    n = len(ed.pending) if ed is not None else 0
    return t("tagging.unsaved", lang, n=n) if n else ""


def run_tagger(folder: str, req: TagRequest, lang: str, key: str):
    """Generator for the Run button: yields (progress html, status markdown) until the folder is tagged."""
    from taggers.pipeline import tag_folder

    refusal = unsaved(key, lang)
    if refusal:
        yield progress_html(0, 0, "—"), refusal
        return
    cancel = threading.Event()
    _CANCELS[key] = cancel
    box: dict[str, Any] = {"label": t("tagging.starting", lang), "done": 0, "total": 0}

    def download(name: str, done: int, total: int) -> None:
        box.update(label=t("tagging.downloading", lang, name=f"{name} ({done / 1e6:.0f}/{total / 1e6:.0f} MB)"),
                   done=done * 100 // max(total, 1), total=100)

    def progress(p) -> None:
        box.update(label=t("tagging.speed", lang, rate=p.images_per_s, eta=_eta(p.eta_s)), done=p.done, total=p.total)

    def work() -> None:
        try:
            tagger = get_tagger(req.model, download=download)
            box["tagger"] = tagger
            box["report"] = tag_folder(Path(folder), tagger, req.tag_options(), req.policy,
                                       caption_extension=req.caption_extension, batch_size=max(1, req.batch_size),
                                       progress=progress, cancel=cancel)
        except Exception as e:  # noqa: BLE001 - shown in the page
            box["error"] = e

    thread = threading.Thread(target=work, daemon=True, name="danlu-tagging")
    thread.start()
    while thread.is_alive():
        thread.join(0.3)
        label = t("tagging.cancelling", lang) if cancel.is_set() else box["label"]
        yield progress_html(box["done"], box["total"], label), _device_line(box.get("tagger"), lang)
    _CANCELS.pop(key, None)
    if "error" in box:
        yield progress_html(0, 0, "—"), _err(box["error"], lang)
        return
    report = box["report"]
    lines = [_device_line(box["tagger"], lang), report.summary(lang), report.rating_text(lang)]
    if split_tags(req.trigger) and report.written:
        lines.append(t("tagging.keep_tokens", lang, n=len(split_tags(req.trigger))))
    if report.failed:
        lines.append(t("tagging.failed", lang) + "\n" + "\n".join(f"- `{p.name}`: {why}" for p, why in report.failed))
    yield progress_html(report.total, report.total, t("tagging.speed", lang, rate=report.images_per_s, eta="0:00")), \
        "\n\n".join(line for line in lines if line)


def _device_line(tagger: Any, lang: str) -> str:
    if tagger is None:
        return ""
    if tagger.fallback:
        en, zh = tagger.fallback
        return t("tagging.fallback", lang, why=zh if lang == "zh" else en)
    return t("tagging.on_gpu" if tagger.on_gpu else "tagging.on_cpu", lang) + f" · {', '.join(tagger.providers)}"


# ---------------------------------------------------------------- editor views

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
    with B(gr.Accordion(t("tagging.auto", lang0), open=True, elem_id="tagging-auto"), label="tagging.auto"):
        with gr.Row():
            model = B(gr.Dropdown(MODEL_CHOICES, value="wd-vit-tagger-v3", allow_custom_value=True,
                                  label=t("tagging.model", lang0), info=t("tagging.model_info", lang0),
                                  elem_id="tagging-model", scale=3), label="tagging.model", info="tagging.model_info")
            policy = B(gr.Radio(list(POLICIES), value=DEFAULTS["policy"],
                                label=t("tagging.policy", lang0), info=t("tagging.policy_info", lang0),
                                elem_id="tagging-policy", scale=3), label="tagging.policy", info="tagging.policy_info")
            batch = B(gr.Number(DEFAULTS["batch_size"], precision=0, minimum=1, maximum=256,
                                label=t("tagging.batch", lang0),
                                elem_id="tagging-batch", scale=1), label="tagging.batch")
        with gr.Row():
            general = B(gr.Slider(0.05, 0.95, model_threshold(DEFAULT_TAGGER), step=0.01,
                                  label=t("tagging.general", lang0),
                                  elem_id="tagging-general"), label="tagging.general")
            character = B(gr.Slider(0.05, 0.99, 0.85, step=0.01, label=t("tagging.character", lang0),
                                    elem_id="tagging-character"), label="tagging.character")
            exclude = B(gr.Textbox("", label=t("tagging.exclude", lang0), elem_id="tagging-exclude"),
                        label="tagging.exclude")
        with gr.Row():
            mcut_g = B(gr.Checkbox(False, label=t("tagging.mcut_general", lang0)), label="tagging.mcut_general")
            mcut_c = B(gr.Checkbox(False, label=t("tagging.mcut_character", lang0)), label="tagging.mcut_character")
            rating = B(gr.Checkbox(False, label=t("tagging.rating", lang0)), label="tagging.rating")
            no_char = B(gr.Checkbox(False, label=t("tagging.no_character", lang0)), label="tagging.no_character")
        with gr.Row():
            run = B(gr.Button(t("tagging.run", lang0), variant="primary", elem_id="tagging-run"), value="tagging.run")
            cancel = B(gr.Button(t("tagging.cancel", lang0), variant="stop", elem_id="tagging-cancel"),
                       value="tagging.cancel")
        bar = gr.HTML(progress_html(0, 0, "—"), elem_id="tagging-progress")
        status = gr.Markdown("", elem_id="tagging-status")
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

    # The auto-tagger's options by name (taggers/options.py declares them for this tab and the CLI).
    tag_inputs = {"general_threshold": general, "character_threshold": character, "mcut_general": mcut_g,
                  "mcut_character": mcut_c, "rating": rating, "no_character": no_char, "exclude": exclude,
                  "policy": policy, "batch_size": batch, "trigger": trigger, "caption_extension": ext}

    def on_run(request: gr.Request, path: str, mdl: str, lang: str, **values):
        yield from run_tagger(path, request_from(mdl, values), lang, _key(request))

    def on_cancel(request: gr.Request):
        ev = _CANCELS.get(_key(request))
        if ev:
            ev.set()

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
    run.click(on_run, [folder, model, ctx.lang], [bar, status], inputs_kwargs=tag_inputs
              ).then(on_load, [folder, trigger, ext, ctx.lang], message).then(view, view_in, view_out)
    cancel.click(on_cancel, None, None, queue=False)
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
    model.change(model_threshold, model, general, show_progress="hidden")   # each tagger's own P=R point
    def relabel(lang: str):
        return (gr.update(choices=[(t(f"tagging.sort_{s}", lang), s) for s in ("count", "name", "length")]),
                gr.update(choices=[(t("tagging.scope_all", lang), "all"), (t("tagging.scope_filtered", lang),
                                                                           "filtered")]),
                gr.update(choices=[(t(f"tagging.op_{o}", lang), o) for o in OPS]))

    ctx.lang.change(relabel, ctx.lang, [sort, scope, op], show_progress="hidden")
    ctx.config.change(on_config, [ctx.config, folder, trigger], [folder, trigger, ext], show_progress="hidden")
