"""Qwen-Image: the same sample in ComfyUI. The graph a sample PNG carries (its `prompt` chunk), so that dropping the
PNG on ComfyUI loads the workflow that renders it (models/families/qwen_image/sample.py's sample_recipe puts it
there; its docstring states the semantics this graph reproduces and where ComfyUI differs)."""

from __future__ import annotations

from models.families.zimage.workflow import lora_chain, sampler_nodes

# Published file names, each in ComfyUI's models/<folder>/: Comfy-Org/Qwen-Image_ComfyUI split_files/
# diffusion_models/qwen_image_bf16.safetensors, text_encoders/qwen_2.5_vl_7b.safetensors and
# vae/qwen_image_vae.safetensors;
# the edit models' transformers are in Comfy-Org/Qwen-Image-Edit_ComfyUI (musubi-tuner docs/qwen_image.md lists them).
RELEASE_FILES = {"qwen/qwen-image": "qwen_image_bf16.safetensors",
                 "qwen/qwen-image-edit": "qwen_image_edit_bf16.safetensors",
                 "qwen/qwen-image-edit-2509": "qwen_image_edit_2509_bf16.safetensors",
                 "qwen/qwen-image-edit-2511": "qwen_image_edit_2511_bf16.safetensors"}
COMFY_FILES = {"clip": "qwen_2.5_vl_7b.safetensors", "vae": "qwen_image_vae.safetensors"}
CLIP_TYPE = "qwen_image"  # CLIPLoader's type: the Qwen-Image template and its dropped system-prompt tokens


def comfy_prompt(recipe: dict, unet: str, max_shift: float, base_shift: float) -> dict:
    """ComfyUI's API-format graph of a sample recipe: UNETLoader → LoraLoaderModelOnly per LoRA →
    ModelSamplingFlux(max_shift, base_shift) at the sample's size (the line through ComfyUI's 256 and 4096 tokens
    that gives the μ diffusers computes from Qwen-Image's scheduler config) → KSampler(euler, simple, cfg) on an
    EmptySD3LatentImage, Qwen2.5-VL through CLIPLoader(qwen_image), the negative prompt always wired (ComfyUI runs
    CFG whenever cfg is not 1). `unet` empty: ComfyUI asks for the file and the loader's title says why."""
    loader = {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}
    if not unet:
        loader["_meta"] = {"title": "Load Diffusion Model (choose the base the LoRA was trained on)"}
    g: dict[str, dict] = {
        "1": loader,
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": COMFY_FILES["clip"], "type": CLIP_TYPE,
                                                    "device": "default"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": COMFY_FILES["vae"]}}}
    model = lora_chain(g, recipe.get("loras") or [], ["1", 0])
    g["4"] = {"class_type": "ModelSamplingFlux", "inputs": {
        "model": model, "max_shift": round(float(max_shift), 6), "base_shift": float(base_shift),
        "width": int(recipe["width"]), "height": int(recipe["height"])}}
    g["5"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe["prompt"], "clip": ["2", 0]}}
    g["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": recipe.get("negative_prompt") or "",
                                                         "clip": ["2", 0]}}
    return sampler_nodes(g, recipe, ["4", 0])
