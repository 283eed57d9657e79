"""简体中文 / English for every visible string.

There is one table, STRINGS: key → (中文, English). Each UI module adds its own keys at import
(prefixed with its tab name) through `add`, and binds components with `Translator.bind` so the
language switch can relabel the whole page.
"""

from __future__ import annotations

from collections.abc import Callable
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


def both(render: Callable[[str], str], **extra: Any) -> dict[str, Any]:
    """The text `render(lang)` in every language, plus extra display settings (e.g. elem_classes)."""
    return {**{lang: render(lang) for _, lang in LANG_CHOICES}, **extra}


def pick(text: Any, lang: str) -> str:
    """A `both` value shown in lang (a plain str is shown as it is; None as nothing)."""
    if isinstance(text, dict):
        return text.get(lang, "")
    return text or ""


def follow(component: Any, lang_state: Any, value: Any = None) -> Any:
    """A State holding `component`'s text in both languages; the component shows it in the current language.

    Handlers write `both(...)` into the returned State instead of a string into the component; a `both` value
    with elem_classes also sets the component's classes (ok / error colours).
    """
    import gradio as gr

    state = gr.State(value)

    def render(text: Any, lang: str):
        if text is None:
            return gr.update()
        extra = {"elem_classes": text["elem_classes"]} if isinstance(text, dict) and "elem_classes" in text else {}
        return gr.update(value=pick(text, lang), **extra)

    for event in (state.change, lang_state.change):
        event(render, [state, lang_state], component, show_progress="hidden")
    return state


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
