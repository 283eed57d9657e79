"""The Tools tab in Chromium: the metadata edit is filled from the inspected file and saved to a new file with a
green line, and after the switch to 简体中文 the Convert section's target choices and the Inspect report read in
Chinese."""

from __future__ import annotations

import time

from playwright.sync_api import expect
from toolbox_files import english_words, random_kohya


def test_metadata_edit_and_chinese_convert_choices(page, app_server, tmp_path, artifacts):
    started = time.monotonic()
    src = random_kohya(tmp_path / "ink.safetensors", 5)
    outputs = app_server[2]
    page.get_by_role("tab", name="Tools").click()
    page.locator("#tools-inspect-file input[type=file]").set_input_files(str(src))
    page.locator("#tools-inspect-status").get_by_text("family:").wait_for(timeout=45_000)

    page.locator("#tools-meta button.label-wrap").first.click()
    title = page.locator("#tools-meta-title input, #tools-meta-title textarea").first
    expect(title).to_have_value("")  # the file has no title yet: the form says so
    triggers = page.locator("#tools-meta-triggers textarea, #tools-meta-triggers input").first
    # The fields are filled from the file by an event of their own, which may land after the report: type once it
    # has (the typed values must stay put for a second).
    for _ in range(5):
        title.fill("Ink wash")
        triggers.fill("inkwash, monochrome")
        page.wait_for_timeout(1000)
        if title.input_value() == "Ink wash" and triggers.input_value() == "inkwash, monochrome":
            break
    page.click("#tools-meta-start")
    status = page.locator("#tools-meta-status")
    status.get_by_text("Saved to").wait_for(timeout=45_000)
    assert "danlu-ok" in (status.get_attribute("class") or "")
    expect(status).to_contain_text("title: Ink wash · trigger words: inkwash, monochrome · description: none")
    assert (outputs / "tools" / "ink-meta.safetensors").is_file()
    page.screenshot(path=str(artifacts / "tools_meta_en.png"), full_page=True)

    page.locator("#tools-convert button.label-wrap").first.click()
    page.locator("#tools-convert-file input[type=file]").set_input_files(str(src))
    target = page.locator("#tools-convert-target")
    target.get_by_text("peft (diffusers' own)").wait_for()
    page.locator("#danlu-lang").get_by_text("简体中文").click()
    # The switch relabels the whole page in one event: on a loaded CPU that can take longer than a click.
    target.get_by_text("diffusers 自有格式（peft）").wait_for(timeout=90_000)  # the file's choices follow the language
    expect(page.locator("#tools-meta-start")).to_have_text("保存为新文件")
    expect(status).to_contain_text("标题：Ink wash")  # the status line follows too
    inspected = page.locator("#tools-inspect-status")
    inspected.get_by_text("底模系列：").wait_for(timeout=45_000)  # the Inspect report is said again, in Chinese
    report = inspected.inner_text()
    assert "网络：LoRA（kohya），4 个模块：" in report and "ComfyUI：读取全部键" in report, report
    labels = [line.partition("：")[0] for line in report.splitlines() if "：" in line]
    assert "网络维度（rank）" in labels and not any(english_words(label) for label in labels), labels
    page.locator("#tools-inspect").screenshot(path=str(artifacts / "tools_inspect_zh.png"))
    page.screenshot(path=str(artifacts / "tools_meta_zh.png"), full_page=True)
    print(f"tools metadata journey: {time.monotonic() - started:.1f} s")
