"""Dataset folders in the kohya layout: a parent holding `<repeats>_<name>` subfolders of images.

`list_subsets` is what the trainer reads; `folder_problems` lists every subfolder it would not use,
each with the exact fix, so nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DanluError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_NAME = re.compile(r"^(\d+)_(.*)$", re.DOTALL)


@dataclass
class Subset:
    """One `<repeats>_<name>` folder: its images (sorted, not recursive) are seen `repeats` times per epoch."""

    path: Path
    repeats: int
    name: str
    images: list[Path] = field(default_factory=list)

    def caption_path(self, image: Path, caption_extension: str = ".txt") -> Path:
        return image.with_suffix(caption_extension)


@dataclass(frozen=True)
class FolderProblem:
    """A subfolder or file the trainer will not use, and what to do about it."""

    path: Path
    code: str  # bad_name, zero_repeats, empty, loose_images
    en: str
    zh: str
    fix: str = ""  # the suggested new folder name, when there is one

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in folder (not recursive), by name. Hidden files (._x.png) are not images."""
    try:
        return sorted((p for p in Path(folder).iterdir() if p.is_file() and is_image(p)), key=lambda p: p.name)
    except OSError:
        return []


def parse_subset_name(name: str) -> tuple[int, str] | None:
    """'10_sks dog' → (10, 'sks dog'); None when the name has no positive repeat count before the first '_'."""
    m = _NAME.match(name)
    if not m:
        return None
    repeats = int(m.group(1))
    if repeats < 1:
        return None
    return repeats, m.group(2)


def suggest_subset_name(name: str, repeats: int = 10) -> str:
    """The folder name to rename a malformed subfolder to: 'cat' → '10_cat', '10-cat' → '10_cat', '0_cat' → '1_cat'."""
    m = re.match(r"^\s*(\d+)\s*[-_ .]+\s*(.+)$", name)
    if m:
        n = int(m.group(1))
        return f"{n if n >= 1 else 1}_{m.group(2).strip()}"
    m = re.match(r"^\s*(\d+)\s*$", name)
    if m:
        return f"{max(1, int(m.group(1)))}_concept"
    return f"{repeats}_{name.strip() or 'concept'}"


