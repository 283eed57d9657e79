"""Generation shared by training samples and the XYZ grid: samplers, CPU-seeded rendering, LoRA files
applied through diffusers' public loader, and the A1111 ``parameters`` recipe in every PNG.

Why CPU noise: the same seed must give the same image on any device and in WebUI/ComfyUI set to
"RNG: CPU". Why ``load_lora_weights``: it is the loader a user calls, so a sample shows what the
user will get from the saved file (reference/parity.md).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import SAMPLERS as SAMPLER_IDS
from core.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class Sampler:
    id: str
    scheduler: str          # diffusers scheduler class
    overrides: tuple         # (key, value) pairs applied on top of the model's scheduler_config
    a1111: str              # the name WebUI writes in "Sampler:"
    schedule: str           # the WebUI "Schedule type"
    deterministic: bool


SAMPLERS: dict[str, Sampler] = {s.id: s for s in (
    Sampler("euler", "EulerDiscreteScheduler", (("use_karras_sigmas", False),), "Euler", "Normal", True),
    Sampler("euler_a", "EulerAncestralDiscreteScheduler", (), "Euler a", "Normal", False),
    Sampler("dpmpp_2m", "DPMSolverMultistepScheduler",
            (("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", False)),
            "DPM++ 2M", "Normal", True),
    Sampler("dpmpp_2m_karras", "DPMSolverMultistepScheduler",
            (("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", True)),
            "DPM++ 2M", "Karras", True),
    Sampler("ddim", "DDIMScheduler", (("clip_sample", False), ("set_alpha_to_one", False)), "DDIM", "Normal", True),
    Sampler("unipc", "UniPCMultistepScheduler", (), "UniPC", "Normal", True),
    Sampler("heun", "HeunDiscreteScheduler", (), "Heun", "Normal", True),
    Sampler("lms", "LMSDiscreteScheduler", (), "LMS", "Normal", True),
)}
assert set(SAMPLERS) == set(SAMPLER_IDS), "models.generate.SAMPLERS must cover core.config.SAMPLERS"

_LORA_TAG = re.compile(r"<lora:([^:>]+):([^:>]+)>")


def set_sampler(pipe: Any, sampler_id: str, zero_terminal_snr: bool = False) -> None:
    """Replace pipe.scheduler by the sampler built from the model's own scheduler config plus overrides;
    `zero_terminal_snr` rescales its betas (diffusers' rescale_betas_zero_snr), as the run trained."""
    import diffusers

    if sampler_id not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler_id!r}; choose from {', '.join(SAMPLERS)}")
    s = SAMPLERS[sampler_id]
    cls = getattr(diffusers, s.scheduler)
    base_config = dict(getattr(pipe, "_danlu_scheduler_config", None) or pipe.scheduler.config)
    pipe._danlu_scheduler_config = base_config  # keep the model's own config across sampler switches
    extra = {"rescale_betas_zero_snr": True} if zero_terminal_snr else {}
    pipe.scheduler = cls.from_config(base_config, **dict(s.overrides), **extra)


