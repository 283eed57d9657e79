"""The rules about the run's inputs and the machine: the base model and dataset, family and prediction type,
zero terminal SNR, resolution and clip skip, the device (CUDA, 8-bit optimizers, mixed precision on the CPU).
Registered in core.checks.base.RULES in the order core.checks imports them."""

from __future__ import annotations

from core.checks.base import Env, _family, _prediction, rule
from core.config import RunConfig

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
