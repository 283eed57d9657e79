"""The app shell in a real browser: language switch and the Config panel's messages."""

from __future__ import annotations

from gradio_client import Client


def test_switch_language_and_load_a_misspelt_toml(page, artifacts):
    page.get_by_text("简体中文", exact=True).click()
    page.wait_for_selector("text=LoRA 炼丹炉")
    page.get_by_role("tab", name="配置文件").click()
    editor = page.locator("#config-text .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    editor.fill("[network]\nrnak = 8\n")
    page.locator("#config-load").click()
    message = page.locator("#config-message")
    message.get_by_text("network.rank").first.wait_for()
    text = message.inner_text()
    assert "未知的键 'network.rnak'" in text and "network.rank" in text
    page.screenshot(path=artifacts / "shell_config_error_zh.png", full_page=True)

    page.get_by_text("English", exact=True).click()
    page.get_by_role("tab", name="Config").wait_for()
    page.locator("#config-load").click()
    message.get_by_text("Unknown key").wait_for()
    assert "Did you mean 'network.rank'" in message.inner_text()
    page.screenshot(path=artifacts / "shell_config_error_en.png", full_page=True)


def test_config_panel_through_the_api(app_server):
    client = Client(app_server[0], verbose=False)
    api = client.view_api(return_format="dict", print_info=False)
    assert api["named_endpoints"] or api["unnamed_endpoints"]


def test_every_bound_string_has_both_languages(app_server):
    from ui import i18n

    blocks = app_server[1]
    for _component, attrs in blocks.danlu_ctx.tr.bindings:
        for key in attrs.values():
            if callable(key):  # a function of the language (a radio's labelled choices): both languages give text
                zh, en = key("zh"), key("en")
                assert zh and en and zh != [] and en != [], (key, zh, en)
                continue
            zh, en = i18n.STRINGS[key]
            assert zh.strip() and en.strip(), key
