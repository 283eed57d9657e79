"""Z-Image (Tongyi-MAI): a single-stream flow-matching DiT, a Qwen3 text encoder and the 16-channel FLUX VAE.

Turbo, De-Turbo and Base share architecture and keys, so a header cannot tell them apart; the user says which.

Sampling semantics (diffusers 0.42 ZImagePipeline; checked in tests/test_zimage_sampling.py):

- CFG. Danlu's `cfg` is the number ComfyUI users type in KSampler: pred = neg + cfg·(pos − neg). diffusers
  writes pred = pos + g·(pos − neg) and turns CFG on only when g > 0, so g = cfg − 1: Turbo's "guidance 0" is
  ComfyUI cfg 1 (one transformer forward per step, the negative prompt unused); De-Turbo's cfg 3 is g = 2
  (the prompt and the negative in one batch of two per step). cfg below 1 has no diffusers equivalent.
- Steps. N steps are N transformer calls: the sigmas are linspace(1, 1/N, N) shifted by 3 (σ' = 3σ/(1 + 2σ)),
  then the scheduler's final σ = 0; ComfyUI's euler sampler with the `simple` scheduler and
  ModelSamplingAuraFlow shift 3 steps through the same sigmas when N divides 1000 (8, 10, 20, 25, 50; for other
  N its 1000-entry table rounds t by less than 1/1000). (diffusers before 0.39 needed N + 1 steps.)
- Prompt. The tokenizer's chat template with one user turn, the generation prompt and enable_thinking=True
  (Qwen3's template then renders ``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``, the
  text ComfyUI hard-codes; the official repo and musubi-tuner call it the same way), padded/truncated to 512
  tokens (ComfyUI does not truncate: longer prompts differ), hidden state [-2] of the text encoder, padding
  dropped by the attention mask. An empty negative prompt
  is the template around "" (ComfyUI's own Turbo workflow zeroes the negative instead; at cfg 1 it is unused).
- Noise. A CPU generator's fp32 randn of (1, 16, H/8, W/8) for the seed: ComfyUI's noise for the same seed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.families.zimage_workflow import MIN_COMFYUI, base_note, comfy_base, comfy_prompt

FAMILY = "zimage"
TRAITS = ("dit", "flow")   # the config fields that apply to it: core.config.F(families=...)
LABEL = "Z-Image"
NATIVE_RESOLUTION = 1024
PREDICTION = "flow"
MODELSPEC = "z-image"
LORA_VERSION = "zimage"
LORA_MODELSPEC = "z-image/lora"
# Turbo's training adapters (merged while training, never saved): downloaded once from the run's source.
TRAINING_ADAPTER_REPO = "ostris/zimage_turbo_training_adapter"
TRAINING_ADAPTER_FILES = {"v1": "zimage_turbo_training_adapter_v1.safetensors",
                          "v2": "zimage_turbo_training_adapter_v2.safetensors"}
CONTEXT_DIM = 2560          # Qwen3-4B hidden size: the transformer's cap_feat_dim
DIM = 3840                  # the real transformer's width; Lumina 2, the same layout otherwise, has 2304
LUMINA2_DIM = 2304
PIPELINE = "ZImagePipeline"
DENOISER = "transformer"    # the pipeline attribute LoRA trains
TURBO_REPO = "Tongyi-MAI/Z-Image-Turbo"
HUB_IDS = ("Tongyi-MAI/Z-Image-Turbo", "Tongyi-MAI/Z-Image", "ostris/Z-Image-De-Turbo")
VAE_SHIFT, VAE_SCALE = 0.1159, 0.3611
SCHEDULER_SHIFT = 3.0
MAX_SEQUENCE_LENGTH = 512
SIZE_MULTIPLE = 16          # VAE ×8, patches of 2
PART_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "vae/*", "transformer/*.json"]
MODEL_PATTERNS = PART_PATTERNS + ["transformer/*.safetensors"]
# Kinds as network.dit_targets names them → module names inside a block. Main blocks are `layers.N`; the
# refiners (`noise_refiner.N`, `context_refiner.N`) are left out by default, as ai-toolkit does.
LORA_MODULES = {"attention": ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0"),
                "feed_forward": ("feed_forward.w1", "feed_forward.w2", "feed_forward.w3"),
                "adaLN": ("adaLN_modulation.0",)}
LORA_BLOCKS = ("layers.",)
REFINER_BLOCKS = ("noise_refiner.", "context_refiner.")
LORA_PREFIX = "diffusion_model."

# Original/ComfyUI single-file names that differ from diffusers'. q/k/v are one fused `attention.qkv` there:
# rows [0:d] q, [d:2d] k, [2d:3d] v.
_FILE_TO_DIFFUSERS = (("final_layer.", "all_final_layer.2-1."), ("x_embedder.", "all_x_embedder.2-1."),
                      (".attention.out.", ".attention.to_out.0."), (".attention.k_norm.", ".attention.norm_k."),
                      (".attention.q_norm.", ".attention.norm_q."))
FILE_PREFIX = "model.diffusion_model."


# --- recognising it -------------------------------------------------------------------------------

def strip_prefix(keys) -> list[str]:
    """Keys without ComfyUI's `model.diffusion_model.` prefix (a transformer file may have it or not)."""
    return [k.removeprefix(FILE_PREFIX) for k in keys]


