"""Z-Image's training seam (the stages and their signatures: training/families/__init__.py).

Settings that cannot work (an adapter on De-Turbo, int8 without CUDA) are refused by core.checks before this
runs. Loading: the base pipeline on the CPU in the training dtype; the Turbo training adapter merged into the
transformer weights (scale 1, float64 arithmetic) before anything is quantised; then every part frozen and moved.
Text: the pipeline's own ``encode_prompt`` (Qwen3 chat template, hidden state [-2], padding removed by the mask),
so what is trained is what inference sees. Loss: training/flow.py with the family's conventions.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import ConfigError, DanluError
from models.families import zimage
from training import dop, flow, precision
from training.parts import Parts

ADAPTER_REPO, ADAPTER_FILES = zimage.TRAINING_ADAPTER_REPO, zimage.TRAINING_ADAPTER_FILES
DENOISER_LABEL = "transformer"
# Z-Image's conventions (reference/zimage.md): the transformer is given (1000 - 1000·sigma)/1000 (0 = pure noise)
# and returns the negative velocity (the pipeline's noise_pred = -model_out); its scheduler's static shift is 3.
FLOW = flow.FlowSpec(shift=3.0, output_sign=-1.0, reversed_time=True, time_dtype="float32", dynamic=None)


def open_base(cfg: RunConfig, dtype: Any = None, device: str = "cpu"):
    """The plain base pipeline (folder, single file with its parts, or hub id) on the CPU, in `dtype`.

    Released Z-Image weights are bf16: loading them in bf16 and merging the adapter in float64 rounds once, as a
    merge in fp32 followed by the cast to bf16 would, with half the memory.
    """
    from models.generate import open_pipeline

    return open_pipeline(cfg.model.base, family=zimage.FAMILY, vae=cfg.model.vae or None, device=device,
                         torch_dtype=dtype)


def sample_pipeline(cfg: RunConfig, lora_path: Path, device: str, dtype: Any, family: str):
    """The plain base (never the training adapter) with the saved file, loaded as a user loads it."""
    pipe = open_base(cfg, dtype).to(device)
    pipe.load_lora_weights(str(lora_path), adapter_name="sample")
    return pipe


def adapter_path(spec: str, source=None) -> Path:
    """v1 / v2 (downloaded once from the run's download source, then cached) or a local .safetensors file."""
    if spec in ADAPTER_FILES:
        from core.download import fetch

        try:
            folder = fetch(ADAPTER_REPO, files=[ADAPTER_FILES[spec]], source=source,
                           what=("training adapter", "训练适配器"), key="model.training_adapter")
        except DanluError as e:  # offline, blocked, or missing: the way out is a local file
            raise DanluError(e.en, e.zh, "Download the file yourself and set model.training_adapter to its path, "
                             "or choose another download source.",
                             "请手动下载该文件，并把 model.training_adapter 设为它的路径，或改选其他下载源。",
                             key="model.training_adapter") from None
        return folder / ADAPTER_FILES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"Training adapter not found: {spec}", f"找不到训练适配器：{spec}",
                          "Use none, v1, v2 or the path of a .safetensors file.",
                          "请填写 none、v1、v2 或一个 .safetensors 文件的路径。", key="model.training_adapter")
    return path


def merge_adapter(transformer: Any, path: Path) -> int:
    """Add the adapter's B·A·(alpha/rank) to the transformer's weights in place; return the layers changed."""
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    modules = dict(transformer.named_modules())
    pairs = sorted(k[: -len(".lora_A.weight")] for k in state if k.endswith(".lora_A.weight"))
    if not pairs:
        raise DanluError(f"{path.name} holds no LoRA weights (lora_A/lora_B).", f"{path.name} 中没有 LoRA 权重。",
                         "Choose the training adapter file itself.", "请选择训练适配器文件本身。",
                         key="model.training_adapter")
    for base in pairs:
        name = base.removeprefix(zimage.LORA_PREFIX).removeprefix("transformer.")
        module = modules.get(name)
        if module is None or not hasattr(module, "weight"):
            raise DanluError(f"{path.name} does not fit this transformer ({name} is not one of its layers).",
                             f"{path.name} 与此 transformer 不匹配（没有 {name} 这一层）。",
                             "Use the adapter made for Z-Image Turbo.", "请使用为 Z-Image Turbo 制作的适配器。",
                             key="model.training_adapter")
        down, up = state[f"{base}.lora_A.weight"].double(), state[f"{base}.lora_B.weight"].double()
        alpha = state.get(f"{base}.alpha")
        scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
        with torch.no_grad():
            w = module.weight
            w.copy_((w.double() + scale * (up @ down)).to(w.dtype))
    return len(pairs)


def quantize_int8(transformer: Any, device: str,
                  blocks: tuple[str, ...] = ("layers.", "noise_refiner.", "context_refiner.")) -> int:
    """Frozen linears of the `blocks` (module-name prefixes) as bitsandbytes int8 (LLM.int8) layers on the GPU;
    peft puts LoRA on top of them. FLUX's seam names its own blocks."""
    import bitsandbytes as bnb
    from torch import nn

    count = 0
    for name, module in list(transformer.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full.startswith(blocks):
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                        has_fp16_weights=False, threshold=6.0)
                q.weight = bnb.nn.Int8Params(child.weight.data.to("cpu").half(), requires_grad=False,
                                             has_fp16_weights=False)
                if child.bias is not None:
                    q.bias = nn.Parameter(child.bias.data, requires_grad=False)
                setattr(module, child_name, q.to(device))
                count += 1
    return count


