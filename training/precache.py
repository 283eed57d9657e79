"""Fill the latent and text-feature caches before the first step, with their own progress and ETA.

The loop's `latents_for` / `text_for` (SD UNet and DiT families alike) do the encoding and hold the caches; this
module only walks every (image, flip) and every caption once, so that step 1 starts with full caches and the
speed and ETA of the steps measure steps. Latents already on disk (dataset.cache_latents = "disk") are read
from there. Events: `caching` with what (latents | text), done, total, from_disk and eta_s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from training import faults

REPORT_EVERY_S = 2.0


def latent_jobs(items: Iterable[Any], flip_aug: bool, val_items: Iterable[Any] = ()) -> list[tuple[Any, bool]]:
    """Every (item, flip) a step or a validation pass will ask for, each once, in dataset order. With several
    resolutions an image is one item per resolution, so its latent is encoded at each (training/data.py)."""
    flips = (False, True) if flip_aug else (False,)
    jobs = dict.fromkeys((it, f) for it in items for f in flips)
    jobs.update(dict.fromkeys((it, False) for it in val_items))
    return list(jobs)


def caption_jobs(captions: Iterable[str], extra: Callable[[list[str]], list[str]] | None = None) -> list[str]:
    """Every caption the steps will encode (with `extra`'s, e.g. DOP's class-word captions), each once."""
    unique = list(dict.fromkeys(captions))
    return list(dict.fromkeys(unique + (extra(unique) if extra else [])))


def fill(what: str, jobs: list, run: Callable[[list], Any], emit: Callable[..., None], log: Callable[[str], None],
         *, batch: int = 1, from_disk: Callable[[], int] = lambda: 0, clock: Callable[[], float] = time.time) -> float:
    """Run `run` on `jobs` in chunks of `batch`; a `caching` event and a log line at the start, every
    REPORT_EVERY_S and at the end. Returns the seconds it took."""
    total = len(jobs)
    if not total:
        return 0.0
    started = last = clock()
    emit("caching", what=what, done=0, total=total, from_disk=0, eta_s=None)
    log(f"Caching {what}: {total} to encode before the first step")
    for i in range(0, total, batch):
        run(jobs[i:i + batch])
        faults.point("caching")
        done = min(i + batch, total)
        now = clock()
        if now - last >= REPORT_EVERY_S or done == total:
            eta = (now - started) / done * (total - done)
            emit("caching", what=what, done=done, total=total, from_disk=from_disk(), eta_s=eta)
            log(f"Caching {what}: {done}/{total} ({from_disk()} read from disk), ETA {eta:.0f} s")
            last = now
    return clock() - started


def fill_caches(cfg: Any, ds: Any, val_items: list | None, cache: Any, text_cached: bool, latents_for: Callable,
                text_for: Callable, is_flow: bool, emit: Callable[..., None], log: Callable[[str], None]) -> float:
    """The loop's caches, filled: latents of every training, regularisation and validation image (both flips
    with flip_aug), then the text features of every caption. Returns the seconds it took."""
    seconds = 0.0
    val_items = list(val_items or [])
    if cache is not None:
        jobs = latent_jobs(ds.items + ds.reg_items, cfg.dataset.flip_aug, val_items)
        seconds += fill("latents", jobs, lambda js: latents_for([js[0][0]], [js[0][1]]), emit, log,
                        from_disk=lambda: cache.hits)
    if text_cached:
        extra = None
        if cfg.training.dop_multiplier and is_flow:  # the steps also encode the captions with the class word
            from training.dop import dop_captions

            def extra(caps: list[str]) -> list[str]:
                return dop_captions(caps, cfg.dataset.trigger_word, cfg.training.dop_class_word)
        captions = caption_jobs([it.caption for it in ds.items + ds.reg_items + val_items], extra)
        seconds += fill("text", captions, text_for, emit, log, batch=cfg.training.batch_size)
    return seconds
