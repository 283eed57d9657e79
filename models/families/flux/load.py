"""Loading FLUX.1 and Chroma: the transformer from the base the user picked, T5-XXL, CLIP-L (FLUX only), the VAE,
tokenizers and scheduler from beside it.

Where the other parts are looked for, in order:

1. `components` when given, or the model's own diffusers folder (FLUX.1-dev's repo, Chroma1-HD's);
2. a diffusers folder of the same family beside the transformer file (same stem, or any folder next to it);
3. single files: T5-XXL, CLIP-L and the 16-channel VAE (`ae.safetensors`) beside the transformer file (sd-scripts'
   layout) or in ComfyUI's models/text_encoders (or clip) and models/vae folders, recognised by their headers;
   their configs and tokenizers (a few MB) come from the family's hub repo;
4. the hub repo already downloaded; else its parts are downloaded when loading.

fp8 (float8_e4m3fn) files load upcast to the compute dtype; ComfyUI's "scaled fp8" files (a `scaled_fp8` key and
per-layer scales) are refused, since reading them without the scales gives wrong weights.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.families import chroma, flux
from models.families.flux.detect import classify_file, classify_folder  # noqa: F401 - the seam's names
from models.families.flux.keys import from_file_keys, to_file_keys  # noqa: F401 - the seam's names
from models.families.flux.parts import (  # noqa: F401 - the seam's names, and what the loaders below use
    AXES_BY_HEAD,
    COMFY_DIRS,
    CONFIG_PATTERNS,
    Parts,
    _cached_repo,
    _header,
    _json,
    _repo,
    _t5_dir,
    family_module,
    find_parts,
    has_configs,
    has_parts,
    part_files,
    part_kind,
)


def download_parts(family: str, progress=None, configs_only: bool = False) -> Path:
    """The hub repo's text encoders, tokenizers, VAE and scheduler (or only their configs)."""
    from core.download import fetch

    patterns = CONFIG_PATTERNS if configs_only else family_module(family).PART_PATTERNS
    return fetch(_repo(family), patterns=patterns, progress=progress, key="model.base")


def _download(path: Path, family: str, configs_only: bool) -> Path:
    """download_parts, saying what was looked for first when it fails."""
    try:
        return download_parts(family, configs_only=configs_only)
    except DanluError as err:
        label = family_module(family).LABEL
        what = ("the tokenizers and configs", "分词器和配置") if configs_only else \
            ("the text encoders, tokenizers and VAE", "文本编码器、分词器和 VAE")
        raise DanluError(
            f"{path.name} holds only the {label} transformer. {what[0].capitalize()} were not found beside it and "
            f"could not be downloaded: {err.en}",
            f"{path.name} 只含 {label} 的 transformer。旁边没有找到{what[1]}，也无法下载：{err.zh}",
            "Put the T5-XXL, CLIP-L and VAE files (ae.safetensors) beside it or in ComfyUI's text_encoders/ and "
            f"vae/ folders, or download {_repo(family)} once.",
            "请把 T5-XXL、CLIP-L 和 VAE（ae.safetensors）文件放在它旁边或 ComfyUI 的 text_encoders/ 与 vae/ "
            f"文件夹中，或先下载一次 {_repo(family)}。", key="model.base") from err


# --- the transformer ---------------------------------------------------------------------------

