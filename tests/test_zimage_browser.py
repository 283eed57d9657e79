"""The Z-Image demo in the page: the Model tab names the family, asks Turbo / De-Turbo / Base and the training
adapter, proposes the matching preset and loads it; the download source is chosen there too."""

from __future__ import annotations

import shutil

import pytest
from browser_util import choose


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
    choose(page, "#model-list", "tiny-zimage")
    report = page.locator("#model-report")
    report.get_by_text("Z-Image (Tongyi-MAI)").wait_for()
    zimage.wait_for(state="visible")
    page.locator("#model-zimage-variant").get_by_text("Turbo (8-step distilled)").wait_for()
    page.locator("#model-zimage-adapter").get_by_text("v2 (recommended)").wait_for()
    page.locator("#model-message").get_by_text("training adapter v2 chosen").wait_for()
    page.locator("#model-prediction").wait_for(state="hidden")  # epsilon / v-prediction: SD UNets only
    assert "flow matching" in report.inner_text()
    assert page.locator("#model-zimage-adapter input").nth(0).is_checked()  # v2, the recommended one
    proposal = page.locator("#model-zimage-proposal")
    proposal.get_by_text("Z-Image Turbo + training adapter").wait_for()
    assert "8 steps" in proposal.inner_text()
    page.locator("#model-zimage").get_by_text("need ComfyUI 0.3.76 or newer").wait_for()
    page.screenshot(path=artifacts / "zimage_model_tab_turbo.png", full_page=True)

    page.locator("#model-zimage-adapter").get_by_text("v1", exact=True).click()
    message = page.locator("#model-message")
    message.get_by_text("training adapter v1").wait_for()
    page.locator("#model-zimage-preset").click()
    message.get_by_text("settings changed").wait_for()
    page.get_by_role("tab", name="Parameters").click()
    page.locator("#params-network-rank input").wait_for()
    assert page.locator("#params-network-rank input").input_value() == "16"
    # A Z-Image base: its DiT fields are in the expert view, the SD UNet ones are not.
    page.locator("#params-view").get_by_text("Expert", exact=True).click()
    page.locator("#params-network-dit_targets").wait_for(state="visible")
    page.locator("#params-training-clip_skip").wait_for(state="hidden")
    assert not page.locator("#params-training-multires_noise_iterations").is_visible()
    page.locator("#params-section-network").first.screenshot(path=artifacts / "params_zimage_fields.png")
    # A Z-Image base: its DiT fields are in the expert view, the SD UNet ones are not.
    page.locator("#params-view").get_by_text("Expert", exact=True).click()
    page.locator("#params-network-dit_targets").wait_for(state="visible")
    page.locator("#params-training-clip_skip").wait_for(state="hidden")
    assert not page.locator("#params-training-multires_noise_iterations").is_visible()
    page.locator("#params-section-network").first.screenshot(path=artifacts / "params_zimage_fields.png")

    page.get_by_role("tab", name="Model").click()
    page.locator("#model-zimage-variant").get_by_text("De-Turbo (de-distilled)").click()
    proposal.get_by_text("Z-Image De-Turbo").wait_for()
    page.locator("#model-zimage-adapter").wait_for(state="hidden")
    assert "25 steps" in proposal.inner_text()
    message.get_by_text("training adapter none").wait_for()

    choose(page, "#model-source", "Hugging Face mirror")
    page.locator("#model-mirror").wait_for(state="visible")
    message.get_by_text("https://hf-mirror.com").wait_for()
    page.screenshot(path=artifacts / "zimage_model_tab_deturbo.png", full_page=True)

    page.locator("#danlu-lang").get_by_text("简体中文").click()
    page.locator("#model-zimage-variant").get_by_text("De-Turbo（去蒸馏版）").wait_for()
    page.locator("#model-report").get_by_text("Z-Image（通义造相）").wait_for()  # the report follows the language
    assert "流匹配" in page.locator("#model-report").inner_text()
    page.screenshot(path=artifacts / "zimage_model_tab_zh.png", full_page=True)


def test_browser_grid_ab_of_two_zimage_runs(page, app_server, zimage_demo, artifacts):
    """XYZ grid tab: a run, 'Compare with run' another, rendered side by side; a click shows B's own recipe."""
    from zimage_runs import two_runs

    two_runs(app_server[2], zimage_demo)
    page.get_by_role("tab", name="XYZ grid").click()
    page.locator("#grid-refresh").click()
    choose(page, "#grid-run", "lora_v1")
    page.locator("#grid-epochs").get_by_text("lora_v1-step00000004").wait_for()
    page.locator("#grid-epochs").get_by_text("lora_v1-step00000004").click()  # B has no step 4: leave it out
    choose(page, "#grid-compare", "lora_v2")
    page.locator("#grid-weights textarea, #grid-weights input").first.fill("0.5, 1")
    page.locator("#grid-start").click()
    message = page.locator("#grid-message")
    message.get_by_text("Grid saved").wait_for(timeout=300_000)
    assert "compare-" in message.inner_text()
    page.locator("#grid-progress").get_by_text("Cells 8/8").wait_for()
    image = page.locator("#grid-image img")
    image.wait_for()
    box = image.bounding_box()
    width = image.evaluate("img => img.naturalWidth")
    scale = box["width"] / width
    # The right half holds B's panel; its last column and row are its final file at weight 1.
    page.mouse.click(box["x"] + box["width"] * 0.93, box["y"] + box["height"] * 0.8)
    page.locator("#grid-recipe textarea").wait_for()
    page.wait_for_function("() => document.querySelector('#grid-recipe textarea').value.includes('<lora:')")
    assert "<lora:lora_v2:1>" in page.locator("#grid-recipe textarea").input_value(), scale
    page.screenshot(path=artifacts / "zimage_grid_ab.png", full_page=True)
