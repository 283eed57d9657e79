"""The Config tab: it shows the current run's TOML, and a load says what it will change (key: old → new, in the
user's language) and changes nothing until the user applies it."""

from __future__ import annotations

import json

import pytest
from test_import_config import KOHYA_SS_JSON

from core import config as cfgmod
from ui.config_file import applied
from ui.tab_config import _asked, apply_label, current_toml, diff_text

CURRENT = cfgmod.to_dict(cfgmod.with_values(cfgmod.default_config(),
                                            {"saving.name": "mine", "model.base": "/models/base.safetensors"}))
SNIPPET = '[network]\nrank = 8\n\n[saving]\nname = "from-file"\n'


def test_a_snippet_changes_its_keys_and_keeps_the_rest():
    new = applied(CURRENT, cfgmod.parse_toml(SNIPPET))
    assert new["network"]["rank"] == 8 and new["saving"]["name"] == "from-file"
    assert new["model"]["base"] == "/models/base.safetensors"  # what was set before stays
    # A whole run file gives exactly that run.
    run = cfgmod.with_values(cfgmod.default_config(), {"saving.name": "other", "training.epochs": 3})
    assert applied(CURRENT, cfgmod.parse_toml(cfgmod.dumps(run))) == cfgmod.to_dict(run)


@pytest.mark.parametrize("lang, head, rank, name", [
    ("en", "Loading this changes 2 settings", "- Rank (dim) (`network.rank`): 32 → **8**",
     "- Run name (`saving.name`): 'mine' → **'from-file'**"),
    ("zh", "载入后将改动 2 项设置", "- 秩 rank（dim） (`network.rank`): 32 → **8**",
     "- 运行名 (`saving.name`): 'mine' → **'from-file'**"),
])
def test_the_diff_names_each_change_in_the_users_language(lang, head, rank, name):
    text = diff_text(CURRENT, applied(CURRENT, cfgmod.parse_toml(SNIPPET)), lang)
    assert text.startswith(head)
    assert rank in text.splitlines() and name in text.splitlines()
    assert len([ln for ln in text.splitlines() if ln.startswith("- ")]) == 2
    assert apply_label(2, lang) == ("Apply these 2 changes" if lang == "en" else "应用这 2 项改动")


def test_a_load_asks_first_and_keeps_the_file_not_the_result():
    data = cfgmod.parse_toml(SNIPPET)
    pending, said, confirm, button = _asked(CURRENT, data, "en")
    assert pending == data  # applied later onto the settings as they are then
    assert confirm["visible"] is True and button["value"] == "Apply these 2 changes"
    assert "Rank (dim)" in said and "秩 rank（dim）" in said.to("zh")
    # The same settings again: nothing to apply, no question.
    pending, said, confirm, _ = _asked(CURRENT, cfgmod.parse_toml('[saving]\nname = "mine"\n'), "en")
    assert pending is None and confirm["visible"] is False and "nothing to change" in said


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from ui.app import build_app

    tmp = tmp_path_factory.mktemp("app")
    return build_app(lang="en", outputs_dir=tmp / "outputs", models_dir=tmp / "models")


def _fn(app, name: str):
    found = [f for f in app.fns.values() if f.fn is not None and f.fn.__name__ == name
             and f.fn.__module__ == "ui.tab_config"]
    assert len(found) == 1, name
    return found[0]


def test_load_then_apply_or_cancel_through_the_tabs_handlers(app):
    ctx = app.danlu_ctx
    form = ctx.form
    load, apply, cancel = _fn(app, "on_load"), _fn(app, "on_apply"), _fn(app, "on_cancel")
    # Load reads the form as shown: a name typed and not committed counts as the current one.
    shown = form.values(CURRENT)
    shown[[s.path for s in form.specs].index("saving.name")] = "typed"
    pending, said, confirm, _ = load.fn(SNIPPET, "en", CURRENT, form.seen(CURRENT), *shown)
    assert "'typed' → **'from-file'**" in said and confirm["visible"] is True
    assert [o for o in load.outputs if o is ctx.config] == []  # a load never writes the settings
    new, left, msg, confirm, _ = apply.fn(pending, CURRENT, "en")
    assert new["saving"]["name"] == "from-file" and new["network"]["rank"] == 8 and left is None
    assert msg.startswith("✔ Applied 2 changes") and confirm["visible"] is False
    assert apply.outputs[0] is ctx.config
    left, msg, confirm, _ = cancel.fn("zh")
    assert left is None and msg == "已取消，设置没有改动。" and confirm["visible"] is False
    assert ctx.config not in cancel.outputs


def test_a_bad_file_changes_nothing_and_says_why(app):
    load = _fn(app, "on_load")
    form = app.danlu_ctx.form
    pending, said, confirm, _ = load.fn("[network]\nrnak = 8\n", "en", CURRENT, form.seen(CURRENT),
                                        *form.values(CURRENT))
    assert pending is None and confirm["visible"] is False
    assert "Unknown key 'network.rnak'" in said and "network.rank" in said and said.classes == ["danlu-error"]


def test_a_peer_import_asks_first(app, tmp_path):
    peer = tmp_path / "style.json"
    peer.write_text(json.dumps(KOHYA_SS_JSON), encoding="utf-8")
    imp = _fn(app, "on_import")
    form = app.danlu_ctx.form
    text, pending, said, confirm, _ = imp.fn(str(peer), "en", CURRENT, form.seen(CURRENT), *form.values(CURRENT))
    assert cfgmod.loads(text).saving.name == "style" and pending["saving"]["name"] == "style"
    assert "Imported as" in said and "'mine' → **'style'**" in said and confirm["visible"] is True


def test_the_tab_shows_the_current_run(app):
    ctx = app.danlu_ctx
    shows = [f for f in app.fns.values() if f.fn is current_toml]
    assert {name for f in shows for _, name in f.targets} == {"change", "select"}  # config changed, tab opened
    assert all(f.inputs == [ctx.config] for f in shows)
    assert 'name = "mine"' in current_toml(CURRENT)


def test_the_apply_button_follows_the_language(app):
    relabel = _fn(app, "relabel")
    assert relabel.fn("zh", cfgmod.parse_toml(SNIPPET), CURRENT)["value"] == "应用这 2 项改动"
    assert relabel.fn("en", cfgmod.parse_toml('[saving]\nname = "x"\n'), CURRENT)["value"] == "Apply this change"
