"""The one place that maps config fields to components, generated from core.config.schema().

A new field in the schema gets a component, a bilingual label, a tooltip from its help text and a
place in the beginner or expert view without any change here. A field declared for some families only
(core.config.F(families=...)) is hidden while the base is of another family (unless a check names it, so the
user can act on the message); it keeps its value.
Conversions between a field's value and what its component shows live here too, so the form and the TOML
agree on every value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.config import FieldSpec
from core.errors import ConfigError
from ui import choices, i18n
from ui.form_labels import LABELS, SECTION_LABELS
from ui.i18n import t


def label_key(spec: FieldSpec) -> str:
    return f"params.field.{spec.path}"


def help_key(spec: FieldSpec) -> str:
    return f"params.help.{spec.path}"


def _fallback_label(spec: FieldSpec) -> tuple[str, str]:
    """A label for a field added to the schema after this table was written."""
    zh = spec.zh
    for sep in ("：", "；", "，", "。", "（"):
        zh = zh.split(sep)[0]
    return zh or spec.name, spec.name.replace("_", " ").capitalize()


def _register_strings() -> None:
    # Markdown headings: the language switch replaces the whole value, so the '####' is in the text.
    table = {f"params.section.{s}": (f"#### {zh}", f"#### {en}") for s, (zh, en) in SECTION_LABELS.items()}
    for spec in cfgmod.schema():
        table[label_key(spec)] = LABELS.get(spec.path) or _fallback_label(spec)
        table[help_key(spec)] = (spec.zh, spec.en)
    i18n.add(table)


_register_strings()


def to_component(spec: FieldSpec, value: Any) -> Any:
    """A field value as its component shows it (a list of prompts is one prompt per line; numbers on one line)."""
    if spec.type is list and spec.item is int:
        return ", ".join(str(v) for v in value or [])
    if spec.type is list:
        return list(value or []) if spec.choices is not None else "\n".join(value or [])
    return value


def from_component(spec: FieldSpec, raw: Any) -> Any:
    """A component's value as the field's type; values that cannot be converted pass through for
    core.config to reject with a message naming the field."""
    if spec.type is list and spec.item is int and not isinstance(raw, (list, tuple)):
        return [_int_or_text(v) for v in str(raw or "").replace(",", " ").split()]
    if spec.type is list:
        if isinstance(raw, (list, tuple)):  # a multi-select of the field's choices
            return [str(v) for v in raw]
        return [line.strip() for line in str(raw or "").splitlines() if line.strip()]
    if spec.type is str:
        return "" if raw is None else str(raw)
    if spec.type is bool:
        return bool(raw)
    if raw is None or raw == "":
        return raw
    if spec.type is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw)
            except ValueError:
                return raw
        return raw
    if spec.type is float and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    return raw


def _int_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _number_step(spec: FieldSpec) -> float:
    if spec.type is int:
        return spec.multiple_of or 1
    d = abs(spec.default) if spec.default else 0.01
    return 10 ** math.floor(math.log10(d)) if d else 0.01


def make_component(spec: FieldSpec, lang: str) -> Any:
    """The component for one field, labelled in lang; the caller binds it to the translator."""
    label, info, elem_id = t(label_key(spec), lang), t(help_key(spec), lang), f"params-{spec.section}-{spec.name}"
    wide = spec.type in (str, list) and spec.choices is None  # paths and prompts need the room
    if spec.choices is not None:
        multi = spec.type is list  # a list field picks any of its choices
        return gr.Dropdown(choices.pairs(spec.choices, lang), value=list(spec.default) if multi else spec.default,
                           label=label, info=info, elem_id=elem_id, multiselect=multi, min_width=220, scale=1)
    if spec.type is bool:
        return gr.Checkbox(value=spec.default, label=label, info=info, elem_id=elem_id, min_width=220, scale=1)
    if spec.type in (int, float):
        # Range checks are left to core.config so the message names the field in the user's language.
        return gr.Number(value=spec.default, label=label, info=info, elem_id=elem_id,
                         precision=0 if spec.type is int else None, step=_number_step(spec), min_width=220, scale=1)
    if spec.type is list and spec.item is int:  # e.g. "512, 768, 1024"
        return gr.Textbox(value=to_component(spec, spec.default), label=label, info=info, elem_id=elem_id,
                          max_lines=1, min_width=220, scale=1)
    if spec.type is list:
        return gr.Textbox(value=to_component(spec, spec.default), label=label, info=info, elem_id=elem_id, lines=3,
                          min_width=460 if wide else 220, scale=2 if wide else 1)
    return gr.Textbox(value=spec.default, label=label, info=info, elem_id=elem_id, max_lines=1,
                      min_width=460 if wide else 220, scale=2 if wide else 1)


@dataclass
class Form:
    """The generated form: one component per schema field, in schema order."""

    specs: list[FieldSpec]
    components: list[Any]
    expert_columns: list[Any] = field(default_factory=list)

    def values(self, config: dict) -> list[Any]:
        """Component values for a config dict (as held by ctx.config)."""
        return [to_component(s, config.get(s.section, {}).get(s.name, s.default)) for s in self.specs]

    def updates(self, config: dict, shown: list[Any] | None = None, flagged: Collection[str] = (),
                seen: dict[str, list] | None = None) -> list[Any]:
        """gr.update per component, changing only the values that differ from what is shown; a field that does
        not apply to the base's family (see family_traits) is hidden unless it is in `flagged` (the keys
        core.checks' errors and warnings name). With `seen`, a value the user typed and has not committed yet
        (see edits) is left as it is: redrawing it would undo what they are typing."""
        new, shows = self.values(config), set(self.visible(config, flagged))
        typing = set(self.edits(shown, seen)) if shown is not None and seen is not None else set()
        out = []
        for spec, value, old in zip(self.specs, new, shown or new):
            changed = shown is None or not _same(spec, value, old) and spec.path not in typing
            # Only fields declared for some families ever hide; the others are left as they are.
            seen = {"visible": spec.path in shows} if spec.families is not None else {}
            out.append(gr.update(**seen, **({"value": value} if changed else {})))
        return out

    # A button that reads the run config also takes what the form shows, so a value typed and left by a click is
    # used even when its commit (the field's blur event) reaches the server after the click. `seen` says which
    # values the server put in each field: the newest and the one before it, since an update can still be on its
    # way to the browser when the click is made. A shown value that is one of them is no edit (the config, perhaps
    # changed since by another tab, wins); any other value is the user's and is used as shown.
    def seen(self, config: dict, before: dict[str, list] | None = None) -> dict[str, list]:
        """What the form is told to show for config, per field path: [newest, the one before]."""
        return {s.path: [v, *(before or {}).get(s.path, [])[:1]] for s, v in zip(self.specs, self.values(config))}

    def edits(self, shown: list[Any], seen: dict[str, list]) -> dict[str, Any]:
        """The fields whose shown value the server never put there (typed, not committed yet): path → value."""
        return {s.path: from_component(s, v) for s, v in zip(self.specs, shown)
                if not any(_same(s, v, known) for known in seen.get(s.path, []))}

    def flushed(self, config: dict, shown: list[Any], seen: dict[str, list]) -> dict:
        """config with the typed values put in as they are; core.config checks them where the config is used,
        so a bad one is refused with a message naming the field."""
        new = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
        for path, value in self.edits(shown, seen).items():
            section, _, name = path.partition(".")
            new.setdefault(section, {})[name] = value
        return new

    def visible(self, config: dict, flagged: Collection[str] = ()) -> list[str]:
        """The paths of the fields shown for this config's base (and the flagged ones)."""
        traits = family_traits(config_family(config))
        return [s.path for s in self.specs if applies(s, traits) or s.path in flagged]


