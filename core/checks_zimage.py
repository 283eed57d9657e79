"""The rules about Z-Image and the DiT/UNet-only options: learning rate, Turbo, samples, caches, the adapter
variant, int8, DOP words, which options apply to which family, the v-prediction loss options on a flow model.
Registered in core.checks_base.RULES in the order core/checks.py imports them."""

from __future__ import annotations

from core.checks_base import Env, _family, rule
from core.config import RunConfig

# ---------------------------------------------------------------------------------------------- Z-Image

@rule("zimage_high_lr", "warning")
def _zimage_lr(cfg: RunConfig, env: Env):
    o = cfg.optimizer
    if _family(cfg, env) == "zimage" and o.lr > 2e-4 and o.name != "Prodigy":
        return ("optimizer.lr",
                f"Learning rate {o.lr:g} is above 2e-4: Z-Image LoRAs are known to collapse there; 1e-4 is the usual "
                "value.",
                f"学习率 {o.lr:g} 高于 2e-4：Z-Image 的 LoRA 在此学习率下容易崩坏；常用 1e-4。")


@rule("zimage_turbo_without_adapter", "warning")
def _zimage_turbo(cfg: RunConfig, env: Env):
    if _family(cfg, env) == "zimage" and cfg.model.variant == "turbo" and cfg.model.training_adapter == "none":
        return ("model.training_adapter",
                "Training Turbo without a training adapter undoes its 8-step distillation within a few hundred "
                "steps; choose model.training_adapter = v2 (or v1), or train on De-Turbo.",
                "不用训练适配器直接训练 Turbo，几百步内就会破坏其 8 步蒸馏效果；"
                "请把 model.training_adapter 设为 v2（或 v1），或改用 De-Turbo 训练。")


@rule("zimage_samples", "error")
def _zimage_samples(cfg: RunConfig, env: Env):
    # What models/families/zimage/sample.py can render: ComfyUI's cfg >= 1 (diffusers guidance = cfg - 1), the
    # flow-matching Euler sampler, sizes divisible by 16 (VAE x8, 2x2 patches).
    s = cfg.sampling
    if _family(cfg, env) != "zimage" or not s.prompts:
        return None
    if s.cfg < 1:
        return ("sampling.cfg", f"Z-Image samples need CFG >= 1 as ComfyUI counts it; {s.cfg:g} has no equivalent.",
                f"Z-Image 样图的 CFG 按 ComfyUI 的算法须 ≥ 1；{s.cfg:g} 无对应。",
                "Use 1 for Turbo (no guidance), 2-4 for De-Turbo or Base.",
                "Turbo 用 1（不引导），De-Turbo 或 Base 用 2-4。")
    if s.sampler != "euler":
        return ("sampling.sampler", f"Z-Image samples use the flow-matching Euler sampler, not {s.sampler}.",
                f"Z-Image 样图只用流匹配 Euler 采样器，不支持 {s.sampler}。", "Set the sampler to euler.",
                "请把采样器设为 euler。")
    if s.width % 16 or s.height % 16:
        return ("sampling.width", f"Z-Image sample size {s.width}x{s.height} must be a multiple of 16.",
                f"Z-Image 样图尺寸 {s.width}x{s.height} 必须是 16 的倍数。")
    return None


@rule("zimage_cached_caption_dropout", "warning")
def _zimage_cache_dropout(cfg: RunConfig, env: Env):
    d = cfg.dataset
    changing = d.caption_dropout_rate or d.shuffle_caption or d.caption_tag_dropout_rate
    if _family(cfg, env) == "zimage" and d.cache_text_encoder_outputs and changing:
        return ("dataset.caption_dropout_rate",
                "Text features are not cached: caption dropout or shuffling changes the captions every step, so the "
                "text encoder runs every step. Set caption dropout to 0 (and shuffling off) to cache them, as the "
                "guide does when memory is short.",
                "不缓存文本特征：标注丢弃或打乱使标注每步都变，文本编码器每步都要运行。若要缓存（显存不足时指南的做法），"
                "请把标注丢弃设为 0 并关闭打乱。")