def infer_config(state: dict[str, Any], family: str) -> dict[str, Any]:
    """FluxTransformer2DModel / ChromaTransformer2DModel arguments from diffusers-named weights. The RoPE split is
    not in the weights: the real (16, 56, 56) for heads of 128, else a quarter and two equal parts (16 → 4, 6, 6)."""
    def count(block: str) -> int:
        return 1 + max((int(m[1]) for k in state if (m := re.match(rf"{block}\.(\d+)\.", k))), default=-1)

    width, in_channels = state["x_embedder.weight"].shape
    head = state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    rope = AXES_BY_HEAD.get(head, (head // 4, (head - head // 4) // 2, head - head // 4 - (head - head // 4) // 2))
    config = dict(patch_size=1, in_channels=in_channels, num_layers=count("transformer_blocks"),
                  num_single_layers=count("single_transformer_blocks"), attention_head_dim=head,
                  num_attention_heads=width // head, joint_attention_dim=state["context_embedder.weight"].shape[1],
                  axes_dims_rope=list(rope))
    if state["proj_out.weight"].shape[0] != in_channels:
        config["out_channels"] = state["proj_out.weight"].shape[0]
    if family == chroma.FAMILY:
        approx = state["distilled_guidance_layer.in_proj.weight"]
        return {**config, "approximator_num_channels": approx.shape[1], "approximator_hidden_dim": approx.shape[0],
                "approximator_layers": count("distilled_guidance_layer.layers")}
    return {**config, "pooled_projection_dim": state["time_text_embed.text_embedder.linear_1.weight"].shape[1],
            "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in state}


def read_weights(path: Path, torch_dtype: Any) -> dict[str, Any]:
    """A file's tensors, fp8 ones upcast to the compute dtype; scaled fp8 refused (module docstring)."""
    import torch

    from models.files import read_state_dict

    state = read_state_dict(path)
    if any(k == "scaled_fp8" or k.endswith(".scaled_fp8") for k in state):
        raise DanluError(f"{path.name} is a \"scaled fp8\" file (ComfyUI's format with per-layer scales), which "
                         "Danlu cannot read correctly.",
                         f"{path.name} 是“scaled fp8”文件（ComfyUI 带逐层缩放的格式），丹炉无法正确读取。",
                         "Use the fp16/bf16 release or a plain float8_e4m3fn file (without 'scaled' in its name); "
                         "for low memory, turn on training.fp8_base instead.",
                         "请使用 fp16/bf16 版本，或不带 scaled 的普通 float8_e4m3fn 文件；想省显存请改开 "
                         "training.fp8_base。", key="model.base")
    fp8 = {getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)}
    dtype = torch_dtype or torch.float32
    return {k: v.to(dtype) if v.dtype in fp8 else v for k, v in state.items()}


def _fill(model, state: dict, path: Path, what: str, strict: bool = True) -> None:
    try:
        result = model.load_state_dict(state, strict=strict, assign=True)
    except RuntimeError as exc:
        raise DanluError(f"{path.name}: the weights do not fit a {what}: {str(exc).splitlines()[0][:300]}",
                         f"{path.name}：权重与 {what} 的结构不符。",
                         "The file may be partial or of another model.", "文件可能不完整或属于其他模型。",
                         key="model.base") from exc
    missing = list(result.missing_keys) if not strict else []
    if missing:
        raise DanluError(f"{path.name} is not a complete {what}: {', '.join(missing[:3])} missing.",
                         f"{path.name} 不是完整的 {what}：缺少 {', '.join(missing[:3])}。", key="model.base")


def load_transformer(path: Path, family: str, configs: Path | None, torch_dtype: Any):
    """The transformer from a diffusers folder or a single file (BFL or diffusers names)."""
    import torch
    from accelerate import init_empty_weights

    model_cls = _transformer_class(family)
    if path.is_dir():
        return model_cls.from_pretrained(path / "transformer", torch_dtype=torch_dtype, local_files_only=True)
    raw = read_weights(path, torch_dtype)
    names = flux.strip_prefix(raw)
    state = from_file_keys(raw) if any(n.startswith("double_blocks.") for n in names) else {
        k.removeprefix(flux.FILE_PREFIX): v for k, v in raw.items()}
    try:
        config = infer_config(state, family)
    except KeyError as exc:
        label = family_module(family).LABEL
        raise DanluError(f"{path.name} is not a complete {label} transformer: weight {exc} is missing.",
                         f"{path.name} 不是完整的 {label} transformer：缺少权重 {exc}。", key="model.base") from exc
    known = {k: v for k, v in _json((configs or Path()) / "transformer" / "config.json").items()
             if not k.startswith("_")}
    if configs is not None and known and all(known.get(k) == v for k, v in config.items() if k != "axes_dims_rope"):
        config = known  # the release's own config when it fits (keeps its RoPE split)
    with init_empty_weights():
        model = model_cls.from_config(config)
    _fill(model, state, path, f"{family_module(family).LABEL} transformer")
    dtype = torch_dtype or torch.float32  # as diffusers' from_pretrained: fp32 unless asked
    return (model if all(p.dtype == dtype for p in model.parameters()) else model.to(dtype)).eval()


def _transformer_class(family: str):
    from diffusers import ChromaTransformer2DModel, FluxTransformer2DModel

    return ChromaTransformer2DModel if family == chroma.FAMILY else FluxTransformer2DModel


# --- the text encoders and the pipeline -----------------------------------------------------------

def _t5_file(path: Path, configs: Path, family: str, torch_dtype: Any):
    """A T5EncoderModel from a single file (HF names, as ComfyUI's t5xxl files; the tied embedding either way)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    state = {k: v for k, v in read_weights(path, torch_dtype).items() if not k.startswith("decoder.")}
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    state.setdefault("encoder.embed_tokens.weight", state.get("shared.weight"))
    with init_empty_weights():
        model = T5EncoderModel(T5Config.from_pretrained(configs / _t5_dir(family)))
    _fill(model, state, path, "T5 text encoder", strict=False)
    return model.to(torch_dtype or torch.float32).eval()


def _clip_file(path: Path, configs: Path, torch_dtype: Any):
    """A CLIPTextModel from a single file (ComfyUI's clip_l: `text_model.` names; a projection or logit scale is
    left out), named as this transformers version names the model's own weights."""
    import torch
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        model = CLIPTextModel(CLIPTextConfig.from_pretrained(configs / "text_encoder"))
    own = set(model.state_dict())
    state = {}
    for key, value in read_weights(path, torch_dtype).items():
        bare = key.removeprefix("text_model.")
        name = next((k for k in (key, bare, "text_model." + bare) if k in own), None)
        if name is not None:
            state[name] = value
    _fill(model, state, path, "CLIP-L text encoder", strict=False)
    return model.to(torch_dtype or torch.float32).eval()


def load_parts(path: Path, components: str | Path | None = None, torch_dtype: Any = None, family: str | None = None):
    """The pipeline (FluxPipeline or ChromaPipeline): a complete folder through `from_pretrained` (what a
    diffusers user runs), otherwise the transformer from `path` and the rest from `find_parts` (downloaded when
    none is found). The family is read from the model when not given."""
    from types import SimpleNamespace

    import diffusers
    import torch
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    from models.vae import load_vae

    path = Path(path)
    family = family or family_of(path)
    mod = family_module(family)
    kw = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if path.is_dir() and (path / "model_index.json").is_file() and has_parts(path, family) and not components:
        return mod.pipeline_class().from_pretrained(path, local_files_only=True, **kw)
    parts = find_parts(path, components, family) or Parts(folder=_download(path, family, configs_only=False))
    configs = parts.folder or parts.configs or _download(path, family, configs_only=True)
    transformer = load_transformer(path, family, configs, torch_dtype)
    sched_dir = configs / "scheduler"
    scheduler = (diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(sched_dir) if sched_dir.is_dir() else
                 diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0,
                                                           use_dynamic_shifting=True))
    if parts.folder is not None:
        def pretrained(cls, sub: str):
            return cls.from_pretrained(parts.folder / sub, local_files_only=True, **kw).eval()

        t5 = pretrained(T5EncoderModel, _t5_dir(family))
        clip = None if family == chroma.FAMILY else pretrained(CLIPTextModel, "text_encoder")
        vae = pretrained(diffusers.AutoencoderKL, "vae")
    else:
        t5 = _t5_file(parts.t5, configs, family, torch_dtype)
        clip = None if family == chroma.FAMILY else _clip_file(parts.clip, configs, torch_dtype)
        vae_config = diffusers.AutoencoderKL.load_config(configs / "vae")
        vae = load_vae(str(parts.vae), SimpleNamespace(config=vae_config)).to(torch_dtype or torch.float32).eval()
    te: dict[str, Any]
    if family == chroma.FAMILY:
        te = dict(text_encoder=t5, tokenizer=AutoTokenizer.from_pretrained(configs / "tokenizer"))
    else:
        te = dict(text_encoder=clip, tokenizer=AutoTokenizer.from_pretrained(configs / "tokenizer"),
                  text_encoder_2=t5, tokenizer_2=AutoTokenizer.from_pretrained(configs / "tokenizer_2"))
    return mod.pipeline_class()(transformer=transformer, scheduler=scheduler, vae=vae, **te)


def family_of(path: Path) -> str:
    """flux or chroma, from a folder's configs or a file's header."""
    if path.is_dir():
        return chroma.FAMILY if chroma.is_folder(path) else flux.FAMILY
    return chroma.FAMILY if chroma.matches(list(_header(path))) else flux.FAMILY


def encode_prompts(pipe, prompts: list[str], device: Any = None) -> tuple[Any, Any, Any]:
    """(T5 features (B, T, width), CLIP-L's pooled vector (B, width) or None, attention mask (B, T) or None), as
    the pipeline computes them: FLUX pads T5 to 512 tokens (256 for schnell) without a mask; Chroma runs T5 with the
    tokenizer's mask and keeps the real tokens plus one padding token, given here as a **bool** mask (diffusers
    0.42.1's float 0/1 mask is added to the scores instead of masking: diffusers issue #13619)."""
    import torch

    device = device or pipe.text_encoder.device
    with torch.no_grad():
        if type(pipe).__name__ == chroma.PIPELINE:
            embeds, mask = pipe._get_t5_prompt_embeds(list(prompts), device=device,
                                                      max_sequence_length=chroma.max_sequence_length(chroma.FAMILY))
            return embeds, None, mask.bool()
        embeds, pooled, _ = pipe.encode_prompt(list(prompts), None, device=device,
                                               max_sequence_length=_t5_tokens(pipe))
    return embeds, pooled, None


def _t5_tokens(pipe) -> int:
    return flux.max_sequence_length(flux.FAMILY, "dev" if pipe.transformer.config.guidance_embeds else "schnell")


def encode_t5(pipe, prompts: list[str], device: Any = None) -> Any:
    """FLUX.1's T5 features alone, as encode_prompt computes them (512 tokens dev, 256 schnell): what the trainer
    caches while CLIP-L's LoRA trains, T5 possibly on the CPU while CLIP-L is on the GPU."""
    import torch

    with torch.no_grad():
        return pipe._get_t5_prompt_embeds(list(prompts), device=device or pipe.text_encoder_2.device,
                                          max_sequence_length=_t5_tokens(pipe))