def config_family(config: dict) -> str | None:
    """The base's family: model.family when set, else what the base file says (None when unknown)."""
    model = config.get("model") or {}
    if model.get("family", "auto") != "auto":
        return model["family"]
    from models.preflight import detected

    info = detected(model.get("base", ""))
    return info.family if info is not None and info.usable else None


def family_traits(family: str | None) -> frozenset[str] | None:
    """What a field's `families` may name to apply to this family; None (every field applies) when unknown."""
    if not family:
        return None
    from models import families

    try:
        return families.traits(family)
    except KeyError:
        return None


def applies(spec: FieldSpec, traits: frozenset[str] | None) -> bool:
    """Whether the field is shown for a base with these traits (unknown base or a field for all: yes)."""
    return traits is None or spec.families is None or bool(traits.intersection(spec.families))


def _same(spec: FieldSpec, new: Any, shown: Any) -> bool:
    return from_component(spec, shown) == from_component(spec, new)


def _field_rows(ctx: Any, specs: list[FieldSpec], lang: str, comps: dict[str, Any]) -> None:
    for group in ([s for s in specs if s.type is not bool], [s for s in specs if s.type is bool]):
        if group:
            with gr.Row(equal_height=False):
                for spec in group:
                    # A field's choices are relabelled too: in 简体中文 they read "余弦（cosine）" (ui/choices.py).
                    labelled = {} if spec.choices is None else {"choices": choices.labelled(spec.choices)}
                    comps[spec.path] = ctx.tr.bind(make_component(spec, lang), label=label_key(spec),
                                                   info=help_key(spec), **labelled)


