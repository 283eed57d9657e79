"""The run form commits what is shown: fields commit when left (not on each key), a redraw never undoes what the
user is typing, and every button that reads the config reads the values shown, typed ones not yet committed
included."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest
from test_ui_params_form import form  # noqa: F401 - the form, built once

from core import config as cfgmod
from core.errors import ConfigError
from ui.form import COMMIT_GROUP, commit_events, committed, reads_form

DEFAULT = cfgmod.to_dict(cfgmod.default_config())


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from ui.app import build_app

    tmp = tmp_path_factory.mktemp("app")
    return build_app(lang="en", outputs_dir=tmp / "outputs", models_dir=tmp / "models")


def shown_with(form, config: dict, **typed) -> list:
    """The form's values for config, with some fields (given as section__name=value) shown otherwise."""
    values = form.values(config)
    for key, value in typed.items():
        values[[s.path for s in form.specs].index(key.replace("__", "."))] = value
    return values


def test_text_fields_commit_when_left_and_choices_on_input(form):
    for spec, comp in zip(form.specs, form.components):
        names = [e.event_name for e in commit_events(comp)]
        if isinstance(comp, (gr.Textbox, gr.Number)):
            # never on each key: every commit redraws the form, which would fight the typing
            multi = isinstance(comp, gr.Textbox) and comp.lines > 1
            assert names == (["blur"] if multi else ["blur", "submit"]), spec.path
        else:
            assert names == ["input"], spec.path


def test_a_typed_value_is_an_edit_until_the_server_has_shown_it(form):
    seen = form.seen(DEFAULT)
    shown = shown_with(form, DEFAULT, saving__name="mine", training__epochs=7)
    assert form.edits(shown, seen) == {"saving.name": "mine", "training.epochs": 7}
    flushed = form.flushed(DEFAULT, shown, seen)
    assert flushed["saving"]["name"] == "mine" and flushed["training"]["epochs"] == 7
    assert DEFAULT["saving"]["name"] == "lora"  # the config itself is left as it was
    # Committed: the server knows the value now, so it is no longer an edit.
    new = cfgmod.with_values(DEFAULT, {"saving.name": "mine"})
    seen = committed(form, seen, cfgmod.field_spec("saving.name"), new)
    assert form.edits(shown, seen) == {"training.epochs": 7}


def test_a_config_changed_elsewhere_wins_over_a_form_not_redrawn_yet(form):
    """A preset (or another tab) changed the config; the form still shows the value before it: not an edit."""
    seen = form.seen(DEFAULT)
    preset = cfgmod.with_values(DEFAULT, {"training.epochs": 20})
    seen = form.seen(preset, seen)  # the redraw was sent...
    shown = form.values(DEFAULT)  # ...and has not reached the browser yet
    assert form.edits(shown, seen) == {}
    assert form.flushed(preset, shown, seen)["training"]["epochs"] == 20


def test_a_redraw_leaves_the_field_being_typed_alone(form):
    seen = form.seen(DEFAULT)
    config = cfgmod.with_values(DEFAULT, {"network.rank": 8})  # changed by a button meanwhile
    shown = shown_with(form, DEFAULT, saving__name="half-typ")
    updates = dict(zip([s.path for s in form.specs], form.updates(config, shown, (), seen)))
    assert "value" not in updates["saving.name"]  # the user's text stays
    assert updates["network.rank"]["value"] == 8  # the rest follows the config
    # Without knowing what the server showed, the old behaviour: the config's value is put back.
    assert form.updates(config, shown)[[s.path for s in form.specs].index("saving.name")]["value"] == "lora"


def test_a_bad_typed_value_is_refused_where_the_config_is_used(form):
    shown = shown_with(form, DEFAULT, saving__name="a/b", training__epochs=None)
    flushed = form.flushed(DEFAULT, shown, form.seen(DEFAULT))
    with pytest.raises(ConfigError) as e:
        cfgmod.from_dict(flushed)
    assert e.value.key in ("saving.name", "training.epochs")


def test_reads_form_hands_the_handler_the_config_as_shown(form):
    config_state, lang, seen_state = gr.State(), gr.State(), gr.State()
    ctx = SimpleNamespace(config=config_state, form=form, form_seen=seen_state)
    got = {}

    def on_click(lang_v: str, config: dict) -> str:
        got.update(config=config, lang=lang_v)
        return "done"

    fn, inputs = reads_form(ctx, on_click, [lang, config_state])
    assert inputs[:3] == [lang, config_state, seen_state] and inputs[3:] == form.components
    assert fn.__name__ == "on_click"
    shown = shown_with(form, DEFAULT, saving__name="typed")
    assert fn("en", DEFAULT, form.seen(DEFAULT), *shown) == "done"
    assert got["lang"] == "en" and got["config"]["saving"]["name"] == "typed"
    # No form on the page: the handler as it is.
    assert reads_form(SimpleNamespace(config=config_state), on_click, [lang, config_state]) == \
        (on_click, [lang, config_state])


def _events(app, name: str) -> list:
    return [f for f in app.fns.values() if f.fn is not None and f.fn.__name__ == name]


def test_every_field_commits_in_one_queue(app):
    form = app.danlu_ctx.form
    commits = _events(app, "on_field")
    for comp in form.components:
        mine = [f for f in commits if f.inputs[0] is comp]
        expected = {e.event_name for e in commit_events(comp)}
        assert {name for f in mine for _, name in f.targets} == expected, comp.elem_id
        assert all(f.concurrency_id == COMMIT_GROUP and f.concurrency_limit == 1 for f in mine)
        assert all(f.trigger_mode == "always_last" for f in mine)


@pytest.mark.parametrize("name, count", [("on_start", 1), ("handler", 4), ("on_add", 1), ("on_preview", 1),
                                         ("on_queue", 1), ("on_export", 2), ("on_load", 1)])
def test_every_button_that_reads_the_config_reads_the_form(app, name, count):
    form, seen = app.danlu_ctx.form, app.danlu_ctx.form_seen
    modules = ("ui.tab_train", "ui.train_queue", "ui.params_sweep", "ui.tab_params", "ui.tab_config")
    events = [f for f in _events(app, name) if f.fn.__module__ in modules and app.danlu_ctx.config in f.inputs]
    assert len(events) >= count, name
    for f in events:
        assert seen in f.inputs and all(c in f.inputs for c in form.components), (name, f.targets)
