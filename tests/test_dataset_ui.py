"""The Dataset tab: handlers without a browser, then the user's journey in Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import config as cfgmod
from core.dataset.scan import scan_dataset
from ui import dataset_view


@pytest.fixture(scope="module")
def plain_images(demo_run, tmp_path_factory) -> Path:
    """The demo's 12 images and captions in a plain folder with a Chinese name and a space."""
    src = demo_run.parent / "dataset" / "10_demo"
    dest = tmp_path_factory.mktemp("pick") / "我的 demo"
    shutil.copytree(src, dest)
    return dest


def test_steps_and_chart_follow_the_config(demo_run):
    cfg = cfgmod.to_dict(cfgmod.load(demo_run))
    parent = cfg["dataset"]["dir"]
    scan, state, summary, steps, chart, rows, items, label = dataset_view.run_scan(parent, "", cfg, True, False, "en")
    frame = dataset_view.chart_frame(scan, "en")
    plan = scan.plan
    # 12 demo images × 10 repeats, batch 2: 8 squares + 4 landscape images, each bucket counted separately
    assert plan.images_per_epoch == 120
    assert plan.total_steps == plan.steps_per_epoch * 4 == 60 * 4
    assert "**240** steps" in steps and "| `10_demo` | 12 | 10 | 120 | 60 |" in steps
    assert list(frame.iloc[:, 1]) == list(plan.bucket_counts.values()) and sum(frame.iloc[:, 1]) == 120
    assert list(rows.columns) == ["File", "Level", "What is wrong and what to do"] and len(rows) == 12
    assert len(items) == 12 and all(Path(p).is_file() for p, _ in items)  # thumbnails made for the page
    assert "12** images" in summary
    cfg["training"]["batch_size"] = 4
    steps4 = dataset_view.run_scan(parent, "", cfg, True, False, "en")[3]
    assert "**120** steps" in steps4
    zh = dataset_view.run_scan(parent, "", cfg, True, False, "zh")[3]
    assert "步数" in zh


def test_config_gets_the_folder_and_trigger_word(demo_run):
    cfg = cfgmod.to_dict(cfgmod.default_config())
    parent = str(demo_run.parent / "dataset")
    scan = scan_dataset(Path(parent))
    new = dataset_view.with_dataset(cfg, parent, "", scan)
    assert new["dataset"]["dir"] == parent and new["dataset"]["trigger_word"] == "demo"
    assert cfg["dataset"]["dir"] == ""  # the old dict is not changed in place
    cfgmod.from_dict(new)  # still a valid config
    new["dataset"]["trigger_word"] = "mine"
    assert dataset_view.with_dataset(new, parent, "", scan)["dataset"]["trigger_word"] == "mine"


def test_browser_pick_build_and_see(page, plain_images, artifacts, app_server):
    page.set_default_timeout(90_000)  # the machine is shared; the first scan also makes the thumbnails
    page.click("#tab-dataset-button") if page.locator("#tab-dataset-button").count() else \
        page.get_by_role("tab", name="3 Dataset").click()
    page.fill("#dataset-path textarea, #dataset-path input", str(plain_images))
    page.click("#dataset-open")
    status = page.locator("#dataset-status")
    status.get_by_text("holds 12 images but is not laid out for training").wait_for()
    assert page.input_value("#dataset-name textarea, #dataset-name input") == "我的 demo"
    assert page.input_value("#dataset-repeats input") == "17"
    page.fill("#dataset-name textarea, #dataset-name input", "demo")
    page.fill("#dataset-repeats input", "10")
    page.click("#dataset-build")
    status.get_by_text("Built").wait_for()
    built = plain_images.with_name(plain_images.name + "-dataset") / "10_demo"
    assert len(list(built.glob("*.png"))) == 12 and len(list(built.glob("*.txt"))) == 12
    steps = page.locator("#dataset-steps")
    # the shared page holds the default config: batch 1, 10 epochs → 12 × 10 × 10 = 1200 steps
    expect(steps).to_contain_text("= 1200 steps")
    expect(steps).to_contain_text("10_demo")
    gallery = page.locator("#dataset-gallery")
    gallery.locator("img").first.wait_for()
    assert gallery.locator("img").count() >= 12
    checks = page.locator("#dataset-checks")
    expect(checks).to_contain_text("will be upscaled")  # 96 px demo images at resolution 512
    page.locator("#dataset-chart").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "dataset_tab.png", full_page=True)
    assert str(built.parent) in page.input_value("#dataset-path textarea, #dataset-path input")


def test_browser_upload_into_a_new_dataset(page, demo_run, app_server):
    page.set_default_timeout(90_000)
    page.get_by_role("tab", name="3 Dataset").click()
    src = demo_run.parent / "dataset" / "10_demo"
    files = [str(p) for p in sorted(src.iterdir())[:6]]  # demo_00..02 with their captions
    page.fill("#dataset-name textarea, #dataset-name input", "uploaded 猫")
    page.fill("#dataset-repeats input", "0")
    page.locator("#dataset-upload input[type=file]").set_input_files(files)
    expect(page.locator("#dataset-upload")).to_contain_text(re.compile(r"demo_02\s*\.txt"))  # the last file is up
    page.click("#dataset-import")
    expect(page.locator("#dataset-status")).to_contain_text("Built")
    folder = app_server[2].parent / "datasets" / "uploaded 猫" / "20_uploaded 猫"  # 3 images → 20 repeats (max)
    assert sorted(p.name for p in folder.iterdir()) == [
        "demo_00.png", "demo_00.txt", "demo_01.png", "demo_01.txt", "demo_02.png", "demo_02.txt"]
    expect(page.locator("#dataset-steps")).to_contain_text("20_uploaded 猫")