def build_form(ctx: Any, lang: str, expert: bool = False) -> Form:
    """Create the form's components, one group per section; expert-only fields in hidden columns."""
    specs = cfgmod.schema()
    comps: dict[str, Any] = {}
    expert_columns = []
    for section in cfgmod.SECTIONS:
        section_specs = [s for s in specs if s.section == section]
        with gr.Group(elem_id=f"params-section-{section}"):
            ctx.tr.bind(gr.Markdown(t(f"params.section.{section}", lang), padding=True,
                                    elem_id=f"params-section-title-{section}"), value=f"params.section.{section}")
            # Rows wrap on narrow screens: two or three fields side by side instead of one long column.
            # Checkboxes get their own row: squeezed between text fields they shrink to a sliver.
            _field_rows(ctx, [s for s in section_specs if s.basic], lang, comps)
            expert_specs = [s for s in section_specs if not s.basic]
            if expert_specs:
                with gr.Column(visible=expert, elem_id=f"params-expert-{section}") as col:
                    _field_rows(ctx, expert_specs, lang, comps)
                expert_columns.append(col)
    return Form(specs, [comps[s.path] for s in specs], expert_columns)


def changes(before: dict, after: dict, lang: str) -> list[str]:
    """What going from `before` to `after` changes, one Markdown line per field in schema order:
    '- label (`section.key`): old → **new**', labelled in lang."""
    lines = []
    for spec in cfgmod.schema():
        old = (before.get(spec.section) or {}).get(spec.name, spec.default)
        new = (after.get(spec.section) or {}).get(spec.name, spec.default)
        if old != new:
            lines.append(f"- {t(label_key(spec), lang)} (`{spec.path}`): {old!r} → **{new!r}**")
    return lines


def field_to_config(spec: FieldSpec, raw: Any, current: dict) -> tuple[dict, ConfigError | None]:
    """Apply one component's value onto current: the new config, or the old one and the error."""
    try:
        return cfgmod.with_values(current, {spec.path: from_component(spec, raw)}), None
    except ConfigError as e:
        return current, e


def values_to_config(specs: list[FieldSpec], values: list[Any], current: dict) -> tuple[dict, list[ConfigError]]:
    """Apply the form's values onto current; a bad field keeps its old value and yields an error naming it."""
    data: dict[str, dict] = {}
    for spec, raw in zip(specs, values):
        data.setdefault(spec.section, {})[spec.name] = from_component(spec, raw)
    cfg, _, errors, _ = cfgmod.merge_lenient(cfgmod.from_dict(current), data)
    return cfgmod.to_dict(cfg), errors


# Every handler that writes the config from the form runs in this one queue, one at a time and in the order the
# events were sent: two commits running side by side would each start from the same config, and the one finishing
# last would drop the other's field.
COMMIT_GROUP = "danlu-form-commit"


def commit_events(comp: Any) -> list:
    """The events on which a field's value goes into the config. Text and number fields commit when left (blur,
    also when a click elsewhere leaves them) or on Enter, not on each key: every commit re-renders the form, and a
    re-render arriving while the user types would put back a value they have already typed past. A multi-line
    field has no Enter commit (Enter is a new line). Choices and checkboxes commit on the user's own input only:
    .change would also fire when the form itself is redrawn from the config."""
    if isinstance(comp, (gr.Textbox, gr.Number)):
        multi_line = isinstance(comp, gr.Textbox) and (comp.lines or 1) > 1
        return [comp.blur] if multi_line else [comp.blur, comp.submit]
    return [comp.input]


def committed(form: Form, seen: dict[str, list], spec: FieldSpec, config: dict) -> dict[str, list]:
    """seen after a commit of spec's field: the value just put in the config counts as shown by the server, so a
    redraw that follows (perhaps of a config changed meanwhile by a button) is not mistaken for the user's edit."""
    value = to_component(spec, config.get(spec.section, {}).get(spec.name, spec.default))
    return {**seen, spec.path: [value, *seen.get(spec.path, [])[:1]]}


def reads_form(ctx: Any, fn: Callable, inputs: list) -> tuple[Callable, list]:
    """fn and inputs for an event whose handler reads the run config (one of inputs is ctx.config): the handler
    gets the config as the form shows it, typed values not yet committed included (see Form.flushed). Without a
    form on the page (ctx.form is None) fn and inputs are returned as they are."""
    form, seen = getattr(ctx, "form", None), getattr(ctx, "form_seen", None)
    if form is None or seen is None:
        return fn, inputs
    at, n = next(i for i, comp in enumerate(inputs) if comp is ctx.config), len(inputs)

    def read(*args: Any) -> Any:
        own = list(args[:n])
        own[at] = form.flushed(own[at], list(args[n + 1:]), args[n] or {})
        return fn(*own)

    # The endpoint keeps the handler's name (not functools.wraps: gradio would then count fn's parameters).
    for attr in ("__name__", "__qualname__", "__module__"):
        setattr(read, attr, getattr(fn, attr, getattr(read, attr)))
    return read, [*inputs, seen, *form.components]
