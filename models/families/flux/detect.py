"""What a FLUX.1 or Chroma base is: the model_info.ModelInfo the detection report shows (family, variant, parts
found beside it, problems). models/detect.py calls these through the family's `load` module."""

from __future__ import annotations

from pathlib import Path

from models.families import chroma, flux
from models.families.dit_common import folder_weights

# img_in's inputs: 64 for text-to-image FLUX.1 (16 channels × 2×2), 384 for Fill, 128 for Depth (diffusers
# single_file_utils `infer_diffusers_model_type`).
_EDIT_MODELS = {384: "FLUX.1 Fill", 128: "FLUX.1 Depth"}


def _parts_note(info, parts, model: Path, family: str) -> None:
    from models.families.flux.parts import _repo

    if parts is None:
        what = ("T5-XXL, tokenizers and VAE", "T5-XXL、分词器和 VAE") if family == chroma.FAMILY else \
            ("T5-XXL, CLIP-L, tokenizers and VAE", "T5-XXL、CLIP-L、分词器和 VAE")
        info.warnings.append((f"The {what[0]} are not beside it: they will be downloaded from "
                              f"{_repo(family, info.variant or 'dev')} when the model is loaded.",
                              f"旁边没有 {what[1]}：加载模型时将从 {_repo(family, info.variant or 'dev')} 下载。"))
    elif (note := parts.note(model, family)) is not None:
        info.warnings.append(note)


def _refuse_edit_model(info, in_features: int):
    name = _EDIT_MODELS.get(in_features)
    if name is None:
        return None
    return info.refuse(f"This is {name} (an image-conditioned editing model), which Danlu does not train.",
                       f"这是 {name}（以图像为条件的编辑模型），丹炉不支持训练它。",
                       f"Pick FLUX.1 [dev] or [schnell] ({flux.DEV_REPO} or flux1-dev.safetensors).",
                       f"请选择 FLUX.1 [dev] 或 [schnell]（{flux.DEV_REPO} 或 flux1-dev.safetensors）。")


def _common(info, family: str) -> None:
    info.family = family
    info.prediction_type, info.prediction_source = flux.PREDICTION, "family rule"
    info.native_resolution = flux.NATIVE_RESOLUTION


def classify_file(info, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]):
    """Fill a model_info.ModelInfo for a single file that FLUX's or Chroma's `matches`: the transformer alone
    (BFL or diffusers names, with or without `model.diffusion_model.`; bf16, fp16 or fp8)."""
    from models.families.flux.parts import find_parts

    keys = list(tensors)
    family = flux.layout(keys) or flux.FAMILY
    names = dict(zip(flux.strip_prefix(keys), tensors.values()))
    if any(k == "scaled_fp8" or k.endswith(".scaled_fp8") for k in keys):
        return info.refuse("This is a \"scaled fp8\" file (ComfyUI's format with per-layer scales), which Danlu "
                           "cannot read correctly.",
                           "这是“scaled fp8”文件（ComfyUI 带逐层缩放的格式），丹炉无法正确读取。",
                           "Use the fp16/bf16 release or a plain float8_e4m3fn file (without 'scaled' in its name).",
                           "请使用 fp16/bf16 版本，或不带 scaled 的普通 float8_e4m3fn 文件。")
    img_in = (names.get("img_in.weight") or names.get("x_embedder.weight") or ("", [0, 64]))[1]
    if family == flux.FAMILY and _refuse_edit_model(info, img_in[-1]) is not None:
        return info
    _common(info, family)
    info.variant = flux.variant_of(keys) if family == flux.FAMILY else ""
    info.has_vae = False
    _parts_note(info, find_parts(Path(info.path), family=family), Path(info.path), family)
    info.usable = True
    return info


def classify_folder(info, folder: Path):
    """Fill a model_info.ModelInfo for a diffusers folder (or a transformer-only folder) of FLUX.1 or Chroma."""
    import json

    from models.families.flux.parts import find_parts

    family = chroma.FAMILY if chroma.is_folder(folder) else flux.FAMILY
    info.kind = "diffusers"
    _common(info, family)
    try:
        config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if family == flux.FAMILY:
        if _refuse_edit_model(info, int(config.get("in_channels", 64))) is not None:
            return info
        info.variant = "dev" if config.get("guidance_embeds") else "schnell" if config else ""
    if not folder_weights(info, folder, flux.LABEL if family == flux.FAMILY else chroma.LABEL):
        return info
    _parts_note(info, find_parts(folder, family=family), folder, family)
    info.usable = True
    return info
