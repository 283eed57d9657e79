"""The run config's sections about how it is trained: the optimizer and schedule, the training options, saving
and samples. Every field is declared once here with F (core/config/fields.py); core.config re-exports them."""

from __future__ import annotations

from dataclasses import dataclass

from core.config.fields import (
    OPTIMIZERS,
    SAMPLERS,
    SCHEDULERS,
    TIMESTEP_BIASES,
    TIMESTEP_TYPES,
    F,
)


@dataclass
class OptimizerConfig:
    name: str = F("AdamW", "Optimizer. CAME: Adafactor-like memory, AdamW-like results. AdamWScheduleFree: "
                  "schedule-free AdamW, keeps the LR constant (after the warm-up); files and samples use its averaged "
                  "weights. DAdaptAdam: finds the step size itself (LR 1.0), like Prodigy.",
                  "优化器。CAME：显存接近 Adafactor、效果接近 AdamW。AdamWScheduleFree：免调度的 AdamW，"
                  "学习率保持不变（预热之后），保存的文件和样图使用其平均权重。DAdaptAdam：像 Prodigy 一样"
                  "自己估计步长（学习率 1.0）。", choices=OPTIMIZERS, basic=True)
    lr: float = F(1e-4, "Learning rate (UNet). Prodigy and DAdaptAdam want 1.0.",
                  "学习率（UNet）。Prodigy 和 DAdaptAdam 用 1.0。",
                  min=0.0, max=10.0, basic=True)
    text_encoder_lr: float = F(5e-5, "Learning rate of the text encoder(s).", "文本编码器学习率。", min=0.0, max=10.0,
                               families=("text_encoder_trainable",))
    weight_decay: float = F(0.01, "Weight decay.", "权重衰减。", min=0.0, max=10.0)
    scheduler: str = F("cosine", "Learning-rate schedule.", "学习率调度。", choices=SCHEDULERS)
    warmup: float = F(0.0, "Warm-up: below 1 a share of the steps, else a step count.",
                      "预热：小于 1 表示占总步数的比例，否则为步数。", min=0.0, max=1e9)
    num_cycles: int = F(1, "Restarts for cosine_with_restarts.", "cosine_with_restarts 的重启次数。", min=1, max=1000)
    power: float = F(1.0, "Power of the polynomial schedule.", "多项式调度的幂。", min=0.0, max=100.0)
    min_lr_ratio: float = F(0.1, "cosine_with_min_lr: the learning rate falls along a cosine to this share of "
                            "the start LR, not to 0 (sd-scripts --lr_scheduler_min_lr_ratio).",
                            "cosine_with_min_lr：学习率按余弦下降到起始学习率的这个比例，而不是降到 0"
                            "（sd-scripts 的 --lr_scheduler_min_lr_ratio）。", min=0.0, max=1.0)


