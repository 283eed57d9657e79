"""The Z-Image demo in the page: the Model tab names the family, asks Turbo / De-Turbo / Base and the training
adapter, proposes the matching preset and loads it; the download source is chosen there too."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="module")
def zimage_demo(tmp_path_factory):
    from models.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("zdemo"), "zimage")


def test_browser_zimage_model_tab_asks_the_variant_and_proposes_the_preset(page, app_server, zimage_demo,
                                                                          artifacts):
    models_dir = app_server[1].danlu_ctx.models_dir
    shutil.copytree(zimage_demo.parent / "base" / "tiny-zimage", models_dir / "tiny-zimage", dirs_exist_ok=True)
    page.get_by_role("tab", name="Model").click()
    zimage = page.locator("#model-zimage-variant")
    assert not zimage.is_visible()  # asked only for a Z-Image base
    page.locator("#model-refresh").click()
    page.locator("#model-list input").click()
    page.get_by_role("option", name="tiny-zimage").first.click()
    report = page.locator("#model-report")
    report.get_by_text("Z-Image (Tongyi-MAI)").wait_for()
    zimage.wait_for(state="visible")
    page.locator("#model-zimage-variant").get_by_text("Turbo (8-step distilled)").wait_for()
    page.locator("#model-zimage-adapter").get_by_text("v2 (recommended)").wait_for()
    page.locator("#model-message").get_by_text("training adapter v2 chosen").wait_for()
    assert "flow matching" in report.inner_text()
    assert page.locator("#model-zimage-adapter input").nth(0).is_checked()  # v2, the recommended one
    proposal = page.locator("#model-zimage-proposal")
    proposal.get_by_text("Z-Image Turbo + training adapter").wait_for()
    assert "8 steps" in proposal.inner_text()
    page.screenshot(path=artifacts / "zimage_model_tab_turbo.png", full_page=True)

    page.locator("#model-zimage-adapter").get_by_text("v1", exact=True).click()
    message = page.locator("#model-message")
    message.get_by_text("training adapter v1").wait_for()
    page.locator("#model-zimage-preset").click()
    message.get_by_text("settings changed").wait_for()
    page.get_by_role("tab", name="Parameters").click()
    page.locator("#params-network-rank input").wait_for()
    assert page.locator("#params-network-rank input").input_value() == "16"

    page.get_by_role("tab", name="Model").click()
    page.locator("#model-zimage-variant").get_by_text("De-Turbo (de-distilled)").click()
    proposal.get_by_text("Z-Image De-Turbo").wait_for()
    page.locator("#model-zimage-adapter").wait_for(state="hidden")
    assert "25 steps" in proposal.inner_text()
    message.get_by_text("training adapter none").wait_for()

    page.locator("#model-source input").click()
    page.get_by_role("option", name="Hugging Face mirror").click()
    page.locator("#model-mirror").wait_for(state="visible")
    message.get_by_text("https://hf-mirror.com").wait_for()
    page.screenshot(path=artifacts / "zimage_model_tab_deturbo.png", full_page=True)

    page.locator("#danlu-lang").get_by_text("简体中文").click()
    page.locator("#model-zimage-variant").get_by_text("De-Turbo（去蒸馏版）").wait_for()
    report_zh = page.locator("#model-report")
    assert "Z-Image" in report_zh.inner_text()
    page.screenshot(path=artifacts / "zimage_model_tab_zh.png", full_page=True)
