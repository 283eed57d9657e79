"""Multi-resolution training (dataset.resolutions, ai-toolkit's `resolution: [512, 768, 1024]`): each image bucketed
and trained once per resolution; the step plan, the trainer's batches, the tabs, the memory estimate and the latent
cache agree on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import config as cfgmod
from core.dataset.buckets import plan_sizes, resolutions_of
from core.dataset.scan import scan_dataset
from core.dataset.steps import plan_steps
from core.errors import ConfigError
from training import data as D


def _images(folder: Path, sizes: list[tuple[int, int]]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (i * 40 % 255, 90, 160)).save(folder / f"i{i}.png")


@pytest.fixture
def cfg(tmp_path):
    _images(tmp_path / "data" / "3_cat", [(512, 512)] * 3 + [(768, 512)] * 2)
    _images(tmp_path / "data" / "1_dog", [(512, 768)] * 3)
    _images(tmp_path / "reg" / "1_animal", [(512, 512)] * 2)
    c = cfgmod.default_config()
    c.dataset.dir = str(tmp_path / "data")
    c.dataset.resolutions = [256, 384, 512]
    c.dataset.min_bucket_reso = 128
    c.training.batch_size = 2
    c.training.epochs = 3
    return c


def test_plan_counts_each_image_once_per_resolution():
    one = plan_steps([("10_a", 10, [(512, 512)] * 3 + [(640, 384)])], batch_size=4, epochs=2)
    sizes = [(r, (r, r)) for r in (512, 768, 1024) for _ in range(3)] + \
        [(512, (640, 384)), (768, (896, 640)), (1024, (1216, 832))]
    multi = plan_steps([("10_a", 10, sizes)], batch_size=4, epochs=2)
    assert (one.images_per_epoch, multi.images_per_epoch) == (40, 120)
    assert multi.concepts[0].images == 4 and multi.concepts[0].per_epoch == 120
    # per resolution: 30 square samples (8 batches of 4) and 10 of the other shape (3 batches)
    assert multi.per_resolution == {512: (40, 11), 768: (40, 11), 1024: (40, 11)}
    assert multi.batches_per_epoch == 33 == 3 * one.batches_per_epoch and multi.total_steps == 66
    assert multi.resolutions == [512, 768, 1024] and one.resolutions == [] and one.per_resolution == {}
    assert multi.formula("en").startswith("4×10×3 = 120 images×repeats×resolutions / batch 4")
    assert "4×10×3 = 120 样本（图片×重复×分辨率）" in multi.formula("zh")
    assert multi.resolutions_text("en") == ("Resolutions: 512 px 40 samples / 11 batches, 768 px 40 samples / "
                                            "11 batches, 1024 px 40 samples / 11 batches")
    assert multi.resolutions_text("zh").startswith("多分辨率：512 px 40 样本 / 11 批")
    assert one.resolutions_text("en") == "" and "Resolutions" in multi.notes("en")


def test_a_bucket_shared_by_two_resolutions_still_batches_apart():
    # a small image with bucket_no_upscale keeps its size at every resolution: ai-toolkit's per-resolution copies
    # never share a batch, so neither do Danlu's
    plan = plan_steps([("1_a", 1, [(256, (320, 320)), (384, (320, 320))])], batch_size=2, epochs=1)
    assert plan.batches_per_epoch == 2 and plan.bucket_counts == {(320, 320): 2}


def test_buckets_at_each_resolution_resolution_major(cfg):
    d = cfg.dataset
    assert resolutions_of(d) == [256, 384, 512]
    got = plan_sizes(d, [(512, 512), (768, 512)])
    assert [r for r, _ in got] == [256, 256, 384, 384, 512, 512]
    assert got[0][1] == (256, 256) and got[4][1] == (512, 512)
    assert all(w * h <= r * r for r, (w, h) in got)
    d.resolutions = []
    assert resolutions_of(d) == [d.resolution]


@pytest.mark.parametrize("with_reg", [False, True])
def test_trainer_batches_match_the_tabs_plan(cfg, tmp_path, with_reg):
    if with_reg:
        cfg.dataset.reg_dir = str(tmp_path / "reg")
    ds = D.build_dataset(cfg)
    plan = scan_dataset(Path(cfg.dataset.dir), cfg, reg_dir=Path(cfg.dataset.reg_dir) if with_reg else None).plan
    batches = D.epoch_batches(ds, 2, seed=1, epoch=0)
    assert len(batches) == plan.batches_per_epoch
    assert ds.images_per_epoch == plan.images_per_epoch == sum(len(b) for b in batches) == (18 + 18 * with_reg) * 3
    assert all(len({(it.resolution, it.size) for it in b}) == 1 for b in batches)  # one resolution and bucket each
    assert ds.images == 8 and len(ds.items) == 24
    for res in (256, 384, 512):
        at = [it for b in batches for it in b if it.resolution == res]
        assert len(at) == plan.per_resolution[res][0]
        assert all(it.size[0] * it.size[1] <= res * res for it in at)
    # the safetensors metadata count each image once
    assert D.dataset_dirs(ds) == {"1_dog": {"n_repeats": 1, "img_count": 3}, "3_cat": {"n_repeats": 3, "img_count": 5}}


def test_field_is_validated_and_round_trips_through_the_toml(tmp_path):
    cfg = cfgmod.merge_dict(cfgmod.default_config(), {"dataset": {"resolutions": [512, 768, 1024]}})
    path = cfgmod.save(cfg, tmp_path / "run.toml")
    assert "resolutions = [" in path.read_text(encoding="utf-8")
    assert cfgmod.load(path).dataset.resolutions == [512, 768, 1024]
    for bad, words in (([512, 700], "multiple of 64"), ([128], "out of range"), (["512"], "whole numbers"),
                       (512, "whole numbers")):
        with pytest.raises(ConfigError) as e:
            cfgmod.merge_dict(cfgmod.default_config(), {"dataset": {"resolutions": bad}})
        assert words in e.value.en and e.value.key == "dataset.resolutions" and e.value.zh


def test_memory_estimate_uses_the_largest_resolution():
    from core.runs.estimate import estimate_memory

    for family in ("sd15", "zimage"):
        small = cfgmod.default_config()
        small.dataset.resolution = 512
        multi = cfgmod.merge_dict(small, {"dataset": {"resolutions": [512, 1024, 768]}})
        big = cfgmod.merge_dict(small, {"dataset": {"resolution": 1024}})
        assert estimate_memory(multi, family).total_gb == estimate_memory(big, family).total_gb
        assert estimate_memory(multi, family).total_gb > estimate_memory(small, family).total_gb
        assert "1024 px, the largest of 512/1024/768" in estimate_memory(multi, family).parts[2][0]


def test_zimage_presets_train_at_512_768_1024():
    for name in ("zimage_turbo_adapter", "zimage_deturbo"):
        assert cfgmod.load(preset=name).dataset.resolutions == [512, 768, 1024]


def test_form_field_shows_the_list_on_one_line_and_reads_it_back():
    from ui.form import field_to_config, from_component, to_component

    spec = cfgmod.field_spec("dataset.resolutions")
    assert to_component(spec, [512, 768, 1024]) == "512, 768, 1024"
    assert from_component(spec, "512, 768 1024") == [512, 768, 1024] and from_component(spec, "") == []
    config = cfgmod.to_dict(cfgmod.default_config())
    new, err = field_to_config(spec, "512, 768", config)
    assert err is None and new["dataset"]["resolutions"] == [512, 768]
    _, err = field_to_config(spec, "512, big", config)
    assert err is not None and err.key == "dataset.resolutions"


def test_tiny_run_takes_the_planned_steps_and_caches_latents_at_each_resolution(tmp_path):
    from safetensors.torch import load_file

    from core.events import read_events
    from core.runs.estimate import count_steps
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    base = save_tiny("sd15", tmp_path / "base", single_file=False).folder
    data = flat_dataset(tmp_path / "data", count=3, repeats=1, size=64)
    cfg = tiny_config(base, data, tmp_path / "runs", "multi")
    cfg.dataset.resolutions = [256, 320, 384]
    cfg.dataset.bucket_no_upscale = False  # the 64 px images are scaled to each resolution's square bucket
    cfg.dataset.cache_latents = "disk"
    cfg.network.train_text_encoder = False
    cfg.training.epochs, cfg.training.batch_size, cfg.saving.every_n_epochs = 1, 3, 0
    cfg.sampling.prompts = []
    plan = count_steps(cfg)
    assert plan.per_resolution == {256: (3, 1), 320: (3, 1), 384: (3, 1)} and plan.total_steps == 3

    train(cfg)
    events = read_events(cfg.run_dir / "events.jsonl")[0]
    start = next(e for e in events if e["type"] == "start")
    assert start["total_steps"] == plan.total_steps and start["images"] == plan.images_per_epoch == 9
    assert max(e["step"] for e in events if e["type"] == "progress") == plan.total_steps
    latents = [load_file(str(p))["latent"] for p in (tmp_path / "runs" / ".cache" / "latents").glob("*.safetensors")]
    # three images at three resolutions: the 8× VAE gives 32, 40 and 48 latent pixels a side
    assert sorted(tuple(t.shape[-2:]) for t in latents) == [(32, 32)] * 3 + [(40, 40)] * 3 + [(48, 48)] * 3
