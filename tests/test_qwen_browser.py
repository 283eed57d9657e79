"""A Qwen-Image base in the page: the Model tab names the family and the variant its file name tells, sets
model.variant to it, and says that edit LoRAs are trained in a later version, in both languages."""

from __future__ import annotations

from browser_util import choose, settle


def test_browser_qwen_edit_file_is_named_with_its_variant(page, app_server, artifacts):
    from models.families.qwen_image.tiny import build_tiny, save_transformer_files

    models_dir = app_server[1].danlu_ctx.models_dir
    pipe = build_tiny(seed=3)
    pipe.save_pretrained(models_dir / "tiny-qwen-parts")  # the parts beside the file
    _, comfy = save_transformer_files(pipe, models_dir, "qwen_image_edit_2509_bf16")
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-refresh").click()
    choose(page, "#model-list", comfy.name)
    report = page.locator("#model-report")
    report.get_by_text("Qwen-Image").first.wait_for()
    text = report.inner_text()
    assert "edit_2509" in text and "later version" in text and "tiny-qwen-parts" in text, text
    page.locator("#model-message").get_by_text("Chosen as the base model").wait_for()
    page.screenshot(path=artifacts / "qwen_model_tab_edit.png", full_page=True)
    page.get_by_role("tab", name="Parameters").click()
    toml = page.locator("#params-toml")
    settle(page, "#params-toml")
    page.screenshot(path=artifacts / "qwen_params_tab.png", full_page=True)
    assert 'variant = "edit_2509"' in toml.locator("textarea").input_value()  # the variant the name told
    page.get_by_role("tab", name="Model").click()

    page.locator("#danlu-lang").get_by_text("简体中文").click()
    report.get_by_text("后续版本").wait_for(timeout=90_000)  # the whole page follows the switch
    assert "edit_2509" in report.inner_text()
    page.screenshot(path=artifacts / "qwen_model_tab_zh.png", full_page=True)
