"""The rules a family's facts row answers (core/family_facts.py): its learning-rate ceiling, what its sample
renderer can do, which options apply to its kind of model (UNet or flow DiT), whether its text encoder can be
trained, and how caption caching works for it. No rule here names a family: each asks the row, so a new family
gets them by declaring its facts. Registered in core.checks.base.RULES in the order core.checks imports them."""

from __future__ import annotations

from core import family_facts
from core.checks.base import Env, _is, _label, _lacks, _row, rule
from core.config import RunConfig
from core.config.hints import fmt_lr


def _flow_labels() -> str:
    return ", ".join(r.label for r in family_facts.ROWS.values() if r.has("flow") and r.selectable)


@rule("family_high_lr", "warning")
def _high_lr(cfg: RunConfig, env: Env):
    o, row = cfg.optimizer, _row(cfg, env)
    if row is not None and row.max_lr and o.lr > row.max_lr and o.name != "Prodigy":
        ceiling, usual = fmt_lr(row.max_lr), fmt_lr(row.max_lr / 2)
        return ("optimizer.lr",
                f"Learning rate {o.lr:g} is above {ceiling}: {row.label} LoRAs are known to collapse there; "
                f"{usual} is the usual value.",
                f"学习率 {o.lr:g} 高于 {ceiling}：{row.label} 的 LoRA 在此学习率下容易崩坏；常用 {usual}。")


@rule("family_sample_limits", "error")
def _sample_limits(cfg: RunConfig, env: Env):
    # What the family's sample renderer can do (models/families/<family>): the lowest CFG with a meaning as ComfyUI
    # counts it, its samplers, sizes divisible by its VAE stride × patch size.
    s, row = cfg.sampling, _row(cfg, env)
    if row is None or not s.prompts:
        return None
    if s.cfg < row.min_cfg:
        return ("sampling.cfg",
                f"{row.label} samples need CFG >= {row.min_cfg:g} as ComfyUI counts it; {s.cfg:g} has no equivalent.",
                f"{row.label} 样图的 CFG 按 ComfyUI 的算法须 ≥ {row.min_cfg:g}；{s.cfg:g} 无对应。",
                f"Use {row.min_cfg:g} for no guidance, or more.", f"不引导用 {row.min_cfg:g}，或更大。")
    if s.sampler not in row.samplers:
        names = ", ".join(row.samplers)
        return ("sampling.sampler", f"{row.label} samples use {names}, not {s.sampler}.",
                f"{row.label} 样图只支持 {names}，不支持 {s.sampler}。", f"Set the sampler to {row.samplers[0]}.",
                f"请把采样器设为 {row.samplers[0]}。")
    m = row.size_multiple
    if s.width % m or s.height % m:
        return ("sampling.width", f"{row.label} sample size {s.width}x{s.height} must be a multiple of {m}.",
                f"{row.label} 样图尺寸 {s.width}x{s.height} 必须是 {m} 的倍数。")
    return None


@rule("flow_cached_caption_dropout", "warning")
def _flow_cache_dropout(cfg: RunConfig, env: Env):
    d = cfg.dataset
    changing = d.caption_dropout_rate or d.shuffle_caption or d.caption_tag_dropout_rate
    if _is(cfg, env, "flow") and d.cache_text_encoder_outputs and changing:
        return ("dataset.caption_dropout_rate",
                "Text features are not cached: caption dropout or shuffling changes the captions every step, so the "
                "text encoder runs every step. Set caption dropout to 0 (and shuffling off) to cache them, as the "
                "guide does when memory is short.",
                "不缓存文本特征：标注丢弃或打乱使标注每步都变，文本编码器每步都要运行。若要缓存（显存不足时指南的做法），"
                "请把标注丢弃设为 0 并关闭打乱。")


