"""The auto-tagger's options, declared once: type, default and help in both languages.

`launcher.py tag` builds its flags from OPTIONS and the Tagging tab takes its defaults from them; both turn the
values into a TagRequest, which gives the taggers.wd14.TagOptions that selection reads.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any

from core.dataset.tags import split_tags
from taggers.catalog import default_thresholds
from taggers.wd14 import POLICIES, TagOptions


@dataclass(frozen=True)
class Option:
    name: str                  # TagRequest field; the CLI flag is --name with '-' for '_'
    type: type
    default: Any
    en: str
    zh: str
    choices: tuple | None = None


OPTIONS: tuple[Option, ...] = (
    Option("general_threshold", float, None,
           "general tags above this (default: the model's P=R threshold from taggers/catalog.py, 0.35 for a model "
           "not listed there)", "普通标签阈值（默认：taggers/catalog.py 中该模型的 P=R 阈值，未列出的模型为 0.35）"),
    Option("character_threshold", float, None, "character tags above this (default 0.85)",
           "角色标签阈值（默认 0.85）"),
    Option("mcut_general", bool, False, "MCut threshold for general tags", "普通标签用 MCut 自动阈值"),
    Option("mcut_character", bool, False, "MCut threshold for character tags (≥ 0.15)",
           "角色标签用 MCut 自动阈值（≥ 0.15）"),
    Option("rating", bool, False, "add the most probable rating tag at the end", "在末尾加上最可能的分级标签"),
    Option("trigger", str, "", "trigger word(s), comma-separated, put first in every caption",
           "触发词（逗号分隔），放在每条标注的最前面"),
    Option("exclude", str, "", "tags never written, comma-separated (long_hair = long hair)",
           "不写入的标签，逗号分隔（long_hair 与 long hair 相同）"),
    Option("no_character", bool, False, "write no character tags", "不写角色标签"),
    Option("policy", str, "skip", "images that already have a caption: skip (default), overwrite, append, prepend",
           "已有标注的图片：skip 跳过（默认）、overwrite 覆盖、append 追加到末尾、prepend 加到开头", POLICIES),
    Option("caption_extension", str, ".txt", "caption file extension, with the dot (default .txt)",
           "标注文件扩展名，带点（默认 .txt）"),
    Option("batch_size", int, 8, "images per model run when the model allows batches",
           "模型支持批处理时每次运行的图片数"),
)
DEFAULTS = {o.name: o.default for o in OPTIONS}


@dataclass
class TagRequest:
    """One auto-tagging run: the model and the value of every option."""

    model: str
    general_threshold: float | None = DEFAULTS["general_threshold"]
    character_threshold: float | None = DEFAULTS["character_threshold"]
    mcut_general: bool = DEFAULTS["mcut_general"]
    mcut_character: bool = DEFAULTS["mcut_character"]
    rating: bool = DEFAULTS["rating"]
    trigger: str = DEFAULTS["trigger"]
    exclude: str = DEFAULTS["exclude"]
    no_character: bool = DEFAULTS["no_character"]
    policy: str = DEFAULTS["policy"]
    caption_extension: str = DEFAULTS["caption_extension"]
    batch_size: int = DEFAULTS["batch_size"]

    def tag_options(self) -> TagOptions:
        """What tag selection reads; unset thresholds come from the model's row in taggers/catalog.py."""
        general, character = default_thresholds(self.model)
        return TagOptions(general_threshold=general if self.general_threshold is None else self.general_threshold,
                          character_threshold=character if self.character_threshold is None
                          else self.character_threshold,
                          general_mcut=self.mcut_general, character_mcut=self.mcut_character, rating=self.rating,
                          exclude=split_tags(self.exclude), trigger=self.trigger,
                          exclude_categories=["character"] if self.no_character else [])


assert [f.name for f in fields(TagRequest)][1:] == [o.name for o in OPTIONS], "TagRequest follows OPTIONS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, with its default and help."""
    for o in OPTIONS:
        flag = "--" + o.name.replace("_", "-")
        if o.type is bool:
            parser.add_argument(flag, action="store_true", help=o.en)
        else:
            parser.add_argument(flag, type=o.type, default=o.default, choices=o.choices, help=o.en)


def request_from(model: str, values: dict[str, Any]) -> TagRequest:
    """A TagRequest from {option name: value} (parsed flags, or the tab's components by name)."""
    known = {o.name: o for o in OPTIONS}
    out = {}
    for name, value in values.items():
        if name in known and value is not None:
            out[name] = known[name].type(value)
    return TagRequest(model, **out)
