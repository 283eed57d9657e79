"""Hints for a run config, in both languages: a hint explains a setting (what alpha does, how the LR relates
to the batch size). Rules that judge a combination of settings live in core.checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import RunConfig


@dataclass(frozen=True)
class Hint:
    key: str      # the config key it is about (for pointing at the field)
    level: str    # 'info'
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
    en = (f"Alpha scales the LoRA: scale = alpha / rank = {alpha:g} / {rank} = {scale:.2f}. "
          f"Usual: alpha ≈ rank/2 = {suggested:g} (or alpha = rank, or 1). A smaller alpha weakens each update, "
          "so it needs a higher learning rate.")
    zh = (f"alpha 决定 LoRA 的缩放：缩放 = alpha / rank = {alpha:g} / {rank} = {scale:.2f}。"
          f"常用 alpha ≈ rank/2 = {suggested:g}（或等于 rank，或 1）。alpha 越小每步更新越弱，需要更高的学习率。")
    return Hint("network.alpha", "info", en, zh)  # alpha above rank: core.checks warns


def lr_batch_hint(cfg: RunConfig, ref_lr: float, ref_batch: int) -> Hint | None:
    """When the batch differs from the one the LR was chosen for, suggest the scaled LR. Only while the LR is still
    that one: an LR set since (an import, a preset, a loaded file, a typed value) is the user's choice for this
    batch, not something to scale."""
    batch = cfg.training.batch_size
    if batch == ref_batch or cfg.optimizer.name in ("Prodigy", "DAdaptAdam"):  # they find the step size themselves
        return None
    if abs(cfg.optimizer.lr - ref_lr) > 1e-12 * max(1.0, abs(ref_lr)):
        return None
    new = lr_for_batch(ref_lr, ref_batch, batch)
    if abs(new - cfg.optimizer.lr) <= 1e-12:
        return None
    return Hint("optimizer.lr", "info",
                f"The learning rate {fmt_lr(ref_lr)} was set for batch {ref_batch}; with batch {batch} scale it "
                f"with the batch size: {fmt_lr(ref_lr)} × {batch}/{ref_batch} = {fmt_lr(new)}.",
                f"学习率 {fmt_lr(ref_lr)} 是按批大小 {ref_batch} 设的；批大小改为 {batch} 时学习率应随之缩放："
                f"{fmt_lr(ref_lr)} × {batch}/{ref_batch} = {fmt_lr(new)}。")
