"""Training data: buckets per batch, step arithmetic as the planner shows it, captions, the latent cache."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core import config as cfgmod
from core.dataset.steps import plan_steps
from training import data as D


def _images(folder: Path, sizes: list[tuple[int, int]], caption: str | None = "a, b, c, d") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (i * 20 % 255, 90, 160)).save(folder / f"i{i}.png")
        if caption is not None:
            (folder / f"i{i}.txt").write_text(caption, encoding="utf-8")


@pytest.fixture
def cfg(tmp_path):
    _images(tmp_path / "data" / "3_cat", [(512, 512)] * 3 + [(768, 512)] * 2)
    _images(tmp_path / "data" / "1_dog", [(512, 768)] * 3, caption=None)
    _images(tmp_path / "reg" / "1_animal", [(512, 512)] * 2)
    c = cfgmod.default_config()
    c.dataset.dir = str(tmp_path / "data")
    c.dataset.trigger_word = "sks"
    c.dataset.min_bucket_reso = 256
    c.training.batch_size = 2
    return c


def _plan(ds: D.Dataset, c, reg: bool):
    def rows(items):
        out = {}
        for it in items:
            out.setdefault(it.subset, []).append(it)
        return [(name, ds.repeats[its[0].image], [it.size for it in its]) for name, its in out.items()]
    return plan_steps(rows(ds.items), batch_size=c.training.batch_size, epochs=3,
                      reg=rows(ds.reg_items) if reg else None)


@pytest.mark.parametrize("with_reg", [False, True])
def test_batches_match_the_planner(cfg, tmp_path, with_reg):
    if with_reg:
        cfg.dataset.reg_dir = str(tmp_path / "reg")
    ds = D.build_dataset(cfg)
    plan = _plan(ds, cfg, with_reg)
    batches = D.epoch_batches(ds, 2, seed=1, epoch=0)
    assert len(batches) == plan.batches_per_epoch
    assert ds.images_per_epoch == plan.images_per_epoch == sum(len(b) for b in batches)
    assert all(len({it.size for it in b}) == 1 for b in batches)  # one bucket per batch
    assert D.epoch_batches(ds, 2, seed=1, epoch=0) == batches           # rebuilt exactly on resume
    assert D.epoch_batches(ds, 2, seed=1, epoch=1) != batches           # reshuffled each epoch
    if with_reg:
        reg = [it for b in batches for it in b if it.subset == "1_animal"]
        assert len(reg) == 18 and all(not it.caption.startswith("sks") for it in reg)


def test_captions_trigger_class_token_and_processing(cfg):
    ds = D.build_dataset(cfg)
    by_subset = {it.subset: it.caption for it in ds.items}
    assert by_subset["3_cat"] == "sks, a, b, c, d"
    assert by_subset["1_dog"] == "sks, dog"  # no caption file: the folder's class token
    cfg.dataset.shuffle_caption = True
    cfg.dataset.keep_tokens = 2
    rng = random.Random(0)
    seen = {D.process_caption("sks, a, b, c, d", cfg, rng) for _ in range(40)}
    assert len(seen) > 1 and all(s.startswith("sks, a, ") for s in seen)
    cfg.dataset.caption_dropout_rate = 1.0
    assert D.process_caption("sks, a", cfg, rng) == ""


def test_disk_latent_cache_is_reused_and_follows_the_image(cfg, tmp_path):
    import torch

    ds = D.build_dataset(cfg)
    item = ds.items[0]
    calls = []

    def encode(it, flip):
        calls.append((it.image, flip))
        return torch.full((4, 8, 8), float(len(calls)))

    folder = tmp_path / "cache"
    first = D.LatentCache("disk", folder, "vae-a").get(item, False, encode)
    again = D.LatentCache("disk", folder, "vae-a").get(item, False, encode)  # a later run
    assert len(calls) == 1 and torch.equal(first, again)
    D.LatentCache("disk", folder, "vae-b").get(item, False, encode)  # another VAE
    D.LatentCache("disk", folder, "vae-a").get(item, True, encode)   # flipped
    assert len(calls) == 3
    import os
    import time

    os.utime(item.image, (time.time() + 5, time.time() + 5))  # the image changed
    D.LatentCache("disk", folder, "vae-a").get(item, False, encode)
    assert len(calls) == 4


def test_pixels_are_cover_scaled_and_centre_cropped(cfg):
    ds = D.build_dataset(cfg)
    wide = next(it for it in ds.items if it.original == (768, 512))
    px = D.load_pixels(wide)
    assert tuple(px.shape) == (3, wide.size[1], wide.size[0])
    assert float(px.min()) >= -1.0 and float(px.max()) <= 1.0


def _cfg(clip_skip: int, max_token_length: int):
    from core import config as cfgmod

    return cfgmod.with_values(cfgmod.default_config(), {"training.clip_skip": clip_skip,
                                                        "training.max_token_length": max_token_length})


@pytest.mark.parametrize("max_tokens", [75, 225])
def test_long_captions_are_encoded_in_77_token_chunks(max_tokens):
    import torch

    from models.tiny import build_tiny
    from training.families import sd
    from training.parts import Parts

    pipe = build_tiny("sd15")
    parts = Parts("sd15", "epsilon", pipe.unet, pipe.vae, [pipe.text_encoder], [pipe.tokenizer], None, {}, sd)
    long = ", ".join(["red square"] * 60)
    with torch.no_grad():
        hidden, pooled = sd.encode_text(parts, [long, "blue"], _cfg(2, max_tokens))
        plain, _ = sd.encode_text(parts, [long, "blue"], _cfg(2, 75))
    assert pooled is None and tuple(hidden.shape[:2]) == (2, 77 * (max_tokens // 75))
    assert torch.equal(hidden[:, :77], plain)  # the first chunk is the 75-token encoding


def test_trainer_reads_images_as_the_dataset_tab_shows_them(tmp_path):
    """EXIF rotation decides the bucket, transparency trains on white, truncated files are skipped."""
    from PIL import Image

    from core.dataset.images import inspect_image

    folder = tmp_path / "data" / "2_x"
    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (768, 512), (200, 40, 40)).save(folder / "rotated.jpg", exif=exif)
    rgba = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    rgba.save(folder / "clear.png")
    good = folder / "good.png"
    Image.new("RGB", (512, 512), (10, 10, 10)).save(good)
    (folder / "cut.png").write_bytes(good.read_bytes()[:200])
    c = cfgmod.default_config()
    c.dataset.dir = str(tmp_path / "data")
    warnings = []
    ds = D.build_dataset(c, warn=lambda en, zh: warnings.append(en))
    by_name = {item.image.name: item for item in ds.items}
    assert set(by_name) == {"rotated.jpg", "clear.png", "good.png"}
    assert any("cut.png" in w for w in warnings)
    rotated = by_name["rotated.jpg"]
    info = inspect_image(rotated.image)
    assert (info.width, info.height) == (512, 768)
    assert rotated.size[0] < rotated.size[1]  # a portrait bucket, as the page shows
    pixels = D.load_pixels(by_name["clear.png"])
    assert float(pixels.min()) == pytest.approx(1.0)  # fully transparent → white, not black
