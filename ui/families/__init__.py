"""The Model tab's family seam. A family whose base the page must ask about (its facts row's ``ui_questions``,
core/family_facts.py) has a module here named like its models package, with:

- ``build(ctx, lang0) -> parts``: its questions, in a group hidden until a base of the family is chosen;
- ``wire(ctx, parts, detected, message)``: their events;
- ``on_chosen(config, notes, lang) -> (config, notes)``: what choosing a base of the family sets, each change said
  in a note.

A family's name in the user's language is the i18n key ``model.family_name.<family>``, else its facts label.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from core import family_facts
from ui import i18n
from ui.i18n import t


def modules() -> list[ModuleType]:
    """The question modules of every family that has one, in the facts table's order."""
    return [importlib.import_module(f"ui.families.{row.module}") for row in family_facts.ROWS.values()
            if row.ui_questions and row.selectable]


def of(family: str | None) -> ModuleType | None:
    row = family_facts.get(family)
    return importlib.import_module(f"ui.families.{row.module}") if row is not None and row.ui_questions else None


def family_label(family: str, label: str, lang: str) -> str:
    """The family's name in the user's language."""
    key = f"model.family_name.{family}"
    return t(key, lang) if key in i18n.STRINGS else label
