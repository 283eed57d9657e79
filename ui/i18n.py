"""简体中文 / English for every visible string.

There is one table, STRINGS: key → (中文, English). Each UI module adds its own keys at import
(prefixed with its tab name) through `add`, and binds components with `Translator.bind` so the
language switch can relabel the whole page.

Text a handler makes (a message, a count) is kept in both languages: the handler returns
`both(render, lang)`, a Text (a str in lang that also holds its other translations), into a State made by
`follow`, which shows it in the current language; the page's one language-switch event shows every followed
line again (`followed` / `rendered`). That is how every status line follows the switch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LANG_CHOICES = [("简体中文", "zh"), ("English", "en")]

STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("丹炉 Danlu · LoRA 炼丹炉", "Danlu 丹炉 · LoRA trainer"),
    "app.subtitle": ("SD1.5 / SD2.x / SDXL / Z-Image / FLUX.1 / Chroma / Qwen-Image 的本地 LoRA 训练：所见即所得。",
                     "Local LoRA training for SD1.5 / SD2.x / SDXL / Z-Image / FLUX.1 / Chroma / Qwen-Image: "
                     "what you see is what you get."),
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


class Text(str):
    """A text in the language it was made for that also knows itself in the other languages.

    It is the str a handler returned before (so callers and tests read it as one); `follow` shows its other
    translations when the language changes. `classes`: the elem_classes it is shown with (None: the line's own).
    """

    texts: dict[str, str]
    lang: str
    classes: list[str] | None

    def __new__(cls, texts: dict[str, str], lang: str, classes: list[str] | None = None) -> Text:
        obj = super().__new__(cls, texts[lang])
        obj.texts, obj.lang, obj.classes = dict(texts), lang, classes
        return obj

    def __reduce__(self):
        return Text, (self.texts, self.lang, self.classes)

    def __repr__(self) -> str:  # gradio notices a State's change by its repr: every translation counts
        return f"Text({self.texts!r}, {self.lang!r})"

    def __deepcopy__(self, memo: dict) -> Text:
        return self  # immutable

    def __eq__(self, other: object) -> bool:
        # Equal as text in every language: a state holding one Text changes when any translation differs.
        return str.__eq__(self, other) and getattr(other, "texts", None) in (None, self.texts)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__

    def to(self, lang: str) -> str:
        return self.texts.get(lang, str(self))


# The one status mechanism: a message line's level is its colour (the danlu-* classes of ui/app.py's CSS):
# ok green, warn orange, error red, in every tab.
LEVELS: dict[str, list[str]] = {"ok": ["danlu-ok"], "warn": ["danlu-warn"], "error": ["danlu-error"]}


def both(render: Callable[[str], str], lang: str, classes: list[str] | None = None, level: str | None = None) -> Text:
    """`render(lang)` as a Text that also holds render(other language); `level` ('ok', 'warn', 'error') colours
    it (else `classes`, else the line's own classes)."""
    return Text({code: render(code) for _, code in LANG_CHOICES}, lang, list(LEVELS[level]) if level else classes)


def text(key: str, lang: str, level: str | None = None, **fmt: Any) -> Text:
    """t(key, lang, **fmt) as a Text that keeps every language, coloured by `level` when given."""
    return both(lambda code: t(key, code, **fmt), lang, level=level)


def level_of(levels: Iterable[str]) -> str:
    """The status level of a list of core.checks levels ('error', 'warning', 'info'): the worst one wins."""
    found = set(levels)
    return "error" if "error" in found else "warn" if "warning" in found else "ok"


def with_error(key: str, error: Any, lang: str, sep: str = "\n\n") -> Text:
    """t(key) and then error.text (a core.errors DanluError: message and hint), as a Text in every language."""
    return both(lambda code: f"{t(key, code)}{sep}{error.text(code)}", lang, level="error")


def failed(error: Any, lang: str) -> Text:
    """'✖' and error.text (a DanluError, or any exception: its type and message), red, in every language."""
    def render(code: str) -> str:
        return f"✖ {error.text(code)}" if hasattr(error, "text") else f"✖ {type(error).__name__}: {error}"

    return both(render, lang, level="error")


def pick(text: Any, lang: str) -> str:
    """A text shown in lang: a Text in that language, a plain str as it is, None as nothing."""
    if isinstance(text, Text):
        return text.to(lang)
    return text or ""


# lang State -> [(text State, component)]: the lines `follow` made, for the page's language switch to re-render.
_FOLLOWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _render(text: Any, lang: str, component: Any) -> Any:
    """The line's update: the text in lang, with the Text's classes, or else the component's own (so a line
    that showed an error in red shows the next plain text in its usual colour)."""
    import gradio as gr

    if text is None:
        return gr.update()
    classes = text.classes if isinstance(text, Text) and text.classes is not None else component.elem_classes
    return gr.update(value=pick(text, lang), elem_classes=list(classes or []))


def followed(lang_state: Any) -> list[tuple[Any, Any]]:
    """(text State, component) of every line that follows this language State."""
    return list(_FOLLOWED.get(lang_state, []))


def rendered(lang_state: Any, texts: Sequence[Any], lang: str) -> list[Any]:
    """The followed lines' updates for a new language (texts: their States' values, in `followed` order)."""
    return [_render(text, lang, component) for text, (_, component) in zip(texts, followed(lang_state), strict=True)]


def follow(component: Any, lang_state: Any, value: Any = None) -> Any:
    """A State holding `component`'s text in both languages; the component shows it in the current language.

    Handlers write their text (a `both(...)` Text, or a plain str that stays as it is) into the returned State
    instead of into the component; a Text with classes also sets the component's classes (ok / error colours),
    any other text puts back the component's own.
    The language switch (ui/app.py) re-renders all followed lines in its one event: a listener per line would
    double the time the switch takes.
    """
    import gradio as gr

    state = gr.State(value)

    def render(text: Any, lang: str):
        return _render(text, lang, component)

    state.change(render, [state, lang_state], component, show_progress="hidden")
    _FOLLOWED.setdefault(lang_state, []).append((state, component))
    return state


@dataclass
class Translator:
    """Remembers which component shows which key, so one switch relabels the page."""

    bindings: list[tuple[Any, dict[str, str]]] = field(default_factory=list)

    def bind(self, component: Any, **attrs: str | Callable[[str], Any]) -> Any:
        """bind(button, value="train.start"), bind(slider, label="field.network.rank", info="..."); an attribute
        may also be a function of the language, e.g. choices=ui.choices.labelled(values) for a radio's labels."""
        for key in attrs.values():
            if not callable(key) and key not in STRINGS:
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
            out.append(gr.update(**{attr: key(lang) if callable(key) else t(key, lang)
                                    for attr, key in attrs.items()}))
        return out
