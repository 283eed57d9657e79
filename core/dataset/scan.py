"""Scan a dataset folder: every image checked, its caption read, its bucket found, the steps counted.

This is what the Dataset tab shows. Headers only by default (fast); `decode=True` also decodes every
image (corrupt data, near duplicates). The bucket comes from core.dataset.buckets, as in training.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig, default_config, from_dict
from core.dataset import FolderProblem, Subset, folder_problems, is_image, list_subsets
from core.dataset.buckets import Bucket, bucket_for, plan_sizes, resolutions_of
from core.dataset.captions import CaptionRead, read_caption
from core.dataset.images import OTHER_IMAGE_EXTENSIONS, ImageInfo, Issue, inspect_image, issue, size_issues
from core.dataset.steps import StepPlan, plan_for
from core.dataset.validation_set import held_out, holdout_key

CAPTION_MESSAGES: dict[str, tuple[str, str]] = {
    "no_caption": ("No caption file ({ext}); '{name}' (the folder name) is used as its caption.",
                   "没有标注文件（{ext}）；将用文件夹名“{name}”作为标注。"),
    "caption_not_utf8": ("Caption saved as {encoding}, not UTF-8; read correctly here, but other tools see garbage. "
                         "Saving it in the Tagging step rewrites it as UTF-8.",
                         "标注文件是 {encoding} 编码而非 UTF-8；这里能正确读取，但其他工具会显示乱码。"
                         "在“打标”步骤保存即可转为 UTF-8。"),
    "caption_bom": ("Caption starts with a UTF-8 BOM; it is removed for training. "
                    "Saving it in the Tagging step drops it.",
                    "标注文件以 UTF-8 BOM 开头；训练时会去掉。在“打标”步骤保存即可去除。"),
    "caption_empty": ("Caption file is empty; the image trains with no caption (only the trigger word, if set).",
                      "标注文件为空；该图片将以空标注训练（若设置了触发词则只有触发词）。"),
    "caption_not_text": ("Caption {path} is not text (binary data, or over 1 MB); it is not read. Replace it with the "
                         "image's tags as UTF-8 text, or delete it.",
                         "标注文件 {path} 不是文本（二进制数据或超过 1 MB），不会被读取。请换成该图片的标签文本"
                         "（UTF-8），或删除它。"),
    "orphan_caption": ("Caption without an image: no image named {stem}.* next to it.",
                       "标注文件没有对应的图片：旁边没有名为 {stem}.* 的图片。"),
    "caption_ext_mismatch": ("{count} caption files end in {found}, but the caption extension is {ext}; they are not "
                             "read. Set dataset.caption_extension = \"{found}\".",
                             "有 {count} 个标注文件以 {found} 结尾，但标注扩展名设置为 {ext}，它们不会被读取。"
                             "请设 dataset.caption_extension = \"{found}\"。"),
    "exact_duplicate": ("Exact duplicate of {other}; it is trained twice as often. Delete one copy.",
                        "与 {other} 完全相同，会被训练两倍次数。请删除其中一份。"),
    "near_duplicate": ("Looks almost the same as {other} (resized or re-saved copy?).",
                       "与 {other} 几乎相同（可能是缩放或另存的副本）。"),
}
CAPTION_EXTENSIONS = (".txt", ".caption")


def note(code: str, level: str, **fmt: Any) -> Issue:
    en, zh = CAPTION_MESSAGES[code]
    return Issue(code, level, en.format(**fmt), zh.format(**fmt))


# The settings a scan's result depends on (the page rescans when one changes).
SCAN_KEYS = ("dataset.resolution", "dataset.resolutions", "dataset.min_bucket_reso", "dataset.max_bucket_reso",
             "dataset.bucket_reso_steps", "dataset.enable_bucket", "dataset.bucket_no_upscale",
             "dataset.caption_extension", "training.batch_size", "training.epochs",
             "training.gradient_accumulation_steps", "training.max_train_steps", "saving.every_n_epochs")


def scan_key(config: Any) -> tuple:
    cfg = as_config(config)
    return tuple(tuple(v) if isinstance(v, list) else v for v in (cfg.get(k) for k in SCAN_KEYS))


def as_config(config: Any = None) -> RunConfig:
    """A RunConfig from a RunConfig, its to_dict() form (what the page holds), or None (the defaults)."""
    if config is None:
        return default_config()
    return config if isinstance(config, RunConfig) else from_dict(config)


@dataclass
class Entry:
    """One image as training will see it."""

    info: ImageInfo
    subset: Subset
    is_reg: bool = False
    bucket: Bucket | None = None
    caption: CaptionRead | None = None  # None: no caption file
    issues: list[Issue] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def ok(self) -> bool:
        return self.bucket is not None and not any(i.level == "error" for i in self.issues)


@dataclass
class FileNote:
    """A finding about something that is not a trainable image (orphan captions, other formats)."""

    path: Path
    issue: Issue


@dataclass
class DatasetScan:
    parent: Path
    config: RunConfig
    subsets: list[Subset]
    reg_subsets: list[Subset]
    entries: list[Entry]
    problems: list[FolderProblem]
    notes: list[FileNote]
    plan: StepPlan
    seconds: float
    decoded: bool

    def count(self, level: str) -> int:
        return sum(1 for e in self.entries for i in e.issues if i.level == level) + \
            sum(1 for n in self.notes if n.issue.level == level)

    def rows(self, lang: str, min_level: str = "info") -> list[tuple[str, str, str]]:
        """(file relative to the parent, level, message) for the page's check list: errors first."""
        order = {"error": 0, "warn": 1, "info": 2}
        limit = order[min_level]
        out = []
        for e in self.entries:
            for i in e.issues:
                if order[i.level] <= limit:
                    out.append((self.rel(e.path), i.level, i.text(lang)))
        for n in self.notes:
            if order[n.issue.level] <= limit:
                out.append((self.rel(n.path), n.issue.level, n.issue.text(lang)))
        for p in self.problems:
            out.append((self.rel(p.path) + "/", "warn", p.text(lang)))
        return sorted(out, key=lambda r: (order[r[1]], r[0]))

    def rel(self, path: Path) -> str:
        for root in (self.parent, *(s.path.parent for s in self.reg_subsets)):
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                continue
        return str(path)


