"""Aspect-ratio buckets: which size each image trains at and how much of it is cropped.

One module for the trainer and the Dataset tab, so the page shows exactly what training does.
The rules follow kohya-ss/sd-scripts (make_bucket_resolutions and BucketManager), which users
compare against: every bucket has area ≤ resolution², sides on the step grid; an image is
scaled to *cover* its bucket and the excess is centre-cropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Bucket:
    """Where one image goes.

    size:          bucket (w, h) the image trains at
    scale:         resize factor applied to the original image
    resized:       (w, h) after resizing; covers `size`
    crop_ltrb:     centre-crop box (left, top, right, bottom) inside the resized image
    crop_fraction: share of the resized image that is cropped away (0 = nothing)
    """

    size: tuple[int, int]
    scale: float
    resized: tuple[int, int]
    crop_ltrb: tuple[int, int, int, int]
    crop_fraction: float

    @property
    def upscaled(self) -> bool:
        return self.scale > 1.0 + 1e-9


def make_buckets(resolution: int, min_reso: int = 256, max_reso: int = 1024, step: int = 64) -> list[tuple[int, int]]:
    """All bucket sizes (w, h) for a square training resolution, sorted.

    The square bucket is always present; then for each width on the grid from min to max the tallest
    height on the grid that keeps the area within resolution² (capped at max), in both orientations.
    """
    return list(_make_buckets(int(resolution), int(min_reso), int(max_reso), int(step)))


@lru_cache(maxsize=64)
def _make_buckets(resolution: int, min_reso: int, max_reso: int, step: int) -> tuple[tuple[int, int], ...]:
    if step <= 0 or resolution <= 0:
        raise ValueError("resolution and step must be positive")
    max_area = resolution * resolution
    side = int(math.sqrt(max_area) // step) * step
    sizes = {(side, side)}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, int((max_area // width) // step) * step)
        if height >= min_reso:
            sizes.add((width, height))
            sizes.add((height, width))
        width += step
    return tuple(sorted(sizes))


def _round_to_steps(x: float, step: int) -> int:
    x = int(x + 0.5)
    return x - x % step


def _cover(width: int, height: int, size: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    """Scale so the image covers the bucket: a wider image matches the height, else the width."""
    bw, bh = size
    if width / height > bw / bh:
        scale = bh / height
    else:
        scale = bw / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    # Rounding can leave one pixel short of the bucket; never crop into nothing.
    return scale, (max(resized[0], bw), max(resized[1], bh))


def _no_upscale_size(width: int, height: int, resolution: int, step: int) -> tuple[int, int]:
    """bucket_no_upscale: shrink large images to about the area (keeping the aspect ratio), never grow."""
    max_area = resolution * resolution
    if width * height <= max_area:
        return width, height
    aspect = width / height
    rw = math.sqrt(max_area * aspect)
    rh = max_area / rw
    w_rounded = _round_to_steps(rw, step)
    h_in_w = _round_to_steps(w_rounded / aspect, step)
    h_rounded = _round_to_steps(rh, step)
    w_in_h = _round_to_steps(h_rounded * aspect, step)
    err_w = abs(w_rounded / h_in_w - aspect) if h_in_w else math.inf
    err_h = abs(w_in_h / h_rounded - aspect) if h_rounded else math.inf
    if err_w < err_h:
        return w_rounded, int(w_rounded / aspect + 0.5)
    return int(h_rounded * aspect + 0.5), h_rounded


def assign_bucket(width: int, height: int, *, resolution: int, min_reso: int = 256, max_reso: int = 1024,
                  step: int = 64, enable_bucket: bool = True, no_upscale: bool = False) -> Bucket:
    """The bucket for an image of width × height under the given settings.

    enable_bucket=False: one bucket of exactly resolution × resolution, cover and centre-crop.
    no_upscale=True: the image keeps its own size (shrunk to about the area when larger), the bucket
    is that size rounded down to the step and the remainder is cropped; min/max are ignored.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}×{height} is not valid")
    if not enable_bucket:
        size = (int(resolution), int(resolution))
        scale, resized = _cover(width, height, size)
    elif no_upscale:
        resized = _no_upscale_size(width, height, resolution, step)
        # An image smaller than one step would give an empty bucket; one step is the least that trains.
        size = (max(step, resized[0] - resized[0] % step), max(step, resized[1] - resized[1] % step))
        if size[0] > resized[0] or size[1] > resized[1]:
            scale, resized = _cover(width, height, size)
        else:
            scale = resized[0] / width
    else:
        buckets = _make_buckets(int(resolution), int(min_reso), int(max_reso), int(step))
        if (width, height) in buckets:
            size = (width, height)
        else:
            aspect = width / height
            size = buckets[0]
            best = math.inf
            for b in buckets:  # sorted order; the first of equal errors wins, as numpy's argmin does
                err = abs(b[0] / b[1] - aspect)
                if err < best:
                    best, size = err, b
        scale, resized = _cover(width, height, size)
    left = (resized[0] - size[0]) // 2
    top = (resized[1] - size[1]) // 2
    crop = (left, top, left + size[0], top + size[1])
    fraction = 1.0 - (size[0] * size[1]) / (resized[0] * resized[1])
    return Bucket(size=size, scale=scale, resized=resized, crop_ltrb=crop, crop_fraction=max(0.0, fraction))


def resolutions_of(dataset) -> list[int]:
    """The resolutions a run trains at: dataset.resolutions when set (multi-resolution), else dataset.resolution.

    Multi-resolution follows ai-toolkit (toolkit/config_modules.py preprocess_dataset_raw_config): a dataset whose
    `resolution` is a list becomes one copy of the dataset per listed resolution, each bucketed on its own, and the
    copies are concatenated. So every image is trained once per resolution each epoch (its repeats apply at every
    resolution) and a batch never mixes two resolutions (ai-toolkit batches inside each copy).
    """
    return [int(r) for r in (getattr(dataset, "resolutions", None) or [dataset.resolution])]


def bucket_for(dataset, width: int, height: int, resolution: int | None = None) -> Bucket:
    """The bucket of an image under a run's [dataset] settings (core.config.DatasetConfig), at `resolution`
    (default: the first of resolutions_of)."""
    d = dataset
    res = resolutions_of(d)[0] if resolution is None else int(resolution)
    return assign_bucket(width, height, resolution=res, min_reso=d.min_bucket_reso,
                         max_reso=d.max_bucket_reso, step=d.bucket_reso_steps, enable_bucket=d.enable_bucket,
                         no_upscale=d.bucket_no_upscale)


def buckets_for(dataset, width: int, height: int) -> list[tuple[int, Bucket]]:
    """(resolution, bucket) of an image at each resolution the run trains at, in the listed order."""
    return [(res, bucket_for(dataset, width, height, res)) for res in resolutions_of(dataset)]


def plan_sizes(dataset, dims: list[tuple[int, int]]) -> list[tuple[int, tuple[int, int]]]:
    """(resolution, bucket size) of images of these (w, h), resolution-major as training lists them (all images
    at the first resolution, then all at the next): the input core.dataset.steps.plan_steps takes."""
    return [(res, bucket_for(dataset, w, h, res).size) for res in resolutions_of(dataset) for w, h in dims]