@dataclass
class TrainingConfig:
    epochs: int = F(10, "Epochs.", "训练轮数（epoch）。", min=1, max=100000, basic=True)
    batch_size: int = F(1, "Batch size.", "批大小。", min=1, max=1024, basic=True)
    gradient_accumulation_steps: int = F(1, "Gradient accumulation steps.", "梯度累积步数。", min=1, max=1024)
    max_train_steps: int = F(0, "Stop after this many steps; 0 = from epochs.", "最大训练步数；0 表示由轮数决定。",
                             min=0, max=10**9)
    mixed_precision: str = F("fp16", "Mixed precision: no, fp16, or bf16 (RTX 30 and newer).",
                             "混合精度：不用（no）、fp16 或 bf16（RTX 30 系及更新）。", choices=("no", "fp16", "bf16"),
                             basic=True)
    gradient_checkpointing: bool = F(False, "Gradient checkpointing: less memory, slower.",
                                     "梯度检查点：省显存，较慢。")
    blocks_to_swap: int = F(0, "Block swap (sd-scripts --blocks_to_swap): keep this many transformer blocks in CPU "
                            "memory and move each in for its forward and backward pass; 0 = off. Each FLUX block "
                            "swapped saves 0.3 GB (single) to 0.7 GB (double) of bf16 weights and costs speed "
                            "(PCIe transfers). FLUX.1 can swap up to 35 blocks; about 16 fits FLUX.1-dev on a 12 GB "
                            "card. Qwen-Image (60 blocks of 0.7 GB): 16 with fp8_base fits a 24 GB card "
                            "(musubi-tuner's figure).",
                            "块交换（sd-scripts 的 --blocks_to_swap）：把这么多个 transformer 块放在内存里，前向和"
                            "反向时再逐块搬到显卡；0 表示不用。每交换一个 FLUX 块省下 0.3 GB（单流块）到 0.7 GB"
                            "（双流块）的 bf16 权重，但会变慢（PCIe 传输）。FLUX.1 最多可交换 35 块；约 16 块可让 "
                            "FLUX.1-dev 在 12 GB 显卡上训练。Qwen-Image（60 块，每块 0.7 GB）："
                            "配合 fp8_base 交换 16 块可在 24 GB 显卡上训练（musubi-tuner 的数据）。",
                            min=0, max=58, families=("flux", "chroma", "qwen_image"))
    full_bf16: bool = F(False, "Full bf16 (sd-scripts --full_bf16): the LoRA weights, their gradients and the "
                        "optimizer state in bf16 too, with no fp32 copy: less memory, a little less precise. Needs "
                        "mixed_precision bf16 (RTX 30 and newer); on the CPU the whole run is bf16.",
                        "完全 bf16（sd-scripts 的 --full_bf16）：LoRA 权重、梯度和优化器状态也用 bf16，"
                        "不保留 fp32 副本：更省显存，精度略低。需要 mixed_precision = bf16（RTX 30 系及更新）；"
                        "在 CPU 上整个训练都用 bf16。")
    fp8_base: bool = F(False, "fp8 base (sd-scripts --fp8_base): the frozen UNet's linear and conv weights are "
                       "stored in fp8 (float8_e4m3fn, half the memory of fp16) and turned back into the compute "
                       "precision layer by layer while training. The LoRA stays in full precision. SD1.5/SD2/SDXL "
                       "(SDXL on 8–12 GB cards) and Z-Image (its transformer, with the training adapter merged "
                       "first: 16 GB cards without bitsandbytes); not together with model.quantize.",
                       "fp8 底模（sd-scripts 的 --fp8_base）：冻结的 UNet 线性层和卷积层权重以 fp8"
                       "（float8_e4m3fn，显存为 fp16 的一半）保存，训练时逐层转回计算精度。LoRA 仍为全精度。"
                       "适用于 SD1.5/SD2/SDXL（让 SDXL 能在 8–12 GB 显卡上训练）和 Z-Image（其 transformer，"
                       "训练适配器先合并：无需 bitsandbytes 即可在 16 GB 显卡上训练）；"
                       "不能与 model.quantize 同时使用。")
    seed: int = F(42, "Random seed.", "随机种子。", min=0, max=2**32 - 1)
    noise_offset: float = F(0.0, "Noise offset; about 0.1 helps very dark or bright images.",
                            "噪声偏移；约 0.1 有助于很暗或很亮的图。", min=0.0, max=1.0, families=("unet",))
    multires_noise_iterations: int = F(0, "Multi-resolution (pyramid) noise: coarser noise layers added to the "
                                       "noise, for stronger contrast and composition changes; 6–10 is usual, 0 = off. "
                                       "SD families only.",
                                       "多分辨率（金字塔）噪声：在噪声上叠加更粗的噪声层，利于学习对比度和构图；"
                                       "常用 6–10，0 为关闭。仅用于 SD 系列。", min=0, max=20, families=("unet",))
    multires_noise_discount: float = F(0.3, "Multi-resolution noise: weight factor per coarser layer (layer i gets "
                                       "discount^i); 0.3 is usual, 0.8 for strong effect.",
                                       "多分辨率噪声：每层更粗噪声的衰减系数（第 i 层乘以 discount^i）；常用 0.3，"
                                       "0.8 效果更强。", min=0.0, max=1.0, families=("unet",))
    min_snr_gamma: float = F(0.0, "Min-SNR weighting gamma; 5 is recommended, 0 = off.",
                             "Min-SNR 加权 gamma；推荐 5，0 为关闭。", min=0.0, max=100.0, families=("unet",))
    debiased_estimation: bool = F(False, "Debiased estimation loss (sd-scripts --debiased_estimation_loss): each "
                                  "step's loss weighted by 1/sqrt(SNR), or 1/(SNR+1) with v-prediction, SNR clamped "
                                  "to [0.001, 1000].",
                                  "去偏估计损失（sd-scripts 的 --debiased_estimation_loss）："
                                  "每步损失乘以 1/sqrt(SNR)（v-prediction 为 1/(SNR+1)），"
                                  "SNR 限制在 [0.001, 1000]。", families=("unet",))
    scale_v_pred_loss_like_noise_pred: bool = F(
        False, "Scale the v-prediction loss like the noise-prediction loss (sd-scripts "
        "--scale_v_pred_loss_like_noise_pred): each step's loss times SNR/(SNR+1), SNR at most 1000, so noisy steps "
        "weigh as they would for an epsilon model. v-prediction models only.",
        "按噪声预测的方式缩放 v-prediction 损失（sd-scripts 的 --scale_v_pred_loss_like_noise_pred）："
        "每步损失乘以 SNR/(SNR+1)（SNR 最大取 1000），让高噪声步的权重与 epsilon 模型相同。仅用于 v-prediction 模型。",
        families=("unet",))
    v_pred_like_loss: float = F(0.0, "Add a v-prediction-like loss (sd-scripts --v_pred_like_loss): each step's loss "
                                "plus this value times loss·(SNR+1)/SNR (SNR at most 1000), which weighs the noisy "
                                "steps as a v-prediction model does; 0 = off. Epsilon models only.",
                                "加入类 v-prediction 损失（sd-scripts 的 --v_pred_like_loss）：每步损失再加上"
                                "该值 × 损失·(SNR+1)/SNR（SNR 最大取 1000），使高噪声步的权重接近 v-prediction 模型；"
                                "0 为关闭。仅用于 epsilon 模型。", min=0.0, max=10.0, families=("unet",))
    clip_skip: int = F(1, "Clip skip as in WebUI: 2 uses the penultimate layer (SD1.x anime).",
                       "Clip skip（与 WebUI 相同）：2 表示用倒数第二层（SD1.x 二次元常用）。", min=1, max=12,
                       families=("unet",))
    max_token_length: int = F(75, "Caption token length.", "标注最大 token 长度。", choices=(75, 150, 225),
                              families=("unet",))
    device: str = F("auto", "Device: auto, cuda, cpu, or mps.",
                    "设备：自动（auto）、NVIDIA 显卡（cuda）、CPU（cpu）或 Apple 芯片（mps）。",
                    choices=("auto", "cuda", "cpu", "mps"))
    timestep_type: str = F("weighted", "Flow models (Z-Image, FLUX, Chroma): how noise levels are drawn — "
                           "uniform, sigmoid (middle; ai-toolkit's FLUX default), shift (as the sampler, more "
                           "noise), weighted (uniform with a loss weight per level), flux_shift (sigmoid shifted "
                           "by the image's token count as FLUX's scheduler does: more noise for larger images).",
                           "流匹配模型（Z-Image、FLUX、Chroma）：噪声强度的抽取方式——均匀（uniform）、偏中间"
                           "（sigmoid，ai-toolkit 训练 FLUX 的默认值）、与采样器相同（shift，偏高噪声）、加权"
                           "（weighted：均匀抽取并按强度加权损失）、按分辨率偏移（flux_shift：sigmoid 再按图像的"
                           " token 数偏移，与 FLUX 的调度器相同：图越大噪声越高）。",
                           choices=TIMESTEP_TYPES, families=("flow",))
    timestep_bias: str = F("balanced", "Flow models: balanced, high_noise (composition, content) or low_noise "
                           "(details, style).",
                           "流匹配模型：均衡（balanced）、偏高噪声（high_noise，学构图与内容）或偏低噪声"
                           "（low_noise，学细节与风格）。", choices=TIMESTEP_BIASES, families=("flow",))
    differential_guidance: float = F(0.0, "Flow models: differential guidance scale; the target is pushed past itself "
                                     "away from the prediction (3 is usual); 0 = off.",
                                     "流匹配模型：差分引导系数，把目标沿“目标−预测”方向外推（常用 3）；0 为关闭。",
                                     min=0.0, max=20.0, families=("flow",))
    dop_multiplier: float = F(0.0, "Flow models: differential output preservation. Each step also compares the LoRA's "
                              "prediction with the base model's on the caption with the trigger word replaced by "
                              "dop_class_word, and adds this multiple of the difference; 0 = off.",
                              "流匹配模型：差分输出保持（DOP）。每步把标注中的触发词换成 dop_class_word，"
                              "比较 LoRA 与底模的预测，并把差异乘以此系数加入损失；0 为关闭。", min=0.0, max=100.0,
                              families=("flow",))
    dop_class_word: str = F("", "DOP: the class word that stands in for the trigger word (e.g. woman, dog, style).",
                            "DOP：替换触发词的类别词（例如 woman、dog、style）。", families=("flow",))
    resume: str = F("", "Resume from a saved state folder ('auto' = the run's latest).",
                    "从保存的训练状态继续（'auto' 表示本次运行最近的状态）。")


