"""Buckets and the subset reader: the rules the trainer and the Dataset tab share."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.dataset import IMAGE_EXTENSIONS, folder_problems, list_subsets, parse_subset_name, suggest_subset_name
from core.dataset.buckets import assign_bucket, make_buckets
from core.errors import DanluError


def test_buckets_at_512_match_sd_scripts():
    b = make_buckets(512)
    assert len(b) == 17
    assert (512, 512) in b and (448, 576) in b and (576, 448) in b and (384, 640) in b and (256, 1024) in b
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 for w, h in b)
    assert b == sorted(b)


def test_sdxl_default_max_caps_sides():
    assert (832, 1216) not in make_buckets(1024, 256, 1024, 64)
    assert (832, 1216) in make_buckets(1024, 256, 2048, 64)


def test_exact_bucket_size_is_used_without_scaling():
    b = assign_bucket(448, 576, resolution=512, min_reso=256, max_reso=1024, step=64)
    assert b.size == (448, 576) and b.scale == 1.0 and b.crop_fraction == 0.0 and b.crop_ltrb == (0, 0, 448, 576)


def test_cover_and_centre_crop():
    # 1000x700 (aspect 1.43): nearest bucket 576x448 (1.29, vs 640x384 at 1.67); wider -> match the height
    b = assign_bucket(1000, 700, resolution=512, min_reso=256, max_reso=1024, step=64)
    assert b.size == (576, 448)
    assert b.resized == (640, 448)
    assert b.crop_ltrb == (32, 0, 608, 448)
    assert b.crop_fraction == pytest.approx(1 - 576 / 640)
    # a very wide image is cropped a lot
    wide = assign_bucket(3000, 500, resolution=512, min_reso=256, max_reso=1024, step=64)
    assert wide.size == (1024, 256)
    assert wide.crop_fraction > 0.25


def test_small_image_is_upscaled_unless_no_upscale():
    b = assign_bucket(100, 100, resolution=512, min_reso=256, max_reso=1024, step=64)
    assert b.size == (512, 512) and b.upscaled and b.resized == (512, 512)
    n = assign_bucket(300, 200, resolution=512, min_reso=256, max_reso=1024, step=64, no_upscale=True)
    assert n.size == (256, 192) and n.scale == 1.0 and not n.upscaled
    assert n.crop_ltrb == (22, 4, 278, 196)


def test_no_upscale_shrinks_large_images_to_the_area():
    b = assign_bucket(2000, 1000, resolution=512, step=64, no_upscale=True)
    w, h = b.size
    assert w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0
    assert b.scale < 1 and b.resized[0] >= w and b.resized[1] >= h
    assert abs(b.resized[0] / b.resized[1] - 2.0) < 0.02


def test_bucketing_off_is_one_square():
    b = assign_bucket(800, 600, resolution=512, enable_bucket=False)
    assert b.size == (512, 512)
    assert b.resized == (683, 512)
    assert b.crop_ltrb == (85, 0, 597, 512)


@pytest.mark.parametrize("name, expected", [
    ("10_sks dog", (10, "sks dog")), ("1_a_b", (1, "a_b")), ("3_猫", (3, "猫")),
    ("cat", None), ("10-cat", None), ("0_cat", None), ("x_cat", None), ("_cat", None)])
def test_parse_subset_name(name, expected):
    assert parse_subset_name(name) == expected


def test_suggested_fixes():
    assert suggest_subset_name("cat") == "10_cat"
    assert suggest_subset_name("10-cat") == "10_cat"
    assert suggest_subset_name("0_cat") == "1_cat"


def _touch_png(p: Path) -> None:
    from PIL import Image

    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(p)


def test_list_subsets_reads_concepts_and_reports_the_rest(tmp_path):
    _touch_png(tmp_path / "10_sks dog" / "a.png")
    _touch_png(tmp_path / "10_sks dog" / "B.JPG")
    (tmp_path / "10_sks dog" / "a.txt").write_text("x", encoding="utf-8")
    _touch_png(tmp_path / "5_cat" / "c.webp")
    _touch_png(tmp_path / "cat" / "d.png")
    _touch_png(tmp_path / "10-cat" / "d.png")
    _touch_png(tmp_path / "0_cat" / "d.png")
    (tmp_path / "3_empty").mkdir()
    subsets = list_subsets(tmp_path)
    assert [(s.repeats, s.name, [p.name for p in s.images]) for s in subsets] == [
        (10, "sks dog", ["B.JPG", "a.png"]), (5, "cat", ["c.webp"])]
    problems = {p.path.name: p for p in folder_problems(tmp_path)}
    assert problems["cat"].fix == "10_cat" and "rename to 10_cat" in problems["cat"].en
    assert problems["10-cat"].fix == "10_cat"
    assert problems["0_cat"].code == "zero_repeats" and "1_cat" in problems["0_cat"].en
    assert problems["3_empty"].code == "empty"
    assert ".png" in IMAGE_EXTENSIONS


def test_pointing_at_the_image_folder_is_explained(tmp_path):
    _touch_png(tmp_path / "ds" / "10_dog" / "a.png")
    with pytest.raises(DanluError) as e:
        list_subsets(tmp_path / "ds" / "10_dog")
    assert "parent" in e.value.en and str(tmp_path / "ds") in e.value.en
    _touch_png(tmp_path / "plain" / "a.png")
    with pytest.raises(DanluError) as e:
        list_subsets(tmp_path / "plain")
    assert "1 images lie" in e.value.en or "holds 1 images directly" in e.value.en
    with pytest.raises(DanluError, match="not found"):
        list_subsets(tmp_path / "missing")
    _touch_png(tmp_path / "bad" / "cat" / "a.png")
    with pytest.raises(DanluError, match="cat → 10_cat"):
        list_subsets(tmp_path / "bad")
