"""Warnings about settings that train, but not quite as a user may expect: said once, at the start."""

from __future__ import annotations

from core.config import RunConfig
from training.optim import optimizer_warnings


def config_warnings(cfg: RunConfig) -> list[tuple[str, str]]:
    """(English, 中文) warnings for this config."""
    out = list(optimizer_warnings(cfg))
    if cfg.network.use_dora:
        out.append((("DoRA files carry dora_scale keys: ComfyUI applies them, but diffusers (and so the samples) "
                    "drops them for SD/SDXL, so samples show the LoRA without DoRA's magnitude."),
                    ("DoRA 文件包含 dora_scale：ComfyUI 会应用它，但 diffusers（因此样图）在 SD/SDXL 上会忽略它，"
                    "样图中看不到 DoRA 的幅度部分。")))
    n_tokens = cfg.training.max_token_length
    if n_tokens > 75 and cfg.sampling.prompts:
        out.append(((f"Captions use up to {n_tokens} tokens, but diffusers (and so the samples) reads only the "
                    "first 75 of a prompt; WebUI and ComfyUI read long prompts in 75-token chunks."),
                    (f"标注最多使用 {n_tokens} 个 token，但 diffusers（因此样图）只读取提示词的前 75 个；"
                    "WebUI 和 ComfyUI 会按 75 个 token 一段读取长提示词。")))
    if cfg.saving.precision == "bf16":
        out.append(("bf16 LoRA files do not load in some older tools; fp16 or float is the safe choice.",
                    "bf16 格式的 LoRA 在部分旧工具中无法加载；fp16 或 float 更稳妥。"))
    s = cfg.sampling
    if s.prompts and (s.width % 64 or s.height % 64):
        out.append((f"Sample size {s.width}x{s.height} is not a multiple of 64; the UNet pads odd latents.",
                    f"样图尺寸 {s.width}x{s.height} 不是 64 的倍数，UNet 会对奇数尺寸的 latent 做填充。"))
    out += zimage_warnings(cfg)
    return out


def zimage_warnings(cfg: RunConfig) -> list[tuple[str, str]]:
    """The seed guide's limits for Z-Image runs."""
    if cfg.model.family != "zimage":
        return []
    out = []
    if cfg.optimizer.lr > 2e-4 and cfg.optimizer.name != "Prodigy":
        out.append((f"Learning rate {cfg.optimizer.lr:g} is above 2e-4: Z-Image LoRAs are known to collapse there; "
                    "1e-4 is the usual value.",
                    f"学习率 {cfg.optimizer.lr:g} 高于 2e-4：Z-Image 的 LoRA 在此学习率下容易崩坏；常用 1e-4。"))
    if cfg.model.variant == "turbo" and cfg.model.training_adapter == "none":
        out.append(("Training Turbo without a training adapter undoes its 8-step distillation within a few hundred "
                    "steps; choose model.training_adapter = v2 (or v1), or train on De-Turbo.",
                    "不用训练适配器直接训练 Turbo，几百步内就会破坏其 8 步蒸馏效果；"
                    "请把 model.training_adapter 设为 v2（或 v1），或改用 De-Turbo 训练。"))
    if cfg.dataset.cache_text_encoder_outputs and cfg.dataset.caption_dropout_rate > 0:
        out.append(("Caption dropout does nothing while text-encoder outputs are cached; set it to 0 or stop caching.",
                    "缓存文本编码器输出时标注丢弃不起作用；请把它设为 0，或关闭缓存。"))
    return out


def base_model_checks(cfg: RunConfig) -> list[tuple[str, str]]:
    """The Model tab's checks, before anything is loaded: an 'error' (a v-prediction model trained as epsilon, a
    file that is not a usable base) stops the run with the reason; warnings are returned for the log."""
    from pathlib import Path

    from core.errors import DanluError
    from models.detect import detect, training_checks

    if not Path(cfg.model.base).exists():  # hub ids are checked when they are resolved
        return []
    info = detect(cfg.model.base)
    out = []
    for level, en, zh in training_checks(info, cfg.dataset.resolution, cfg.model.prediction_type):
        if level == "error":
            raise DanluError(en, zh, info.hint_en, info.hint_zh,
                             key="model.base")
        out.append((en, zh))
    return out