@dataclass
class SavingConfig:
    output_dir: str = F("outputs", "Folder for runs; each run gets <output_dir>/<name>/.",
                        "输出文件夹；每次运行保存在 <output_dir>/<name>/。", basic=True)
    name: str = F("lora", "Run and file name (no slashes).", "运行名与文件名（不能含斜杠）。", basic=True)
    every_n_epochs: int = F(2, "Save a LoRA every N epochs; 0 = only the final file.",
                            "每 N 轮保存一次 LoRA；0 表示只保存最终文件。", min=0, max=100000, basic=True)
    precision: str = F("fp16", "Precision of saved files: fp16, bf16, or float.",
                       "保存精度：fp16、bf16 或 32 位浮点（float）。", choices=("fp16", "bf16", "float"), basic=True)
    every_n_steps: int = F(0, "Also save a LoRA (and samples) every N steps; 0 = off.",
                           "每 N 步也保存一次 LoRA（并生成样图）；0 为关闭。", min=0, max=10**9)
    keep_last: int = F(0, "Keep only the newest N step files; 0 = keep all.",
                       "只保留最新的 N 个按步保存的文件；0 为全部保留。", min=0, max=100000)
    keep_last_epochs: int = F(0, "Keep only the newest N epoch files (name-000002 …); 0 = keep all. The final file "
                              "and files you renamed are never deleted.",
                              "只保留最新的 N 个按轮保存的文件（name-000002 …）；0 为全部保留。"
                              "最终文件和你改过名的文件不会被删除。", min=0, max=100000)
    save_state: bool = F(True, "Save a resumable training state with each LoRA.", "每次保存时同时保存可续训的状态。")
    tensorboard: bool = F(False, "Also write the losses, learning rate and validation loss as TensorBoard scalars "
                          "in <run>/tensorboard (needs the tensorboard package).",
                          "同时把损失、学习率和验证损失写成 TensorBoard 标量，保存在 <运行>/tensorboard"
                          "（需要安装 tensorboard 包）。")


