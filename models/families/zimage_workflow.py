"""Z-Image: the same sample in ComfyUI. The graph a sample PNG carries (its `prompt` chunk), so that dropping the
PNG on ComfyUI loads the workflow that renders it (models/families/zimage.py's sample_recipe puts it there)."""

from __future__ import annotations

COMFY_FILES = {"unet": "z_image_turbo_bf16.safetensors", "clip": "qwen_3_4b.safetensors", "vae": "ae.safetensors"}


def comfy_prompt(recipe: dict) -> dict:
    """ComfyUI's API-format graph of a sample recipe (the PNG's `prompt` chunk: dropped on ComfyUI, it loads the
    workflow): UNETLoader → LoraLoaderModelOnly per LoRA → ModelSamplingAuraFlow(shift 3) → KSampler(euler,
    simple, steps, cfg, seed) on an EmptySD3LatentImage, Qwen3 through CLIPLoader(lumina2), the VAE decode.
    File names are ComfyUI's release names unless the base was a single file (then its own name)."""
    from models.families.zimage import SCHEDULER_SHIFT

    unet = f"{recipe['model']}.safetensors" if recipe.get("model_hash") and recipe.get("model") else \
        COMFY_FILES["unet"]
    g: dict[str, dict] = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": COMFY_FILES["clip"], "type": "lumina2",
                                                    "device": "default"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": COMFY_FILES["vae"]}}}
    model = ["1", 0]
    for i, lora in enumerate(recipe.get("loras") or []):
        node = str(10 + i)
        g[node] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": model, "lora_name": f"{lora['name']}.safetensors", "strength_model": float(lora["weight"])}}
        model = [node, 0]
    g["4"] = {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": model, "shift": SCHEDULER_SHIFT}}
    g["5"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe["prompt"], "clip": ["2", 0]}}
    g["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe.get("negative_prompt") or "",
                                                         "clip": ["2", 0]}}
    g["7"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": int(recipe["width"]),
                                                              "height": int(recipe["height"]), "batch_size": 1}}
    g["8"] = {"class_type": "KSampler", "inputs": {
        "model": ["4", 0], "seed": int(recipe["seed"]), "steps": int(recipe["steps"]), "cfg": float(recipe["cfg"]),
        "sampler_name": "euler", "scheduler": "simple", "positive": ["5", 0], "negative": ["6", 0],
        "latent_image": ["7", 0], "denoise": 1.0}}
    g["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}}
    g["20"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "danlu"}}
    return g
