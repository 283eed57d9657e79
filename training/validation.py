"""Validation loss: the same images, noise and noise levels at every save, so the number compares between epochs and
between runs (other seeds, ranks, learning rates).

The validation set is a separate folder (dataset.validation_dir) or a held-out share of the dataset
(dataset.validation_split), chosen by a hash of each file's name so the same images are held out in every run of
that dataset. Each image is scored with batch 1, no flip, its caption as written, CPU noise from a fixed seed per
image, at five fixed noise levels spread over the schedule, with the family's own noise and target (ε/v for the
SD families, flow matching for DiT families); the loss is the plain mean squared error, unweighted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from core.config import RunConfig
from core.dataset.validation_set import held_out, holdout_key
from core.errors import DanluError
from training import data as D

SEED = 20240229                        # the noise of image i comes from SEED + i, whatever training.seed is
LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)     # share of the schedule: timestep level·(T-1), or flow sigma = level


def _key(item: D.Item) -> str:
    return holdout_key(item.subset, item.image.name)


def split(ds: D.Dataset, cfg: RunConfig, warn: Callable[[str, str], None]) -> list[D.Item]:
    """The validation items; a held-out share is taken out of ds (so it is never trained)."""
    d = cfg.dataset
    if d.validation_dir:
        other = dataclasses.replace(cfg, dataset=dataclasses.replace(d, dir=d.validation_dir, reg_dir=""))
        return sorted(D.build_dataset(other, warn).items, key=_key)
    if not d.validation_split:
        return []
    ranked = sorted(ds.items, key=_key)
    keys = held_out([_key(it) for it in ranked], d.validation_split)  # the step plan holds out the same ones
    n = len(keys)
    if n >= len(ranked):
        raise DanluError(f"dataset.validation_split {d.validation_split} leaves no image to train on "
                         f"({len(ranked)} images).",
                         f"dataset.validation_split = {d.validation_split} 会让训练集一张图都不剩"
                         f"（共 {len(ranked)} 张）。",
                         "Lower the share, or give a separate validation folder (dataset.validation_dir).",
                         "请降低比例，或指定单独的验证集文件夹（dataset.validation_dir）。",
                         key="dataset.validation_split")
    held = [it for it in ranked if _key(it) in keys]
    names = {it.image for it in held}
    ds.items[:] = [it for it in ds.items if it.image not in names]
    warn(f"{n} of {len(ranked)} images are held out for the validation loss and not trained on; the step count "
         f"is that of the {len(ds.items)} that remain.",
         f"{len(ranked)} 张图中有 {n} 张留作验证集、不参与训练；步数按剩下的 {len(ds.items)} 张计算。")
    return held


class Validator:
    """Scores the model on the validation items; `latents_for` and `text_for` are the loop's (caches included)."""

    def __init__(self, items: list[D.Item], parts: Any, latents_for: Callable, text_for: Callable, device: Any):
        self.items, self.parts, self.latents_for, self.text_for, self.device = items, parts, latents_for, text_for, \
            device

    def score(self, denoiser: Any) -> float:
        import torch

        total, count = 0.0, 0
        with torch.no_grad():
            for i, item in enumerate(self.items):
                latents = self.latents_for([item], [False]).float()
                text = self.text_for([item.caption])
                gen = torch.Generator("cpu").manual_seed(SEED + i)
                noise = torch.randn(latents.shape, generator=gen).to(latents.device)
                for level in LEVELS:
                    pred, target = self.parts.setup.predict_at(self.parts, denoiser, latents, noise, level, text,
                                                               [item])
                    total += torch.mean((pred.float() - target.float()) ** 2).item()
                    count += 1
        return total / max(count, 1)

