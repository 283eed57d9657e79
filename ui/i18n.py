"""简体中文 / English for every visible string.

There is one table, STRINGS: key → (中文, English). Each UI module adds its own keys at import
(prefixed with its tab name) through `add`, and binds components with `Translator.bind` so the
language switch can relabel the whole page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LANG_CHOICES = [("简体中文", "zh"), ("English", "en")]

STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("丹炉 Danlu · LoRA 炼丹炉", "Danlu 丹炉 · LoRA trainer"),
    "app.subtitle": ("SD1.5 / SD2.x / SDXL / Z-Image 的本地 LoRA 训练：所见即所得。",
                     "Local LoRA training for SD1.5 / SD2.x / SDXL / Z-Image: what you see is what you get."),
    "app.language": ("语言", "Language"),
}


def add(table: dict[str, tuple[str, str]]) -> None:
    """Add a module's strings to the one table. A key defined twice with different text is a bug."""
    for key, pair in table.items():
        if key in STRINGS and STRINGS[key] != pair:
            raise ValueError(f"i18n key {key!r} defined twice")
        if len(pair) != 2 or not all(isinstance(s, str) and s for s in pair):
            raise ValueError(f"i18n key {key!r} needs both a Chinese and an English text")
        STRINGS[key] = pair


def t(key: str, lang: str, **fmt: Any) -> str:
    """The text of key in lang ('zh' or 'en'), formatted with fmt."""
    zh, en = STRINGS[key]
    text = zh if lang == "zh" else en
    return text.format(**fmt) if fmt else text


@dataclass
class Translator:
    """Remembers which component shows which key, so one switch relabels the page."""

    bindings: list[tuple[Any, dict[str, str]]] = field(default_factory=list)

    def bind(self, component: Any, **attrs: str) -> Any:
        """bind(button, value="train.start"), bind(slider, label="field.network.rank", info="...")."""
        for key in attrs.values():
            if key not in STRINGS:
                raise KeyError(f"i18n key {key!r} is not in the table")
        self.bindings.append((component, attrs))
        return component

    @property
    def components(self) -> list[Any]:
        return [c for c, _ in self.bindings]

    def updates(self, lang: str) -> list[Any]:
        import gradio as gr

        out = []
        for _component, attrs in self.bindings:
            out.append(gr.update(**{attr: t(key, lang) for attr, key in attrs.items()}))
        return out