def store_fp8(transformer: Any) -> int:
    """training.fp8_base for a DiT: its frozen linears stored in fp8 (training.precision), once the adapter is merged
    (load_parts) and the LoRA added. The timestep embedder stays as it is: the transformer casts the timestep
    features to its first weight's dtype, and sin/cos features in fp8 would lose the timestep."""
    return precision.store_fp8(transformer, keep=("t_embedder",))


def text_encoder_on_cpu(cfg: RunConfig) -> bool:
    """Low VRAM with cached text features: the 4B text encoder stays in CPU memory; each caption is encoded once."""
    low_vram = cfg.model.quantize != "none" or cfg.training.fp8_base
    return low_vram and cfg.dataset.cache_text_encoder_outputs


def load_parts(cfg: RunConfig, device: str, dtype: Any, log=print) -> Parts:
    """Parts of a Z-Image base for training: adapter merged, frozen, on `device` in `dtype`."""
    from core.download import apply

    apply(cfg.model.download_source, cfg.model.hub_mirror)  # the run's source for the base, its parts and the adapter
    pipe = open_base(cfg, dtype)
    transformer = pipe.transformer
    if cfg.model.training_adapter != "none":
        path = adapter_path(cfg.model.training_adapter)
        n = merge_adapter(transformer, path)
        log(f"Training adapter {path.name} merged into {n} transformer layers (training only; never saved)")
    for m in (transformer, pipe.vae, pipe.text_encoder):
        m.requires_grad_(False)
        m.eval()
    if cfg.model.quantize == "int8":  # after the merge: the adapter is in the quantised weights
        log(f"{quantize_int8(transformer, device)} transformer linears stored in int8")
    transformer.to(device, dtype=dtype)
    pipe.vae.to(device, dtype=dtype)
    te_device = "cpu" if text_encoder_on_cpu(cfg) else device
    pipe.text_encoder.to(te_device, dtype=dtype)
    if te_device != device:
        log("Text encoder kept on the CPU (low VRAM, text features cached)")
    shift = float(pipe.scheduler.config.get("shift", FLOW.shift))
    return Parts(zimage.FAMILY, "flow", transformer, pipe.vae, [pipe.text_encoder], [pipe.tokenizer], None,
                 dict(pipe.scheduler.config), sys.modules[__name__], pipe=pipe, flow=replace(FLOW, shift=shift))


def lora_plan(cfg: RunConfig, parts: Parts) -> tuple[dict, Any]:
    """(training.lora.inject's keywords for the transformer, no block plan): the block linears of the kinds
    network.dit_targets names, the refiner blocks with network.dit_refiners."""
    n = cfg.network
    return {"family": parts.family, "dit_targets": n.dit_targets, "dit_refiners": n.dit_refiners}, None


def encode_text(parts: Parts, captions: list[str], cfg: RunConfig, device=None) -> tuple[list, None]:
    """One (tokens, hidden) tensor per caption, exactly as the pipeline encodes a prompt (padding removed)."""
    from models import families

    return list(families.part(zimage, "load").encode_prompts(parts.pipe, list(captions), device)), None


def collate_text(hidden: list, pooled: list) -> tuple[list, None]:
    """Cached per-caption features as a batch: a list, as the captions' token counts differ."""
    return list(hidden), None


def _forward(parts: Parts, transformer: Any, x_t, sigma, text: tuple):
    """The velocity the transformer predicts at noise level sigma: its calling convention (a list of (C, 1, H, W)
    frames, the float32 time, one feature tensor per caption) and the spec's sign."""
    import torch

    dtype = precision.compute_dtype(transformer)  # not the fp8 storage of an fp8 base
    frames = list(x_t.to(dtype).unsqueeze(2).unbind(0))
    time = flow.model_time(parts.flow, sigma, x_t.device)  # float32, as the samplers give it: not `dtype`
    out = transformer(frames, time, [e.to(x_t.device, dtype) for e in text[0]], return_dict=False)[0]
    return flow.velocity(parts.flow, torch.stack([o.float() for o in out]).squeeze(2))


def loss(parts: Parts, transformer: Any, latents, text: tuple, items: list, cfg: RunConfig, class_text=None):
    """Flow-matching loss of one batch (training/flow.py), with DOP when class_text is given."""
    return flow.loss(parts.flow, lambda x_t, sigma, txt: _forward(parts, transformer, x_t, sigma, txt), latents,
                     text, cfg, class_text, lambda: dop.lora_off(parts.unet))


def predict_at(parts: Parts, transformer: Any, latents, noise, level: float, text: tuple, items: list):
    """(velocity, target) at noise level sigma = level: the validation pass's measure."""
    import torch

    sigma = torch.tensor([level])
    x_t = flow.noisy(latents, noise, sigma)
    return _forward(parts, transformer, x_t, sigma, text), flow.target(latents, noise)
