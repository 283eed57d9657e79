"""Training data: images with captions and buckets, bucketed batches, caption processing, latent cache.

Batches are a pure function of (seed, epoch): each epoch's order can be rebuilt exactly, so a resumed
run skips the batches already trained instead of storing the order.

Multi-resolution (dataset.resolutions) follows ai-toolkit, which turns a dataset with `resolution: [512, 768, 1024]`
into one copy per resolution (toolkit/config_modules.py preprocess_dataset_raw_config) and concatenates them: here
each image gives one Item per resolution, with that resolution's bucket, and a batch takes Items of one
(resolution, bucket) only, as a batch of ai-toolkit never leaves its copy. core/dataset/steps.py counts the same.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.dataset import list_subsets
from core.dataset.buckets import bucket_for, resolutions_of
from core.dataset.captions import caption_path, read_caption
from core.dataset.images import inspect_image, load_rgb


@dataclass(frozen=True)
class Item:
    image: Path
    caption: str
    subset: str                      # folder name, e.g. 10_demo
    size: tuple[int, int]            # bucket (w, h)
    original: tuple[int, int]        # image (w, h)
    resized: tuple[int, int]
    crop_ltrb: tuple[int, int, int, int]
    resolution: int = 0              # the resolution this item trains at (one Item per image per resolution)


@dataclass
class Dataset:
    items: list[Item]                  # one per image and resolution (repeats not expanded)
    repeats: dict[Path, int]
    subsets: list[Any]
    skipped: list[tuple[Path, str]]    # unreadable images and why
    reg_items: list[Item] = field(default_factory=list)   # regularisation images, cycled to match

    @property
    def images(self) -> int:
        """Distinct training images (an image trained at several resolutions counts once)."""
        return len({i.image for i in self.items})

    @property
    def images_per_epoch(self) -> int:
        """Training images × repeats × resolutions, plus as many regularisation images (cycled) when there are any."""
        n = sum(self.repeats[i.image] for i in self.items)
        return 2 * n if self.reg_items else n

    def reg_pool(self) -> list[Item]:
        """kohya: every reg image with its repeats, then one more of each in turn until they match the training
        count."""
        if not self.reg_items:
            return []
        n_train = sum(self.repeats[i.image] for i in self.items)
        pool = [it for it in self.reg_items for _ in range(self.repeats[it.image])]
        while len(pool) < n_train:
            pool += self.reg_items[: n_train - len(pool)]
        return pool


def build_dataset(cfg: RunConfig, warn: Callable[[str, str], None] = lambda en, zh: None) -> Dataset:
    """Read every <repeats>_<name> subset, caption and bucket each image (at each resolution: one Item per image
    per resolution, resolution-major within a subset as core.dataset.buckets.plan_sizes lists them, so that
    regularisation images cycle as the step plan counts); unreadable images are skipped."""

    d = cfg.dataset
    subsets = list_subsets(Path(d.dir), d.caption_extension)
    reg_subsets = list_subsets(Path(d.reg_dir), d.caption_extension) if d.reg_dir else []
    items, reg_items, repeats, skipped = [], [], {}, []
    for is_reg, sub in [(False, s) for s in subsets] + [(True, s) for s in reg_subsets]:
        read: list[tuple[Path, str, int, int]] = []
        for image in sub.images:
            # The Dataset tab's reader: sizes after EXIF orientation, truncated and mislabelled files caught,
            # so the page and the trainer agree on every image's bucket.
            info = inspect_image(image)
            if not info.ok:
                reason = "; ".join(i.en for i in info.issues if i.level == "error")
                reason_zh = "；".join(i.zh for i in info.issues if i.level == "error")
                skipped.append((image, reason))
                warn(f"Skipping unreadable image {image}: {reason}", f"跳过无法读取的图片 {image}：{reason_zh}")
                continue
            width, height = info.width, info.height
            cap = read_caption(caption_path(image, d.caption_extension))
            text = cap.text.split("\n", 1)[0].strip() if cap.text else sub.name  # first line, as sd-scripts
            if d.trigger_word and not is_reg and not text.startswith(d.trigger_word):
                text = f"{d.trigger_word}, {text}" if text else d.trigger_word
            read.append((image, text, width, height))
            repeats[image] = sub.repeats
        (reg_items if is_reg else items).extend(
            Item(image, text, sub.path.name, b.size, (w, h), b.resized, b.crop_ltrb, res)
            for res in resolutions_of(d) for image, text, w, h in read for b in [bucket_for(d, w, h, res)])
    if not items:
        from core.errors import DanluError

        raise DanluError(f"No readable image in {d.dir}.", f"{d.dir} 中没有可读取的图片。",
                         "Check the images in the <repeats>_<name> subfolders.",
                         "请检查 <重复次数>_<名称> 子文件夹中的图片。",
                         key="dataset.dir")
    return Dataset(items, repeats, subsets, skipped, reg_items)


def epoch_batches(ds: Dataset, batch_size: int, seed: int, epoch: int) -> list[list[Item]]:
    """All batches of one epoch: each from one bucket of one resolution, order shuffled per epoch (kohya's
    BucketManager; ai-toolkit's per-resolution datasets)."""
    rng = random.Random(seed * 100003 + epoch)
    by_bucket: dict[tuple[int, tuple[int, int]], list[Item]] = {}
    for item in ds.items:
        by_bucket.setdefault((item.resolution, item.size), []).extend([item] * ds.repeats[item.image])
    for item in ds.reg_pool():
        by_bucket.setdefault((item.resolution, item.size), []).append(item)
    batches = []
    for size in sorted(by_bucket):
        members = by_bucket[size]
        rng.shuffle(members)
        batches += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
    rng.shuffle(batches)
    return batches


def steps_per_epoch(n_batches: int, world: int, accum: int) -> int:
    return max(1, math.ceil(n_batches / (world * accum)))


def process_caption(text: str, cfg: RunConfig, rng: random.Random) -> str:
    """sd-scripts order: dropout → split on ',' → keep the first keep_tokens → shuffle the rest → drop tags of the
    rest at caption_tag_dropout_rate → join."""
    d = cfg.dataset
    if d.caption_dropout_rate and rng.random() < d.caption_dropout_rate:
        return ""
    if not (d.shuffle_caption or d.caption_tag_dropout_rate):
        return text
    tags = [t.strip() for t in text.split(",") if t.strip()]
    keep = max(d.keep_tokens, 1 if d.trigger_word else 0)
    head, tail = tags[:keep], tags[keep:]
    if d.shuffle_caption:
        rng.shuffle(tail)
    if d.caption_tag_dropout_rate:  # after the shuffle, on the tags past keep_tokens only, as sd-scripts does
        tail = [t for t in tail if rng.random() >= d.caption_tag_dropout_rate]
    return ", ".join(head + tail)


def load_pixels(item: Item, flip: bool = False):
    """The image cover-scaled and centre-cropped to its bucket, as a (3, H, W) tensor in [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    im = load_rgb(item.image)  # EXIF orientation, alpha on white, 16-bit scaled: as the Dataset tab shows it
    shrink = item.resized[0] < im.size[0]
    im = im.resize(item.resized, Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS)
    im = im.crop(item.crop_ltrb)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1)
    return arr / 127.5 - 1.0


def cache_key(item: Item, flip: bool, vae_id: str) -> str:
    """Identity of one cached latent: the image version, its bucket geometry, the flip and the VAE.

    Multi-resolution: the geometry is the resolution's bucket (size, resize, crop), so an image has one latent per
    resolution, as ai-toolkit's latent file names hash the scale and crop; two resolutions that give an image the
    same geometry (a small image with bucket_no_upscale) give the same latent and share the entry."""
    st = item.image.stat()
    raw = (f"{item.image.resolve()}|{st.st_size}|{st.st_mtime_ns}|{item.size}|{item.resized}|{item.crop_ltrb}"
           f"|{flip}|{vae_id}")
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


class LatentCache:
    """VAE latents per (image, flip): in memory, or on disk under <output_dir>/.cache/latents (reused by
    later runs as long as the image file, its bucket and the VAE are the same)."""

    def __init__(self, mode: str, folder: Path, vae_id: str):
        self.mode, self.folder, self.vae_id = mode, Path(folder), vae_id
        self.memory: dict[str, Any] = {}
        self.hits = self.misses = 0

    def get(self, item: Item, flip: bool, encode: Callable[[Item, bool], Any]):
        from safetensors.torch import load_file, save_file

        key = cache_key(item, flip, self.vae_id)
        if key in self.memory:
            return self.memory[key]
        path = self.folder / f"{key}.safetensors"
        if self.mode == "disk" and path.is_file():
            try:
                latent = load_file(str(path))["latent"]
                self.hits += 1
                self.memory[key] = latent
                return latent
            except Exception:  # noqa: BLE001 - a damaged cache file is recomputed rather than trusted
                path.unlink(missing_ok=True)
        latent = encode(item, flip).cpu()
        self.misses += 1
        self.memory[key] = latent
        if self.mode == "disk":
            from core.fsutil import temp_path_for

            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = temp_path_for(path)
            save_file({"latent": latent.contiguous()}, str(tmp))
            tmp.replace(path)
        return latent


def _each_image(items: list[Item]) -> list[Item]:
    """The first Item of each image (multi-resolution lists an image once per resolution)."""
    first: dict[Path, Item] = {}
    for item in items:
        first.setdefault(item.image, item)
    return list(first.values())


def tag_frequency(ds: Dataset) -> dict[str, dict[str, int]]:
    """ss_tag_frequency: {subset folder: {tag: count}} over the captions as written (each image once, whatever
    the number of resolutions it trains at)."""
    out: dict[str, dict[str, int]] = {}
    for item in _each_image(ds.items):
        counts = out.setdefault(item.subset, {})
        for tag in (t.strip() for t in item.caption.split(",")):
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return out


def dataset_dirs(ds: Dataset) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for sub in ds.subsets:
        n = sum(1 for i in _each_image(ds.items) if i.subset == sub.path.name)
        out[sub.path.name] = {"n_repeats": sub.repeats, "img_count": n}
    return out


def bucket_info(ds: Dataset) -> dict:
    counts: dict[str, int] = {}
    for item in ds.items:
        key = f"{item.size[0]}x{item.size[1]}"
        counts[key] = counts.get(key, 0) + ds.repeats[item.image]
    return {"buckets": {k: {"resolution": [int(x) for x in k.split("x")], "count": v} for k, v in counts.items()}}
