"""One row of facts a family: what core, the form, the checks and the estimates may know about a model family.

Shared code asks what a family *is* (its traits and figures), never what it is *named*; everything else about a
family lives in its own seams: ``models/families/<module>`` (recognising, loading, the LoRA file, samples, the
ComfyUI workflow, its tiny model) and ``training/families/<trainer>.py`` (the stages of a training step). A new
family is one row here plus those two seams (docs/ARCHITECTURE.md, "Adding a family").

Traits, as `core.config_fields.F(families=...)` and the rules name them:
- ``unet``: an SD UNet (block-wise dims and LR, LyCORIS conv layers, noise offset, Min-SNR, v-prediction);
- ``dit``: a transformer denoiser (LoRA targets by kind: attention, feed_forward, adaLN; int8 base);
- ``flow``: trained by flow matching (timestep type and bias, DOP, differential guidance);
- ``pooled_text``: the denoiser also takes a pooled text vector (SDXL's second encoder);
- ``text_encoder_trainable``: a LoRA on its text encoder(s) is written in a layout every UI loads;
- ``clip_skip``: prompts are encoded by CLIP with WebUI's clip skip;
- ``padded_text``: captions are padded to 77-token chunks (a flow DiT uses the caption's own length);
- ``v_prediction``: the family has v-prediction releases (SD2-768-v, v-pred SDXL fine-tunes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SD_SAMPLERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "heun", "lms")


@dataclass(frozen=True)
class Family:
    name: str                    # model.family in the TOML
    label: str                   # what the page shows
    traits: frozenset[str]
    native: int                  # the resolution it was trained at (px, square)
    size_multiple: int           # image and sample sizes are multiples of this (VAE stride × patch size)
    samplers: tuple[str, ...]    # sampler ids its sample renderer supports
    min_cfg: float               # the lowest sampling.cfg with a meaning, as ComfyUI counts it
    cfg_semantics: str           # "classic": CFG as WebUI/diffusers; "comfy_minus_one": diffusers guidance = cfg - 1
    module: str                  # models.families.<module>
    trainer: str                 # training.families.<trainer>
    prediction: str = "epsilon"  # the default prediction type: epsilon | v_prediction | flow
    selectable: bool = True      # offered as model.family (False: only detected, e.g. the SDXL refiner)
    on_choose: dict[str, Any] = field(default_factory=dict)  # config values set when a base of it is chosen
    max_lr: float | None = None  # a learning rate above this is known to collapse its LoRAs (warning)
    lora_layout: str = "kohya"   # the LoRA file's key layout: kohya (lora_unet_…) | peft (diffusers names)

    def has(self, trait: str) -> bool:
        return trait in self.traits


_SD = frozenset({"unet", "text_encoder_trainable", "clip_skip", "padded_text"})

ROWS: dict[str, Family] = {}


def register(row: Family) -> Family:
    """Add (or replace) a family's row; the registry line of a new family."""
    ROWS[row.name] = row
    return row


register(Family("sd15", "SD 1.x", _SD, 512, 8, SD_SAMPLERS, 0.0, "classic", "sd15", "sd"))
register(Family("sd2", "SD 2.x", _SD | {"v_prediction"}, 512, 8, SD_SAMPLERS, 0.0, "classic", "sd2", "sd"))
register(Family("sdxl", "SDXL", _SD | {"pooled_text", "v_prediction"}, 1024, 8, SD_SAMPLERS, 0.0, "classic",
                "sdxl", "sd"))
register(Family("sdxl_refiner", "SDXL refiner", _SD | {"pooled_text"}, 1024, 8, SD_SAMPLERS, 0.0, "classic",
                "sdxl", "sd", selectable=False))
register(Family("zimage", "Z-Image", frozenset({"dit", "flow"}), 1024, 16, ("euler",), 1.0, "comfy_minus_one",
                "zimage", "zimage", prediction="flow", max_lr=2e-4, lora_layout="peft",
                on_choose={"network.train_text_encoder": False}))

ALIASES = {"sd2v": "sd2"}  # SD2 v-prediction: the sd2 family with prediction v_prediction


def canonical(name: str | None) -> str:
    """A family name as the rows know it ("sd2v" is sd2 with v-prediction); "" for none."""
    name = name or ""
    return ALIASES.get(name, name)


def get(name: str | None) -> Family | None:
    """The row of a family, None for "auto", "" or an unknown name."""
    return ROWS.get(canonical(name))


def names(selectable_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, r in ROWS.items() if r.selectable or not selectable_only)


def traits(name: str | None) -> frozenset[str]:
    """What a config field's `families` may name to apply to this family: its own name and its traits."""
    row = get(name)
    return frozenset() if row is None else frozenset((row.name, *row.traits))


def has(name: str | None, trait: str) -> bool:
    row = get(name)
    return row is not None and trait in row.traits


def native_resolution(name: str | None, prediction: str = "") -> int:
    """The family's training resolution; SD2's v-prediction release (768-v) is the one family member at 768."""
    row = get(name)
    if row is None:
        return 512
    if row.has("v_prediction") and row.native == 512 and (prediction == "v_prediction" or name in ALIASES):
        return 768
    return row.native
