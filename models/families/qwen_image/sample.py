"""Qwen-Image samples, made as diffusers' QwenImagePipeline makes them, stated as ComfyUI users set them.

Semantics (diffusers 0.42.1 pipeline_qwenimage.py; tests/test_qwen_sampling.py):

- CFG. Danlu's `cfg` is the pipeline's true_cfg_scale and ComfyUI's KSampler cfg: above 1 the negative prompt is
  encoded and each step runs the transformer twice, pred = neg + cfg·(pos − neg); at 1 the negative is unused (one
  call a step). The pipeline turns CFG on only when a negative prompt is given, so samples always pass it (an
  empty one is the template around "", as ComfyUI's empty CLIPTextEncode is; `" "` would do too). One difference
  ComfyUI's KSampler has no node for: diffusers rescales the guided prediction per token to the norm of the
  conditional one (comb·‖pos‖/‖comb‖; ComfyUI's CFGNorm works in x0 space and only attenuates). The PNG says so.
- Shift. μ from the image's token count L = (W/16)·(H/16) on the line of Qwen-Image's scheduler config
  (0.5 at 256 tokens, 0.9 at 8192), σ' = e^μ / (e^μ + 1/σ − 1); then the schedule is stretched so its last
  sigma before 0 is 0.02 (shift_terminal). ComfyUI's default for Qwen-Image is a fixed μ 1.15 whatever the size:
  the graph sets ModelSamplingFlux to the sample's size, which gives the μ diffusers used; ComfyUI has no
  shift_terminal, so its last steps differ slightly. The recipe states μ as "Shift" and the terminal.
- Steps. N steps are N transformer calls (2N with CFG): sigmas linspace(1, 1/N, N), shifted, stretched, then 0.
- Prompt. Qwen2.5-VL's last hidden state through the text-to-image template, the 34 template tokens dropped
  (QwenImagePipeline.encode_prompt, as ComfyUI's CLIPLoader(qwen_image) does), up to 512 tokens (the pipeline's
  default; ComfyUI does not truncate).
- Noise. A CPU generator's fp32 randn of (1, 16, H/8, W/8) for the seed (ComfyUI's noise for its 16-channel
  latent), packed into 2×2 patches as the pipeline packs latents (models/families/flux/sample.py initial_latents).
"""

from __future__ import annotations

import json

from core.errors import DanluError
from models.families.flux.sample import initial_latents, mu
from models.families.qwen_image.workflow import RELEASE_FILES, comfy_prompt
from models.families.zimage.sample import euler_only
from models.families.zimage.workflow import base_note, comfy_base

LABEL = "Qwen-Image"
# Qwen-Image's scheduler config (ai-toolkit's copy, musubi-tuner's constants; ../reference/qwen-image.md).
SCHEDULER = {"base_image_seq_len": 256, "max_image_seq_len": 8192, "base_shift": 0.5, "max_shift": 0.9,
             "shift_terminal": 0.02, "use_dynamic_shifting": True, "time_shift_type": "exponential"}
MAX_SEQUENCE_LENGTH = 512  # QwenImagePipeline.__call__'s default
COMFY_TOKENS = 4096        # ModelSamplingFlux's max_shift is μ at 4096 tokens (its base_shift at 256)


def comfy_max_shift(config: dict = SCHEDULER) -> float:
    """ModelSamplingFlux's max_shift on the line of `config`: with base_shift the config's (both lines pass through
    256 tokens), ComfyUI computes diffusers' μ at every size."""
    side = int(COMFY_TOKENS ** 0.5) * 16
    return mu(config, side, side)


def guided(cfg: float) -> bool:
    """Whether a sample runs CFG; cfg below 1 has no pipeline equivalent (true_cfg_scale ≤ 1 is no guidance)."""
    if cfg < 1:
        raise DanluError(f"CFG {cfg:g} is below 1: {LABEL} samples use CFG ≥ 1 (1 = no guidance).",
                         f"CFG {cfg:g} 小于 1：{LABEL} 样图的 CFG 须 ≥ 1（1 表示不引导）。",
                         "Set sampling.cfg to 1 (no negative prompt) or 2.5-4 with a negative prompt.",
                         "请把 sampling.cfg 设为 1（不用反向提示词），或配合反向提示词设为 2.5-4。",
                         key="sampling.cfg")
    return cfg > 1


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def sample_recipe(recipe: dict, args: dict) -> tuple[dict, dict]:
    """models.recipe's family hook: the PNG states what ComfyUI users set (euler / simple, steps, cfg with the
    negative prompt, the shift μ and the terminal) and carries the ComfyUI graph (recipe['png_chunks']['prompt']).
    The base (recipe['base']) is named as ComfyUI users have it, or a plain note says why not."""
    recipe = dict(recipe)
    base = recipe.pop("base", "")
    comfy = comfy_base(base, recipe.get("model", ""), recipe.get("model_hash", ""), RELEASE_FILES)
    width, height = int(recipe["width"]), int(recipe["height"])
    extra = {**(recipe.get("extra") or {}), "Shift": f"{mu(SCHEDULER, width, height):.4f}",
             "Shift terminal": _num(SCHEDULER["shift_terminal"]), "Max tokens": MAX_SEQUENCE_LENGTH}
    if guided(float(recipe["cfg"])):
        extra["CFG normalization"] = ("per token to the positive prediction's norm (diffusers true CFG; "
                                      "ComfyUI's KSampler has none)")
    if not comfy.unet:
        extra["ComfyUI base"] = base_note(base or recipe.get("model", ""))
    recipe.update({"sampler": "euler", "schedule": "Simple", "clip_skip": 1, "model": comfy.model, "extra": extra})
    graph = comfy_prompt(recipe, comfy.unet, comfy_max_shift(), SCHEDULER["base_shift"])
    recipe["png_chunks"] = {"prompt": json.dumps(graph, ensure_ascii=False)}
    return recipe, {**args, "sampler": "euler", "clip_skip": 1}


def render_batch(pipe, *, prompts: list[str], negative_prompt: str = "", steps: int = 30, cfg: float = 4.0,
                 seed: int = 0, width: int = 1024, height: int = 1024, sampler: str = "euler", clip_skip: int = 1):
    """Images of `prompts` at one seed (models.generate.render_batch's contract), each from the same noise."""
    import torch

    euler_only(sampler, LABEL)
    cfg = float(cfg)
    negative = [negative_prompt or ""] * len(prompts) if guided(cfg) else None
    latents, generator = initial_latents(pipe, seed, width, height, len(prompts), LABEL)
    with torch.no_grad():
        return pipe(prompt=list(prompts), negative_prompt=negative, true_cfg_scale=cfg,
                    num_inference_steps=int(steps), width=int(width), height=int(height), generator=generator,
                    latents=latents.to(pipe.transformer.device), max_sequence_length=MAX_SEQUENCE_LENGTH,
                    output_type="pil").images


def render(pipe, *, prompt: str, **kwargs):
    """One image (models.generate.render's contract): CPU-seeded noise, true CFG, N steps = N (or 2N) calls."""
    return render_batch(pipe, prompts=[prompt], **kwargs)[0]
