"""Z-Image: the same sample in ComfyUI. The graph a sample PNG carries (its `prompt` chunk), so that dropping the
PNG on ComfyUI loads the workflow that renders it (models/families/zimage/sample.py's sample_recipe puts it there)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from models.families.zimage import SCHEDULER_SHIFT

# ComfyUI's file names as published (each in models/<folder>/ of ComfyUI):
# - Turbo: Comfy-Org/z_image_turbo, split_files/diffusion_models/z_image_turbo_bf16.safetensors (also the file
#   comfyanonymous.github.io/ComfyUI_examples/z_image tells users to download);
# - Base: Comfy-Org/z_image, split_files/diffusion_models/z_image_bf16.safetensors;
# - De-Turbo: ostris/Z-Image-De-Turbo, z_image_de_turbo_v1_bf16.safetensors at the repo's root (ComfyUI has no
#   repackaged copy; kohya-ss/musubi-tuner's docs/zimage.md names the same file);
# - the Qwen3 text encoder and the VAE all three use: Comfy-Org/z_image_turbo, split_files/text_encoders/
#   qwen_3_4b.safetensors and split_files/vae/ae.safetensors.
COMFY_FILES = {"unet": "z_image_turbo_bf16.safetensors", "clip": "qwen_3_4b.safetensors", "vae": "ae.safetensors"}
RELEASE_FILES = {"tongyi-mai/z-image-turbo": "z_image_turbo_bf16.safetensors",
                 "tongyi-mai/z-image": "z_image_bf16.safetensors",
                 "ostris/z-image-de-turbo": "z_image_de_turbo_v1_bf16.safetensors"}
# The oldest ComfyUI that reads every key of a Z-Image LoRA: its Z-Image LoRA name mapping came in v0.3.76
# (2025-11-28); v0.3.75 skips the attention layers of the file without an error.
MIN_COMFYUI = "0.3.76"


@dataclass(frozen=True)
class ComfyBase:
    """The base of a sample as ComfyUI names it: `unet` is the file for Load Diffusion Model, "" when it cannot be
    known (a diffusers folder of the user's own); `model` is the A1111 text's `Model`."""

    unet: str
    model: str


def _release(base: str, releases: dict[str, str]) -> str | None:
    """The published release (a key of `releases`: lower-case hub ids) a base is: its hub id, a folder of that name
    (a ModelScope or hand download), or the hub cache's `models--org--name` folder."""
    if not base:
        return None
    text = base.replace("\\", "/").strip("/").lower()
    if text in releases:
        return text
    parts = Path(text).parts
    for part in parts:
        if m := re.fullmatch(r"models--([^/]+?)--([^/]+)", part):
            return f"{m[1]}/{m[2]}" if f"{m[1]}/{m[2]}" in releases else None
    names = {r.split("/")[1]: r for r in releases}
    return names.get(parts[-1]) if parts else None


def comfy_base(base: str, model: str = "", model_hash: str = "",
               releases: dict[str, str] = RELEASE_FILES) -> ComfyBase:
    """What the sample was rendered from, in ComfyUI's terms: the user's own file name for a single file; the
    published file of a release (Turbo, De-Turbo, Base; another family passes its own `releases`) given as a hub
    id or its folder; else no file name."""
    path = Path(base) if base else None
    if path is not None and path.is_file():
        return ComfyBase(path.name, path.stem)
    if model_hash and model and not base:  # a hashed base is a single file: the caller named it
        return ComfyBase(f"{model}.safetensors", model)
    release = _release(base or model, releases)
    if release is not None:
        return ComfyBase(releases[release], Path(releases[release]).stem)
    return ComfyBase("", model or (path.name if path is not None else ""))


def base_note(base: str) -> str:
    """The recipe's plain note for a base with no published ComfyUI file (A1111 text: no commas)."""
    name = Path(base).name or base
    return (f"{name} is a folder with no published ComfyUI file: in ComfyUI choose its transformer file "
            "in Load Diffusion Model")


def lora_chain(g: dict[str, dict], loras: list[dict], model: list) -> list:
    """One LoraLoaderModelOnly node per LoRA (nodes 10, 11, …) after `model`; the output the sampler takes."""
    for i, lora in enumerate(loras):
        node = str(10 + i)
        g[node] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": model, "lora_name": f"{lora['name']}.safetensors", "strength_model": float(lora["weight"])}}
        model = [node, 0]
    return model


def comfy_prompt(recipe: dict, unet: str) -> dict:
    """ComfyUI's API-format graph of a sample recipe (the PNG's `prompt` chunk: dropped on ComfyUI, it loads the
    workflow): UNETLoader → LoraLoaderModelOnly per LoRA → ModelSamplingAuraFlow(shift 3) → KSampler(euler,
    simple, steps, cfg, seed) on an EmptySD3LatentImage, Qwen3 through CLIPLoader(lumina2), the VAE decode.
    The transformer is `unet` (comfy_base); empty, ComfyUI asks for it and the loader's title says why."""
    loader = {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}
    if not unet:
        loader["_meta"] = {"title": "Load Diffusion Model (choose the base the LoRA was trained on)"}
    g: dict[str, dict] = {
        "1": loader,
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": COMFY_FILES["clip"], "type": "lumina2",
                                                    "device": "default"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": COMFY_FILES["vae"]}}}
    model = lora_chain(g, recipe.get("loras") or [], ["1", 0])
    g["4"] = {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": model, "shift": SCHEDULER_SHIFT}}
    g["5"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe["prompt"], "clip": ["2", 0]}}
    g["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe.get("negative_prompt") or "",
                                                         "clip": ["2", 0]}}
    return sampler_nodes(g, recipe, ["4", 0])


def sampler_nodes(g: dict[str, dict], recipe: dict, model: list, positive: list | None = None,
                  negative: list | None = None) -> dict[str, dict]:
    """The graph's tail (nodes 7, 8, 9, 20): EmptySD3LatentImage → KSampler(euler, simple, the recipe's seed, steps
    and cfg; the prompts of nodes 5 and 6 unless given) → VAEDecode with the VAE of node 3 → SaveImage."""
    g["7"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": int(recipe["width"]),
                                                              "height": int(recipe["height"]), "batch_size": 1}}
    g["8"] = {"class_type": "KSampler", "inputs": {
        "model": model, "seed": int(recipe["seed"]), "steps": int(recipe["steps"]), "cfg": float(recipe["cfg"]),
        "sampler_name": "euler", "scheduler": "simple", "positive": positive or ["5", 0],
        "negative": negative or ["6", 0], "latent_image": ["7", 0], "denoise": 1.0}}
    g["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}}
    g["20"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "danlu"}}
    return g
