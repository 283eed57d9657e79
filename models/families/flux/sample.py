"""FLUX.1 and Chroma samples, made as ComfyUI, Forge and diffusers make them.

Guidance semantics (diffusers 0.42.1 FluxPipeline / ChromaPipeline; tests/test_flux_sampling.py):

- Danlu's `cfg` is ComfyUI's KSampler cfg (sd-scripts' `--l`) for all three: real classifier-free guidance with the
  negative prompt, pred = neg + cfg·(pos − neg), on above 1 (two transformer calls per step); at 1 the negative
  prompt is unused. diffusers calls it true_cfg_scale for FLUX and guidance_scale for Chroma.
- dev is guidance-distilled: the transformer also takes the distilled guidance as an input (diffusers'
  guidance_scale, ComfyUI's FluxGuidance node, Forge's "Distilled CFG Scale"), set to the published 3.5; cfg 1 is
  how dev is sampled (20–28 steps). The PNG states both, as ComfyUI and Forge users type them.
- schnell is timestep-distilled and takes no guidance input: cfg 1 and 4 steps is its recipe.
- Chroma has no guidance input: cfg is its only guidance (4 with a negative prompt in sd-scripts' docs).
- Chroma's attention mask: its pipeline builds a float 0/1 mask that scaled-dot-product attention adds to the scores
  (diffusers #13619), so padding is not masked. Samples encode the prompts first and pass the mask as bool: the T5
  padding (all but the one pad token Chroma keeps, as diffusers and sd-scripts do) has no effect on the image.
  ComfyUI does not pad Chroma prompts at all, so its image may differ by that one token.
- Shift. diffusers shifts by the image's token count: μ = 0.5 + (1.15 − 0.5)·(L − 256)/(4096 − 256),
  L = (W/16)·(H/16), σ' = e^μ / (e^μ + 1/σ − 1) (dev and Chroma; μ = ln(shift) for a static shift: schnell's is
  1, μ = 0). ComfyUI's default for dev and Chroma is a fixed μ = 1.15 whatever the size, so the graph sets
  ModelSamplingFlux to the sample's size, which gives the same μ; the recipe states μ as "Shift".
- Steps. N steps are N transformer calls: sigmas linspace(1, 1/N, N), shifted, then 0; ComfyUI's euler sampler with
  the `simple` scheduler steps through the same sigmas when N divides 10000 (its table of ModelSamplingFlux).
- Prompt. T5 padded to 512 tokens (256 for schnell, models.families.flux.max_sequence_length); CLIP-L's pooled
  output for FLUX. Noise: a CPU generator's fp32 randn of (1, 16, H/8, W/8) for the seed (ComfyUI's noise), packed
  into 2×2 patches as the pipeline packs latents.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from core.errors import DanluError
from models.families import flux
from models.families.flux.workflow import BASE_SHIFT, MAX_SHIFT, RELEASE_FILES, comfy_prompt
from models.families.zimage.sample import euler_only
from models.families.zimage.workflow import base_note, comfy_base

# The published schedulers' shifting (ai-toolkit's copy of FLUX.1-dev's config; schnell: static shift 1).
DISTILLED_GUIDANCE = 3.5  # dev's FluxGuidance / Distilled CFG Scale: the published default (diffusers, ComfyUI)
DYNAMIC = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": BASE_SHIFT,
           "max_shift": MAX_SHIFT}


def mu(config: dict, width: int, height: int) -> float:
    """The exponential shift μ a FlowMatchEulerDiscreteScheduler config gives a width × height sample."""
    if config.get("use_dynamic_shifting", True):
        c = {k: config.get(k, v) for k, v in DYNAMIC.items()}
        tokens = (width // 16) * (height // 16)
        m = (c["max_shift"] - c["base_shift"]) / (c["max_image_seq_len"] - c["base_image_seq_len"])
        return tokens * m + c["base_shift"] - m * c["base_image_seq_len"]
    return math.log(float(config.get("shift", 1.0)))


def variant_of_base(base: str) -> str:
    """dev or schnell for a run's base: a single file's header (schnell has no guidance embedder), a diffusers
    folder's transformer config, else the name (a hub id such as black-forest-labs/FLUX.1-schnell)."""
    from models.files import HeaderError, read_header

    path = Path(base) if base else None
    if path is not None and path.is_file():
        try:
            return flux.variant_of(read_header(path)[0])
        except (HeaderError, OSError):
            pass
    if path is not None and (path / "transformer" / "config.json").is_file():
        try:
            config = json.loads((path / "transformer" / "config.json").read_text(encoding="utf-8"))
            return "dev" if config.get("guidance_embeds") else "schnell"
        except (OSError, ValueError):
            pass
    return "schnell" if "schnell" in (base or "").lower() else "dev"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def sample_recipe(recipe: dict, args: dict, family: str = flux.FAMILY) -> tuple[dict, dict]:
    """models.recipe's family hook: the PNG states what ComfyUI / Forge users set (euler / simple, steps, cfg, dev's
    distilled guidance, the shift μ) and carries the ComfyUI graph (recipe['png_chunks']['prompt']). The
    base (recipe['base']) is named as ComfyUI users have it, or a plain note says why not."""
    recipe = dict(recipe)
    base = recipe.pop("base", "")
    variant = "chroma" if family != flux.FAMILY else variant_of_base(base or recipe.get("model", ""))
    comfy = comfy_base(base, recipe.get("model", ""), recipe.get("model_hash", ""), RELEASE_FILES)
    width, height = int(recipe["width"]), int(recipe["height"])
    config = {"use_dynamic_shifting": False, "shift": 1.0} if variant == "schnell" else DYNAMIC
    extra = {**(recipe.get("extra") or {}), "Shift": f"{mu(config, width, height):.4f}",
             "Max tokens": flux.max_sequence_length(family, variant)}
    if variant == "dev":  # the distilled guidance input, besides cfg
        extra["Distilled CFG Scale"] = _num(DISTILLED_GUIDANCE)
    if not comfy.unet:
        extra["ComfyUI base"] = base_note(base or recipe.get("model", ""))
    recipe.update({"sampler": "euler", "schedule": "Simple", "clip_skip": 1, "model": comfy.model, "extra": extra})
    graph = comfy_prompt(recipe, comfy.unet, variant, DISTILLED_GUIDANCE)
    recipe["png_chunks"] = {"prompt": json.dumps(graph, ensure_ascii=False)}
    return recipe, {**args, "sampler": "euler", "clip_skip": 1}


