"""Which images a held-out validation share takes (dataset.validation_split): one rule for the trainer and the step
plan, so the Parameters tab, the sweep plan and the trainer count the same steps.

An image is ranked by a hash of '<subset folder>/<file name>', so the same images are held out in every run of a
dataset, whatever the order of the files or the training seed.
"""

from __future__ import annotations

import hashlib


def holdout_key(subset: str, file_name: str) -> str:
    return hashlib.sha1(f"{subset}/{file_name}".encode()).hexdigest()


def held_out(keys: list[str], share: float) -> set[str]:
    """The keys (holdout_key of each readable training image) held out for a share; empty for share 0. A key listed
    more than once (an image trained at several resolutions) counts once."""
    if not share or not keys:
        return set()
    ranked = sorted(set(keys))
    return set(ranked[:max(1, round(share * len(ranked)))])