def matches(keys) -> bool:
    """A Z-Image transformer (original or diffusers names, with or without the prefix; Lumina 2 too: see is_lumina2).

    Main blocks carry `adaLN_modulation.0` (a bare Linear); Lumina 2 has `adaLN_modulation.1` (after a SiLU).
    """
    names = set(strip_prefix(keys))
    return "layers.0.adaLN_modulation.0.weight" in names and (
        "cap_embedder.1.weight" in names or "noise_refiner.0.attention.k_norm.weight" in names
        or "noise_refiner.0.attention.norm_k.weight" in names)


def is_lumina2(shapes: dict[str, list[int]]) -> bool:
    """Lumina 2 shares the layout at width 2304; Z-Image is 3840 (test models are smaller, never 2304)."""
    cap = dict(zip(strip_prefix(shapes), shapes.values())).get("cap_embedder.1.weight")
    return bool(cap) and cap[0] == LUMINA2_DIM


def lora_matches(keys, metadata: dict[str, str]) -> bool:
    """A LoRA for Z-Image: ai-toolkit's `ss_base_model_version`, or block names only this layout has."""
    if metadata.get("ss_base_model_version", "").startswith("zimage"):
        return True
    pat = re.compile(r"^(diffusion_model\.|transformer\.|lora_unet_|lycoris_)?(layers|noise_refiner|context_refiner)"
                     r"[._]\d+[._](attention[._](to_q|to_k|to_v|to_out|qkv|out)|feed_forward[._]w[123]"
                     r"|adaLN_modulation)")
    return any(pat.match(k) for k in keys)


def is_folder(folder: Path) -> bool:
    """A diffusers folder (or transformer-only folder, as De-Turbo's) of this family."""
    for cfg, cls in ((folder / "model_index.json", PIPELINE), (folder / "transformer" / "config.json",
                                                                "ZImageTransformer2DModel")):
        try:
            if json.loads(cfg.read_text(encoding="utf-8")).get("_class_name") == cls:
                return True
        except (OSError, ValueError):
            continue
    return False


def _parts_note(info, parts, model: Path) -> None:
    if parts is None:
        info.warnings.append((f"The text encoder (Qwen3), tokenizer and VAE are not beside it: they will be "
                              f"downloaded from {TURBO_REPO} when the model is loaded.",
                              f"旁边没有文本编码器（Qwen3）、分词器和 VAE：加载模型时将从 {TURBO_REPO} 下载。"))
    elif (note := parts.note(model)) is not None:
        info.warnings.append(note)
    info.warnings.append(("Turbo, De-Turbo and Base cannot be told apart from the weights: choose the variant "
                          "in the Model tab.", "权重无法区分 Turbo、De-Turbo 与 Base：请在“底模”页选择版本。"))


def classify_file(info, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]):
    """Fill a detect.ModelInfo for a single file that `matches`: the transformer alone, as Z-Image ships."""
    shapes = {k: s for k, (_, s) in tensors.items()}
    if is_lumina2(shapes):
        return info.refuse("This is a Lumina 2 transformer (width 2304), which Danlu does not train.",
                           "这是 Lumina 2 的 transformer（宽度 2304），丹炉不支持训练它。",
                           "Pick a Z-Image model (Tongyi-MAI/Z-Image-Turbo or a file made from it).",
                           "请选择 Z-Image 模型（Tongyi-MAI/Z-Image-Turbo 或由它导出的文件）。")
    info.family, info.prediction_type, info.prediction_source = FAMILY, PREDICTION, "family rule"
    info.native_resolution, info.has_vae = NATIVE_RESOLUTION, False
    _parts_note(info, find_parts(Path(info.path)), Path(info.path))
    info.usable = True
    return info


