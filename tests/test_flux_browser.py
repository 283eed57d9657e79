"""A FLUX.1 base in the page: the Model tab names the family and the variant the weights tell, shows the dev /
schnell question with it chosen, and says FLUX.1 [dev]'s non-commercial licence when dev is chosen; the CLIP-L LoRA
is turned off on choosing, with a note saying how to turn it on, and the Parameters tab shows its switch."""

from __future__ import annotations

from browser_util import choose


def test_browser_flux_model_tab_shows_the_variant_and_the_dev_licence(page, app_server, artifacts):
    from models.families.flux.tiny import build_tiny, save_transformer_files

    models_dir = app_server[1].danlu_ctx.models_dir
    pipe = build_tiny(seed=2, variant="schnell")
    pipe.save_pretrained(models_dir / "tiny-flux-schnell")  # the parts beside the file
    save_transformer_files(pipe, models_dir, "tiny-flux-schnell")
    page.get_by_role("tab", name="Model").click()
    radio = page.locator("#model-flux-variant")
    assert not radio.is_visible()  # asked only for a FLUX base
    page.locator("#model-refresh").click()
    choose(page, "#model-list", "tiny-flux-schnell.safetensors")
    report = page.locator("#model-report")
    report.get_by_text("FLUX.1 (Black Forest Labs)").wait_for()
    assert "variant `schnell`" in report.inner_text() or "variant schnell" in report.inner_text()
    radio.wait_for(state="visible")
    assert radio.locator("input").nth(1).is_checked()  # schnell, as the weights tell
    message = page.locator("#model-message")
    message.get_by_text("Chosen as the base model").wait_for()
    assert "non-commercial" not in message.inner_text()  # schnell is Apache-2.0
    message.get_by_text("Turn it on for a CLIP-L LoRA").wait_for()  # the form's default was on
    page.screenshot(path=artifacts / "flux_model_tab_schnell.png", full_page=True)

    radio.get_by_text("dev (guidance-distilled, 20–28 steps)").click()
    message.get_by_text("Set: FLUX.1 dev.").wait_for()
    message.get_by_text("non-commercial licence").wait_for()
    page.screenshot(path=artifacts / "flux_model_tab_dev.png", full_page=True)

    page.get_by_role("tab", name="Parameters").click()
    page.locator("#params-view").get_by_text("Expert", exact=True).click()
    switch = page.locator("#params-network-train_text_encoder")
    switch.wait_for(state="visible")  # FLUX.1's CLIP-L LoRA (an SD-only field before)
    assert not switch.locator("input").is_checked()
    assert "T5 never" in switch.inner_text()
    page.locator("#params-section-network").first.screenshot(path=artifacts / "flux_params_clip_lora.png")
    page.get_by_role("tab", name="Model").click()

    page.locator("#danlu-lang").get_by_text("简体中文").click()
    report.get_by_text("FLUX.1（Black Forest Labs）").wait_for(timeout=90_000)  # the whole page follows the switch
    message.get_by_text("非商业许可").wait_for()
    radio.get_by_text("dev（引导蒸馏，20–28 步）").wait_for()
    page.screenshot(path=artifacts / "flux_model_tab_zh.png", full_page=True)
