"""Loading Z-Image: the transformer from the base the user picked, the text encoder, tokenizer and VAE from beside it.

Z-Image ships split. Where the other parts are looked for, in order:

1. `components` when given, or the model's own diffusers folder;
2. a Z-Image diffusers folder beside the transformer file (same stem, or any folder next to it);
3. ComfyUI's layout: the file in models/diffusion_models/ (or unet/), a Qwen3 file in models/text_encoders/
   (or clip/) and the 16-channel VAE in models/vae/, recognised by their headers; their configs and the
   tokenizer (a few MB) come from the Turbo repo;
4. the Turbo repo already downloaded; else its text encoder, tokenizer and VAE are downloaded when loading.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.families import zimage
from models.families.dit_common import folder_weights, part_candidates

CONFIG_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*.json", "vae/*.json",
                   "transformer/*.json"]
COMFY_DIRS = {"text_encoder": ("text_encoders", "clip"), "vae": ("vae",)}
# Original/ComfyUI single-file names that differ from diffusers'. q/k/v are one fused `attention.qkv` there:
# rows [0:d] q, [d:2d] k, [2d:3d] v.
_FILE_TO_DIFFUSERS = (("final_layer.", "all_final_layer.2-1."), ("x_embedder.", "all_x_embedder.2-1."),
                      (".attention.out.", ".attention.to_out.0."), (".attention.k_norm.", ".attention.norm_k."),
                      (".attention.q_norm.", ".attention.norm_q."))


@dataclass(frozen=True)
class Parts:
    """Where the text encoder, tokenizer, VAE and scheduler come from."""

    folder: Path | None = None        # a diffusers folder holding them all
    text_encoder: Path | None = None  # ComfyUI's single files, with `configs` for their configs and the tokenizer
    vae: Path | None = None
    configs: Path | None = None       # None: fetched from the Turbo repo when loading

    def note(self, model: Path) -> tuple[str, str] | None:
        """(en, zh) for the report; None when the model's own folder holds them."""
        if self.folder == model:
            return None
        if self.folder is not None:
            return (f"Text encoder (Qwen3), tokenizer and VAE taken from {self.folder}.",
                    f"文本编码器（Qwen3）、分词器和 VAE 取自 {self.folder}。")
        return (f"Text encoder {self.text_encoder.name} and VAE {self.vae.name} from ComfyUI's folders; the tokenizer "
                f"and configs from {zimage.TURBO_REPO} (a few MB).",
                f"文本编码器 {self.text_encoder.name} 和 VAE {self.vae.name} 取自 ComfyUI 的模型文件夹；分词器和配置"
                f"取自 {zimage.TURBO_REPO}（几 MB）。")


# --- single-file names ----------------------------------------------------------------------------

def from_file_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Original/ComfyUI transformer names → diffusers names (fused qkv split into to_q/to_k/to_v).

    With the `model.diffusion_model.` prefix present, only the prefixed keys are the transformer's."""
    if any(k.startswith(zimage.FILE_PREFIX) for k in state):
        state = {k[len(zimage.FILE_PREFIX):]: v for k, v in state.items() if k.startswith(zimage.FILE_PREFIX)}
    out = {}
    for key, value in state.items():
        if key == "norm_final.weight":
            continue
        for old, new in _FILE_TO_DIFFUSERS:
            key = key.replace(old, new) if old.startswith(".") or key.startswith(old) else key
        if key.endswith(".attention.qkv.weight"):
            base = key[: -len("qkv.weight")]
            out[base + "to_q.weight"], out[base + "to_k.weight"], out[base + "to_v.weight"] = value.chunk(3, dim=0)
            continue
        out[key] = value
    return out


