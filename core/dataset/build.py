"""Build the `<parent>/<repeats>_<name>/` folder training needs from whatever the user has.

A folder that is already a kohya parent is used as it is; a concept folder (`10_cat`) leads to its
parent. A plain or nested folder of images is copied (moved only on request) with its captions into
a new concept folder. Nothing is ever overwritten: an identical file already there is skipped, a
different one with the same name gets a new name (its caption follows it).
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.dataset import IMAGE_EXTENSIONS, is_image, list_images, parse_subset_name
from core.errors import DanluError
from core.fsutil import safe_child, temp_path_for

CAPTION_EXTENSIONS = (".txt", ".caption")
JPEG_ALIASES = (".jfif", ".jpe")  # JPEG files Windows browsers save; the trainer only reads .jpg/.jpeg
REPEATS_RULE = ("repeats = 200 ÷ images, rounded, between 1 and 20 (about 200 image views per epoch: "
                "20 images → 10, 12 → 17, 50 → 4, 200+ → 1).",
                "重复次数 = 200 ÷ 图片数，四舍五入，限定在 1–20（每轮约 200 次图片训练：20 张 → 10，12 张 → 17，"
                "50 张 → 4，200 张以上 → 1）。")
_BAD_NAME_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def suggest_repeats(n_images: int) -> int:
    """Fewer images → more repeats, so a short dataset still gets about 200 image views per epoch."""
    if n_images <= 0:
        return 10
    return max(1, min(20, round(200 / n_images)))


@dataclass
class BuildResult:
    """What the builder did. kind: 'kohya' (used as is), 'subset' (parent of a concept folder), 'plain', 'nested'."""

    kind: str
    parent: Path
    subset_dir: Path | None = None
    written: list[Path] = field(default_factory=list)        # new files in the concept folder
    skipped: list[Path] = field(default_factory=list)        # identical files already there
    renamed: list[tuple[Path, Path]] = field(default_factory=list)  # (source, new destination) after a clash
    moved: bool = False

    @property
    def images(self) -> int:
        return sum(1 for p in self.written + self.skipped if is_image(p))


def detect_shape(source: Path) -> str:
    """'kohya', 'subset', 'plain', 'nested' or 'empty' for a folder the user picked."""
    source = Path(source)
    subdirs = [p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if any(parse_subset_name(p.name) and list_images(p) for p in subdirs):
        return "kohya"
    if list_images(source):
        return "subset" if parse_subset_name(source.name) else "plain"
    if any(_walk_images(source)):
        return "nested"
    return "empty"


def _walk_images(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if is_image(p) or p.suffix.lower() in JPEG_ALIASES:
                yield p


def check_concept_name(name: str) -> str:
    """The concept (trigger) name as a folder-name part; raises DanluError naming what is wrong."""
    name = (name or "").strip()
    if not name or name in (".", "..") or _BAD_NAME_CHARS.search(name):
        raise DanluError(f"The concept name {name!r} cannot be used in a folder name.",
                         f"概念名 {name!r} 不能用作文件夹名。",
                         'Use a word such as "sks dog" or "小明", without / \\ : * ? " < > |.',
                         '请用例如 "sks dog" 或 "小明" 这样的词，不要含 / \\ : * ? " < > |。',
                         key="dataset.trigger_word")
    return name


def _captions_of(image: Path, caption_extension: str) -> list[Path]:
    exts = dict.fromkeys((caption_extension, *CAPTION_EXTENSIONS))
    return [image.with_suffix(e) for e in exts if image.with_suffix(e).is_file()]


def _free_stem(folder: Path, stem: str, suffixes: list[str]) -> str:
    n = 0
    candidate = stem
    while any((folder / (candidate + s)).exists() for s in suffixes):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def _transfer(src: Path, dest: Path, move: bool) -> None:
    if move:
        shutil.move(str(src), str(dest))
        return
    tmp = temp_path_for(dest)
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)


def place_files(pairs: list[tuple[Path, str]], subset_dir: Path, *, move: bool = False,
                caption_extension: str = ".txt", result: BuildResult | None = None) -> BuildResult:
    """Copy (or move) images, each with its caption files, into subset_dir under the given stems."""
    result = result or BuildResult("plain", subset_dir.parent, subset_dir)
    subset_dir.mkdir(parents=True, exist_ok=True)
    for src, stem in pairs:
        ext = ".jpg" if src.suffix.lower() in JPEG_ALIASES else src.suffix
        captions = _captions_of(src, caption_extension)
        dest = subset_dir / (stem + ext)
        if dest.exists() and filecmp.cmp(src, dest, shallow=False):
            result.skipped.append(dest)
            continue
        free = _free_stem(subset_dir, stem, [ext, *(c.suffix for c in captions)])
        dest = subset_dir / (free + ext)
        if free != stem:
            result.renamed.append((src, dest))
        _transfer(src, dest, move)
        result.written.append(dest)
        for cap in captions:
            cap_dest = subset_dir / (free + cap.suffix)
            _transfer(cap, cap_dest, move)
            result.written.append(cap_dest)
    return result


def build_dataset(source: Path, *, name: str, repeats: int | None = None, parent: Path | None = None,
                  move: bool = False, caption_extension: str = ".txt") -> BuildResult:
    """Make source trainable. Returns where the kohya parent is and what was written.

    parent defaults to `<source>-dataset` next to the source when copying, and to the source itself
    when moving (the images go into a subfolder of their own folder).
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise DanluError(f"Folder not found: {source}", f"找不到文件夹：{source}",
                         "Paste the folder's full path (from the file manager's address bar).",
                         "请粘贴文件夹的完整路径（可从文件管理器地址栏复制）。", key="dataset.dir")
    kind = detect_shape(source)
    if kind == "kohya":
        return BuildResult(kind, source)
    if kind == "subset":
        return BuildResult(kind, source.parent, source)
    if kind == "empty":
        raise DanluError(f"No images in {source} or its subfolders.", f"{source} 及其子文件夹中没有图片。",
                         f"Supported: {', '.join(IMAGE_EXTENSIONS)}.", f"支持的格式：{', '.join(IMAGE_EXTENSIONS)}。",
                         key="dataset.dir")
    name = check_concept_name(name)
    images = sorted(_walk_images(source)) if kind == "nested" else \
        [p for p in sorted(source.iterdir()) if p.is_file() and (is_image(p) or p.suffix.lower() in JPEG_ALIASES)]
    repeats = repeats or suggest_repeats(len(images))
    if repeats < 1:
        raise DanluError("Repeats must be at least 1.", "重复次数至少为 1。", key="repeats")
    if parent is None:
        parent = source if move else source.with_name(source.name + "-dataset")
    parent = Path(parent).expanduser()
    try:
        subset_dir = safe_child(parent, f"{repeats}_{name}")
    except ValueError:
        raise DanluError(f"'{repeats}_{name}' cannot be a folder inside {parent}.",
                         f"'{repeats}_{name}' 不能作为 {parent} 中的文件夹。", key="dataset.trigger_word") from None
    pairs = []
    taken: set[str] = set()
    for img in images:
        stem = "_".join(img.relative_to(source).with_suffix("").parts) if kind == "nested" else img.stem
        base, n = stem, 0
        while stem.lower() in taken:  # two files a.png and a.jpg, or a clash after flattening
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem.lower())
        pairs.append((img, stem))
    result = BuildResult(kind, parent, subset_dir, moved=move)
    return place_files(pairs, subset_dir, move=move, caption_extension=caption_extension, result=result)


