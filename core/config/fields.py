"""How a config field is declared (`F`: default, help in English and 中文, allowed values, the families it
applies to) and the choice lists the sections use. core.config builds the schema from the declarations in
core/config/model.py and core/config/train.py."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from core import family_facts

OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "Adafactor", "CAME", "AdamWScheduleFree", "DAdaptAdam")
SCHEDULERS = ("constant", "cosine", "cosine_with_restarts", "linear", "polynomial", "constant_with_warmup",
              "cosine_with_min_lr")
SAMPLERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "heun", "lms")
FAMILIES = family_facts.names(selectable_only=True)  # model.family's choices: one row a family
ZIMAGE_VARIANTS = ("turbo", "deturbo", "base")
# Qwen-Image: text to image, and the edit models (Qwen-Image-Edit, -Edit-2509, -Edit-2511), named as their releases
QWEN_IMAGE_VARIANTS = ("image", "edit", "edit_2509", "edit_2511")
FLUX_VARIANTS = ("dev", "schnell")  # FLUX.1 [dev] (guidance-distilled) and [schnell] (4-step, no guidance input)
TIMESTEP_TYPES = ("uniform", "sigmoid", "shift", "weighted", "flux_shift")  # training/flow.py draws them
TIMESTEP_BIASES = ("balanced", "high_noise", "low_noise")
DIT_TARGETS = ("attention", "feed_forward", "adaLN")


def F(default: Any, en: str, zh: str, *, choices: tuple | None = None, min: float | None = None,
      max: float | None = None, multiple_of: int | None = None, basic: bool = False,
      families: tuple[str, ...] | None = None) -> Any:
    """Declare one field: default, help text in both languages, and what values are allowed.

    families: the model families the field applies to, by family name ("zimage") or by a trait of the family's
    facts row (core/family_facts.py: "unet" for the SD UNets; "dit", "flow" for DiT and flow-matching models).
    None = all.
    The Params form hides a field that does not apply to the chosen base; its value stays in the TOML.
    """
    meta = {"en": en, "zh": zh, "choices": choices, "min": min, "max": max, "multiple_of": multiple_of,
            "basic": basic, "families": families}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)
