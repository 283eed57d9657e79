"""The optimizer table and learning-rate schedules (names as in core.config.OPTIMIZERS / SCHEDULERS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.config import RunConfig
from core.errors import DanluError


def _adamw(groups, cfg):
    import torch

    return torch.optim.AdamW(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)


def _adamw8bit(groups, cfg):
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise DanluError(f"AdamW8bit needs bitsandbytes, which cannot be imported: {e}",
                         f"AdamW8bit 需要 bitsandbytes，但无法导入：{e}",
                         "Install it (pip install bitsandbytes) or choose AdamW.",
                         "请安装（pip install bitsandbytes）或改用 AdamW。", key="optimizer.name") from None
    return bnb.optim.AdamW8bit(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)


def _lion(groups, cfg):
    from lion_pytorch import Lion

    return Lion(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)


def _prodigy(groups, cfg):
    from prodigyopt import Prodigy

    return Prodigy(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay, safeguard_warmup=True,
                   use_bias_correction=True)


def _adafactor(groups, cfg):
    from transformers.optimization import Adafactor

    # A fixed LR (no relative step) so the schedule and the UI's LR mean what they say.
    return Adafactor(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay, relative_step=False,
                     scale_parameter=False, warmup_init=False)


def _came(groups, cfg):
    from pytorch_optimizer import CAME

    return CAME(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)


def _adamw_schedule_free(groups, cfg):
    import schedulefree

    # the warm-up comes from the schedule (constant after it, make_scheduler), as its own warmup_steps would do it
    opt = schedulefree.AdamWScheduleFree(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)
    opt.train()
    return opt


def _dadapt_adam(groups, cfg):
    from dadaptation import DAdaptAdam

    return DAdaptAdam(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay, decouple=True)


OPTIMIZERS: dict[str, Callable[[list, RunConfig], Any]] = {
    "AdamW": _adamw, "AdamW8bit": _adamw8bit, "Lion": _lion, "Prodigy": _prodigy, "Adafactor": _adafactor,
    "CAME": _came, "AdamWScheduleFree": _adamw_schedule_free, "DAdaptAdam": _dadapt_adam}
# The class each name builds, as sd-scripts writes it into ss_optimizer (module.Class).
CLASS_NAMES = {"AdamW": "torch.optim.adamw.AdamW", "AdamW8bit": "bitsandbytes.optim.adamw.AdamW8bit",
               "Lion": "lion_pytorch.lion_pytorch.Lion", "Prodigy": "prodigyopt.prodigy.Prodigy",
               "Adafactor": "transformers.optimization.Adafactor", "CAME": "pytorch_optimizer.optimizer.came.CAME",
               "AdamWScheduleFree": "schedulefree.adamw_schedulefree.AdamWScheduleFree",
               "DAdaptAdam": "dadaptation.dadapt_adam.DAdaptAdam"}
# These estimate one step size shared by every group and refuse different learning rates.
ONE_LR = ("Prodigy", "DAdaptAdam")
SCHEDULE_FREE = ("AdamWScheduleFree",)


def schedule_free(opt) -> bool:
    """A schedule-free optimizer (also inside accelerate's wrapper): it has train and eval modes."""
    return type(getattr(opt, "optimizer", opt)).__name__ in SCHEDULE_FREE


def averaged_weights(opt) -> None:
    """Schedule-free: put the averaged (eval-mode) weights into the parameters, for saving, samples and validation."""
    if schedule_free(opt):
        getattr(opt, "optimizer", opt).eval()


def training_weights(opt) -> None:
    """Schedule-free: back to the train-mode weights before the next step."""
    if schedule_free(opt):
        getattr(opt, "optimizer", opt).train()


def _groups(params: list, lr: float, plus: set[int], ratio: float) -> list[dict]:
    """One group at lr; with LoRA+ (ratio > 0) the up matrices in `plus` go to a second group at lr × ratio."""
    if not ratio:
        return [{"params": params, "lr": lr}] if params else []
    rest = [p for p in params if id(p) not in plus]
    up = [p for p in params if id(p) in plus]
    return [g for g in ({"params": rest, "lr": lr}, {"params": up, "lr": lr * ratio}) if g["params"]]


def make_optimizer(cfg: RunConfig, unet_params: list, te_params: list, plus: set[int] | None = None,
                   unet_blocks: list[tuple[list, float]] | None = None):
    """`plus`: ids of the LoRA up matrices, trained at LR × network.loraplus_lr_ratio when that is set.
    `unet_blocks`: the UNet's parameters as (parameters, LR weight) per block (training/blocks.param_groups),
    each block at LR × its weight, as sd-scripts' block-wise LR; they replace `unet_params`."""
    # Prodigy estimates one step size shared by every group and refuses different learning rates.
    te_lr = cfg.optimizer.lr if cfg.optimizer.name in ONE_LR else cfg.optimizer.text_encoder_lr
    ratio = cfg.network.loraplus_lr_ratio if cfg.network.type == "lora" else 0.0
    groups = _groups(unet_params, cfg.optimizer.lr, plus or set(), ratio) if unet_blocks is None else \
        [g for params, weight in unet_blocks for g in _groups(params, cfg.optimizer.lr * weight, plus or set(), ratio)]
    groups += _groups(te_params, te_lr, plus or set(), ratio)
    if not groups:
        raise DanluError("Nothing to train: both network.train_unet and network.train_text_encoder are off.",
                         "没有可训练的部分：network.train_unet 和 network.train_text_encoder 都关闭了。",
                         "Turn on at least one of them.", "请至少打开其中一个。", key="network.train_unet")
    return OPTIMIZERS[cfg.optimizer.name](groups, cfg)


def warmup_steps(cfg: RunConfig, total_steps: int) -> int:
    """Below 1 the warm-up is a share of the steps, else a step count."""
    w = cfg.optimizer.warmup
    return round(w * total_steps) if w < 1 else int(w)


def make_scheduler(cfg: RunConfig, optimizer, total_steps: int):
    from diffusers.optimization import get_scheduler

    name = cfg.optimizer.scheduler
    warm = warmup_steps(cfg, total_steps)
    if cfg.optimizer.name in SCHEDULE_FREE:  # it keeps the LR constant itself; core.checks warns about another one
        name = "constant"
    if name == "cosine_with_min_lr":  # as sd-scripts builds it: transformers' schedule, half a cosine per cycle
        from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

        return get_cosine_with_min_lr_schedule_with_warmup(optimizer, warm, total_steps,
                                                           num_cycles=cfg.optimizer.num_cycles / 2,
                                                           min_lr_rate=cfg.optimizer.min_lr_ratio)
    if name == "constant":
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warm, num_training_steps=total_steps,
                         num_cycles=cfg.optimizer.num_cycles, power=cfg.optimizer.power)
