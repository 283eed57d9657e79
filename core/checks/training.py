"""The rules about the optimizer (Prodigy, DAdaptation, schedule-free), the precision (full bf16, fp8 base),
captions and caches, the saved file and the samples.
Registered in core.checks.base.RULES in the order core.checks imports them."""

from __future__ import annotations

from core.checks.base import ONE_LR, Env, _device, _is, _lacks, rule
from core.config import SAMPLERS, RunConfig, sample_prompts
from core.config.hints import fmt_lr

# ---------------------------------------------------------------------------------------------- optimizer

@rule("prodigy_lr", "warning")
def _prodigy_lr(cfg: RunConfig, env: Env):
    o = cfg.optimizer
    if o.name == "Prodigy" and o.lr != 1.0:
        return ("optimizer.lr", f"Prodigy finds the step size itself and expects LR 1.0; {fmt_lr(o.lr)} scales it.",
                f"Prodigy 会自己估计步长，学习率应为 1.0；{fmt_lr(o.lr)} 会缩放步长。",
                "Set optimizer.lr = 1.0.", "请把学习率设为 1.0。")


@rule("prodigy_text_encoder_lr", "warning")
def _prodigy_te_lr(cfg: RunConfig, env: Env):
    o = cfg.optimizer
    if o.name in ONE_LR and cfg.network.train_text_encoder and o.text_encoder_lr != o.lr:
        return ("optimizer.text_encoder_lr",
                f"{o.name} uses one learning rate for all parts: the text encoder trains at {fmt_lr(o.lr)}, "
                f"not {fmt_lr(o.text_encoder_lr)}.",
                f"{o.name} 所有部分只用一个学习率：文本编码器将以 {fmt_lr(o.lr)} 训练，"
                f"而不是 {fmt_lr(o.text_encoder_lr)}。")


@rule("dadapt_lr", "warning")
def _dadapt_lr(cfg: RunConfig, env: Env):
    o = cfg.optimizer
    if o.name == "DAdaptAdam" and not 0.5 <= o.lr <= 2.0:
        return ("optimizer.lr", f"DAdaptAdam finds the step size itself and expects LR about 1.0; {fmt_lr(o.lr)} "
                "multiplies the step size it finds.",
                f"DAdaptAdam 会自己估计步长，学习率应约为 1.0；{fmt_lr(o.lr)} 会按倍数缩放它估计的步长。",
                "Set optimizer.lr = 1.0 (and text_encoder_lr = 1.0).",
                "请把学习率设为 1.0（text_encoder_lr 也设为 1.0）。")


@rule("schedule_free_schedule", "warning")
def _schedule_free_schedule(cfg: RunConfig, env: Env):
    o = cfg.optimizer
    if o.name == "AdamWScheduleFree" and o.scheduler not in ("constant", "constant_with_warmup"):
        return ("optimizer.scheduler",
                f"AdamWScheduleFree replaces the learning-rate schedule: optimizer.scheduler = {o.scheduler} is not "
                "used; the LR stays constant after optimizer.warmup.",
                f"AdamWScheduleFree 自身替代学习率调度：optimizer.scheduler = {o.scheduler} 不会生效；"
                "学习率在 optimizer.warmup 之后保持不变。",
                "Set optimizer.scheduler = constant.", "请把 optimizer.scheduler 设为 constant。")


# ---------------------------------------------------------------------------------------------- precision



@rule("full_bf16_mixed_precision", "error")
def _full_bf16_mixed(cfg: RunConfig, env: Env):
    t = cfg.training
    if t.full_bf16 and t.mixed_precision != "bf16" and _device(cfg, env) != "cpu":
        return ("training.full_bf16",
                f"Full bf16 trains the LoRA in bf16 and needs mixed_precision bf16 on a GPU, not {t.mixed_precision}.",
                f"完全 bf16 用 bf16 训练 LoRA，在显卡上需要 mixed_precision = bf16，而不是 {t.mixed_precision}。",
                "Set training.mixed_precision = bf16 (RTX 30 and newer), or turn full_bf16 off.",
                "请把 training.mixed_precision 设为 bf16（RTX 30 系及更新），或关闭 full_bf16。")


@rule("full_bf16_on_cpu", "info")
def _full_bf16_cpu(cfg: RunConfig, env: Env):
    if cfg.training.full_bf16 and _device(cfg, env) == "cpu":
        return ("training.full_bf16", "Full bf16 on the CPU: the base and the LoRA are both bf16 for the whole run.",
                "在 CPU 上使用完全 bf16：底模和 LoRA 在整个训练中都是 bf16。")


@rule("fp8_base_with_quantize", "error")
def _fp8_base_quantize(cfg: RunConfig, env: Env):
    if cfg.training.fp8_base and cfg.model.quantize != "none":
        return ("training.fp8_base",
                f"training.fp8_base and model.quantize = {cfg.model.quantize} both store the frozen transformer in "
                "fewer bits; a run uses one of them.",
                f"training.fp8_base 与 model.quantize = {cfg.model.quantize} 都是以更少的位数保存冻结的 "
                "transformer；一次训练只能选其一。",
                "Keep fp8_base (any GPU or the CPU, no bitsandbytes) and set model.quantize = none, or turn "
                "fp8_base off to use int8 (NVIDIA GPU).",
                "保留 fp8_base（任何显卡或 CPU，无需 bitsandbytes）并把 model.quantize 设为 none；"
                "或关闭 fp8_base 改用 int8（需 NVIDIA 显卡）。")