def _subdirs(parent: Path) -> list[Path]:
    return sorted((p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def folder_problems(parent: Path) -> list[FolderProblem]:
    """Everything in parent the trainer would ignore: malformed names, 0 repeats, empty subsets, loose images."""
    parent = Path(parent)
    out: list[FolderProblem] = []
    if not parent.is_dir():
        return out
    for sub in _subdirs(parent):
        parsed = parse_subset_name(sub.name)
        images = list_images(sub)
        if parsed is None:
            fix = suggest_subset_name(sub.name)
            if _NAME.match(sub.name):
                out.append(FolderProblem(sub, "zero_repeats",
                                         f"'{sub.name}': 0 repeats means the images are never used; rename to {fix}.",
                                         f"“{sub.name}”：重复次数为 0，图片不会被使用；请改名为 {fix}。", fix))
            elif images:
                out.append(FolderProblem(sub, "bad_name",
                                         f"'{sub.name}' is not named <repeats>_<name>, so its {len(images)} "
                                         "images are "
                                         f"ignored; rename to {fix}.",
                                         f"“{sub.name}”不符合 <重复次数>_<名称> 的命名，"
                                         f"其中 {len(images)} 张图片会被忽略；"
                                         f"请改名为 {fix}。", fix))
            continue
        if not images:
            out.append(FolderProblem(sub, "empty", f"'{sub.name}' has no images ({', '.join(IMAGE_EXTENSIONS)}).",
                                     f"“{sub.name}”中没有图片（{', '.join(IMAGE_EXTENSIONS)}）。"))
    loose = list_images(parent)
    if loose and any(parse_subset_name(s.name) for s in _subdirs(parent)):
        out.append(FolderProblem(parent, "loose_images",
                                 f"{len(loose)} images lie directly in {parent.name}; only <repeats>_<name> "
                                 "subfolders "
                                 f"are read, so they are ignored. Move them into a subfolder to train on them.",
                                 f"{len(loose)} 张图片直接放在 {parent.name} 中；只会读取 <重复次数>_<名称> 子文件夹，"
                                 f"这些图片会被忽略。要训练它们，请移入子文件夹。"))
    return out


def list_subsets(parent: Path, caption_extension: str = ".txt") -> list[Subset]:
    """The usable subsets of a kohya parent folder, sorted by folder name.

    Raises DanluError when the folder is missing, is itself an image folder (the most common mistake:
    pointing at `10_name` or at a plain folder of images instead of the parent), or holds no
    valid `<repeats>_<name>` subfolder with images.
    """
    parent = Path(parent)
    if not parent.exists():
        raise DanluError(f"Dataset folder not found: {parent}", f"找不到训练集文件夹：{parent}",
                         "Check the path in dataset.dir (copy it from the file manager's address bar).",
                         "请检查 dataset.dir 中的路径（可从文件管理器地址栏复制）。", key="dataset.dir")
    if not parent.is_dir():
        raise DanluError(f"Dataset path is a file, not a folder: {parent}", f"训练集路径是文件而不是文件夹：{parent}",
                         "Set dataset.dir to the parent folder that holds <repeats>_<name> subfolders.",
                         "请把 dataset.dir 设为包含 <重复次数>_<名称> 子文件夹的父文件夹。", key="dataset.dir")
    subsets = []
    for sub in _subdirs(parent):
        parsed = parse_subset_name(sub.name)
        if parsed is None:
            continue
        images = list_images(sub)
        if images:
            subsets.append(Subset(sub, parsed[0], parsed[1], images))
    if subsets:
        return subsets

    loose = list_images(parent)
    own = parse_subset_name(parent.name)
    if loose and own is not None:
        raise DanluError(
            f"{parent} is a concept folder ({own[0]} repeats of '{own[1]}'), not the dataset folder. "
            f"Set the dataset folder to its parent: {parent.parent}",
            f"{parent} 是概念子文件夹（'{own[1]}' 重复 {own[0]} 次），不是训练集文件夹。"
            f"请把训练集文件夹设为它的上一级：{parent.parent}",
            f"The dataset folder is the parent that holds {parent.name}/, not {parent.name}/ itself.",
            f"训练集文件夹是包含 {parent.name}/ 的那一级，而不是 {parent.name}/ 本身。", key="dataset.dir")
    if loose:
        raise DanluError(
            f"{parent} holds {len(loose)} images directly. Training reads <repeats>_<name> subfolders "
            f"(for example {parent.name}/10_{_concept(parent.name)}/), so none would be used.",
            f"{parent} 中直接放了 {len(loose)} 张图片。训练读取的是 <重复次数>_<名称> 子文件夹"
            f"（例如 {parent.name}/10_{_concept(parent.name)}/），这些图片都不会被使用。",
            "Let the Dataset tab build the folder for you, or move the images (with their captions) into a "
            "subfolder named like 10_name.",
            "可以在“选图”页让丹炉自动建好文件夹，或把图片（连同标注）移入名为 10_名称 的子文件夹。", key="dataset.dir")
    bad = [p for p in folder_problems(parent) if p.fix]
    if bad:
        fixes = "; ".join(f"{p.path.name} → {p.fix}" for p in bad)
        raise DanluError(f"{parent} has no subfolder named <repeats>_<name> (like 10_cat). Rename: {fixes}.",
                         f"{parent} 中没有 <重复次数>_<名称>（如 10_cat）形式的子文件夹。请改名：{fixes}。",
                         "The number before '_' is how many times each image is seen per epoch.",
                         "“_”前的数字是每轮中每张图片重复的次数。", key="dataset.dir")
    raise DanluError(f"{parent} has no images in <repeats>_<name> subfolders "
                     f"(expected e.g. {parent.name}/10_cat/*.png).",
                     f"{parent} 的 <重复次数>_<名称> 子文件夹中没有图片（应为例如 {parent.name}/10_cat/*.png）。",
                     f"Supported images: {', '.join(IMAGE_EXTENSIONS)}.",
                     f"支持的图片格式：{', '.join(IMAGE_EXTENSIONS)}。",
                     key="dataset.dir")


def _concept(name: str) -> str:
    cleaned = re.sub(r"[^\w\- ]+", "", name).strip()
    return cleaned or "concept"
