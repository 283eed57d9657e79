"""Loading Qwen-Image: the transformer from the base the user picked; Qwen2.5-VL, its tokenizer, the VAE and the
scheduler from beside it.

Where the other parts are looked for, in order:

1. `components` when given, or the model's own diffusers folder (Qwen/Qwen-Image's repo);
2. a Qwen-Image diffusers folder (any variant) beside the transformer file (same stem, or any folder next to it);
3. the Qwen/Qwen-Image repo already downloaded; else its parts are downloaded when loading.

Single files carry diffusers' own names (with or without `model.diffusion_model.`), as diffusers' single-file loader
reads them with the identity map; bf16, fp16 and plain float8_e4m3fn files load (fp8 upcast to the compute dtype),
ComfyUI's "scaled fp8" files are refused. ComfyUI's split text-encoder and VAE files (qwen_2.5_vl_7b, qwen_image_vae
in Wan's names) are not read: the report says the parts will come from the hub repo instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.families import qwen_image
from models.families.dit_common import folder_weights, part_candidates
from models.families.dit_common import read_json as _json
from models.families.flux.load import read_weights

CONFIG_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*.json", "vae/*.json",
                   "transformer/*.json"]
AXES_BY_HEAD = {128: (16, 56, 56)}  # the real RoPE split; test sizes keep its proportions (infer_config)


@dataclass(frozen=True)
class Parts:
    """Where Qwen2.5-VL, the tokenizer, the VAE and the scheduler come from: one diffusers folder."""

    folder: Path

    def note(self, model: Path) -> tuple[str, str] | None:
        """(en, zh) for the report; None when the model's own folder holds them."""
        if self.folder == model:
            return None
        return (f"Text encoder (Qwen2.5-VL), tokenizer and VAE taken from {self.folder}.",
                f"文本编码器（Qwen2.5-VL）、分词器和 VAE 取自 {self.folder}。")


# --- where the parts are ---------------------------------------------------------------------

def has_configs(folder: Path) -> bool:
    """Configs of a Qwen2.5-VL text encoder and the Qwen-Image VAE, and a tokenizer."""
    return (_json(folder / "text_encoder" / "config.json").get("model_type") == "qwen2_5_vl"
            and _json(folder / "vae" / "config.json").get("_class_name") == "AutoencoderKLQwenImage"
            and (folder / "tokenizer").is_dir())


def has_parts(folder: Path) -> bool:
    """The configs and the weights of the text encoder and VAE."""
    return has_configs(folder) and all(any((folder / d).glob("*.safetensors")) for d in ("text_encoder", "vae"))


def _cached_repo(check) -> Path | None:
    from core.download import cached

    repo = cached(qwen_image.IMAGE_REPO)
    return repo if repo is not None and check(repo) else None


def find_parts(path: Path, components: str | Path | None = None) -> Parts | None:
    """Where the parts come from (module docstring); None: the hub repo's parts will be downloaded."""
    for cand in part_candidates(Path(path), components):
        if has_parts(cand):
            return Parts(folder=cand)
    repo = _cached_repo(has_parts)
    return Parts(folder=repo) if repo else None


def download_parts(progress=None, configs_only: bool = False) -> Path:
    """Qwen/Qwen-Image's text encoder, tokenizer, VAE and scheduler (or only their configs)."""
    from core.download import fetch

    return fetch(qwen_image.IMAGE_REPO, patterns=CONFIG_PATTERNS if configs_only else qwen_image.PART_PATTERNS,
                 progress=progress, key="model.base")


def _download(path: Path) -> Path:
    """download_parts, saying what was looked for first when it fails."""
    try:
        return download_parts()
    except DanluError as err:
        raise DanluError(
            f"{path.name} holds only the Qwen-Image transformer. The text encoder (Qwen2.5-VL), tokenizer and VAE "
            f"were not found beside it and could not be downloaded: {err.en}",
            f"{path.name} 只含 Qwen-Image 的 transformer。旁边没有找到文本编码器（Qwen2.5-VL）、分词器和 VAE，"
            f"也无法下载：{err.zh}",
            f"Put a Qwen-Image diffusers folder beside it, or download {qwen_image.IMAGE_REPO} once.",
            f"请把 Qwen-Image 的 diffusers 文件夹放在它旁边，或先下载一次 {qwen_image.IMAGE_REPO}。",
            key="model.base") from err


# --- the transformer ---------------------------------------------------------------------------

