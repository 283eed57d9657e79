"""Text made by handlers follows the language switch: i18n.both / follow (no browser)."""

from __future__ import annotations

import gradio as gr

from ui import i18n


def _renderer(demo: gr.Blocks, component):
    """The handler that shows `component`'s bilingual State (the one wired to the language change)."""
    fns = [f for f in demo.fns.values() if any(o is component for o in f.outputs)]
    assert fns, "follow wires nothing to the component"
    return fns[0].fn


def test_both_keeps_every_language_and_pick_shows_one():
    text = i18n.both(lambda lang: i18n.t("model.found", lang, n=3), elem_classes=["danlu-ok"])
    assert (text["zh"], text["en"]) == ("找到 3 个模型。", "3 models found.")
    assert i18n.pick(text, "zh") == "找到 3 个模型。"
    assert i18n.pick("plain", "zh") == "plain" and i18n.pick(None, "en") == ""


def test_follow_renders_the_stored_text_in_the_current_language():
    import ui.tab_model  # noqa: F401 - adds the model.* strings

    with gr.Blocks() as demo:
        lang = gr.State("en")
        line = gr.Markdown("")
        state = i18n.follow(line, lang)
    assert isinstance(state, gr.State)
    render = _renderer(demo, line)
    text = i18n.both(lambda lg: i18n.t("model.found", lg, n=2), elem_classes=["danlu-error"])
    assert render(text, "en")["value"] == "2 models found."
    update = render(text, "zh")
    assert update["value"] == "找到 2 个模型。" and update["elem_classes"] == ["danlu-error"]
    assert render(None, "zh") == gr.update()  # nothing said yet: the line is left alone


def test_model_tab_messages_are_kept_in_both_languages(tmp_path):
    from ui import tab_model

    config = {"model": {"base": ""}}
    new, _, message, _ = tab_model.check_info(str(tmp_path / "missing.safetensors"), config, "en")
    assert new is config and "Not usable" in message["en"] and "不能作为底模" in message["zh"]
    assert message["elem_classes"] == ["danlu-error"]
    found = tab_model.found_text(0, tmp_path)
    assert str(tmp_path) in found["en"] and "文件夹中没有模型" in found["zh"]
