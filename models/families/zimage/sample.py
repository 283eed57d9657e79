"""Z-Image samples, made as ComfyUI makes them.

Sampling semantics (diffusers 0.42 ZImagePipeline; checked in tests/test_zimage_sampling.py):

- CFG. Danlu's `cfg` is the number ComfyUI users type in KSampler: pred = neg + cfg·(pos − neg). diffusers
  writes pred = pos + g·(pos − neg) and turns CFG on only when g > 0, so g = cfg − 1: Turbo's "guidance 0" is
  ComfyUI cfg 1 (one transformer forward per step, the negative prompt unused); De-Turbo's cfg 3 is g = 2
  (the prompt and the negative in one batch of two per step). cfg below 1 has no diffusers equivalent.
- Steps. N steps are N transformer calls: the sigmas are linspace(1, 1/N, N) shifted by 3 (σ' = 3σ/(1 + 2σ)),
  then the scheduler's final σ = 0; ComfyUI's euler sampler with the `simple` scheduler and
  ModelSamplingAuraFlow shift 3 steps through the same sigmas when N divides 1000 (8, 10, 20, 25, 50; for other
  N its 1000-entry table rounds t by less than 1/1000). (diffusers before 0.39 needed N + 1 steps.)
- Prompt. The tokenizer's chat template with one user turn, the generation prompt and enable_thinking=True
  (Qwen3's template then renders ``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``, the
  text ComfyUI hard-codes; the official repo and musubi-tuner call it the same way), padded/truncated to 512
  tokens (ComfyUI does not truncate: longer prompts differ), hidden state [-2] of the text encoder, padding
  dropped by the attention mask. An empty negative prompt
  is the template around "" (ComfyUI's own Turbo workflow zeroes the negative instead; at cfg 1 it is unused).
- Noise. A CPU generator's fp32 randn of (1, 16, H/8, W/8) for the seed: ComfyUI's noise for the same seed.
"""

from __future__ import annotations

import json

from core import family_facts
from core.errors import DanluError
from models.families.zimage import FAMILY, MAX_SEQUENCE_LENGTH, SCHEDULER_SHIFT, SIZE_MULTIPLE
from models.families.zimage.workflow import MIN_COMFYUI, base_note, comfy_base, comfy_prompt


def guidance_scale(cfg: float) -> float:
    """diffusers' guidance_scale for ComfyUI's cfg (see the module docstring): g = cfg − 1."""
    if cfg < 1:
        raise DanluError(f"CFG {cfg:g} is below 1: Z-Image samples use CFG ≥ 1 as ComfyUI counts it "
                         "(1 = no guidance, as Turbo is sampled).",
                         f"CFG {cfg:g} 小于 1：Z-Image 样图的 CFG 按 ComfyUI 的算法须 ≥ 1"
                         "（1 表示不引导，Turbo 即如此）。",
                         "Set sampling.cfg to 1 for Turbo, 2-4 for De-Turbo or Base.",
                         "Turbo 请把 sampling.cfg 设为 1，De-Turbo 或 Base 设为 2-4。", key="sampling.cfg")
    return family_facts.diffusers_guidance(family_facts.ROWS[FAMILY], cfg)


def sample_recipe(recipe: dict, args: dict) -> tuple[dict, dict]:
    """models.recipe's family hook: the PNG states what ComfyUI users set (steps, euler / simple, shift 3,
    cfg) plus diffusers' guidance_scale, and carries the ComfyUI graph (recipe['png_chunks']['prompt'],
    for models.generate.save_png); the flow-matching Euler sampler is the only one, and no clip skip. The base
    (recipe['base']) is named as ComfyUI users have it (workflow.comfy_base), or a plain note says why not."""
    g = guidance_scale(float(recipe["cfg"]))
    recipe = dict(recipe)
    base = recipe.pop("base", "")
    comfy = comfy_base(base, recipe.get("model", ""), recipe.get("model_hash", ""))
    extra = {**(recipe.get("extra") or {}), "Shift": _num(SCHEDULER_SHIFT), "Guidance scale": _num(g),
             "Max tokens": MAX_SEQUENCE_LENGTH, "ComfyUI": f"{MIN_COMFYUI} or newer"}
    if not comfy.unet:
        extra["ComfyUI base"] = base_note(base or recipe.get("model", ""))
    recipe.update({"sampler": "euler", "schedule": "Simple", "clip_skip": 1, "model": comfy.model, "extra": extra})
    recipe["png_chunks"] = {"prompt": json.dumps(comfy_prompt(recipe, comfy.unet), ensure_ascii=False)}
    return recipe, {**args, "sampler": "euler", "clip_skip": 1}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def initial_noise(seed: int, width: int, height: int, channels: int = 16, n: int = 1):
    """The CPU fp32 draw of (1, C, H/8, W/8) for `seed` (ComfyUI's noise), repeated for a batch of n prompts."""
    import torch

    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise DanluError(f"Z-Image sample size {width}x{height} must be a multiple of {SIZE_MULTIPLE}.",
                         f"Z-Image 样图尺寸 {width}x{height} 必须是 {SIZE_MULTIPLE} 的倍数。", key="sampling.width")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn((1, channels, height // 8, width // 8), generator=generator, dtype=torch.float32)
    return noise.repeat(n, 1, 1, 1), generator


def euler_only(sampler: str, label: str = "Z-Image") -> None:
    """A flow-matching DiT family samples with the flow-matching Euler sampler only (its ComfyUI graph's)."""
    if sampler != "euler":
        raise DanluError(f"{label} samples use the flow-matching Euler sampler, not {sampler}.",
                         f"{label} 样图只用流匹配 Euler 采样器，不支持 {sampler}。", "Set sampling.sampler = euler.",
                         "请设置 sampling.sampler = euler。", key="sampling.sampler")


def render_batch(pipe, *, prompts: list[str], negative_prompt: str = "", steps: int = 8, cfg: float = 1.0,
                 seed: int = 0, width: int = 1024, height: int = 1024, sampler: str = "euler", clip_skip: int = 1):
    """Images of `prompts` at one seed (models.generate.render_batch's contract), each from the same noise."""
    import torch

    euler_only(sampler)
    latents, generator = initial_noise(seed, width, height, pipe.transformer.config.in_channels, len(prompts))
    g = guidance_scale(cfg)
    negative = [negative_prompt] * len(prompts) if g > 0 else None
    with torch.no_grad():
        return pipe(prompt=list(prompts), negative_prompt=negative, num_inference_steps=int(steps),
                    guidance_scale=g, width=int(width), height=int(height), generator=generator,
                    latents=latents.to(pipe.transformer.device), max_sequence_length=MAX_SEQUENCE_LENGTH,
                    output_type="pil").images


def render(pipe, *, prompt: str, **kwargs):
    """One image (models.generate.render's contract): CPU-seeded noise, ComfyUI's cfg, N steps = N forwards."""
    return render_batch(pipe, prompts=[prompt], **kwargs)[0]
