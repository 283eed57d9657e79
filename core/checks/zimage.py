"""The training adapter's rules, where model.variant and model.training_adapter apply (the fields are declared
for Z-Image): Turbo trained without the training adapter, an adapter on another variant, an adapter that
cannot be downloaded. Everything a family's facts row can say (learning rate, sample limits, caches, which
options apply) is asked of the row in core/checks/family.py. Registered in core.checks.base.RULES in the order
core.checks imports them."""

from __future__ import annotations

from core.checks.base import Env, _applies, rule
from core.config import RunConfig


@rule("zimage_turbo_without_adapter", "warning")
def _zimage_turbo(cfg: RunConfig, env: Env):
    m = cfg.model
    if _applies(cfg, env, "model.training_adapter") and m.variant == "turbo" and m.training_adapter == "none":
        return ("model.training_adapter",
                "Training Turbo without a training adapter undoes its 8-step distillation within a few hundred "
                "steps; choose model.training_adapter = v2 (or v1), or train on De-Turbo.",
                "不用训练适配器直接训练 Turbo，几百步内就会破坏其 8 步蒸馏效果；"
                "请把 model.training_adapter 设为 v2（或 v1），或改用 De-Turbo 训练。")


@rule("zimage_adapter_not_turbo", "error")
def _zimage_adapter_variant(cfg: RunConfig, env: Env):
    m = cfg.model
    if _applies(cfg, env, "model.training_adapter") and m.training_adapter != "none" and m.variant != "turbo":
        return ("model.training_adapter",
                f"A training adapter is for Z-Image Turbo; this base is set as {m.variant}.",
                f"训练适配器只用于 Z-Image Turbo；当前底模设为 {m.variant}。",
                "Set model.training_adapter = none, or model.variant = turbo if the base is Turbo.",
                "请把 model.training_adapter 设为 none；如果底模确实是 Turbo，请把 model.variant 设为 turbo。")


@rule("zimage_adapter_unreachable", "error")
def _zimage_adapter_offline(cfg: RunConfig, env: Env):
    if env.adapter_unreachable and _applies(cfg, env, "model.training_adapter") and cfg.model.variant == "turbo":
        en, zh = env.adapter_unreachable
        a = cfg.model.training_adapter
        return ("model.training_adapter",
                f"The training adapter {a} is not downloaded yet and {en} cannot be reached: training would stop "
                "while loading the model.",
                f"训练适配器 {a} 尚未下载，且无法连接 {zh}：训练会在加载模型时中止。",
                "Connect to the internet once, choose another download source, or choose Local file and enter an "
                "adapter .safetensors you have.",
                "请联网一次、改选其他下载源，或选择“本地文件”并填写已有的适配器 .safetensors 文件。")
