"""Differential output preservation (DOP, as ai-toolkit trains it): the LoRA's prediction for captions with the
trigger word replaced by the class word is pulled towards the base model's own prediction for them."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any


def dop_captions(captions: list[str], trigger: str, class_word: str) -> list[str]:
    """The captions with the trigger word (as a whole word) replaced by the class word."""
    pattern = re.compile(rf"(?<!\w){re.escape(trigger)}(?!\w)")
    return [pattern.sub(class_word, c) for c in captions]


@contextmanager
def lora_off(model: Any):
    """The base model's prediction: every LoRA layer bypassed; trainable flags put back afterwards."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    flags = {p: p.requires_grad for m in layers for p in m.parameters()}
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m in layers:
            m.enable_adapters(True)
        for p, flag in flags.items():
            p.requires_grad_(flag)
