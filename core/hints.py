"""Hints and conflicts for a run config, in both languages.

A hint explains a setting (what alpha does, how LR relates to batch size); a conflict is a
combination that trains badly ('warn') or cannot run at all ('error'). The Train tab refuses to
start while an 'error' is present, so a run never dies an hour in on something knowable now.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import RunConfig

LEVELS = ("info", "warn", "error")


@dataclass(frozen=True)
class Hint:
    key: str      # the config key it is about (for pointing at the field)
    level: str    # 'info', 'warn' or 'error'
    en: str
    zh: str

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def fmt_lr(lr: float) -> str:
    """1e-4 rather than 0.0001: how LRs are written in this field."""
    return f"{lr:.0e}".replace("e-0", "e-").replace("e+0", "e+") if 0 < lr < 0.01 else f"{lr:g}"


def lr_for_batch(lr: float, from_batch: int, to_batch: int) -> float:
    """Linear scaling: the LR that keeps the per-sample step size when the batch changes."""
    return float(f"{lr * to_batch / max(1, from_batch):.3g}")


def alpha_hint(cfg: RunConfig) -> Hint:
    rank, alpha = cfg.network.rank, cfg.network.alpha
    scale = alpha / rank if rank else 0.0
    suggested = rank / 2
    level = "warn" if alpha > rank else "info"
    en = (f"Alpha scales the LoRA: scale = alpha / rank = {alpha:g} / {rank} = {scale:.2f}. "
          f"Usual: alpha ≈ rank/2 = {suggested:g} (or alpha = rank, or 1). A smaller alpha weakens each update, "
          "so it needs a higher learning rate.")
    zh = (f"alpha 决定 LoRA 的缩放：缩放 = alpha / rank = {alpha:g} / {rank} = {scale:.2f}。"
          f"常用 alpha ≈ rank/2 = {suggested:g}（或等于 rank，或 1）。alpha 越小每步更新越弱，需要更高的学习率。")
    if alpha > rank:
        en += " Alpha above rank amplifies every update; training may blow up."
        zh += " alpha 大于 rank 会放大每次更新，训练可能发散。"
    return Hint("network.alpha", level, en, zh)


def lr_batch_hint(cfg: RunConfig, ref_lr: float, ref_batch: int) -> Hint | None:
    """When the batch differs from the one the LR was chosen for, suggest the scaled LR."""
    batch = cfg.training.batch_size
    if batch == ref_batch or cfg.optimizer.name == "Prodigy":
        return None
    new = lr_for_batch(ref_lr, ref_batch, batch)
    if abs(new - cfg.optimizer.lr) <= 1e-12:
        return None
    return Hint("optimizer.lr", "info",
                f"The learning rate {fmt_lr(ref_lr)} was set for batch {ref_batch}; with batch {batch} scale it "
                f"with the batch size: {fmt_lr(ref_lr)} × {batch}/{ref_batch} = {fmt_lr(new)}.",
                f"学习率 {fmt_lr(ref_lr)} 是按批大小 {ref_batch} 设的；批大小改为 {batch} 时学习率应随之缩放："
                f"{fmt_lr(ref_lr)} × {batch}/{ref_batch} = {fmt_lr(new)}。")


def conflicts(cfg: RunConfig, *, cuda: bool | None = None, detected_family: str | None = None,
              detected_prediction: str | None = None) -> list[Hint]:
    """Combinations to flag before a run starts. `cuda` None means unknown (no CUDA check);
    detected_* come from reading the base model (None when it could not be read)."""
    out: list[Hint] = []
    family = cfg.model.family if cfg.model.family != "auto" else detected_family
    pred = cfg.model.prediction_type
    if detected_family and cfg.model.family not in ("auto", detected_family):
        out.append(Hint("model.family", "error",
                        f"The base model is {detected_family} but model.family is set to {cfg.model.family}.",
                        f"底模是 {detected_family}，但模型系列设为了 {cfg.model.family}。"))
    if detected_prediction and pred != "auto" and pred != detected_prediction:
        out.append(Hint("model.prediction_type", "error",
                        f"v-prediction mismatch: the base model uses {detected_prediction} "
                        f"but the config says {pred}. "
                        "Training with the wrong target produces grey or burnt images; set it to auto.",
                        f"预测类型不一致：底模是 {detected_prediction}，配置却是 {pred}。目标不对会训出灰图或烧图；"
                        "请设为 auto。"))
    if family == "sdxl" and cfg.dataset.resolution < 1024:
        out.append(Hint("dataset.resolution", "warn",
                        f"SDXL at {cfg.dataset.resolution}: SDXL was trained at 1024 px "
                        "and gives poor LoRAs below it. "
                        "Use 1024 (and max bucket side 2048).",
                        f"SDXL 用 {cfg.dataset.resolution} 训练：SDXL 原生分辨率是 1024，更低会明显变差。"
                        "请用 1024（分桶最大边长 2048）。"))
    if cfg.optimizer.name.endswith("8bit"):
        no_cuda = cfg.training.device in ("cpu", "mps") or (cfg.training.device != "cuda" and cuda is False)
        if no_cuda:
            out.append(Hint("optimizer.name", "error",
                            f"{cfg.optimizer.name} needs an NVIDIA GPU (bitsandbytes, CUDA), and none will be used "
                            f"(device {cfg.training.device}). Choose AdamW.",
                            f"{cfg.optimizer.name} 需要 NVIDIA 显卡（bitsandbytes、CUDA），而本次不会用 CUDA"
                            f"（设备 {cfg.training.device}）。请改用 AdamW。"))
    if cfg.optimizer.name == "Prodigy" and cfg.optimizer.lr != 1.0:
        out.append(Hint("optimizer.lr", "warn",
                        f"Prodigy finds the step size itself and expects LR 1.0, not {fmt_lr(cfg.optimizer.lr)}.",
                        f"Prodigy 会自己估计步长，学习率应为 1.0，而不是 {fmt_lr(cfg.optimizer.lr)}。"))
    if cfg.network.use_dora and cfg.network.dropout > 0:
        out.append(Hint("network.dropout", "warn",
                        f"DoRA with dropout {cfg.network.dropout:g}: DoRA recomputes the weight norm "
                        "on the un-dropped "
                        "input, which is slow and memory-hungry; set dropout to 0.",
                        f"DoRA 配合 dropout {cfg.network.dropout:g}：DoRA 需对未丢弃的输入另算权重范数，既慢又占显存；"
                        "请把 dropout 设为 0。"))
    if family == "sd2" and cfg.training.clip_skip > 1:
        out.append(Hint("training.clip_skip", "warn", "Clip skip is an SD1.x habit; SD2 models expect 1.",
                        "Clip skip 是 SD1.x 的习惯；SD2 模型应设为 1。"))
    if cfg.network.train_text_encoder and cfg.dataset.cache_text_encoder_outputs:
        out.append(Hint("dataset.cache_text_encoder_outputs", "error",
                        "Text-encoder outputs cannot be cached while the text encoder is trained.",
                        "训练文本编码器时不能缓存文本编码器输出。"))
    if not cfg.network.train_unet and not cfg.network.train_text_encoder:
        out.append(Hint("network.train_unet", "error", "Nothing to train: both UNet and text encoder are off.",
                        "没有要训练的部分：UNet 和文本编码器都关闭了。"))
    return out


def blocking(hints: list[Hint]) -> list[Hint]:
    return [h for h in hints if h.level == "error"]