@rule("int8_without_cuda", "error")
def _int8(cfg: RunConfig, env: Env):
    device = cfg.training.device if cfg.training.device in ("cpu", "mps") else env.device
    if cfg.model.quantize != "none" and device in ("cpu", "mps"):
        return ("model.quantize",
                f"model.quantize = {cfg.model.quantize} needs an NVIDIA GPU (bitsandbytes int8, CUDA), and none will "
                f"be used (device {device}).",
                f"model.quantize = {cfg.model.quantize} 需要 NVIDIA 显卡（bitsandbytes int8、CUDA），"
                f"而本次不会用 CUDA（设备 {device}）。",
                "Set model.quantize = none.", "请把 model.quantize 设为 none。")


@rule("dop_words", "error")
def _dop_words(cfg: RunConfig, env: Env):
    t, d = cfg.training, cfg.dataset
    if t.dop_multiplier and (not d.trigger_word or not t.dop_class_word):
        return ("training.dop_class_word",
                "DOP needs the trigger word (dataset.trigger_word) and the class word that replaces it "
                "(training.dop_class_word).",
                "DOP 需要触发词（dataset.trigger_word）和替换它的类别词（training.dop_class_word）。",
                "Set both, or set training.dop_multiplier = 0.",
                "请同时设置两者，或把 training.dop_multiplier 设为 0。")


@rule("flow_options_on_unet", "warning")
def _flow_options(cfg: RunConfig, env: Env):
    t = cfg.training
    if _lacks(cfg, env, "flow") and (t.dop_multiplier or t.differential_guidance or cfg.model.quantize != "none"):
        names = _flow_labels()
        return ("training.dop_multiplier",
                f"DOP, differential guidance and model.quantize apply to flow-matching DiT models ({names}) only; "
                "this run ignores them.",
                f"DOP、差分引导和 model.quantize 只用于流匹配 DiT 模型（{names}），本次训练会忽略它们。")


@rule("unet_options_on_flow", "warning")
def _unet_options(cfg: RunConfig, env: Env):
    t = cfg.training
    if _lacks(cfg, env, "unet") and (t.noise_offset or t.min_snr_gamma or t.multires_noise_iterations):
        key = "training.multires_noise_iterations" if t.multires_noise_iterations else "training.noise_offset"
        label = _label(cfg, env)
        return (key,
                f"Noise offset, multi-resolution noise and Min-SNR weighting are for the SD UNets; a {label} run "
                "ignores them (its noise levels are set by training.timestep_type and timestep_bias).",
                f"噪声偏移、多分辨率噪声和 Min-SNR 加权只用于 SD 的 UNet；{label} 训练会忽略它们（噪声强度由 "
                "training.timestep_type 和 timestep_bias 决定）。")


@rule("vpred_options_on_flow", "warning")
def _vpred_options_flow(cfg: RunConfig, env: Env):
    on = [k for k, v in (("model.zero_terminal_snr", cfg.model.zero_terminal_snr),
                         ("training.debiased_estimation", cfg.training.debiased_estimation),
                         ("training.scale_v_pred_loss_like_noise_pred",
                          cfg.training.scale_v_pred_loss_like_noise_pred),
                         ("training.v_pred_like_loss", cfg.training.v_pred_like_loss),
                         ("sampling.cfg_rescale", cfg.sampling.cfg_rescale)) if v]
    if _is(cfg, env, "flow") and on:
        label = _label(cfg, env)
        return (on[0], f"{', '.join(on)}: these are for the SD UNets' noise schedule; a {label} run (flow matching) "
                "ignores them.",
                f"{'、'.join(on)}：这些选项针对 SD UNet 的噪声调度；{label}（流匹配）训练会忽略它们。")


@rule("text_encoder_not_trainable", "warning")
def _text_encoder(cfg: RunConfig, env: Env):
    if _lacks(cfg, env, "text_encoder_trainable") and cfg.network.train_text_encoder:
        label = _label(cfg, env)
        return ("network.train_text_encoder",
                f"The text encoder of {label} is not trained (ComfyUI would not load its LoRA); only the denoiser "
                "(its transformer) is.",
                f"{label} 的文本编码器不会被训练（ComfyUI 无法加载其 LoRA），只训练去噪网络（transformer）。",
                "Turn network.train_text_encoder off.", "请关闭 network.train_text_encoder。")
