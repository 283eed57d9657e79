"""The Config tab in Chromium: importing an sd-scripts FLUX.1 command line shows the report (what was mapped, what
Danlu cannot do, the flags read as sd-scripts' defaults) and its warnings, and asks before changing anything."""

from __future__ import annotations

# sd-scripts' flux_train_network.py with the FLUX flags left out: guidance 3.5 and sigma_scaled are what it ran
FLUX_LINE = ("accelerate launch flux_train_network.py --pretrained_model_name_or_path /m/flux1-dev.safetensors "
             "--clip_l /m/clip_l.safetensors --t5xxl /elsewhere/t5xxl_fp16.safetensors --ae /m/ae.safetensors "
             "--network_module networks.lora_flux --network_dim 16 --network_alpha 16 --train_data_dir /d "
             "--output_name flux-imported --resolution 1024 --blocks_to_swap 16 --network_train_unet_only\n")


def test_config_tab_import_of_a_flux_run_shows_the_report_and_warnings(page, artifacts, tmp_path):
    peer = tmp_path / "train_flux.sh"
    peer.write_text(FLUX_LINE, encoding="utf-8")
    page.click("#tab-config-button")
    page.locator("#config-import input[type=file]").set_input_files(str(peer))
    message = page.locator("#config-message")
    message.get_by_text("Imported as sd-scripts").wait_for(timeout=60_000)
    said = message.inner_text()
    assert "3.5 (not set: default)" in said and "sigma_scaled (not set: default)" in said
    assert "Danlu trains dev with guidance 1; this run gave the model 3.5" in said
    assert "Danlu looks for T5-XXL beside the base" in said
    assert "Warnings" in said and "sd-scripts' docs say to set 1 for dev" in said and "docs recommend raw" in said
    assert page.locator("#config-apply").is_visible()  # nothing changes until the user applies it
    assert 'name = "flux-imported"' in page.locator("#config-text").inner_text()
    message.screenshot(path=artifacts / "config_import_flux.png")  # the report and its warnings, as shown