@dataclass
class SamplingConfig:
    prompts: list[str] = F([], "Sample prompts rendered from each saved file (one per line). kohya's flags set one "
                           "sample's options: --n negative prompt, --w/--h size, --s steps, --d seed, --l CFG scale, "
                           "--ss sampler (e.g. 'a cat --w 768 --d 42').",
                           "每次保存后用保存的文件生成的样图提示词（每行一个）。可用 kohya 的参数单独设置某张样图："
                           "--n 反向提示词，--w/--h 尺寸，--s 步数，--d 种子，--l CFG，--ss 采样器"
                           "（例如 'a cat --w 768 --d 42'）。", basic=True)
    negative_prompt: str = F("", "Negative prompt for samples.", "样图的反向提示词。")
    steps: int = F(20, "Sampling steps.", "采样步数。", min=1, max=1000)
    cfg: float = F(7.0, "CFG scale.", "CFG 引导系数。", min=0.0, max=100.0)
    cfg_rescale: float = F(0.0, "CFG rescale φ for samples (0 = off; about 0.7 for v-prediction models with zero "
                           "terminal SNR). Written in the PNG as 'CFG Rescale' (WebUI's CFG Rescale extension) and "
                           "'Rescale CFG' (Forge's built-in).",
                           "样图的 CFG 重缩放 φ（0 为关闭；v-prediction + 零终端信噪比模型约 0.7）。"
                           "PNG 中写作 'CFG Rescale'（WebUI 的 CFG Rescale 扩展）和 'Rescale CFG'（Forge 内置）。",
                           min=0.0, max=1.0, families=("unet",))
    seed: int = F(1234, "Sample seed (CPU noise, same seed = same image).", "样图种子（CPU 噪声，同种子同图）。",
                  min=0, max=2**32 - 1)
    width: int = F(512, "Sample width (multiple of 8).", "样图宽度（8 的倍数）。", min=64, max=8192, multiple_of=8)
    height: int = F(512, "Sample height (multiple of 8).", "样图高度（8 的倍数）。", min=64, max=8192, multiple_of=8)
    sampler: str = F("euler", "Sampler (deterministic ones reproduce in WebUI and ComfyUI).",
                     "采样器（确定性采样器可在 WebUI 和 ComfyUI 中复现）。", choices=SAMPLERS)
