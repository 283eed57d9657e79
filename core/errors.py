"""Errors that reach the user: a message and a hint, each in 简体中文 and English."""

from __future__ import annotations

import os

LANGS = ("zh", "en")


def current_lang() -> str:
    """The user's language: DANLU_LANG (zh/en), else the locale, else English."""
    lang = os.environ.get("DANLU_LANG", "").lower()
    if lang.startswith("zh"):
        return "zh"
    if lang.startswith("en"):
        return "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(var, "").lower().startswith("zh"):
            return "zh"
    return "en"


class DanluError(Exception):
    """An error with a bilingual message and an optional bilingual hint (what to do).

    `key` names the thing at fault (a config key path, a file) so callers can point at it.
    """

    def __init__(self, en: str, zh: str, hint_en: str = "", hint_zh: str = "", key: str = ""):
        self.en, self.zh, self.hint_en, self.hint_zh, self.key = en, zh, hint_en, hint_zh, key
        super().__init__(en)

    def message(self, lang: str | None = None) -> str:
        return self.zh if (lang or current_lang()) == "zh" else self.en

    def hint(self, lang: str | None = None) -> str:
        return self.hint_zh if (lang or current_lang()) == "zh" else self.hint_en

    def text(self, lang: str | None = None) -> str:
        """Message and hint on one block, as shown in the page or the console."""
        hint = self.hint(lang)
        return f"{self.message(lang)}\n{hint}" if hint else self.message(lang)

    def to_event(self) -> dict:
        return {"message": self.en, "message_zh": self.zh, "hint": self.hint_en, "hint_zh": self.hint_zh,
                "key": self.key}

    def __str__(self) -> str:
        return self.text()


class ConfigError(DanluError):
    """A run config that is not valid: names the key path, what was expected, and a fix."""