def initial_latents(pipe, seed: int, width: int, height: int, n: int = 1, label: str = "FLUX"):
    """The CPU fp32 draw of (1, 16, H/8, W/8) for `seed` (ComfyUI's noise), packed as the pipeline packs latents,
    repeated for a batch of n prompts; and the generator. Qwen-Image packs the same way (`label` names it)."""
    import torch

    if width % flux.SIZE_MULTIPLE or height % flux.SIZE_MULTIPLE:
        raise DanluError(f"{label} sample size {width}x{height} must be a multiple of {flux.SIZE_MULTIPLE}.",
                         f"{label} 样图尺寸 {width}x{height} 必须是 {flux.SIZE_MULTIPLE} 的倍数。",
                         f"Set sampling.width and sampling.height to multiples of {flux.SIZE_MULTIPLE}.",
                         f"请把 sampling.width 和 sampling.height 设为 {flux.SIZE_MULTIPLE} 的倍数。",
                         key="sampling.width")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    channels = pipe.transformer.config.in_channels // 4
    noise = torch.randn((1, channels, height // 8, width // 8), generator=generator, dtype=torch.float32)
    packed = pipe._pack_latents(noise, 1, channels, height // 8, width // 8)
    return packed.repeat(n, 1, 1), generator


def chroma_prompts(pipe, prompts: list[str], negative_prompt: str, cfg: float) -> dict:
    """ChromaPipeline's prompt arguments with a bool attention mask (see the module docstring): the embeddings and
    masks of the prompts (and of the negative when CFG is on), encoded as the pipeline encodes them."""
    import torch

    guided = cfg > 1
    with torch.no_grad():
        embeds, _, mask, neg_embeds, _, neg_mask = pipe.encode_prompt(
            prompt=list(prompts), negative_prompt=[negative_prompt] * len(prompts) if guided else None,
            device=pipe.transformer.device, do_classifier_free_guidance=guided,
            max_sequence_length=flux.max_sequence_length("chroma"))
    out = {"prompt_embeds": embeds, "prompt_attention_mask": mask.bool()}
    if guided:
        out.update(negative_prompt_embeds=neg_embeds, negative_prompt_attention_mask=neg_mask.bool())
    return out


def render_batch(pipe, *, prompts: list[str], negative_prompt: str = "", steps: int = 28, cfg: float = 1.0,
                 seed: int = 0, width: int = 1024, height: int = 1024, sampler: str = "euler", clip_skip: int = 1):
    """Images of `prompts` at one seed (models.generate.render_batch's contract), each from the same noise."""
    import torch

    euler_only(sampler, "FLUX")
    latents, generator = initial_latents(pipe, seed, width, height, len(prompts))
    common = dict(num_inference_steps=int(steps), width=int(width), height=int(height), generator=generator,
                  latents=latents.to(pipe.transformer.device), output_type="pil")
    with torch.no_grad():
        if type(pipe).__name__ == "ChromaPipeline":
            prompt_args = chroma_prompts(pipe, prompts, negative_prompt, float(cfg))
            return pipe(**prompt_args, guidance_scale=float(cfg), **common).images
        dev = bool(pipe.transformer.config.guidance_embeds)
        negative = [negative_prompt] * len(prompts) if float(cfg) > 1 else None
        return pipe(prompt=list(prompts), negative_prompt=negative, true_cfg_scale=float(cfg),
                    guidance_scale=DISTILLED_GUIDANCE if dev else 0.0,
                    max_sequence_length=flux.max_sequence_length(flux.FAMILY, "dev" if dev else "schnell"),
                    **common).images


def render(pipe, *, prompt: str, **kwargs):
    """One image (models.generate.render's contract): CPU-seeded noise, the family's guidance, N steps = N calls."""
    return render_batch(pipe, prompts=[prompt], **kwargs)[0]
