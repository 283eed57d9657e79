"""The Model tab: its handlers (no browser) and the user's journey in Chromium."""

from __future__ import annotations

import shutil

import pytest
from browser_util import choose

from core import config as cfgmod
from ui import tab_model


@pytest.fixture(scope="module")
def demo_base(demo_run):
    base = demo_run.parent / "base"
    return base / "tiny-sd15.safetensors", base / "tiny-sd15"


def test_check_chooses_the_model_and_follows_the_family_resolution(demo_base, tmp_path, monkeypatch):
    monkeypatch.setenv("DANLU_CACHE_DIR", str(tmp_path))
    config = cfgmod.to_dict(cfgmod.default_config())
    new, report, message = tab_model.check(f'"{demo_base[0]}"', config, "en")
    assert new["model"]["base"] == str(demo_base[0])
    assert "SD 1.x" in report and "64 px" in report and "Hash (AutoV2)" in report
    assert new["dataset"]["resolution"] == 256  # native 64 px, clamped to the schema's smallest resolution
    assert (new["sampling"]["width"], new["sampling"]["height"]) == (64, 64)
    assert "Chosen as the base model" in message
    config["dataset"]["resolution"] = 768  # the user's own choice is kept
    new, _, _ = tab_model.check(str(demo_base[0]), config, "zh")
    assert new["dataset"]["resolution"] == 768
    assert cfgmod.from_dict(new).model.base == str(demo_base[0])  # still a valid run config


def test_check_refuses_bad_input_without_touching_the_config(tmp_path):
    config = cfgmod.to_dict(cfgmod.default_config())
    new, _, message = tab_model.check(str(tmp_path / "不存在 的.safetensors"), config, "zh")
    assert new is config
    assert "不能作为底模" in message and "找不到" in message and "文件管理器" in message


def test_scan_lists_files_and_folders_with_family(demo_base, tmp_path):
    shutil.copy(demo_base[0], tmp_path / "my model.safetensors")
    shutil.copytree(demo_base[1], tmp_path / "tiny folder")
    (tmp_path / "notes.txt").write_text("x")
    labels = [label for label, _ in tab_model.scan([tmp_path])]
    assert len(labels) == 2 and all("SD 1.x" in label for label in labels)
    assert labels[0].startswith("my model.safetensors")


def test_browser_pick_demo_model_and_bad_path(page, app_server, demo_base, artifacts):
    models_dir = app_server[1].danlu_ctx.models_dir
    shutil.copy(demo_base[0], models_dir / "tiny-sd15.safetensors")
    shutil.copytree(demo_base[1], models_dir / "tiny-sd15", dirs_exist_ok=True)  # its config folder
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-refresh").click()
    found = len(tab_model.scan([models_dir]))  # our two, and any that another browser test put there first
    assert found >= 2
    page.locator("#model-list-note").get_by_text(f"{found} models found").wait_for()
    choose(page, "#model-list", "tiny-sd15.safetensors")
    report = page.locator("#model-report")
    report.get_by_text("SD 1.x").wait_for()
    text = report.inner_text()
    assert "64 px" in text and "Hash (AutoV2)" in text
    from models.hashes import autov2

    assert autov2(models_dir / "tiny-sd15.safetensors") in text
    page.locator("#model-current").get_by_text("tiny-sd15.safetensors").wait_for()
    page.locator("#model-message").get_by_text("Chosen as the base model").wait_for()
    said = page.locator("#model-message").inner_text()
    # The resolution and sample size follow the family; the message says so unless the page's restored settings (an
    # earlier test's) already had them.
    page.get_by_role("tab", name="Parameters").click()
    page.wait_for_function(
        "() => /\\bresolution = 256\\b/.test(document.querySelector('#params-toml textarea').value)")
    toml = page.locator("#params-toml textarea").input_value()
    assert "width = 64" in toml and "height = 64" in toml
    assert ("Training resolution set to 256" in said) == ("Sample size set to 64×64" in said)
    page.get_by_role("tab", name="Model").click()
    page.screenshot(path=artifacts / "model_tab_demo.png", full_page=True)

    page.locator("#model-path textarea, #model-path input").first.fill('"C:\\模型\\missing model.safetensors"')
    page.locator("#model-check").click()
    message = page.locator("#model-message")
    message.get_by_text("Not usable as a base model").wait_for()
    assert "Not found" in message.inner_text() and "danlu-error" in message.get_attribute("class")
    red = "rgb(180, 35, 24)"  # .danlu-error's colour reaches the text, past the Markdown's own prose colour
    assert message.locator("p").first.evaluate("e => getComputedStyle(e).color") == red
    page.locator("#model-current").get_by_text("tiny-sd15.safetensors").wait_for()  # the choice is kept
    page.screenshot(path=artifacts / "model_tab_bad_path.png", full_page=True)

    # The message line and the models-found count follow the language switch, as the report does.
    page.get_by_text("简体中文", exact=True).click()
    message.get_by_text("不能作为底模").wait_for()
    page.locator("#model-list-note").get_by_text(f"找到 {found} 个模型").wait_for()
    assert "danlu-error" in message.get_attribute("class")
    page.screenshot(path=artifacts / "model_tab_bad_path_zh.png", full_page=True)


def test_checks_before_training_are_shown(tmp_path):
    from test_models_detect import write_header_only  # pytest puts tests/ on sys.path

    path = write_header_only(tmp_path / "xl.safetensors", {
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
        "conditioner.embedders.1.model.ln_final.weight": (1280,), "first_stage_model.encoder.conv_in.weight": (1,)},
        {"modelspec.prediction_type": "v"})
    config = cfgmod.to_dict(cfgmod.default_config())
    config["dataset"]["resolution"] = 512  # the default: follows the family to 1024, so no warning
    new, _, message = tab_model.check(str(path), config, "en")
    assert new["dataset"]["resolution"] == 1024 and "far from" not in message
    new["dataset"]["resolution"] = 576
    new["model"]["prediction_type"] = "epsilon"
    from models.detect import detect

    notes = tab_model.checks_text(detect(str(path)), new, "en")
    assert any("far from this model's native 1024px" in n for n in notes)
    assert any(n.startswith("**Fix before training:**") and "v-prediction" in n for n in notes)