def import_files(files: list[Path], parent: Path, *, name: str, repeats: int | None = None,
                 caption_extension: str = ".txt") -> BuildResult:
    """Uploaded files (images and captions, as the browser sent them) → `<parent>/<repeats>_<name>/`."""
    name = check_concept_name(name)
    files = [Path(f) for f in files]
    images = [f for f in files if is_image(f) or f.suffix.lower() in JPEG_ALIASES]
    if not images:
        raise DanluError("None of the uploaded files is an image.", "上传的文件中没有图片。",
                         f"Supported: {', '.join(IMAGE_EXTENSIONS)}.", f"支持的格式：{', '.join(IMAGE_EXTENSIONS)}。")
    repeats = repeats or suggest_repeats(len(images))
    parent = Path(parent)
    subset_dir = safe_child(parent, f"{repeats}_{name}")
    # Browsers upload each file into its own temporary folder: pair captions with images by name.
    captions = {(f.stem, f.suffix.lower()): f for f in files if f.suffix.lower() in CAPTION_EXTENSIONS}
    result = BuildResult("upload", parent, subset_dir)
    pairs = []
    for img in sorted(images, key=lambda p: p.name):
        for (stem, ext), cap in captions.items():
            if stem == img.stem and not img.with_suffix(ext).exists():
                shutil.copy2(cap, img.with_suffix(ext))
        pairs.append((img, img.stem))
    return place_files(pairs, subset_dir, caption_extension=caption_extension, result=result)
