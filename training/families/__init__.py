"""The training seam: one module a family (its facts row's ``trainer``, core.family_facts), chosen once per run.

training/loop.py, the caches, the validation pass and the sample renders call these stages through
``parts.setup`` and never ask which family they train. Every setup module defines:

- ``DENOISER_LABEL``: what the log calls the trained network ("UNet", "transformer");
- ``load_parts(cfg, device, dtype, log) -> training.parts.Parts``: the frozen base on `device` in `dtype`,
  with ``setup`` set to the module itself and, for a flow family, ``flow`` = its ``training.flow.FlowSpec``
  (sign, time direction, shift: stated, never defaulted);
- ``open_base(cfg, dtype=None, device="cpu")``: the plain base pipeline; ``sample_pipeline(cfg, lora_path,
  device, dtype, family)``: a fresh base with the saved file applied as a user's UI applies it;
- ``encode_text(parts, captions, cfg, device) -> (hidden, pooled or None)`` with gradients into a text-encoder
  LoRA, and ``collate_text(hidden_rows, pooled_rows)``: cached per-caption features back into a batch;
- ``lora_plan(cfg, parts) -> (keywords for training.lora.inject on the denoiser, block plan or None)``;
- ``store_fp8(denoiser) -> int`` (what stays in its precision is the family's call) and
  ``text_encoder_on_cpu(cfg) -> bool``;
- ``loss(parts, denoiser, latents, text, items, cfg, class_text=None)``: the loss of one batch (packing,
  position ids, guidance vector, text mask and the prediction's sign all inside);
- ``predict_at(parts, denoiser, latents, noise, level, text, items) -> (prediction, target)``: the validation
  pass's measure at one noise level in [0, 1].

Optional: ``place_denoiser(cfg, denoiser, device, log)``: the denoiser put on the device by the family itself once
its LoRA is added (FLUX's block swap keeps some blocks in CPU memory: training/block_swap.py); without it,
training/adapters.py moves the whole denoiser. ``encode_latents(parts, pixels) -> (B, C, h, w)``: the latents of a
VAE that training.parts.encode_latents' shift and scale do not describe (Qwen-Image's per-channel mean/std).
``free_text_encoder(parts, log)``: called once every caption's features are cached (a frozen text encoder is then
never called again: the samples open their own base), for a family whose text encoder is large (Qwen2.5-VL-7B).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

from core import family_facts
from core.config import RunConfig


def family_of(cfg: RunConfig) -> str:
    """The run's family: model.family, or for "auto" a diffusers folder's pipeline class; "auto" when only the
    loaded pipeline can tell (the SD setup resolves it then)."""
    if family_facts.get(cfg.model.family) is not None:
        return family_facts.canonical(cfg.model.family)
    index = Path(cfg.model.base) / "model_index.json"
    if index.is_file():
        from models import families

        try:
            pipeline = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
        except (OSError, ValueError):
            pipeline = ""
        found = families.of_pipeline_name(pipeline)
        if found:
            return found
    return "auto"


def setup_for(family: str) -> ModuleType:
    """The training module of a family (the SD UNet setup for "auto", which resolves the family when loading)."""
    row = family_facts.get(family)
    return importlib.import_module(f"training.families.{row.trainer if row is not None else 'sd'}")


def setup(cfg: RunConfig) -> ModuleType:
    return setup_for(family_of(cfg))
