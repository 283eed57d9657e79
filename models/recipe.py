"""The sample recipe: one place turns the run's [sampling] settings into what is rendered and what is written.

Training samples (training/export.py) and XYZ grid cells (models/grid/render.py) both call `build`, so a grid
cell at the run's settings is that epoch's sample, and the PNG's ``parameters`` text says how it was made.

Family hook: a family module (models/families/<family>.py; a DiT family's <family>/sample.py) may define
``sample_recipe(recipe: dict, args: dict) -> tuple[dict, dict]`` to adapt both for its way of sampling
(guidance semantics, scheduler, step count, the base's name); its recipe also holds `base`, the run's base model.
Families without it use the recipe as declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.config import SAMPLERS, SamplingConfig, sample_prompts


@dataclass(frozen=True)
class Sample:
    """One image to render: the recipe (models.generate.recipe_text keys) and the render arguments."""

    recipe: dict
    args: dict = field(default_factory=dict)  # keyword arguments of generate.render, prompt included


def render_args(s: SamplingConfig, *, prompt: str, clip_skip: int = 1) -> dict:
    """Keyword arguments of models.generate.render for one prompt (render_batch takes them with `prompts`)."""
    return {"prompt": prompt, "negative_prompt": s.negative_prompt, "steps": s.steps, "cfg": s.cfg, "seed": s.seed,
            "width": s.width, "height": s.height, "sampler": s.sampler, "clip_skip": clip_skip}


def _family_hook(family: str | None):
    if not family or family == "auto":
        return None
    try:
        from models import families

        dit = families.dit_module(family)  # a DiT family's hook is in its sample module
        return getattr(families.part(dit, "sample") if dit is not None else families.module(family), "sample_recipe",
                       None)
    except KeyError:  # a family Danlu does not know: the recipe as declared
        return None


def build(s: SamplingConfig, *, prompt: str, clip_skip: int = 1, family: str | None = None, model: str = "",
          model_hash: str = "", loras: list[dict] | None = None, zero_terminal_snr: bool = False,
          base: str = "") -> Sample:
    """The recipe and render arguments of one image. `loras`: [{name, weight, hash}] as written in the PNG.
    `base` (the base model's path or hub id, as the run gives it) lets a family name the base as its inference tool
    does (Z-Image: the published ComfyUI file of a release, or the user's own file).
    `zero_terminal_snr` (the run's model.zero_terminal_snr) rescales the sampler's betas; it and a CFG rescale
    are in the render arguments and the recipe only when on.

    The prompt may carry kohya's per-prompt flags (`a cat --w 768 --d 42`, core/config/sample_prompts.py): they replace
    the run's settings for this image, and the recipe states the values used."""
    line = sample_prompts.parse(prompt, SAMPLERS)
    prompt, s = line.prompt, replace(s, **line.options)
    args = render_args(s, prompt=prompt, clip_skip=clip_skip)
    recipe = {"prompt": prompt, "negative_prompt": s.negative_prompt, "steps": s.steps, "sampler": s.sampler,
              "cfg": s.cfg, "seed": s.seed, "width": s.width, "height": s.height, "clip_skip": clip_skip,
              "model": model, "model_hash": model_hash, "loras": list(loras or [])}
    hook = _family_hook(family)
    if hook is not None:  # a DiT family samples its own way: no CFG rescale or rescaled betas there (core/checks)
        recipe, args = hook({**recipe, "base": base}, args)
    else:
        if s.cfg_rescale:
            args["cfg_rescale"] = recipe["cfg_rescale"] = s.cfg_rescale
        if zero_terminal_snr:
            args["zero_terminal_snr"] = recipe["zero_terminal_snr"] = True
    return Sample(recipe, args)


def batch_args(sample: Sample, prompts: list[str]) -> dict:
    """Arguments of models.generate.render_batch: the sample's, for several prompts at its seed (their own flags,
    if any, must match the sample's: models/grid/render.py groups prompts by `same_args`)."""
    args = {k: v for k, v in sample.args.items() if k != "prompt"}
    return {"prompts": [sample_prompts.parse(p).prompt for p in prompts], **args}


def same_args(a: Sample, b: Sample) -> bool:
    """Whether two samples can be rendered in one batch: the same arguments but the prompt."""
    return {k: v for k, v in a.args.items() if k != "prompt"} == {k: v for k, v in b.args.items() if k != "prompt"}
