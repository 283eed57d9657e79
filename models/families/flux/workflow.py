"""FLUX.1 and Chroma: the same sample in ComfyUI. The graph a sample PNG carries (its `prompt` chunk), so that dropping
the PNG on ComfyUI loads the workflow that renders it (models/families/flux/sample.py's sample_recipe puts it there;
its docstring states the semantics this graph reproduces)."""

from __future__ import annotations

from models.families.zimage.workflow import lora_chain

# ModelSamplingFlux's defaults, which are diffusers' FLUX scheduler's base_shift and max_shift too.
BASE_SHIFT, MAX_SHIFT = 0.5, 1.15
# Published file names, each in ComfyUI's models/<folder>/: black-forest-labs/FLUX.1-dev flux1-dev.safetensors and
# FLUX.1-schnell flux1-schnell.safetensors (diffusion_models), ae.safetensors (vae, in both repos);
# comfyanonymous/flux_text_encoders clip_l.safetensors and t5xxl_fp16.safetensors (text_encoders); Chroma's
# lodestones/Chroma1-HD Chroma1-HD.safetensors and lodestones/Chroma1-Base Chroma1-Base.safetensors (their repos'
# single files; Chroma uses the same T5 and VAE and no CLIP).
RELEASE_FILES = {"black-forest-labs/flux.1-dev": "flux1-dev.safetensors",
                 "black-forest-labs/flux.1-schnell": "flux1-schnell.safetensors",
                 "lodestones/chroma1-hd": "Chroma1-HD.safetensors",
                 "lodestones/chroma1-base": "Chroma1-Base.safetensors"}
COMFY_FILES = {"clip_l": "clip_l.safetensors", "t5": "t5xxl_fp16.safetensors", "vae": "ae.safetensors"}


def comfy_prompt(recipe: dict, unet: str, variant: str, guidance: float) -> dict:
    """ComfyUI's API-format graph of a sample recipe: UNETLoader → LoraLoaderModelOnly per LoRA →
    ModelSamplingFlux at the sample's size (dev and Chroma: the μ diffusers uses; schnell keeps ComfyUI's shift 1)
    → KSampler(euler, simple) on an EmptySD3LatentImage; text through DualCLIPLoader(flux: clip_l + t5) or
    CLIPLoader(chroma: t5); KSampler's cfg is the recipe's, with the negative prompt; dev's prompt goes through
    FluxGuidance(guidance). `unet` empty: ComfyUI asks for the file and the loader's title says why."""
    loader = {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}
    if not unet:
        loader["_meta"] = {"title": "Load Diffusion Model (choose the base the LoRA was trained on)"}
    if variant == "chroma":
        clip = {"class_type": "CLIPLoader", "inputs": {"clip_name": COMFY_FILES["t5"], "type": "chroma",
                                                       "device": "default"}}
    else:
        clip = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": COMFY_FILES["clip_l"],
                                                           "clip_name2": COMFY_FILES["t5"], "type": "flux",
                                                           "device": "default"}}
    width, height = int(recipe["width"]), int(recipe["height"])
    g: dict[str, dict] = {"1": loader, "2": clip, "3": {"class_type": "VAELoader",
                                                         "inputs": {"vae_name": COMFY_FILES["vae"]}}}
    model = lora_chain(g, recipe.get("loras") or [], ["1", 0])
    if variant != "schnell":
        g["4"] = {"class_type": "ModelSamplingFlux", "inputs": {
            "model": model, "max_shift": MAX_SHIFT, "base_shift": BASE_SHIFT, "width": width, "height": height}}
        model = ["4", 0]
    g["5"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe["prompt"], "clip": ["2", 0]}}
    g["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe.get("negative_prompt") or "",
                                                         "clip": ["2", 0]}}
    positive, negative = ["5", 0], ["6", 0]
    if variant == "dev":  # both prompts, as diffusers gives the guidance input to both calls of true CFG
        g["21"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": positive, "guidance": float(guidance)}}
        g["22"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": negative, "guidance": float(guidance)}}
        positive, negative = ["21", 0], ["22", 0]
    g["7"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}}
    g["8"] = {"class_type": "KSampler", "inputs": {
        "model": model, "seed": int(recipe["seed"]), "steps": int(recipe["steps"]),
        "cfg": float(recipe["cfg"]), "sampler_name": "euler", "scheduler": "simple",
        "positive": positive, "negative": negative, "latent_image": ["7", 0], "denoise": 1.0}}
    g["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}}
    g["20"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "danlu"}}
    return g
