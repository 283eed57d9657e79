"""The folder builder on plain, nested and kohya-shaped inputs, and the step arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from core import config as cfgmod
from core.dataset import list_subsets
from core.dataset.build import build_dataset, detect_shape, import_files, suggest_repeats
from core.dataset.scan import scan_dataset
from core.dataset.steps import plan_steps
from core.errors import DanluError


def _img(p: Path, size=(64, 64), colour=(200, 10, 10), caption: str | None = None) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(p)
    if caption is not None:
        p.with_suffix(".txt").write_text(caption, encoding="utf-8")
    return p


def test_repeats_rule():
    assert [suggest_repeats(n) for n in (1, 5, 12, 20, 50, 100, 200, 1000)] == [20, 20, 17, 10, 4, 2, 1, 1]


def test_plain_folder_is_copied_into_a_concept_folder(tmp_path):
    src = tmp_path / "我的 图片"
    for i in range(4):
        _img(src / f"img {i}.png", colour=(i * 50, 0, 0), caption=f"cap {i}")
    _img(src / "extra.jfif")
    assert detect_shape(src) == "plain"
    r = build_dataset(src, name="sks 猫")
    assert r.kind == "plain" and r.parent == tmp_path / "我的 图片-dataset"
    assert r.subset_dir.name == "20_sks 猫"
    assert sorted(p.name for p in r.subset_dir.iterdir()) == [
        "extra.jpg", "img 0.png", "img 0.txt", "img 1.png", "img 1.txt", "img 2.png", "img 2.txt", "img 3.png",
        "img 3.txt"]
    assert (src / "img 0.png").exists()  # copied, not moved
    subsets = list_subsets(r.parent)
    assert [(s.repeats, s.name, len(s.images)) for s in subsets] == [(20, "sks 猫", 5)]
    assert (r.subset_dir / "img 2.txt").read_text(encoding="utf-8") == "cap 2"


def test_building_twice_never_overwrites(tmp_path):
    src = tmp_path / "pics"
    _img(src / "a.png", caption="first")
    r1 = build_dataset(src, name="dog", repeats=5)
    assert len(r1.written) == 2
    r2 = build_dataset(src, name="dog", repeats=5)
    assert r2.written == [] and [p.name for p in r2.skipped] == ["a.png"]
    # a different picture with the same name gets a new name, and its caption follows it
    _img(src / "a.png", colour=(0, 0, 255), caption="second")
    r3 = build_dataset(src, name="dog", repeats=5)
    assert [p.name for p in r3.written] == ["a-1.png", "a-1.txt"]
    assert (r1.subset_dir / "a.txt").read_text(encoding="utf-8") == "first"
    assert (r1.subset_dir / "a-1.txt").read_text(encoding="utf-8") == "second"


def test_nested_folder_is_flattened_and_move_on_request(tmp_path):
    src = tmp_path / "char"
    _img(src / "outfit1" / "a.png", caption="one")
    _img(src / "outfit2" / "a.png", colour=(0, 255, 0), caption="two")
    _img(src / "outfit2" / "deeper" / "b.webp")
    assert detect_shape(src) == "nested"
    r = build_dataset(src, name="char", repeats=3, move=True)
    assert r.parent == src and r.subset_dir == src / "3_char"
    assert sorted(p.name for p in r.subset_dir.iterdir()) == [
        "outfit1_a.png", "outfit1_a.txt", "outfit2_a.png", "outfit2_a.txt", "outfit2_deeper_b.webp"]
    assert not (src / "outfit1" / "a.png").exists()  # moved
    assert [len(s.images) for s in list_subsets(r.parent)] == [3]


def test_kohya_shaped_input_is_used_as_it_is(tmp_path):
    _img(tmp_path / "ds" / "10_cat" / "a.png")
    _img(tmp_path / "ds" / "5_dog" / "b.png")
    r = build_dataset(tmp_path / "ds", name="ignored")
    assert r.kind == "kohya" and r.parent == tmp_path / "ds" and not r.written
    r = build_dataset(tmp_path / "ds" / "10_cat", name="ignored")  # the concept folder → its parent
    assert r.kind == "subset" and r.parent == tmp_path / "ds"


def test_builder_errors_are_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DanluError, match="No images"):
        build_dataset(tmp_path / "empty", name="x")
    _img(tmp_path / "p" / "a.png")
    with pytest.raises(DanluError, match="cannot be used in a folder name"):
        build_dataset(tmp_path / "p", name="a/b")
    with pytest.raises(DanluError, match="not found"):
        build_dataset(tmp_path / "nope", name="x")


def test_uploads_land_in_a_new_concept_folder(tmp_path):
    up = tmp_path / "upload"
    a = _img(up / "1" / "a.png")
    cap = up / "2" / "a.txt"
    cap.parent.mkdir()
    cap.write_text("uploaded caption", encoding="utf-8")
    b = _img(up / "3" / "b.jpg")
    r = import_files([a, cap, b], tmp_path / "datasets" / "mine", name="mine")
    assert r.subset_dir == tmp_path / "datasets" / "mine" / "20_mine"
    assert (r.subset_dir / "a.txt").read_text(encoding="utf-8") == "uploaded caption"
    assert [s.name for s in list_subsets(r.parent)] == ["mine"]


def test_steps_count_partial_bucket_batches():
    sq, wide = (512, 512), (640, 384)
    plan = plan_steps([("10_a", 10, [sq] * 15 + [wide] * 5)], batch_size=2, epochs=10)
    assert plan.images_per_epoch == 200 and plan.batches_per_epoch == 75 + 25 and plan.total_steps == 1000
    plan = plan_steps([("3_a", 3, [sq] * 3 + [wide] * 1)], batch_size=2, epochs=2, every_n_epochs=1)
    # 9 square → 5 batches, 3 wide → 2 batches; plain ⌈12/2⌉ = 6 → one partial-bucket batch
    assert plan.batches_per_epoch == 7 and plan.partial_batches == 1 and plan.total_steps == 14
    assert plan.save_steps == [(1, 7), (2, 14)]
    assert "4×3 = 12 images×repeats / batch 2 = 6 + 1 partial-bucket batches = 7" in plan.formula()
    assert plan.formula("zh").startswith("4×3 = 12 样本")
    acc = plan_steps([("3_a", 3, [sq] * 3 + [wide])], batch_size=2, epochs=2, grad_accum=4)
    assert acc.steps_per_epoch == 2 and acc.total_steps == 4


def test_regularisation_is_cycled_to_match():
    plan = plan_steps([("10_a", 10, [(512, 512)] * 4)], reg=[("1_person", 1, [(512, 512)] * 3)], batch_size=1,
                      epochs=1)
    assert [c.per_epoch for c in plan.concepts] == [40, 40] and plan.concepts[1].is_reg
    assert plan.images_per_epoch == 80 and plan.total_steps == 80


def test_scan_of_built_folder_counts_per_concept(tmp_path):
    for i in range(6):
        _img(tmp_path / "ds" / "10_cat" / f"{i}.png", size=(512, 512), colour=(i * 40, 0, 0), caption="cat")
    for i in range(2):
        _img(tmp_path / "ds" / "5_dog" / f"{i}.png", size=(640, 384), colour=(0, i * 90, 0), caption="dog")
    _img(tmp_path / "reg" / "1_animal" / "r.png", size=(512, 512))
    cfg = cfgmod.load(overrides=["training.batch_size=4", "training.epochs=3"])
    s = scan_dataset(tmp_path / "ds", cfg, reg_dir=tmp_path / "reg")
    by = {c.name: c for c in s.plan.concepts}
    assert by["10_cat"].per_epoch == 60 and by["5_dog"].per_epoch == 10 and by["1_animal"].per_epoch == 70
    assert s.plan.bucket_counts == {(512, 512): 130, (640, 384): 10}
    assert s.plan.batches_per_epoch == 33 + 3 and s.plan.total_steps == 108
