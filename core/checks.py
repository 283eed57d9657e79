"""Every rule that looks at more than one setting (or at a setting and the machine), in one place.

`check(config, env)` returns the issues of a run config; each rule has one level:

- 'error': the run cannot do what the settings say. The Train tab's Start button, `train --dry-run` and the
  trainer refuse to start; the Parameters tab shows it with ✖.
- 'warning': the run trains, but not quite as a user may expect. Shown everywhere, stops nothing.
- 'info': a note about a setting the user chose knowingly.

`env` carries what the config alone cannot say (the device training will use, what the base model file is);
models.preflight.environment builds it. Rules about one field (types, ranges, choices) live in core.config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import blocks, sample_prompts
from core.config import SAMPLERS, RunConfig
from core.errors import ConfigError
from core.hints import fmt_lr

LEVELS = ("error", "warning", "info")
ONE_LR = ("Prodigy", "DAdaptAdam")  # optimizers with one step size for all parameter groups (training.optim)


@dataclass(frozen=True)
class Issue:
    level: str    # 'error', 'warning' or 'info'
    key: str      # the config key it is about (for pointing at the field)
    en: str
    zh: str
    hint_en: str = ""
    hint_zh: str = ""

    def text(self, lang: str) -> str:
        """Message and hint, as one line."""
        msg, hint = (self.zh, self.hint_zh) if lang == "zh" else (self.en, self.hint_en)
        return f"{msg} {hint}" if hint else msg


@dataclass(frozen=True)
class Env:
    """Facts from outside the config. None means unknown: the rules that need it stay silent."""

    device: str | None = None              # the device training will use: cuda, mps or cpu
    family: str | None = None              # the base model's family, read from the file
    prediction: str | None = None          # the base model's prediction type
    prediction_known: bool = False         # the file says so (not only the family's usual one)
    native_resolution: int | None = None   # of the base model
    zero_terminal_snr: bool = False        # the base carries a `ztsnr` marker key (trained with rescaled betas)
    base_problem: tuple[str, str, str, str] | None = None  # (en, zh, hint_en, hint_zh): not a usable base


Rule = Callable[[RunConfig, Env], "Issue | None"]
RULES: dict[str, tuple[str, Rule]] = {}   # name → (level, rule), in the order they are reported


def rule(name: str, level: str) -> Callable[[Callable], Rule]:
    """Register a rule; it returns (key, en, zh, hint_en, hint_zh) when it applies, else None."""
    assert level in LEVELS

    def register(fn: Callable) -> Rule:
        def wrapped(cfg: RunConfig, env: Env) -> Issue | None:
            found = fn(cfg, env)
            return Issue(level, *found) if found else None

        RULES[name] = (level, wrapped)
        return wrapped

    return register


def check(cfg: RunConfig, env: Env | None = None) -> list[Issue]:
    """The issues of this config, errors first."""
    env = env or Env()
    found = [issue for _, fn in RULES.values() if (issue := fn(cfg, env)) is not None]
    return sorted(found, key=lambda i: LEVELS.index(i.level))


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "error"]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "warning"]


def raise_errors(issues: list[Issue]) -> None:
    """Raise one ConfigError naming every error (the first one's key), or return when there is none."""
    found = errors(issues)
    if not found:
        return
    def joined(attr: str) -> str:
        return "\n".join(getattr(i, attr) for i in found if getattr(i, attr))

    raise ConfigError(joined("en"), joined("zh"), joined("hint_en"), joined("hint_zh"), key=found[0].key)


def _family(cfg: RunConfig, env: Env) -> str | None:
    return cfg.model.family if cfg.model.family != "auto" else env.family


# ---------------------------------------------------------------------------------------------- inputs and base

@rule("base_missing", "error")
def _base_missing(cfg: RunConfig, env: Env):
    if not cfg.model.base:
        return ("model.base", "No base model chosen yet (model.base).", "还没有选择底模（model.base）。",
                "Pick one in step 2 (Model), or set model.base in the run file.",
                "请在第 2 步（底模）中选择，或在运行文件中设置 model.base。")


@rule("dataset_missing", "error")
def _dataset_missing(cfg: RunConfig, env: Env):
    if not cfg.dataset.dir:
        return ("dataset.dir", "No dataset folder chosen yet (dataset.dir).",
                "还没有选择训练集文件夹（dataset.dir）。",
                "Pick one in step 3 (Dataset), or set dataset.dir in the run file.",
                "请在第 3 步（选图）中选择，或在运行文件中设置 dataset.dir。")


@rule("base_unusable", "error")
def _base_unusable(cfg: RunConfig, env: Env):
    if cfg.model.base and env.base_problem:
        return ("model.base", *env.base_problem)


@rule("family_mismatch", "error")
def _family_mismatch(cfg: RunConfig, env: Env):
    if env.family and cfg.model.family not in ("auto", env.family):
        return ("model.family", f"The base model is {env.family} but model.family is set to {cfg.model.family}.",
                f"底模是 {env.family}，但模型系列设为了 {cfg.model.family}。",
                "Set model.family to auto.", "请把 model.family 设为 auto。")


@rule("prediction_mismatch", "error")
def _prediction_mismatch(cfg: RunConfig, env: Env):
    pred = cfg.model.prediction_type
    if env.prediction and env.prediction_known and pred not in ("auto", env.prediction):
        return ("model.prediction_type",
                f"v-prediction mismatch: the base model uses {env.prediction} but the config says {pred}. "
                "Training with the wrong target produces grey or burnt images.",
                f"预测类型不一致：底模是 {env.prediction}，配置却是 {pred}。目标不对会训出灰图或烧图。",
                "Set model.prediction_type to auto.", "请把 model.prediction_type 设为 auto。")


@rule("prediction_assumed", "info")
def _prediction_assumed(cfg: RunConfig, env: Env):
    pred = cfg.model.prediction_type
    if env.prediction and not env.prediction_known and pred not in ("auto", env.prediction):
        return ("model.prediction_type",
                f"Training as {pred}: the base model file does not say its prediction type (usually {env.prediction} "
                "for this family).",
                f"按 {pred} 训练：底模文件没有写明预测类型（该系列通常是 {env.prediction}）。")


def _prediction(cfg: RunConfig, env: Env) -> str | None:
    pred = cfg.model.prediction_type
    return env.prediction if pred == "auto" else pred


@rule("ztsnr_with_epsilon", "warning")
def _ztsnr_epsilon(cfg: RunConfig, env: Env):
    if cfg.model.zero_terminal_snr and _prediction(cfg, env) == "epsilon":
        return ("model.zero_terminal_snr",
                "Zero terminal SNR with epsilon prediction: at the last step there is no signal left, so an epsilon "
                "model cannot predict anything there (the paper and NoobAI use it with v-prediction).",
                "零终端信噪比配合 epsilon 预测：最后一步已没有信号，epsilon 模型在那里无从预测"
                "（论文与 NoobAI 都配合 v-prediction 使用）。",
                "Set model.prediction_type = v_prediction, or turn zero_terminal_snr off.",
                "请把 model.prediction_type 设为 v_prediction，或关闭 zero_terminal_snr。")


@rule("ztsnr_base_without_option", "warning")
def _ztsnr_base(cfg: RunConfig, env: Env):
    if env.zero_terminal_snr and not cfg.model.zero_terminal_snr:
        return ("model.zero_terminal_snr",
                "The base model was trained with zero terminal SNR (its file carries a ztsnr key) but "
                "model.zero_terminal_snr is off: training and samples would use the plain noise schedule.",
                "底模是用零终端信噪比训练的（文件带有 ztsnr 键），但 model.zero_terminal_snr 未开启："
                "训练和样图会用普通噪声调度。",
                "Turn model.zero_terminal_snr on.", "请开启 model.zero_terminal_snr。")


@rule("ztsnr_sampler", "warning")
def _ztsnr_sampler(cfg: RunConfig, env: Env):
    if cfg.model.zero_terminal_snr and cfg.sampling.sampler in ("heun", "lms"):
        return ("sampling.sampler",
                f"The {cfg.sampling.sampler} sampler has no rescaled-betas option: samples would use the plain "
                "schedule, not the zero-terminal-SNR one the run trains with.",
                f"{cfg.sampling.sampler} 采样器没有重新缩放 beta 的选项：样图会用普通噪声调度，"
                "而不是训练所用的零终端信噪比调度。",
                "Pick euler, euler_a, dpmpp_2m, ddim or unipc.", "请选择 euler、euler_a、dpmpp_2m、ddim 或 unipc。")


@rule("cfg_rescale_without_vpred", "info")
def _cfg_rescale(cfg: RunConfig, env: Env):
    pred = _prediction(cfg, env)
    if cfg.sampling.cfg_rescale and pred and pred != "v_prediction":
        return ("sampling.cfg_rescale",
                f"CFG rescale {cfg.sampling.cfg_rescale:g} is meant for v-prediction models with zero terminal SNR; "
                f"this run is {pred}.",
                f"CFG 重缩放 {cfg.sampling.cfg_rescale:g} 本是为 v-prediction + 零终端信噪比模型设计的；"
                f"本次训练是 {pred}。")


@rule("scale_v_pred_loss_without_vpred", "warning")
def _scale_v_pred_loss(cfg: RunConfig, env: Env):
    pred = _prediction(cfg, env)
    if cfg.training.scale_v_pred_loss_like_noise_pred and pred and pred != "v_prediction":
        return ("training.scale_v_pred_loss_like_noise_pred",
                f"scale_v_pred_loss_like_noise_pred is for v-prediction models; this one is {pred}, so it only "
                "lowers the weight of the noisy steps (sd-scripts refuses it there).",
                f"scale_v_pred_loss_like_noise_pred 用于 v-prediction 模型；当前是 {pred}，"
                "开启后只会降低高噪声步的权重（sd-scripts 在此情况下会拒绝）。",
                "Turn it off, or set model.prediction_type = v_prediction if the base is a v-prediction model.",
                "请关闭此项；如果底模确实是 v-prediction 模型，请把 model.prediction_type 设为 v_prediction。")


@rule("v_pred_like_loss_with_vpred", "warning")
def _v_pred_like_loss(cfg: RunConfig, env: Env):
    if cfg.training.v_pred_like_loss and _prediction(cfg, env) == "v_prediction":
        return ("training.v_pred_like_loss",
                f"v_pred_like_loss {cfg.training.v_pred_like_loss:g} adds a v-prediction-like term to an epsilon "
                "model's loss; this model is already v-prediction, so it only raises the weight of the noisy steps "
                "(sd-scripts refuses it there).",
                f"v_pred_like_loss {cfg.training.v_pred_like_loss:g} 是为 epsilon 模型的损失加上类 v-prediction 项；"
                "当前模型已是 v-prediction，开启后只会提高高噪声步的权重（sd-scripts 在此情况下会拒绝）。",
                "Set training.v_pred_like_loss = 0.", "请把 training.v_pred_like_loss 设为 0。")


@rule("resolution_far_from_native", "warning")
def _resolution(cfg: RunConfig, env: Env):
    native, res = env.native_resolution, cfg.dataset.resolution
    if native and native >= 256 and (res < native * 0.7 or res > native * 1.5):
        bucket_en = f" (and max bucket side {2 * native})" if cfg.dataset.max_bucket_reso < 2 * native else ""
        bucket_zh = f"（分桶最大边长 {2 * native}）" if cfg.dataset.max_bucket_reso < 2 * native else ""
        return ("dataset.resolution",
                f"Training at {res}px is far from this model's native {native}px; results are usually better at "
                f"{native}.",
                f"训练分辨率 {res}px 与模型原生的 {native}px 相差较大；通常用 {native} 效果更好。",
                f"Set dataset.resolution = {native}{bucket_en}.", f"请把训练分辨率设为 {native}{bucket_zh}。")


@rule("sd2_clip_skip", "warning")
def _sd2_clip_skip(cfg: RunConfig, env: Env):
    if _family(cfg, env) == "sd2" and cfg.training.clip_skip > 1:
        return ("training.clip_skip", "Clip skip is an SD1.x habit; SD2 models expect 1.",
                "Clip skip 是 SD1.x 的习惯；SD2 模型应设为 1。")


# ---------------------------------------------------------------------------------------------- device

@rule("cuda_missing", "error")
def _cuda_missing(cfg: RunConfig, env: Env):
    if cfg.training.device == "cuda" and env.device is not None and env.device != "cuda":
        return ("training.device", "training.device is cuda, but this PyTorch sees no CUDA GPU.",
                "training.device 设为 cuda，但 PyTorch 检测不到 CUDA 显卡。",
                "Set training.device = \"auto\" (or \"cpu\"), or install the CUDA build of PyTorch.",
                "请把 training.device 设为 \"auto\"（或 \"cpu\"），或安装 CUDA 版 PyTorch。")


@rule("8bit_without_cuda", "error")
def _8bit(cfg: RunConfig, env: Env):
    device = cfg.training.device if cfg.training.device in ("cpu", "mps") else env.device
    if cfg.optimizer.name.endswith("8bit") and device in ("cpu", "mps"):
        return ("optimizer.name",
                f"{cfg.optimizer.name} needs an NVIDIA GPU (bitsandbytes, CUDA), and none will be used "
                f"(device {device}).",
                f"{cfg.optimizer.name} 需要 NVIDIA 显卡（bitsandbytes、CUDA），而本次不会用 CUDA（设备 {device}）。",
                "Choose AdamW.", "请改用 AdamW。")


@rule("mixed_precision_on_cpu", "warning")
def _mixed_on_cpu(cfg: RunConfig, env: Env):
    mixed = cfg.training.mixed_precision
    if env.device == "cpu" and mixed != "no" and not cfg.training.full_bf16:  # full_bf16_on_cpu says that one
        return ("training.mixed_precision", f"mixed_precision {mixed} is not used on the CPU; training in fp32.",
                f"CPU 上不使用混合精度 {mixed}，改为 fp32 训练。")


# ---------------------------------------------------------------------------------------------- network

@rule("nothing_to_train", "error")
def _nothing(cfg: RunConfig, env: Env):
    if not cfg.network.train_unet and not cfg.network.train_text_encoder:
        return ("network.train_unet", "Nothing to train: both UNet and text encoder are off.",
                "没有要训练的部分：UNet 和文本编码器都关闭了。",
                "Turn on network.train_unet or network.train_text_encoder.",
                "请至少打开 network.train_unet 或 network.train_text_encoder 之一。")


@rule("alpha_above_rank", "warning")
def _alpha_above_rank(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.alpha > n.rank:
        return ("network.alpha",
                f"Alpha {n.alpha:g} above rank {n.rank} amplifies every update; training may blow up.",
                f"alpha {n.alpha:g} 大于 rank {n.rank}，会放大每次更新，训练可能发散。",
                f"Use alpha ≤ rank (about {n.rank / 2:g} is usual).", f"请让 alpha ≤ rank（常用 {n.rank / 2:g}）。")


@rule("dora_dropout", "warning")
def _dora_dropout(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.use_dora and n.dropout > 0:
        return ("network.dropout",
                f"DoRA with dropout {n.dropout:g}: DoRA recomputes the layer on the dropped-out input, which is "
                "slow and memory-hungry.",
                f"DoRA 配合 dropout {n.dropout:g}：DoRA 需对丢弃后的输入重算整层，既慢又占显存。",
                "Set network.dropout = 0.", "请把 network.dropout 设为 0。")
    if n.use_dora and (n.rank_dropout or n.module_dropout):
        key = "network.rank_dropout" if n.rank_dropout else "network.module_dropout"
        return (key, "DoRA with rank or module dropout: DoRA's norm is taken over the whole LoRA while the dropout "
                "leaves out part of it each step (sd-scripts, where these options come from, has no DoRA).",
                "DoRA 配合秩或模块 dropout：DoRA 的范数按完整的 LoRA 计算，而 dropout 每步会丢弃其中一部分"
                "（这些选项来自 sd-scripts，而它没有 DoRA）。",
                "Set network.rank_dropout and module_dropout to 0.", "请把 rank_dropout 和 module_dropout 设为 0。")


@rule("dora_in_samples", "warning")
def _dora_samples(cfg: RunConfig, env: Env):
    if cfg.network.use_dora:
        return ("network.use_dora",
                "DoRA files (dora_scale per input column, LyCORIS's form) apply in WebUI and ComfyUI exactly as in "
                "the samples, which merge the file the way they do; diffusers' load_lora_weights drops dora_scale "
                "for SD/SDXL, so there the file acts as a plain LoRA.",
                "DoRA 文件（按输入列保存 dora_scale，LyCORIS 的形式）在 WebUI 和 ComfyUI 中的效果与样图一致"
                "（样图按它们的方式合并文件）；diffusers 的 load_lora_weights 在 SD/SDXL 上会忽略 dora_scale，"
                "在那里只相当于普通 LoRA。")


@rule("lycoris_with_dora_or_dropout", "error")
def _lycoris_options(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.type != "lora" and (n.use_dora or n.dropout > 0 or n.rank_dropout or n.module_dropout):
        key, what = (("network.use_dora", "DoRA") if n.use_dora else ("network.dropout", f"dropout {n.dropout:g}")
                     if n.dropout else ("network.rank_dropout", "rank/module dropout"))
        return (key, f"{what} is an option of LoRA; the {n.type} layers do not apply it.",
                f"{what} 是 LoRA 的选项，{n.type} 层不会使用它。",
                "Turn it off, or set network.type = lora.", "请关闭它，或把 network.type 设为 lora。")


@rule("loraplus_lora_only", "error")
def _loraplus(cfg: RunConfig, env: Env):
    n = cfg.network
    name = cfg.optimizer.name
    if n.loraplus_lr_ratio and (n.type != "lora" or name in ONE_LR):
        what = (f"{n.type} has no up (B) matrices" if n.type != "lora"
                else f"{name} uses one step size for all groups")
        what_zh = f"{n.type} 没有 up（B）矩阵" if n.type != "lora" else f"{name} 所有参数组只用一个步长"
        return ("network.loraplus_lr_ratio", f"LoRA+ (loraplus_lr_ratio {n.loraplus_lr_ratio:g}) cannot apply: "
                f"{what}.", f"LoRA+（loraplus_lr_ratio {n.loraplus_lr_ratio:g}）无法生效：{what_zh}。",
                "Set network.loraplus_lr_ratio = 0, or train LoRA with another optimizer.",
                "请把 network.loraplus_lr_ratio 设为 0，或用其他优化器训练 LoRA。")


@rule("lycoris_on_dit", "error")
def _lycoris_dit(cfg: RunConfig, env: Env):
    if cfg.network.type != "lora" and _family(cfg, env) == "zimage":
        return ("network.type", f"{cfg.network.type} is for SD1.5/SD2/SDXL; Z-Image trains LoRA.",
                f"{cfg.network.type} 仅用于 SD1.5/SD2/SDXL；Z-Image 训练 LoRA。",
                "Set network.type = lora.", "请把 network.type 设为 lora。")


def _block_wise(cfg: RunConfig) -> bool:
    return blocks.is_set(cfg.network)


@rule("block_wise_where", "error")
def _block_wise_where(cfg: RunConfig, env: Env):
    n = cfg.network
    if not _block_wise(cfg) or (n.type == "lora" and _family(cfg, env) != "zimage"):
        return None
    what, what_zh = ((f"{n.type} is not LoRA", f"{n.type} 不是 LoRA") if n.type != "lora"
                     else ("Z-Image has no UNet blocks", "Z-Image 没有 UNet 块"))
    return ("network.block_dims", f"Block-wise LR weights and dims are options of sd-scripts' LoRA on the SD1.5/SD2/"
            f"SDXL UNet; {what}.",
            f"分层学习率与分层 dim 是 sd-scripts 中 SD1.5/SD2/SDXL UNet 的 LoRA 选项；{what_zh}。",
            "Clear the block-wise fields (down/mid/up_lr_weight, block_dims, …), or train LoRA on an SD model.",
            "请清空分层设置（down/mid/up_lr_weight、block_dims 等），或在 SD 模型上训练 LoRA。")


@rule("block_wise_values", "error")
def _block_wise_values(cfg: RunConfig, env: Env):
    family = _family(cfg, env)
    if not _block_wise(cfg) or family == "zimage":
        return None
    found = []
    for fam in ([family] if family else ["sd15", "sdxl"]):  # unknown family: wrong only if wrong for both
        try:
            blocks.from_config(cfg.network, fam)
            return None
        except ConfigError as e:
            found.append(e)
    e = found[0]
    return (e.key, e.en, e.zh, e.hint_en, e.hint_zh)


@rule("block_lr_one_step_size", "error")
def _block_lr_one_lr(cfg: RunConfig, env: Env):
    family, name = _family(cfg, env), cfg.optimizer.name
    if name not in ("Prodigy", "DAdaptAdam") or not _block_wise(cfg) or family == "zimage":
        return None
    try:
        weights = blocks.lr_weights(cfg.network, family == "sdxl")
    except ConfigError:
        return None  # block_wise_values says what is wrong
    if len({w for w in weights or [] if w}) > 1:
        return ("network.down_lr_weight", f"Block-wise LR weights other than 0 and one shared value cannot apply: "
                f"{name} uses one step size for all groups.",
                f"分层学习率权重除 0 外只能是同一个值：{name} 所有参数组只用一个步长。",
                "Use only 0 and 1 as weights (0 leaves a block out), or another optimizer.",
                "权重只用 0 和 1（0 表示不训练该块），或改用其他优化器。")
    return None


@rule("block_lr_weight_count", "warning")
def _block_lr_count(cfg: RunConfig, env: Env):
    family = _family(cfg, env)
    if family not in ("sd15", "sd2", "sdxl") or not _block_wise(cfg):
        return None
    notes = blocks.lr_weight_notes(cfg.network, family == "sdxl")
    if not notes:
        return None
    key, given, expected = notes[0]
    how, how_zh = ("the missing ones are 1", "缺少的按 1 计") if given < expected else \
        ("the ones past it are ignored", "多出的会被忽略")
    return (f"network.{key}", f"network.{key} has {given} values; this model has {expected} such blocks: {how}, "
            "as in sd-scripts.", f"network.{key} 有 {given} 个值；此模型有 {expected} 个这样的块：{how_zh}"
            "（与 sd-scripts 相同）。", f"Give {expected} values.", f"请给出 {expected} 个值。")


@rule("block_wise_unet_off", "warning")
def _block_wise_unet_off(cfg: RunConfig, env: Env):
    if _block_wise(cfg) and not cfg.network.train_unet:
        return ("network.block_dims", "Block-wise LR weights and dims apply to the UNet, which is not trained "
                "(network.train_unet is off): they do nothing.",
                "分层学习率与分层 dim 只作用于 UNet，而 UNet 未训练（network.train_unet 已关闭）：它们不起作用。",
                "Turn on network.train_unet, or clear the block-wise fields.",
                "请打开 network.train_unet，或清空分层设置。")
    return None


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

def _device(cfg: RunConfig, env: Env) -> str | None:
    return cfg.training.device if cfg.training.device != "auto" else env.device


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
    if cfg.network.train_text_encoder and cfg.dataset.cache_text_encoder_outputs:
        return ("dataset.cache_text_encoder_outputs",
                "Text-encoder outputs cannot be cached while the text encoder is trained.",
                "训练文本编码器时不能缓存文本编码器输出。",
                "Turn off dataset.cache_text_encoder_outputs or network.train_text_encoder.",
                "请关闭 dataset.cache_text_encoder_outputs 或 network.train_text_encoder。")


@rule("cache_text_encoder_captions_change", "warning")
def _cache_te_captions(cfg: RunConfig, env: Env):
    d = cfg.dataset
    if _family(cfg, env) != "zimage" and d.cache_text_encoder_outputs and not cfg.network.train_text_encoder and \
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
    if _family(cfg, env) == "zimage" or sample_prompts.problem(s.prompts, SAMPLERS):  # a DiT pads nothing
        return None
    sizes = [(o.get("width", s.width), o.get("height", s.height))  # a prompt's own --w/--h count too
             for o in (sample_prompts.parse(p).options for p in s.prompts)]
    odd = next(((w, h) for w, h in sizes if w % 64 or h % 64), None)
    if odd:
        return ("sampling.width",
                f"Sample size {odd[0]}x{odd[1]} is not a multiple of 64; the UNet pads odd latents.",
                f"样图尺寸 {odd[0]}x{odd[1]} 不是 64 的倍数，UNet 会对奇数尺寸的 latent 做填充。")


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
    # What models/families/zimage.py can render: ComfyUI's cfg >= 1 (diffusers guidance = cfg - 1), the
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
