"""Tagging tab, editor help: tag autocomplete with counts, and one folder's most shared tags with "drop these".

A section composed into the Tagging tab. It reads the session's TagEditor (ui/tagging/state.py keeps one per
browser session); a drop is one editor operation, so the tab's Undo takes it back and Save backs up first.
`build` returns the drop event so the tab can refresh its table and pending list after it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import gradio as gr

from core.dataset.tag_help import drop_from_folder, folders, frequent_tags, suggestions
from core.dataset.tags import IDENTITY_SHARE, split_tags
from ui import i18n
from ui.context import AppContext
from ui.i18n import t
from ui.tagging.state import EDIT_LOCK, EDITORS, session_key

i18n.add({
    "taghelp.section": ("标签助手：自动补全与文件夹高频标签", "Tag help: autocomplete and each folder's common tags"),
    "taghelp.lookup": ("查找标签", "Find a tag"),
    "taghelp.lookup_info": ("输入几个字母：先列出本数据集已有的标签（本处图片数），再列出打标模型词表中的标签"
                            "（Danbooru 作品数）。", "Type a few letters: this dataset's tags first (images here), "
                            "then the tagger's vocabulary (Danbooru posts)."),
    "taghelp.here": ("本处 {n} 张", "{n} here"),
    "taghelp.posts": ("{n} 作品", "{n} posts"),
    "taghelp.to_tags": ("→ 要修改的标签", "→ Tags to change"),
    "taghelp.to_new": ("→ 新标签", "→ New tag"),
    "taghelp.to_caption": ("→ 当前图片标注", "→ This image's caption"),
    "taghelp.folder": ("文件夹", "Folder"),
    "taghelp.share": ("至少出现在该比例的图片中", "On at least this share of its images"),
    "taghelp.frequent": ("高频标签（很可能是触发词要学的特征）",
                         "Common tags (probably what the trigger should learn)"),
    "taghelp.drop": ("从该文件夹删除所选标签", "Drop these from this folder"),
    "taghelp.none": ("没有达到该比例的标签。", "No tag reaches that share."),
    "taghelp.no_editor": ("✖ 请先读取标注。", "✖ Load the captions first."),
    "taghelp.dropped": ("已从 {n} 个标注中删除 {tags}（{folder}）。可撤销；保存时会先备份原文件。",
                        "Dropped {tags} from {n} captions ({folder}). Undo takes it back; Save backs up first."),
})


def _editor(request: gr.Request | None):
    return EDITORS.get(session_key(request))


def lookup_choices(ed: Any, model: str, lang: str) -> list[tuple[str, str]]:
    """('long hair · 12 here · 1,234,567 posts', 'long hair') choices for the lookup dropdown."""
    from taggers.vocab import vocabulary

    out = []
    for tag, here, posts in suggestions(ed.counts() if ed is not None else Counter(), vocabulary(model)):
        parts = [tag] + ([t("taghelp.here", lang, n=here)] if here else []) + (
            [t("taghelp.posts", lang, n=f"{posts:,}")] if posts else [])
        out.append((" · ".join(parts), tag))
    return out


def frequent_choices(ed: Any, folder: str, share: float) -> tuple[list[tuple[str, str]], list[str]]:
    """CheckboxGroup choices ('tag · 9/10') and the values (all ticked)."""
    indices = folders(ed).get(folder, []) if ed is not None else []
    rows = frequent_tags(ed, indices, share) if indices else []
    return [(f"{tag} · {k}/{len(indices)}", tag) for tag, k, _ in rows], [tag for tag, _, _ in rows]


def append_tag(current: str, tag: str | None) -> str:
    tags = split_tags(current or "")
    if tag and tag not in tags:
        tags.append(tag)
    return ", ".join(tags)


def build(ctx: AppContext, tagger_model, op_tags, op_new, caption):
    """The section; the arguments are the tab's own components. Returns the drop event."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    with B(gr.Accordion(t("taghelp.section", lang0), open=True, elem_id="taghelp-section"),
           label="taghelp.section"):
        with gr.Row():
            lookup = B(gr.Dropdown([], value=None, allow_custom_value=True, filterable=True,
                                   label=t("taghelp.lookup", lang0), info=t("taghelp.lookup_info", lang0),
                                   elem_id="taghelp-lookup", scale=3), label="taghelp.lookup",
                       info="taghelp.lookup_info")
            to_tags = B(gr.Button(t("taghelp.to_tags", lang0), size="sm", elem_id="taghelp-to-tags", scale=1),
                        value="taghelp.to_tags")
            to_new = B(gr.Button(t("taghelp.to_new", lang0), size="sm", elem_id="taghelp-to-new", scale=1),
                       value="taghelp.to_new")
            to_caption = B(gr.Button(t("taghelp.to_caption", lang0), size="sm", elem_id="taghelp-to-caption",
                                     scale=1), value="taghelp.to_caption")
        with gr.Row():
            folder = B(gr.Dropdown([], value=None, label=t("taghelp.folder", lang0), elem_id="taghelp-folder",
                                   scale=2), label="taghelp.folder")
            share = B(gr.Slider(0.5, 1.0, IDENTITY_SHARE, step=0.05, label=t("taghelp.share", lang0),
                                elem_id="taghelp-share", scale=2), label="taghelp.share")
        frequent = B(gr.CheckboxGroup([], value=[], label=t("taghelp.frequent", lang0), elem_id="taghelp-frequent"),
                     label="taghelp.frequent")
        drop = B(gr.Button(t("taghelp.drop", lang0), variant="stop", elem_id="taghelp-drop"), value="taghelp.drop")
        message = i18n.follow(gr.Markdown("", elem_id="taghelp-message"), ctx.lang)  # its text in both languages

    def on_lookup_focus(request: gr.Request, model: str, lang: str):
        with EDIT_LOCK:
            return gr.update(choices=lookup_choices(_editor(request), model, lang))

    def on_folder_focus(request: gr.Request, current: str | None):
        with EDIT_LOCK:
            ed = _editor(request)
            names = list(folders(ed)) if ed is not None else []
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    def on_frequent(request: gr.Request, name: str | None, at_least: float):
        with EDIT_LOCK:
            choices, values = frequent_choices(_editor(request), name or "", float(at_least))
        return gr.update(choices=choices, value=values)

    def on_drop(request: gr.Request, lang: str, name: str | None, tags: list[str], at_least: float):
        with EDIT_LOCK:
            ed = _editor(request)
            if ed is None:
                return i18n.text("taghelp.no_editor", lang, level="error"), gr.update()
            n = drop_from_folder(ed, name or "", list(tags or []))
            choices, values = frequent_choices(ed, name or "", float(at_least))
        text = i18n.text("taghelp.dropped", lang, n=n, tags=", ".join(tags or []) or "—", folder=name or "—")
        return (text if n else i18n.text("taghelp.none", lang)), gr.update(choices=choices, value=values)

    lookup.focus(on_lookup_focus, [tagger_model, ctx.lang], lookup, show_progress="hidden")
    to_tags.click(append_tag, [op_tags, lookup], op_tags)
    to_new.click(lambda tag: tag or "", lookup, op_new)
    to_caption.click(append_tag, [caption, lookup], caption)
    folder.focus(on_folder_focus, folder, folder, show_progress="hidden")
    gr.on([folder.change, share.release], on_frequent, [folder, share], frequent, show_progress="hidden")
    return drop.click(on_drop, [ctx.lang, folder, frequent, share], [message, frequent])
