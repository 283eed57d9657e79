"""Text made by handlers follows the language switch: i18n.both / Text / follow (no browser)."""

from __future__ import annotations

import copy
import pickle

import gradio as gr

from ui import i18n


def _renderer(demo: gr.Blocks, component):
    """The handler that shows `component`'s State (the one wired to the language change)."""
    fns = [f for f in demo.fns.values() if any(o is component for o in f.outputs)]
    assert fns, "follow wires nothing to the component"
    return fns[0].fn


def test_a_text_is_the_str_in_its_language_and_keeps_the_others():
    import ui.tab_model  # noqa: F401 - adds the model.* strings

    text = i18n.both(lambda lang: i18n.t("model.found", lang, n=3), "en", classes=["danlu-ok"])
    assert text == "3 models found." and isinstance(text, str) and "models found" in text
    assert text.to("zh") == "找到 3 个模型。" and i18n.pick(text, "zh") == "找到 3 个模型。"
    assert i18n.pick("plain", "zh") == "plain" and i18n.pick(None, "en") == ""
    for same in (copy.deepcopy(text), pickle.loads(pickle.dumps(text))):  # as gradio's State keeps it
        assert same.to("zh") == "找到 3 个模型。" and same.classes == ["danlu-ok"]
    other = i18n.Text({"en": "3 models found.", "zh": "三个"}, "en")
    assert text != other  # a state holding one changes to the other


def test_follow_renders_the_stored_text_in_the_current_language():
    import ui.tab_model  # noqa: F401

    with gr.Blocks() as demo:
        lang = gr.State("en")
        line = gr.Markdown("")
        state = i18n.follow(line, lang)
    assert isinstance(state, gr.State)
    render = _renderer(demo, line)
    text = i18n.both(lambda lg: i18n.t("model.found", lg, n=2), "en", classes=["danlu-error"])
    assert render(text, "en")["value"] == "2 models found."
    update = render(text, "zh")
    assert update["value"] == "找到 2 个模型。" and update["elem_classes"] == ["danlu-error"]
    assert render("plain", "zh")["elem_classes"] == []  # after an error, a plain text shows in the line's own colour
    assert render(None, "zh") == gr.update()  # nothing said yet: the line is left alone
    import ui.params_sweep  # noqa: F401 - its strings
    from core.errors import ConfigError

    refused = i18n.with_error("sweep.refused", ConfigError("bad", "坏", "fix it", "修好"), "en")
    assert render(refused, "zh")["elem_classes"] == ["danlu-error"]  # an error is red on any followed line


def test_model_tab_messages_are_kept_in_both_languages(tmp_path):
    from ui import tab_model

    config = {"model": {"base": ""}}
    new, _, message, _ = tab_model.check_info(str(tmp_path / "missing.safetensors"), config, "en")
    assert new is config and "Not usable" in message and "不能作为底模" in message.to("zh")
    assert message.classes == ["danlu-error"]
    found = tab_model.found_text(0, tmp_path, "zh")
    assert "文件夹中没有模型" in found and str(tmp_path) in found.to("en")
    assert [tab_model.found_text(n, tmp_path, "en") for n in (1, 2)] == ["1 model found.", "2 models found."]


def test_params_and_config_messages_are_kept_in_both_languages():
    from ui import tab_params

    text = tab_params._failed(tab_params.ConfigError("bad", "坏", "fix it", "修好"), "en")
    assert text.startswith("✖ bad") and text.to("zh").startswith("✖ 坏")


FOLLOWING = ("model-message", "model-list-note", "dataset-status", "tagging-message", "tagging-preview",
             "tagging-status", "caption-status", "taghelp-message", "params-message", "params-preset-summary",
             "params-sweep-plan", "train-message", "train-queue-message", "grid-progress", "grid-message",
             "config-message")


def test_every_status_line_of_the_page_follows_the_language(tmp_path):
    from ui.app import build_app

    demo = build_app(lang="en", outputs_dir=tmp_path / "outputs", models_dir=tmp_path / "models")
    lang = demo.danlu_ctx.lang
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    switch = [f for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "switch"]
    assert len(switch) == 1  # the page's one language-switch event
    for elem_id in FOLLOWING:
        line = by_id[elem_id]
        renders = [f for f in demo.fns.values() if any(o is line for o in f.outputs)
                   and f.fn is not None and f.fn.__qualname__ == "follow.<locals>.render"]
        assert renders and any(lang in f.inputs for f in renders), elem_id
        assert any(o is line for o in switch[0].outputs), elem_id  # shown again when the language changes
        # and nothing else writes a string straight into it
        writers = [f for f in demo.fns.values() if any(o is line for o in f.outputs)]
        assert all(f in renders or f is switch[0] for f in writers), elem_id
    # The switch shows each followed line's kept text in the new language.
    texts = [i18n.text("model.found", "en", n=2) if c.elem_id == "model-list-note" else None
             for _, c in i18n.followed(lang)]
    shown = dict(zip([c.elem_id for _, c in i18n.followed(lang)], switch[0].fn("zh", *texts)[-len(texts):]))
    assert shown["model-list-note"]["value"] == "找到 2 个模型。" and shown["config-message"] == gr.update()
