"""Tagging tab, editor views: the tag table, filters, bulk operations, one image and its caption, pending edits.

Functions of a core.tags.TagEditor and the page's language; ui/tab_tagging.py keeps one editor per browser
session and wires these to its components.
"""

from __future__ import annotations

from core.tags import IDENTITY_SHARE, TagEditor, split_tags
from ui import i18n
from ui.i18n import t

OPS = ["remove", "replace", "add_front", "add_back", "trigger_first", "dedupe"]

i18n.add({
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