def render(pipe: Any, *, prompt: str, negative_prompt: str = "", steps: int = 20, cfg: float = 7.0, seed: int = 0,
           width: int = 512, height: int = 512, sampler: str = "euler", clip_skip: int = 1, cfg_rescale: float = 0.0,
           zero_terminal_snr: bool = False):
    """One image (batch 1). Initial noise: a CPU generator's fp32 randn of (1, 4, H/8, W/8).

    cfg_rescale: diffusers' guidance_rescale (φ); zero_terminal_snr: the sampler's betas rescaled (set_sampler).

    clip_skip follows WebUI: 1 = last layer, 2 = penultimate (diffusers counts skipped layers, one less).
    A DiT family's pipeline is rendered by its family module, with the semantics written there.
    """
    import torch

    from models import families

    dit = families.of_pipeline(pipe)
    if dit is not None:
        return families.part(dit, "sample").render(
            pipe, prompt=prompt, negative_prompt=negative_prompt, steps=steps, cfg=cfg, seed=seed, width=width,
            height=height, sampler=sampler, clip_skip=clip_skip)
    if width % 8 or height % 8:
        raise ValueError(f"sample size {width}x{height} must be a multiple of 8")
    set_sampler(pipe, sampler, zero_terminal_snr)
    device = pipe.unet.device
    dtype = pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(int(seed))
    channels = pipe.unet.config.in_channels
    latents = torch.randn((1, channels, height // 8, width // 8), generator=generator, dtype=torch.float32)
    kwargs = {"prompt": prompt, "negative_prompt": negative_prompt or None, "num_inference_steps": int(steps),
              "guidance_scale": float(cfg), "width": int(width), "height": int(height),
              "latents": latents.to(device=device, dtype=dtype), "generator": generator, "output_type": "pil",
              "guidance_rescale": float(cfg_rescale)}
    with torch.no_grad():
        if clip_skip > 1 and not hasattr(pipe, "text_encoder_2"):  # SDXL already uses the penultimate layer
            kwargs["prompt_embeds"] = _clip_skip_embeds(pipe, prompt, clip_skip)
            kwargs["negative_prompt_embeds"] = _clip_skip_embeds(pipe, negative_prompt or "", clip_skip)
            del kwargs["prompt"], kwargs["negative_prompt"]
        return pipe(**kwargs).images[0]


def _clip_skip_embeds(pipe: Any, prompt: str, clip_skip: int):
    """WebUI clip skip: hidden state `clip_skip` layers from the end, through the final layer norm.

    Done here rather than with diffusers' ``clip_skip`` argument, which reaches for ``text_model``,
    a submodule newer transformers versions no longer have.
    """
    te = pipe.text_encoder
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(te.device)
    hidden = te(ids, output_hidden_states=True).hidden_states[-clip_skip]
    final_norm = getattr(te, "text_model", te).final_layer_norm
    return final_norm(hidden).to(dtype=te.dtype)


def load_lora(pipe: Any, path: str | Path, adapter_name: str) -> str:
    """Load a kohya/diffusers LoRA file into pipe through `load_lora_weights`; returns the adapter name.

    LoHa, LoKr and DoRA files are merged into the weights instead (models.lycoris; the samples and the grid)."""
    if not pipe.get_list_adapters():
        pipe.load_lora_weights(str(path), adapter_name=adapter_name)
        _file_alphas(pipe, path, adapter_name)
        return adapter_name
    # With an adapter already loaded, transformers' load report lists the other adapters' text-encoder
    # weights as "MISSING ... newly initialized": they are untouched (tested), so that report is noise here.
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        pipe.load_lora_weights(str(path), adapter_name=adapter_name)
    finally:
        hf_logging.set_verbosity(level)
    _file_alphas(pipe, path, adapter_name)
    return adapter_name


def _file_alphas(pipe: Any, path: str | Path, adapter_name: str) -> int:
    """Give each layer of a kohya file the alpha the file holds for it; return how many were corrected.

    diffusers keeps one alpha per file plus a pattern for the modules that differ, and its pattern misses the SD
    UNet's attention linears (to_q/k/v/out), which then get the common alpha. A file with per-block alphas
    (network.block_alphas) would render at the wrong strength in those layers; WebUI and ComfyUI read each
    module's own alpha, and so does this."""
    import warnings

    from safetensors import safe_open

    from models.lora_file import lora_family
    from models.lora_names import KOHYA_PREFIXES, base_name, tuner_layers

    with safe_open(str(path), framework="pt") as f:
        alphas = {k[:-len(".alpha")]: k for k in f.keys() if k.endswith(".alpha") and k.startswith(KOHYA_PREFIXES)}
        if not alphas:
            return 0
        family = lora_family(path)
        fixed = 0
        for component in ("unet", "text_encoder", "text_encoder_2"):
            model = getattr(pipe, component, None)
            if model is None:
                continue
            for name, layer in tuner_layers(model, adapter_name):
                try:
                    key = alphas.get(base_name(component, model, name, family))
                except ValueError:
                    continue
                if key is None or not hasattr(layer, "lora_alpha"):
                    continue
                alpha = float(f.get_tensor(key))
                if layer.lora_alpha[adapter_name] != alpha:
                    layer.lora_alpha[adapter_name] = alpha
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        layer.set_scale(adapter_name, 1.0)  # scaling = alpha / rank (rsLoRA: / sqrt(rank))
                    fixed += 1
    return fixed


def set_lora_weights(pipe: Any, weights: dict[str, float]) -> None:
    """Strength per loaded adapter (weight 0 gives the base model's image)."""
    if weights:
        pipe.set_adapters(list(weights), adapter_weights=[float(w) for w in weights.values()])


def unload_loras(pipe: Any) -> None:
    pipe.unload_lora_weights()


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def recipe_text(recipe: dict) -> str:
    """The A1111 ``parameters`` text of a recipe.

    Recipe keys: prompt, negative_prompt, steps, sampler (a SAMPLERS id), cfg, seed, width, height,
    and optionally model_hash, model, clip_skip, loras ([{name, weight, hash}]), extra ({key: value}),
    schedule (the "Schedule type" when a family's differs from the sampler's, e.g. Z-Image's Simple).
    Each LoRA is written as ``<lora:name:weight>`` at the end of the prompt, as WebUI users write it.
    """
    s = SAMPLERS[recipe["sampler"]]
    prompt = recipe["prompt"]
    for lora in recipe.get("loras") or []:
        prompt += f" <lora:{lora['name']}:{_fmt(float(lora['weight']))}>"
    lines = [prompt]
    if recipe.get("negative_prompt"):
        lines.append(f"Negative prompt: {recipe['negative_prompt']}")
    params = [("Steps", recipe["steps"]), ("Sampler", s.a1111),
              ("Schedule type", recipe.get("schedule") or s.schedule),
              ("CFG scale", _fmt(float(recipe["cfg"]))), ("Seed", recipe["seed"]),
              ("Size", f"{recipe['width']}x{recipe['height']}")]
    if recipe.get("model_hash"):
        params.append(("Model hash", recipe["model_hash"]))
    if recipe.get("model"):
        params.append(("Model", recipe["model"]))
    if int(recipe.get("clip_skip") or 1) > 1:
        params.append(("Clip skip", recipe["clip_skip"]))
    if float(recipe.get("cfg_rescale") or 0):  # WebUI has none built in: its CFG Rescale extension's key, and Forge's
        params.append(("CFG Rescale", _fmt(float(recipe["cfg_rescale"]))))
        params.append(("Rescale CFG", _fmt(float(recipe["cfg_rescale"]))))
    if recipe.get("zero_terminal_snr"):  # WebUI's own setting (sd_noise_schedule) and value
        params.append(("Noise Schedule", "Zero Terminal SNR"))
    params.append(("RNG", "CPU"))
    hashes = [f"{lo['name']}: {lo['hash']}" for lo in recipe.get("loras") or [] if lo.get("hash")]
    if hashes:
        params.append(("Lora hashes", '"' + ", ".join(hashes) + '"'))
    params += list((recipe.get("extra") or {}).items())
    lines.append(", ".join(f"{k}: {v}" for k, v in params))
    return "\n".join(lines)


def _split_params(line: str) -> dict[str, str]:
    """'Steps: 20, Sampler: Euler, Lora hashes: "a: 1, b: 2"' → dict, honouring quoted values."""
    out: dict[str, str] = {}
    for m in re.finditer(r'\s*([\w \-/]+):\s*("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)', line):
        out[m.group(1).strip()] = m.group(2).strip()
    return out


def parse_parameters(text: str) -> dict:
    """Inverse of recipe_text: an A1111 ``parameters`` text → a recipe dict (plus ``params``, every field)."""
    lines = text.strip("\n").split("\n")
    params_line = lines[-1] if len(lines) > 1 and re.match(r"\s*Steps: ", lines[-1]) else ""
    body = lines[:-1] if params_line else lines
    negative = ""
    prompt_lines = []
    for i, line in enumerate(body):
        if line.startswith("Negative prompt:"):
            negative = "\n".join([line[len("Negative prompt:"):].strip()] + body[i + 1:])
            break
        prompt_lines.append(line)
    prompt = "\n".join(prompt_lines)
    params = _split_params(params_line)
    hashes = {}
    if "Lora hashes" in params:
        for item in params["Lora hashes"].strip('"').split(","):
            if ":" in item:
                name, h = item.split(":", 1)
                hashes[name.strip()] = h.strip()
    loras = []
    while True:  # LoRA tags at the end of the prompt become the recipe's loras
        m = re.search(r"\s*<lora:([^:>]+):([^:>]+)>\s*$", prompt)
        if not m:
            break
        loras.insert(0, {"name": m.group(1), "weight": float(m.group(2)), "hash": hashes.get(m.group(1), "")})
        prompt = prompt[:m.start()]
    sampler = next((s.id for s in SAMPLERS.values() if s.a1111 == params.get("Sampler")
                    and s.schedule == params.get("Schedule type", "Normal")), None)
    sampler = sampler or next((s.id for s in SAMPLERS.values() if s.a1111 == params.get("Sampler")),
                              params.get("Sampler", ""))
    size = params.get("Size", "0x0").split("x")
    recipe: dict[str, Any] = {
        "prompt": prompt, "negative_prompt": negative, "steps": int(params.get("Steps", 0)), "sampler": sampler,
        "cfg": float(params.get("CFG scale", 0)), "seed": int(params.get("Seed", 0)),
        "width": int(size[0]), "height": int(size[1]), "model_hash": params.get("Model hash", ""),
        "model": params.get("Model", ""), "clip_skip": int(params.get("Clip skip", 1)), "loras": loras,
        "params": params}
    return recipe


def save_png(image: Any, path: str | Path, parameters_text: str, chunks: dict[str, str] | None = None) -> Path:
    """Save a PNG with the A1111 ``parameters`` text chunk, atomically.

    `chunks`: more text chunks, as a family's recipe gives them in ``recipe.get("png_chunks")`` (Z-Image: the
    ComfyUI ``prompt`` graph, so the PNG dropped on ComfyUI loads the same sample)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", parameters_text)
    for key, text in (chunks or {}).items():
        info.add_text(key, text)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(Path(path), buf.getvalue())


def open_pipeline(base: str, *, family: str | None = None, prediction_type: str | None = None, vae: str | None = None,
                  device: str = "cpu", torch_dtype: Any = None) -> Any:
    """A fresh inference pipeline of `base` (a single file, a diffusers folder or a hub id: models.loading)."""
    from models.loading import load_pipeline

    return load_pipeline(base, family=family, prediction_type=prediction_type, torch_dtype=torch_dtype,
                         vae=vae or None, device=device)


def render_batch(pipe: Any, *, prompts: list[str], negative_prompt: str = "", steps: int = 20, cfg: float = 7.0,
                 seed: int = 0, width: int = 512, height: int = 512, sampler: str = "euler",
                 clip_skip: int = 1, cfg_rescale: float = 0.0, zero_terminal_snr: bool = False) -> list:
    """Several prompts at one seed in one batch (the XYZ grid's prompt axis).

    Every element starts from the same noise as ``render`` (the CPU fp32 draw of (1, 4, H/8, W/8) for `seed`),
    so each image matches its batch-1 render up to the float rounding of batched kernels.
    """
    import torch

    from models import families

    dit = families.of_pipeline(pipe)
    if dit is not None:
        return families.part(dit, "sample").render_batch(
            pipe, prompts=prompts, negative_prompt=negative_prompt, steps=steps, cfg=cfg, seed=seed, width=width,
            height=height, sampler=sampler, clip_skip=clip_skip)
    if len(prompts) == 1:
        return [render(pipe, prompt=prompts[0], negative_prompt=negative_prompt, steps=steps, cfg=cfg, seed=seed,
                       width=width, height=height, sampler=sampler, clip_skip=clip_skip, cfg_rescale=cfg_rescale,
                       zero_terminal_snr=zero_terminal_snr)]
    if width % 8 or height % 8:
        raise ValueError(f"sample size {width}x{height} must be a multiple of 8")
    set_sampler(pipe, sampler, zero_terminal_snr)
    device, dtype, n = pipe.unet.device, pipe.unet.dtype, len(prompts)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn((1, pipe.unet.config.in_channels, height // 8, width // 8), generator=generator,
                        dtype=torch.float32)
    kwargs = {"prompt": list(prompts), "negative_prompt": [negative_prompt] * n if negative_prompt else None,
              "num_inference_steps": int(steps), "guidance_scale": float(cfg), "width": int(width),
              "height": int(height), "latents": noise.repeat(n, 1, 1, 1).to(device=device, dtype=dtype),
              "generator": generator, "output_type": "pil", "guidance_rescale": float(cfg_rescale)}
    with torch.no_grad():
        if clip_skip > 1 and not hasattr(pipe, "text_encoder_2"):
            kwargs["prompt_embeds"] = torch.cat([_clip_skip_embeds(pipe, p, clip_skip) for p in prompts])
            kwargs["negative_prompt_embeds"] = _clip_skip_embeds(pipe, negative_prompt or "", clip_skip).repeat(
                n, 1, 1)
            del kwargs["prompt"], kwargs["negative_prompt"]
        return pipe(**kwargs).images