def to_file_keys(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """diffusers transformer names → original/ComfyUI names (q/k/v fused into `attention.qkv`)."""
    import torch

    out = {}
    for key, value in state.items():
        m = re.match(r"(.*\.attention\.)to_([qkv])\.weight$", key)
        if m:
            base = m.group(1)
            if m.group(2) == "q":
                out[prefix + base + "qkv.weight"] = torch.cat(
                    [state[base + "to_q.weight"], state[base + "to_k.weight"], state[base + "to_v.weight"]])
            continue
        for old, new in _FILE_TO_DIFFUSERS:
            key = key.replace(new, old) if new.startswith(".") or key.startswith(new) else key
        out[prefix + key] = value
    return out


def infer_config(state: dict[str, Any]) -> dict[str, Any]:
    """ZImageTransformer2DModel arguments from diffusers-named weights (RoPE axes split as the real 32/48/48)."""
    def count(block: str) -> int:
        return 1 + max((int(m[1]) for k in state if (m := re.match(rf"{block}\.(\d+)\.", k))), default=-1)

    dim, cap_dim = state["cap_embedder.1.weight"].shape
    head = state["layers.0.attention.norm_q.weight"].shape[0]
    b = (head - head // 8 * 2) // 2
    return dict(in_channels=state["all_x_embedder.2-1.weight"].shape[1] // 4, dim=dim, n_layers=count("layers"),
                n_refiner_layers=count("noise_refiner"), n_heads=dim // head,
                n_kv_heads=state["layers.0.attention.to_k.weight"].shape[0] // head, cap_feat_dim=cap_dim,
                axes_dims=[head - 2 * b, b, b])


# --- where the parts are ---------------------------------------------------------------------

def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def has_configs(folder: Path) -> bool:
    """Configs of a Qwen3 text encoder and a 16-channel VAE, and a tokenizer."""
    return (_json(folder / "text_encoder" / "config.json").get("model_type") == "qwen3"
            and _json(folder / "vae" / "config.json").get("latent_channels") == 16 and (folder / "tokenizer").is_dir())


def has_parts(folder: Path) -> bool:
    """The configs and the weights of the text encoder and VAE."""
    return has_configs(folder) and all(any((folder / d).glob("*.safetensors")) for d in ("text_encoder", "vae"))


def _header_keys(path: Path) -> dict[str, list[int]]:
    from models.files import HeaderError, read_header

    try:
        tensors, _ = read_header(path)
    except (HeaderError, OSError):
        return {}
    return {k: s for k, (_, s) in tensors.items()}


def _is_qwen3(path: Path) -> bool:
    keys = _header_keys(path)
    return any(k.endswith("layers.0.self_attn.q_norm.weight") for k in keys) and any(
        k.endswith("embed_tokens.weight") for k in keys)


def _is_vae16(path: Path) -> bool:
    conv = _header_keys(path).get("decoder.conv_in.weight") or []
    return len(conv) == 4 and conv[1] == 16


def comfy_files(path: Path) -> tuple[Path, Path] | None:
    """(text encoder, VAE) files in ComfyUI's models/ folders next to the transformer's folder."""
    root = path.parent.parent
    found = []
    for part, test in (("text_encoder", _is_qwen3), ("vae", _is_vae16)):
        files = [f for d in COMFY_DIRS[part] for f in sorted((root / d).glob("*.safetensors"))]
        match = next((f for f in files if test(f)), None)
        if match is None:
            return None
        found.append(match)
    return found[0], found[1]


def _cached_turbo(check) -> Path | None:
    from core.download import cached

    turbo = cached(zimage.TURBO_REPO)
    return turbo if turbo is not None and check(turbo) else None


def find_parts(path: Path, components: str | Path | None = None) -> Parts | None:
    """Where the parts come from (module docstring); None: the Turbo repo's parts will be downloaded."""
    for cand in part_candidates(path, components):
        if has_parts(cand):
            return Parts(folder=cand)
    if path.is_file() and (files := comfy_files(path)):
        return Parts(text_encoder=files[0], vae=files[1], configs=_cached_turbo(has_configs))
    turbo = _cached_turbo(has_parts)
    return Parts(folder=turbo) if turbo else None


def download_parts(progress=None, configs_only: bool = False) -> Path:
    """The Turbo repo's text encoder, tokenizer, VAE and scheduler (or only their configs), from the chosen source."""
    from core.download import fetch

    return fetch(zimage.TURBO_REPO, patterns=CONFIG_PATTERNS if configs_only else zimage.PART_PATTERNS,
                 progress=progress, key="model.base")


def _download(path: Path, configs_only: bool) -> Path:
    """download_parts, saying what was looked for first when it fails."""
    try:
        return download_parts(configs_only=configs_only)
    except DanluError as err:
        what = ("the tokenizer and configs", "分词器和配置") if configs_only else \
            ("the text encoder (Qwen3), tokenizer and VAE", "文本编码器（Qwen3）、分词器和 VAE")
        raise DanluError(
            f"{path.name} holds only the Z-Image transformer. {what[0].capitalize()} were not found beside it and "
            f"could not be downloaded: {err.en}",
            f"{path.name} 只含 Z-Image 的 transformer。旁边没有找到{what[1]}，也无法下载：{err.zh}",
            "Put the Z-Image diffusers folder (or ComfyUI's text_encoders/ and vae/ folders) beside it, or download "
            f"{zimage.TURBO_REPO} once.",
            f"请把 Z-Image 的 diffusers 文件夹（或 ComfyUI 的 text_encoders/ 与 vae/ 文件夹）放在它旁边，"
            f"或先下载一次 {zimage.TURBO_REPO}。", key="model.base") from err


def _load_transformer(path: Path, configs: Path, torch_dtype: Any):
    import torch
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    if path.is_dir():
        return ZImageTransformer2DModel.from_pretrained(path / "transformer", torch_dtype=torch_dtype,
                                                        local_files_only=True)
    from models.files import read_state_dict

    state = from_file_keys(read_state_dict(path))
    try:
        config = infer_config(state)
    except KeyError as exc:
        raise DanluError(f"{path.name} is not a complete Z-Image transformer: weight {exc} is missing.",
                         f"{path.name} 不是完整的 Z-Image transformer：缺少权重 {exc}。", key="model.base") from exc
    known = {k: v for k, v in _json(configs / "transformer" / "config.json").items() if not k.startswith("_")}
    if known and all(known.get(k) == v for k, v in config.items() if k != "axes_dims"):
        config = known  # the release's own config when it fits (keeps its RoPE and other settings)
    with init_empty_weights():
        model = ZImageTransformer2DModel.from_config(config)
    _fill(model, state, path, "transformer")
    dtype = torch_dtype or torch.float32  # as diffusers' from_pretrained: fp32 unless asked
    return (model if all(p.dtype == dtype for p in model.parameters()) else model.to(dtype)).eval()


def _fill(model, state: dict, path: Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise DanluError(f"{path.name}: the weights do not fit a Z-Image {what}: {str(exc).splitlines()[0][:300]}",
                         f"{path.name}：权重与 Z-Image 的 {what} 结构不符。",
                         "The file may be partial or of another model.", "文件可能不完整或属于其他模型。",
                         key="model.base") from exc


def _comfy_text_encoder(path: Path, configs: Path, torch_dtype: Any):
    """A Qwen3Model from ComfyUI's text-encoder file (HF names, `model.` prefix or not; no LM head needed)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, Qwen3Model

    from models.files import read_state_dict

    state = {k.removeprefix("model."): v for k, v in read_state_dict(path).items() if not k.startswith("lm_head.")}
    with init_empty_weights():
        model = Qwen3Model(AutoConfig.from_pretrained(configs / "text_encoder"))
    _fill(model, state, path, "text encoder")
    return model.to(torch_dtype or torch.float32).eval()


def load_parts(path: Path, *, components: str | Path | None = None, torch_dtype: Any = None):
    """The pipeline: a complete folder through ZImagePipeline.from_pretrained (what a diffusers user runs),
    otherwise the transformer from `path` and the rest from `find_parts` (downloaded when none is found)."""
    from types import SimpleNamespace

    import diffusers
    import torch
    from transformers import AutoModel, AutoTokenizer

    from models.vae import load_vae

    kw = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if path.is_dir() and (path / "model_index.json").is_file() and has_parts(path) and not components:
        return diffusers.ZImagePipeline.from_pretrained(path, local_files_only=True, **kw)
    parts = find_parts(path, components) or Parts(folder=_download(path, configs_only=False))
    configs = parts.folder or parts.configs or _download(path, configs_only=True)
    transformer = _load_transformer(path, configs, torch_dtype)
    sched_dir = configs / "scheduler"
    scheduler = (diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(sched_dir) if sched_dir.is_dir() else
                 diffusers.FlowMatchEulerDiscreteScheduler(shift=zimage.SCHEDULER_SHIFT, use_dynamic_shifting=False))
    if parts.folder is not None:
        text_encoder = AutoModel.from_pretrained(parts.folder / "text_encoder", local_files_only=True, **kw).eval()
        vae = diffusers.AutoencoderKL.from_pretrained(parts.folder / "vae", local_files_only=True, **kw).eval()
    else:
        text_encoder = _comfy_text_encoder(parts.text_encoder, configs, torch_dtype)
        vae_config = diffusers.AutoencoderKL.load_config(configs / "vae")
        vae = load_vae(str(parts.vae), SimpleNamespace(config=vae_config)).to(torch_dtype or torch.float32).eval()
    return diffusers.ZImagePipeline(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                                    tokenizer=AutoTokenizer.from_pretrained(configs / "tokenizer",
                                                                            local_files_only=True), vae=vae)


# --- recognising a base: what model_info.ModelInfo says ---------------------------------------------

def _parts_note(info, parts, model: Path) -> None:
    if parts is None:
        info.warnings.append((f"The text encoder (Qwen3), tokenizer and VAE are not beside it: they will be "
                              f"downloaded from {zimage.TURBO_REPO} when the model is loaded.",
                              f"旁边没有文本编码器（Qwen3）、分词器和 VAE：加载模型时将从 {zimage.TURBO_REPO} 下载。"))
    elif (note := parts.note(model)) is not None:
        info.warnings.append(note)
    info.warnings.append(("Turbo, De-Turbo and Base cannot be told apart from the weights: choose the variant "
                          "in the Model tab.", "权重无法区分 Turbo、De-Turbo 与 Base：请在“底模”页选择版本。"))


def classify_file(info, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]):
    """Fill a model_info.ModelInfo for a single file that `matches`: the transformer alone, as Z-Image ships."""
    shapes = {k: s for k, (_, s) in tensors.items()}
    if zimage.is_lumina2(shapes):
        return info.refuse("This is a Lumina 2 transformer (width 2304), which Danlu does not train.",
                           "这是 Lumina 2 的 transformer（宽度 2304），丹炉不支持训练它。",
                           "Pick a Z-Image model (Tongyi-MAI/Z-Image-Turbo or a file made from it).",
                           "请选择 Z-Image 模型（Tongyi-MAI/Z-Image-Turbo 或由它导出的文件）。")
    info.family, info.prediction_type, info.prediction_source = zimage.FAMILY, zimage.PREDICTION, "family rule"
    info.native_resolution, info.has_vae = zimage.NATIVE_RESOLUTION, False
    _parts_note(info, find_parts(Path(info.path)), Path(info.path))
    info.usable = True
    return info


def classify_folder(info, folder: Path):
    """Fill a model_info.ModelInfo for a diffusers folder (or a transformer-only folder) of this family."""
    info.kind, info.family = "diffusers", zimage.FAMILY
    info.prediction_type, info.prediction_source = zimage.PREDICTION, "family rule"
    info.native_resolution = zimage.NATIVE_RESOLUTION
    if not folder_weights(info, folder, "Z-Image"):
        return info
    _parts_note(info, find_parts(folder), folder)
    info.usable = True
    return info


def encode_prompts(pipe, prompts: list[str], device: Any = None) -> list:
    """Text-encoder features of each prompt, exactly as ZImagePipeline computes them (chat template, 512 tokens,
    hidden state [-2], padding removed): a list of (tokens, width) tensors of different lengths."""
    import torch

    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(list(prompts), device=device or pipe.text_encoder.device,
                                       do_classifier_free_guidance=False,
                                       max_sequence_length=zimage.MAX_SEQUENCE_LENGTH)
    return embeds


def missing_download(cfg: Any) -> bool:
    """The run trains Turbo with training adapter v1/v2 and that file is not downloaded yet (models.preflight then
    asks whether the download source answers, so Start can say so before loading anything)."""
    from core import download

    m = cfg.model
    name = zimage.TRAINING_ADAPTER_FILES.get(m.training_adapter)
    return m.variant == "turbo" and name is not None and not download.is_cached(zimage.TRAINING_ADAPTER_REPO, name)