def infer_config(state: dict[str, Any]) -> dict[str, Any]:
    """QwenImageTransformer2DModel arguments from its weights. The RoPE split is not in the weights: the real
    (16, 56, 56) for heads of 128, else a quarter and two equal parts (16 → 4, 6, 6)."""
    layers = 1 + max((int(m[1]) for k in state if (m := re.match(r"transformer_blocks\.(\d+)\.", k))), default=-1)
    width, in_channels = state["img_in.weight"].shape
    head = state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    rope = AXES_BY_HEAD.get(head, (head // 4, (head - head // 4) // 2, head - head // 4 - (head - head // 4) // 2))
    patch = 2  # every release packs 2×2 (the weights cannot say: proj_out gives patch² × out_channels)
    return dict(patch_size=patch, in_channels=in_channels,
                out_channels=state["proj_out.weight"].shape[0] // patch ** 2, num_layers=layers,
                attention_head_dim=head, num_attention_heads=width // head,
                joint_attention_dim=state["txt_in.weight"].shape[1], axes_dims_rope=list(rope))


def _fill(model, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise DanluError(f"{path.name}: the weights do not fit a Qwen-Image transformer: "
                         f"{str(exc).splitlines()[0][:300]}",
                         f"{path.name}：权重与 Qwen-Image 的 transformer 结构不符。",
                         "The file may be partial or of another model.", "文件可能不完整或属于其他模型。",
                         key="model.base") from exc


def load_transformer(path: Path, configs: Path | None, torch_dtype: Any):
    """The transformer from a diffusers folder or a single file (diffusers names, prefixed or not; fp8 upcast)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import QwenImageTransformer2DModel

    if path.is_dir():
        return QwenImageTransformer2DModel.from_pretrained(path / "transformer", torch_dtype=torch_dtype,
                                                           local_files_only=True)
    raw = read_weights(path, torch_dtype)
    prefixed = any(k.startswith(qwen_image.FILE_PREFIX) for k in raw)
    state = {k.removeprefix(qwen_image.FILE_PREFIX): v for k, v in raw.items()
             if not prefixed or k.startswith(qwen_image.FILE_PREFIX)}
    try:
        config = infer_config(state)
    except KeyError as exc:
        raise DanluError(f"{path.name} is not a complete Qwen-Image transformer: weight {exc} is missing.",
                         f"{path.name} 不是完整的 Qwen-Image transformer：缺少权重 {exc}。", key="model.base") from exc
    known = {k: v for k, v in _json((configs or Path()) / "transformer" / "config.json").items()
             if not k.startswith("_")}
    if known and all(known.get(k) == v for k, v in config.items() if k != "axes_dims_rope"):
        config = known  # the release's own config when it fits (keeps its RoPE split and variant flags)
    with init_empty_weights():
        model = QwenImageTransformer2DModel.from_config(config)
    _fill(model, state, path)
    dtype = torch_dtype or torch.float32  # as diffusers' from_pretrained: fp32 unless asked
    return (model if all(p.dtype == dtype for p in model.parameters()) else model.to(dtype)).eval()


def load_parts(path: Path, components: str | Path | None = None, torch_dtype: Any = None):
    """The QwenImagePipeline: a complete folder through `from_pretrained` (what a diffusers user runs), otherwise
    the transformer from `path` and the rest from `find_parts` (downloaded when none is found). An edit model's
    folder loads as the text-to-image pipeline too (the same parts but its processor)."""
    import diffusers
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    path = Path(path)
    kw = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if path.is_dir() and has_parts(path) and not components and \
            _json(path / "model_index.json").get("_class_name") == qwen_image.PIPELINE:
        return diffusers.QwenImagePipeline.from_pretrained(path, local_files_only=True, **kw)
    parts = find_parts(path, components) or Parts(folder=_download(path))
    transformer = load_transformer(path, parts.folder, torch_dtype)

    def pretrained(cls, sub: str):
        return cls.from_pretrained(parts.folder / sub, local_files_only=True, **kw).eval()

    return diffusers.QwenImagePipeline(
        transformer=transformer, scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(
            parts.folder / "scheduler"),
        text_encoder=pretrained(Qwen2_5_VLForConditionalGeneration, "text_encoder"),
        tokenizer=AutoTokenizer.from_pretrained(parts.folder / "tokenizer", local_files_only=True),
        vae=pretrained(diffusers.AutoencoderKLQwenImage, "vae"))


def encode_prompts(pipe, prompts: list[str], device: Any = None) -> tuple[Any, Any]:
    """(embeds (B, T, width), mask (B, T) of 0/1 or None) exactly as the pipeline's `encode_prompt` gives them: the
    prompts in the template, Qwen2.5-VL's last hidden state, the template's 34 system-prompt tokens dropped, right
    padded to the longest; the mask is None when no prompt is padded (the pipeline then passes no mask)."""
    import torch

    with torch.no_grad():
        return pipe.encode_prompt(list(prompts), device=device or pipe.text_encoder.device)


def from_file_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Single-file transformer names → diffusers names: the same names (nothing is fused), without ComfyUI's
    `model.diffusion_model.` prefix; with the prefix present, only the prefixed keys are the transformer's. The
    toolbox (convert, merge into a base) reads a file's layers through this."""
    prefix = qwen_image.FILE_PREFIX
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def to_file_keys(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """diffusers transformer names → single-file names: the same names, `prefix` put before each."""
    return {f"{prefix}{k}": v for k, v in state.items()}


# --- recognising a base: what model_info.ModelInfo says ---------------------------------------------

def _common(info, variant: str | None, model: Path) -> None:
    info.family, info.prediction_type, info.prediction_source = qwen_image.FAMILY, qwen_image.PREDICTION, \
        "family rule"
    info.native_resolution = qwen_image.NATIVE_RESOLUTION
    info.variant = variant or ""
    if variant is None:
        info.warnings.append(("Qwen-Image and Qwen-Image-Edit (2509, 2511) cannot be told apart from the weights, and "
                              "the name does not say: choose the variant (model.variant).",
                              "权重无法区分 Qwen-Image 与 Qwen-Image-Edit（2509、2511），名称里也没有写明："
                              "请选择版本（model.variant）。"))
    elif variant in qwen_image.EDIT_VARIANTS:
        info.warnings.append(("Edit models are recognised, but Danlu trains Qwen-Image edit LoRAs (before/after "
                              "image pairs) in a later version: to train now, pick Qwen-Image "
                              "(model.variant = image).",
                              "已识别编辑模型，但丹炉将在后续版本支持 Qwen-Image 编辑 LoRA（编辑前后的图片对）："
                              "现在训练请选择 Qwen-Image（model.variant 设为 image）。"))
    parts = find_parts(model)
    if parts is None:
        info.warnings.append((f"The text encoder (Qwen2.5-VL), tokenizer and VAE are not beside it: they will be "
                              f"downloaded from {qwen_image.IMAGE_REPO} (about 17 GB) when the model is loaded.",
                              f"旁边没有文本编码器（Qwen2.5-VL）、分词器和 VAE：加载模型时将从 "
                              f"{qwen_image.IMAGE_REPO} 下载（约 17 GB）。"))
    elif (note := parts.note(model)) is not None:
        info.warnings.append(note)


def classify_file(info, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]):
    """Fill a model_info.ModelInfo for a single file that `matches`: the transformer alone (bf16, fp16 or fp8)."""
    if any(k == "scaled_fp8" or k.endswith(".scaled_fp8") for k in tensors):
        return info.refuse("This is a \"scaled fp8\" file (ComfyUI's format with per-layer scales), which Danlu "
                           "cannot read correctly.",
                           "这是“scaled fp8”文件（ComfyUI 带逐层缩放的格式），丹炉无法正确读取。",
                           "Use the bf16 release (qwen_image_bf16.safetensors) or a plain float8_e4m3fn file.",
                           "请使用 bf16 版本（qwen_image_bf16.safetensors）或普通 float8_e4m3fn 文件。")
    path = Path(info.path)
    _common(info, qwen_image.variant_from_name(path.name), path)
    info.has_vae = False
    info.usable = True
    return info


def classify_folder(info, folder: Path):
    """Fill a model_info.ModelInfo for a diffusers folder (or a transformer-only folder) of any variant."""
    info.kind = "diffusers"
    # The folder's own name, or the repo's in a hub cache (models--Qwen--Qwen-Image-Edit-2511/snapshots/<hash>).
    name = next((p.name for p in (folder, *folder.parents) if p.name.startswith("models--")), folder.name)
    variant = qwen_image.variant_of_pipeline(_json(folder / "model_index.json").get("_class_name", ""), name) \
        or qwen_image.variant_from_name(name)
    if not folder_weights(info, folder, qwen_image.LABEL):
        return info
    _common(info, variant, folder)
    info.usable = True
    return info