def classify_folder(info, folder: Path):
    """Fill a detect.ModelInfo for a diffusers folder (or a transformer-only folder) of this family."""
    from models.files import DTYPE_NAMES, HeaderError, read_header

    info.kind, info.family = "diffusers", FAMILY
    info.prediction_type, info.prediction_source = PREDICTION, "family rule"
    info.native_resolution = NATIVE_RESOLUTION
    shards = sorted((folder / "transformer").glob("*.safetensors"))
    if not shards:
        return info.refuse("The Z-Image folder has no safetensors transformer weights.",
                           "Z-Image 文件夹中没有 safetensors 格式的 transformer 权重。",
                           "Download the transformer of this model.", "请下载该模型的 transformer 权重。")
    try:
        tensors, _ = read_header(shards[0])
    except HeaderError as exc:
        return info.refuse(f"transformer weights: {exc}.", f"transformer 权重文件损坏：{exc}。")
    info.precision = ", ".join(sorted({DTYPE_NAMES.get(d, d) for d, _ in tensors.values()}))
    info.size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    _parts_note(info, find_parts(folder), folder)
    info.usable = True
    return info


def not_a_base(kind: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a Z-Image LoRA or training adapter given where a base model is needed."""
    what = ("the Z-Image Turbo training adapter", "Z-Image Turbo 训练适配器") if kind == "adapter" else \
        ("a LoRA for Z-Image", "Z-Image 的 LoRA")
    return (f"This is {what[0]}, not a base model.", f"这是 {what[1]}，不是底模。",
            f"Pick the Z-Image transformer file or folder (or {TURBO_REPO}) as the base"
            + ("; set the adapter in the training adapter field." if kind == "adapter" else "."),
            f"请选择 Z-Image 的 transformer 文件或文件夹（或 {TURBO_REPO}）作为底模"
            + ("；训练适配器请填在“训练适配器”一栏。" if kind == "adapter" else "。"))


def other_part(tensors: dict[str, tuple[str, list[int]]]) -> tuple[str, str, str, str] | None:
    """(en, zh, hint_en, hint_zh) when a file is Z-Image's text encoder (Qwen3) or its 16-channel VAE, not a base."""
    keys = list(tensors)
    if any(k.endswith("layers.0.self_attn.q_norm.weight") for k in keys):
        what = ("a Qwen3 text encoder (Z-Image uses one)", "Qwen3 文本编码器（Z-Image 使用它）")
    elif (tensors.get("decoder.conv_in.weight") or ("", []))[1][1:2] == [16]:
        what = ("a 16-channel VAE (Z-Image / FLUX)", "16 通道 VAE（Z-Image / FLUX）")
    else:
        return None
    return (f"This is {what[0]}, not a base model.", f"这是{what[1]}，不是底模。",
            "Pick the Z-Image transformer (e.g. diffusion_models/z_image_turbo_bf16.safetensors); its text encoder "
            "and VAE are found beside it (ComfyUI's text_encoders/ and vae/ folders).",
            "请选择 Z-Image 的 transformer（例如 diffusion_models/z_image_turbo_bf16.safetensors）；"
            "其文本编码器和 VAE 会在旁边（ComfyUI 的 text_encoders/ 与 vae/ 文件夹）自动找到。")


# --- single-file names ----------------------------------------------------------------------------

def from_file_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Original/ComfyUI transformer names → diffusers names (fused qkv split into to_q/to_k/to_v).

    With the `model.diffusion_model.` prefix present, only the prefixed keys are the transformer's."""
    if any(k.startswith(FILE_PREFIX) for k in state):
        state = {k[len(FILE_PREFIX):]: v for k, v in state.items() if k.startswith(FILE_PREFIX)}
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


# --- loading --------------------------------------------------------------------------------------

def find_parts(path: Path, components: str | Path | None = None):
    """Where the text encoder, tokenizer and VAE come from: a zimage_load.Parts, or None when they will be
    downloaded (models/families/zimage_load.py says where it looks)."""
    from models.families import zimage_load

    return zimage_load.find_parts(Path(path), components)


def load_parts(path: str | Path, *, components: str | Path | None = None, torch_dtype: Any = None):
    """A ZImagePipeline for a diffusers folder, a transformer-only folder or a transformer single file, with the
    text encoder, tokenizer and VAE found by `find_parts` (models/families/zimage_load.py)."""
    from models.families import zimage_load

    return zimage_load.load_parts(Path(path), components=components, torch_dtype=torch_dtype)


def encode_prompts(pipe, prompts: list[str], device: Any = None) -> list:
    """Text-encoder features of each prompt, exactly as ZImagePipeline computes them (chat template, 512 tokens,
    hidden state [-2], padding removed): a list of (tokens, width) tensors of different lengths."""
    import torch

    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(list(prompts), device=device or pipe.text_encoder.device,
                                       do_classifier_free_guidance=False, max_sequence_length=MAX_SEQUENCE_LENGTH)
    return embeds


# --- LoRA -----------------------------------------------------------------------------------------

def lora_target_modules(transformer, targets=("attention", "feed_forward", "adaLN"), refiners: bool = False):
    """Full module names of the linears that get LoRA: the main blocks (`layers.N`), and the noise/context
    refiners too when asked. Refiners of the context have no adaLN."""
    blocks = LORA_BLOCKS + REFINER_BLOCKS if refiners else LORA_BLOCKS
    suffixes = tuple(s for t in targets for s in LORA_MODULES[t])
    return [name for name, _ in transformer.named_modules() if name.startswith(blocks) and name.endswith(suffixes)
            and re.match(r"^\w+\.\d+\.", name)]


def lora_state(components: dict[str, Any], adapter: str = "default") -> dict[str, Any]:
    """The file's tensors from a peft-injected transformer: `diffusion_model.<name>.lora_A/lora_B.weight`,
    fp32 CPU. No alpha keys: alpha/rank (peft's scaling, rslora included) is folded into lora_B, so every loader
    (diffusers, ComfyUI, ai-toolkit) reads alpha = rank and applies exactly the trained delta."""
    from models.lora_file import lora_layers

    model = components.get(DENOISER)
    if model is None:
        raise ValueError("Z-Image LoRA files hold the transformer's layers only")
    state = {}
    for name, layer in lora_layers(model, adapter):
        if getattr(layer, "lora_magnitude_vector", None) and adapter in layer.lora_magnitude_vector:
            raise DanluError("DoRA is not supported for Z-Image LoRA files.", "Z-Image 的 LoRA 文件不支持 DoRA。",
                             "Turn DoRA off.", "请关闭 DoRA。", key="network.use_dora")
        down = layer.lora_A[adapter].weight.detach().float().cpu().contiguous()
        up = layer.lora_B[adapter].weight.detach().float().cpu() * float(layer.scaling[adapter])
        state[lora_key(name, "lora_A")] = down
        state[lora_key(name, "lora_B")] = up.contiguous()
    return state


def lora_key(module_name: str, part: str) -> str:
    """File key of one LoRA matrix (part 'lora_A' or 'lora_B'), as ai-toolkit writes and ComfyUI/diffusers load."""
    return f"{LORA_PREFIX}{module_name}.{part}.weight"


def lora_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Family fields of the file's metadata: alpha is folded, so the file's alpha is its rank."""
    meta = dict(meta)
    if "ss_network_dim" in meta:
        meta["ss_network_alpha"] = str(meta["ss_network_dim"])
    meta.update({"ss_base_model_version": LORA_VERSION, "ss_v2": "False", "modelspec.architecture": LORA_MODELSPEC,
                 "modelspec.prediction_type": PREDICTION})
    meta.pop("ss_v_parameterization", None)
    return meta


# --- samples --------------------------------------------------------------------------------------

def guidance_scale(cfg: float) -> float:
    """diffusers' guidance_scale for ComfyUI's cfg (see the module docstring): g = cfg − 1."""
    if cfg < 1:
        raise DanluError(f"CFG {cfg:g} is below 1: Z-Image samples use CFG ≥ 1 as ComfyUI counts it "
                         "(1 = no guidance, as Turbo is sampled).",
                         f"CFG {cfg:g} 小于 1：Z-Image 样图的 CFG 按 ComfyUI 的算法须 ≥ 1"
                         "（1 表示不引导，Turbo 即如此）。",
                         "Set sampling.cfg to 1 for Turbo, 2-4 for De-Turbo or Base.",
                         "Turbo 请把 sampling.cfg 设为 1，De-Turbo 或 Base 设为 2-4。", key="sampling.cfg")
    return float(cfg) - 1.0


def sample_recipe(recipe: dict, args: dict) -> tuple[dict, dict]:
    """models.recipe's family hook: the PNG states what ComfyUI users set (steps, euler / simple, shift 3,
    cfg) plus diffusers' guidance_scale, and carries the ComfyUI graph (recipe['png_chunks']['prompt'],
    for models.generate.save_png); the flow-matching Euler sampler is the only one, and no clip skip. The base
    (recipe['base']) is named as ComfyUI users have it (zimage_workflow.comfy_base), or a plain note says why not."""
    g = guidance_scale(float(recipe["cfg"]))
    recipe = dict(recipe)
    base = recipe.pop("base", "")
    comfy = comfy_base(base, recipe.get("model", ""), recipe.get("model_hash", ""))
    extra = {**(recipe.get("extra") or {}), "Shift": _num(SCHEDULER_SHIFT), "Guidance scale": _num(g),
             "Max tokens": MAX_SEQUENCE_LENGTH, "ComfyUI": f"{MIN_COMFYUI} or newer"}
    if not comfy.unet:
        extra["ComfyUI base"] = base_note(base or recipe.get("model", ""))
    recipe.update({"sampler": "euler", "schedule": "Simple", "clip_skip": 1, "model": comfy.model, "extra": extra})
    recipe["png_chunks"] = {"prompt": json.dumps(comfy_prompt(recipe, comfy.unet), ensure_ascii=False)}
    return recipe, {**args, "sampler": "euler", "clip_skip": 1}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def initial_noise(seed: int, width: int, height: int, channels: int = 16, n: int = 1):
    """The CPU fp32 draw of (1, C, H/8, W/8) for `seed` (ComfyUI's noise), repeated for a batch of n prompts."""
    import torch

    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise DanluError(f"Z-Image sample size {width}x{height} must be a multiple of {SIZE_MULTIPLE}.",
                         f"Z-Image 样图尺寸 {width}x{height} 必须是 {SIZE_MULTIPLE} 的倍数。", key="sampling.width")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn((1, channels, height // 8, width // 8), generator=generator, dtype=torch.float32)
    return noise.repeat(n, 1, 1, 1), generator


def render_batch(pipe, *, prompts: list[str], negative_prompt: str = "", steps: int = 8, cfg: float = 1.0,
                 seed: int = 0, width: int = 1024, height: int = 1024, sampler: str = "euler", clip_skip: int = 1):
    """Images of `prompts` at one seed (models.generate.render_batch's contract), each from the same noise."""
    import torch

    if sampler != "euler":
        raise DanluError(f"Z-Image samples use the flow-matching Euler sampler, not {sampler}.",
                         f"Z-Image 样图只用流匹配 Euler 采样器，不支持 {sampler}。", "Set sampling.sampler = euler.",
                         "请设置 sampling.sampler = euler。", key="sampling.sampler")
    latents, generator = initial_noise(seed, width, height, pipe.transformer.config.in_channels, len(prompts))
    g = guidance_scale(cfg)
    negative = [negative_prompt] * len(prompts) if g > 0 else None
    with torch.no_grad():
        return pipe(prompt=list(prompts), negative_prompt=negative, num_inference_steps=int(steps),
                    guidance_scale=g, width=int(width), height=int(height), generator=generator,
                    latents=latents.to(pipe.transformer.device), max_sequence_length=MAX_SEQUENCE_LENGTH,
                    output_type="pil").images


def render(pipe, *, prompt: str, **kwargs):
    """One image (models.generate.render's contract): CPU-seeded noise, ComfyUI's cfg, N steps = N forwards."""
    return render_batch(pipe, prompts=[prompt], **kwargs)[0]


def pipeline_class():
    from diffusers import ZImagePipeline

    return ZImagePipeline


def lora_version(prediction: str = "flow") -> str:
    """`ss_base_model_version` of a LoRA trained on this family (ai-toolkit's value)."""
    return LORA_VERSION