@rule("blocks_to_swap_with_quantize", "error")
def _swap_quantize(cfg: RunConfig, env: Env):
    if cfg.training.blocks_to_swap and cfg.model.quantize != "none":  # bitsandbytes' int8 weights cannot be moved
        return ("training.blocks_to_swap",
                f"Block swap cannot move model.quantize = {cfg.model.quantize} weights between CPU and GPU memory.",
                f"块交换无法在内存和显存之间搬运 model.quantize = {cfg.model.quantize} 的权重。",
                "Use training.fp8_base with block swap (sd-scripts' 12 GB recipe), or set blocks_to_swap to 0.",
                "块交换请配合 training.fp8_base 使用（sd-scripts 的 12 GB 方案），或把 blocks_to_swap 设为 0。")


@rule("fp8_base_on_mps", "error")
def _fp8_base_mps(cfg: RunConfig, env: Env):
    if cfg.training.fp8_base and _device(cfg, env) == "mps":
        return ("training.fp8_base", "fp8 base needs an NVIDIA GPU or the CPU: PyTorch on Apple's MPS has no fp8 "
                "tensors.", "fp8 底模需要 NVIDIA 显卡或 CPU：Apple MPS 上的 PyTorch 不支持 fp8 张量。",
                "Turn training.fp8_base off.", "请关闭 training.fp8_base。")


@rule("fp8_base_network", "error")
def _fp8_base_network(cfg: RunConfig, env: Env):
    n = cfg.network
    if cfg.training.fp8_base and (n.use_dora or n.type != "lora"):
        what = "DoRA" if n.use_dora else n.type
        return ("training.fp8_base",
                f"fp8 base works with LoRA/LoCon only: {what} reads the frozen base weights themselves at every step.",
                f"fp8 底模只能与 LoRA/LoCon 一起使用：{what} 每步都要直接读取冻结的底模权重。",
                "Turn training.fp8_base off, or train LoRA without DoRA.",
                "请关闭 training.fp8_base，或训练不带 DoRA 的 LoRA。")


# ---------------------------------------------------------------------------------------------- captions and caches

@rule("cache_text_encoder_while_trained", "error")
def _cache_te_trained(cfg: RunConfig, env: Env):
    # FLUX.1 caches T5's outputs and encodes the trained CLIP-L each step (training/families/flux.py); a family
    # whose text encoder is never trained (text_encoder_not_trainable says so) caches as usual
    if cfg.network.train_text_encoder and cfg.dataset.cache_text_encoder_outputs and \
            not _is(cfg, env, "partial_text_cache") and not _lacks(cfg, env, "text_encoder_trainable"):
        return ("dataset.cache_text_encoder_outputs",
                "Text-encoder outputs cannot be cached while the text encoder is trained.",
                "训练文本编码器时不能缓存文本编码器输出。",
                "Turn off dataset.cache_text_encoder_outputs or network.train_text_encoder.",
                "请关闭 dataset.cache_text_encoder_outputs 或 network.train_text_encoder。")


@rule("cache_text_encoder_captions_change", "warning")
def _cache_te_captions(cfg: RunConfig, env: Env):
    d = cfg.dataset
    # a flow family's own rule (flow_cached_caption_dropout) says it in its words
    if not _is(cfg, env, "flow") and d.cache_text_encoder_outputs and not cfg.network.train_text_encoder and \
            (d.shuffle_caption or d.caption_dropout_rate or d.caption_tag_dropout_rate):
        return ("dataset.cache_text_encoder_outputs",
                "Text-encoder outputs are not cached: captions change every step (shuffle, caption or tag dropout).",
                "不缓存文本编码器输出：标注每步都会变化（打乱、标注丢弃或标签丢弃）。")


@rule("long_captions_in_samples", "warning")
def _long_captions(cfg: RunConfig, env: Env):
    n_tokens = cfg.training.max_token_length
    if n_tokens > 75 and cfg.sampling.prompts:
        return ("training.max_token_length",
                f"Captions use up to {n_tokens} tokens, but diffusers (and so the samples) reads only the first 75 "
                "of a prompt; WebUI and ComfyUI read long prompts in 75-token chunks.",
                f"标注最多使用 {n_tokens} 个 token，但 diffusers（因此样图）只读取提示词的前 75 个；"
                "WebUI 和 ComfyUI 会按 75 个 token 一段读取长提示词。")


# ---------------------------------------------------------------------------------------------- files and samples

@rule("bf16_files", "warning")
def _bf16(cfg: RunConfig, env: Env):
    if cfg.saving.precision == "bf16":
        return ("saving.precision",
                "bf16 LoRA files do not load in some older tools; fp16 or float is the safe choice.",
                "bf16 格式的 LoRA 在部分旧工具中无法加载；fp16 或 float 更稳妥。")


@rule("sample_prompt_flags", "error")
def _sample_prompt_flags(cfg: RunConfig, env: Env):
    e = sample_prompts.problem(cfg.sampling.prompts, SAMPLERS)
    if e is not None:
        return (e.key, e.en, e.zh, e.hint_en, e.hint_zh)


@rule("sample_size_not_64", "warning")
def _sample_size(cfg: RunConfig, env: Env):
    s = cfg.sampling
    if _lacks(cfg, env, "unet") or sample_prompts.problem(s.prompts, SAMPLERS):  # a DiT pads nothing
        return None
    sizes = [(o.get("width", s.width), o.get("height", s.height))  # a prompt's own --w/--h count too
             for o in (sample_prompts.parse(p).options for p in s.prompts)]
    odd = next(((w, h) for w, h in sizes if w % 64 or h % 64), None)
    if odd:
        return ("sampling.width",
                f"Sample size {odd[0]}x{odd[1]} is not a multiple of 64; the UNet pads odd latents.",
                f"样图尺寸 {odd[0]}x{odd[1]} 不是 64 的倍数，UNet 会对奇数尺寸的 latent 做填充。")