@rule("zimage_adapter_not_turbo", "error")
def _zimage_adapter_variant(cfg: RunConfig, env: Env):
    m = cfg.model
    if _family(cfg, env) == "zimage" and m.training_adapter != "none" and m.variant != "turbo":
        return ("model.training_adapter",
                f"A training adapter is for Z-Image Turbo; this base is set as {m.variant}.",
                f"训练适配器只用于 Z-Image Turbo；当前底模设为 {m.variant}。",
                "Set model.training_adapter = none, or model.variant = turbo if the base is Turbo.",
                "请把 model.training_adapter 设为 none；如果底模确实是 Turbo，请把 model.variant 设为 turbo。")


@rule("zimage_adapter_unreachable", "error")
def _zimage_adapter_offline(cfg: RunConfig, env: Env):
    if env.adapter_unreachable and _family(cfg, env) == "zimage" and cfg.model.variant == "turbo":
        en, zh = env.adapter_unreachable
        a = cfg.model.training_adapter
        return ("model.training_adapter",
                f"The training adapter {a} is not downloaded yet and {en} cannot be reached: training would stop "
                "while loading the model.",
                f"训练适配器 {a} 尚未下载，且无法连接 {zh}：训练会在加载模型时中止。",
                "Connect to the internet once, choose another download source, or choose Local file and enter an "
                "adapter .safetensors you have.",
                "请联网一次、改选其他下载源，或选择“本地文件”并填写已有的适配器 .safetensors 文件。")


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
    family = _family(cfg, env)
    t = cfg.training
    if family and family != "zimage" and (t.dop_multiplier or t.differential_guidance or cfg.model.quantize != "none"):
        return ("training.dop_multiplier",
                "DOP, differential guidance and model.quantize apply to flow-matching DiT models (Z-Image) only; "
                "this run ignores them.",
                "DOP、差分引导和 model.quantize 只用于流匹配 DiT 模型（Z-Image），本次训练会忽略它们。")


@rule("unet_options_on_flow", "warning")
def _unet_options(cfg: RunConfig, env: Env):
    t = cfg.training
    if _family(cfg, env) == "zimage" and (t.noise_offset or t.min_snr_gamma or t.multires_noise_iterations):
        key = "training.multires_noise_iterations" if t.multires_noise_iterations else "training.noise_offset"
        return (key,
                "Noise offset, multi-resolution noise and Min-SNR weighting are for the SD UNets; a Z-Image run "
                "ignores them (its noise levels are set by training.timestep_type and timestep_bias).",
                "噪声偏移、多分辨率噪声和 Min-SNR 加权只用于 SD 的 UNet；Z-Image 训练会忽略它们（噪声强度由 "
                "training.timestep_type 和 timestep_bias 决定）。")


@rule("vpred_options_on_flow", "warning")
def _vpred_options_flow(cfg: RunConfig, env: Env):
    on = [k for k, v in (("model.zero_terminal_snr", cfg.model.zero_terminal_snr),
                         ("training.debiased_estimation", cfg.training.debiased_estimation),
                         ("training.scale_v_pred_loss_like_noise_pred",
                          cfg.training.scale_v_pred_loss_like_noise_pred),
                         ("training.v_pred_like_loss", cfg.training.v_pred_like_loss),
                         ("sampling.cfg_rescale", cfg.sampling.cfg_rescale)) if v]
    if _family(cfg, env) == "zimage" and on:
        return (on[0], f"{', '.join(on)}: these are for the SD UNets' noise schedule; a Z-Image run (flow matching) "
                "ignores them.",
                f"{'、'.join(on)}：这些选项针对 SD UNet 的噪声调度；Z-Image（流匹配）训练会忽略它们。")


@rule("zimage_text_encoder", "warning")
def _zimage_text_encoder(cfg: RunConfig, env: Env):
    if _family(cfg, env) == "zimage" and cfg.network.train_text_encoder:
        return ("network.train_text_encoder",
                "The Qwen3 text encoder of Z-Image is not trained (ComfyUI would not load its LoRA); only the "
                "transformer is.",
                "Z-Image 的 Qwen3 文本编码器不会被训练（ComfyUI 无法加载其 LoRA），只训练 transformer。",
                "Turn network.train_text_encoder off.", "请关闭 network.train_text_encoder。")