def _caption_issues(entry: Entry, ext: str) -> None:
    cap_path = entry.path.with_suffix(ext)
    if not cap_path.is_file():
        entry.issues.append(note("no_caption", "warn", ext=ext, name=entry.subset.name))
        return
    entry.caption = read_caption(cap_path)
    problem = entry.caption.problem
    if problem == "not_utf8":
        entry.issues.append(note("caption_not_utf8", "warn", encoding=entry.caption.encoding.upper()))
    elif problem == "bom":
        entry.issues.append(note("caption_bom", "info"))
    elif problem == "empty":
        entry.issues.append(note("caption_empty", "warn"))
    elif problem == "not_text":
        entry.issues.append(note("caption_not_text", "error", path=cap_path))


def _folder_notes(subset: Subset, ext: str) -> list[FileNote]:
    """Orphan captions, captions under another extension, and images the trainer will not read."""
    notes = []
    stems = set()
    try:
        files = sorted(p for p in subset.path.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return notes
    for p in files:
        if is_image(p) or p.suffix.lower() in OTHER_IMAGE_EXTENSIONS:
            stems.add(p.stem)
    other_caps = defaultdict(int)
    for p in files:
        suffix = p.suffix.lower()
        if suffix == ext.lower() and p.stem not in stems:
            notes.append(FileNote(p, note("orphan_caption", "warn", stem=p.stem)))
        elif suffix in CAPTION_EXTENSIONS and suffix != ext.lower() and p.stem in stems:
            other_caps[suffix] += 1
        elif suffix in OTHER_IMAGE_EXTENSIONS:
            notes.append(FileNote(p, issue("other_format", "warn", ext=suffix)))
    for found, count in other_caps.items():
        if not any(p.suffix.lower() == ext.lower() for p in files):
            notes.append(FileNote(subset.path, note("caption_ext_mismatch", "warn", count=count, found=found,
                                                    ext=ext)))
    return notes


def _quick_key(path: Path) -> str:
    """The first 64 KiB and the last 4 KiB: tells nearly all same-size files apart without reading them whole."""
    with open(path, "rb") as f:
        head = f.read(65536)
        size = f.seek(0, 2)
        f.seek(max(len(head), size - 4096))
        return hashlib.blake2b(head + f.read(), digest_size=16).hexdigest()


def _duplicates(entries: list[Entry], rel) -> None:
    """Exact duplicates by content (only equal-size files with equal quick keys are hashed whole);
    near duplicates by dHash plus mean colour (decode pass only)."""
    by_key: dict[tuple[int, str], list[Entry]] = defaultdict(list)
    by_size: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.info.size_bytes:
            by_size[e.info.size_bytes].append(e)
    for size, group in by_size.items():
        if len(group) > 1:
            for e in group:
                by_key[(size, _quick_key(e.path))].append(e)
    exact: set[int] = set()
    for (size, _), group in by_key.items():
        if len(group) < 2:
            continue
        seen: dict[str, Entry] = {}
        for e in group:
            digest = hashlib.blake2b(e.path.read_bytes(), digest_size=16).hexdigest() if size > 69632 else ""
            if digest in seen:
                e.issues.append(note("exact_duplicate", "warn", other=rel(seen[digest].path)))
                exact.add(id(e))
            else:
                seen[digest] = e
    hashed = [e for e in entries if e.info.dhash is not None and id(e) not in exact]
    for i, e in enumerate(hashed):
        for other in hashed[:i]:
            if (e.info.dhash ^ other.info.dhash).bit_count() <= 4 and _close_colour(e.info, other.info):
                e.issues.append(note("near_duplicate", "warn", other=rel(other.path)))
                break


def _close_colour(a: ImageInfo, b: ImageInfo) -> bool:
    """dHash ignores colour (flat shapes of different colours hash alike); the mean colour must match too."""
    if a.mean_rgb is None or b.mean_rgb is None:
        return True
    return max(abs(x - y) for x, y in zip(a.mean_rgb, b.mean_rgb, strict=False)) <= 10


def _inspect(path: Path, decode: bool, cache: dict | None) -> ImageInfo:
    """inspect_image, remembered by (path, size, mtime) so changing the bucket settings rescans in no time."""
    if cache is None:
        return inspect_image(path, decode=decode)
    try:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return inspect_image(path, decode=decode)
    hit = cache.get(key)
    if hit is None or (decode and hit.dhash is None and hit.ok):
        hit = cache[key] = inspect_image(path, decode=decode)
    return hit


def scan_dataset(parent: Path, config: Any = None, *, reg_dir: Path | None = None,
                 decode: bool = False, cache: dict | None = None) -> DatasetScan:
    """Check everything under a kohya parent folder. Raises DanluError when the folder cannot be used at all.

    cache: a dict kept by the caller between scans (header facts per file, keyed by path, size and mtime).
    """
    t0 = time.perf_counter()
    cfg = as_config(config)
    d = cfg.dataset
    parent = Path(parent)
    subsets = list_subsets(parent, d.caption_extension)
    problems = folder_problems(parent)
    reg_subsets = list_subsets(Path(reg_dir), d.caption_extension) if reg_dir else []
    if reg_dir:
        problems += folder_problems(Path(reg_dir))
    entries: list[Entry] = []
    notes: list[FileNote] = []
    for subsets_, is_reg in ((subsets, False), (reg_subsets, True)):
        for subset in subsets_:
            notes += _folder_notes(subset, d.caption_extension)
            for path in subset.images:
                info = _inspect(path, decode, cache)
                entry = Entry(info, subset, is_reg, issues=list(info.issues))
                if info.ok and info.width and info.height:
                    entry.bucket = bucket_for(d, info.width, info.height)
                    entry.issues += size_issues(info, entry.bucket, no_upscale=d.bucket_no_upscale and
                                                d.enable_bucket, resolution=d.resolution)
                if not is_reg:
                    _caption_issues(entry, d.caption_extension)
                entries.append(entry)
    scan = DatasetScan(parent, cfg, subsets, reg_subsets, entries, problems, notes, None, 0.0, decode)
    _duplicates([e for e in entries if not e.is_reg], scan.rel)

    # a held-out validation share is not trained: the plan leaves it out as the trainer does
    # (core.dataset.validation_set)
    share = 0.0 if d.validation_dir else d.validation_split
    held = held_out([holdout_key(e.subset.path.name, e.path.name) for e in entries if e.ok and not e.is_reg], share)

    def sizes(s: Subset) -> list:
        trained = [e for e in entries if e.subset is s and e.ok
                   and (e.is_reg or holdout_key(s.path.name, e.path.name) not in held)]
        if len(resolutions_of(d)) < 2:
            return [e.bucket.size for e in trained]
        return plan_sizes(d, [(e.info.width, e.info.height) for e in trained])  # each image at each resolution

    scan.plan = plan_for(cfg, [(s.path.name, s.repeats, sizes(s)) for s in subsets],
                         [(s.path.name, s.repeats, sizes(s)) for s in reg_subsets])
    scan.seconds = time.perf_counter() - t0
    return scan
