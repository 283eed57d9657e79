"""The run config: every training setting declared once, with its type, default, range and help.

Load order: defaults → optional preset → the run file → ``--set section.key=value`` overrides.
Nothing is repaired silently: a wrong key, type or value raises ``ConfigError`` naming the key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from core.errors import ConfigError
from core.fsutil import atomic_write_text

SCHEMA_VERSION = 1
SECTIONS = ("model", "dataset", "network", "optimizer", "training", "saving", "sampling")

OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "Adafactor", "CAME", "AdamWScheduleFree", "DAdaptAdam")
SCHEDULERS = ("constant", "cosine", "cosine_with_restarts", "linear", "polynomial", "constant_with_warmup",
              "cosine_with_min_lr")
SAMPLERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "heun", "lms")
FAMILIES = ("sd15", "sd2", "sdxl", "zimage")
ZIMAGE_VARIANTS = ("turbo", "deturbo", "base")
TIMESTEP_TYPES = ("uniform", "sigmoid", "shift", "weighted")     # training/flow.py draws them
TIMESTEP_BIASES = ("balanced", "high_noise", "low_noise")
DIT_TARGETS = ("attention", "feed_forward", "adaLN")


def F(default: Any, en: str, zh: str, *, choices: tuple | None = None, min: float | None = None,
      max: float | None = None, multiple_of: int | None = None, basic: bool = False,
      families: tuple[str, ...] | None = None) -> Any:
    """Declare one field: default, help text in both languages, and what values are allowed.

    families: the model families the field applies to, by family name ("zimage") or by a trait that family
    modules list in TRAITS ("unet": the SD UNets; "dit", "flow": DiT and flow-matching models). None = all.
    The Params form hides a field that does not apply to the chosen base; its value stays in the TOML.
    """
    meta = {"en": en, "zh": zh, "choices": choices, "min": min, "max": max, "multiple_of": multiple_of,
            "basic": basic, "families": families}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    base: str = F("", "Base model: a .safetensors file, a diffusers folder, or a hub id (org/name or org/name@rev).",
                  "底模：.safetensors 文件、diffusers 文件夹，或 hub id（org/name 或 org/name@版本）。", basic=True)
    family: str = F("auto", "Model family; auto detects it from the file.", "模型系列；auto 表示从文件自动识别。",
                    choices=("auto", *FAMILIES))
    prediction_type: str = F("auto", "epsilon or v_prediction; auto reads it from the model.",
                             "预测类型 epsilon 或 v_prediction；auto 表示从模型读取。",
                             choices=("auto", "epsilon", "v_prediction"), families=("unet",))
    zero_terminal_snr: bool = F(False, "Zero terminal SNR: rescale the noise schedule's betas so the last step is "
                                "pure noise, in training and in samples, as NoobAI/Illustrious v-pred models were "
                                "trained. Use with v_prediction.",
                                "零终端信噪比（ZTSNR）：重新缩放噪声调度的 beta，使最后一步为纯噪声，"
                                "训练和样图都使用；NoobAI/Illustrious v-pred 模型即如此训练。需配合 v_prediction。",
                                families=("unet",))
    vae: str = F("", "Optional separate VAE (file or folder); empty uses the base model's VAE.",
                 "可选的独立 VAE（文件或文件夹）；留空则用底模自带的 VAE。")
    variant: str = F("turbo", "Z-Image only: turbo (8-step distilled), deturbo (de-distilled) or base. The file "
                     "cannot tell them apart, so say which.",
                     "仅 Z-Image：turbo（8 步蒸馏版）、deturbo（去蒸馏版）或 base（基础版）。"
                     "文件本身无法区分，需要手动选择。",
                     choices=ZIMAGE_VARIANTS, families=("zimage",))
    training_adapter: str = F("none", "Z-Image Turbo only: a training adapter merged into the base while training and "
                              "never saved: none, v1, v2 (ostris/zimage_turbo_training_adapter) or a .safetensors "
                              "file. Samples use the plain Turbo base, as users will.",
                              "仅 Z-Image Turbo：训练时合并进底模、但不会保存的训练适配器：none、v1、v2"
                              "（ostris/zimage_turbo_training_adapter）或一个 .safetensors 文件。样图用不含适配器的 "
                              "Turbo 底模生成，与用户实际使用一致。", families=("zimage",))
    quantize: str = F("none", "Low VRAM: keep the frozen transformer weights in 8 bits (int8, bitsandbytes, CUDA "
                      "only); the adapter is merged before. Z-Image only.",
                      "低显存：冻结的 transformer 权重以 8 位保存（int8，bitsandbytes，仅 CUDA）；"
                      "训练适配器在此之前合并。仅 Z-Image。", choices=("none", "int8"), families=("dit",))
    download_source: str = F("auto", "Where hub ids (base models, training adapters, taggers) are downloaded from: "
                             "huggingface, mirror (hub_mirror), modelscope, or auto (DANLU_DOWNLOAD_SOURCE, else "
                             "HF_ENDPOINT, else huggingface).",
                             "hub id（底模、训练适配器、打标模型）的下载源：huggingface、"
                             "mirror（镜像，见 hub_mirror）、"
                             "modelscope（魔搭），或 auto（读环境变量 DANLU_DOWNLOAD_SOURCE，其次 HF_ENDPOINT，"
                             "否则 huggingface）。", choices=("auto", "huggingface", "mirror", "modelscope"))
    hub_mirror: str = F("https://hf-mirror.com", "The Hugging Face mirror used when download_source = mirror.",
                        "download_source = mirror 时使用的 Hugging Face 镜像地址。")


@dataclass
class DatasetConfig:
    dir: str = F("", "Parent folder holding <repeats>_<name> subfolders of images and captions.",
                 "训练集父文件夹，其中是 <重复次数>_<名称> 形式的子文件夹（图片和标注）。", basic=True)
    reg_dir: str = F("", "Optional regularisation parent folder, same naming.",
                     "可选的正则化图片父文件夹，命名规则相同。")
    resolution: int = F(512, "Training resolution (side of the square area); SD1.5 512, SDXL 1024.",
                        "训练分辨率（正方形面积的边长）；SD1.5 用 512，SDXL 用 1024。",
                        min=256, max=4096, multiple_of=64, basic=True)
    trigger_word: str = F("", "Trigger word put first in every caption.", "触发词，放在每条标注的最前面。", basic=True)
    caption_extension: str = F(".txt", "Extension of caption files next to the images.", "标注文件的扩展名。")
    enable_bucket: bool = F(True, "Aspect-ratio buckets: train images at their own shape.",
                            "启用长宽比分桶，按图片原比例训练。")
    min_bucket_reso: int = F(256, "Smallest bucket side.", "分桶最小边长。", min=64, max=4096, multiple_of=8)
    max_bucket_reso: int = F(1024, "Largest bucket side (use 2048 for SDXL at 1024).",
                             "分桶最大边长（SDXL 1024 建议 2048）。", min=64, max=8192, multiple_of=8)
    bucket_reso_steps: int = F(64, "Bucket side step in pixels.", "分桶边长步进（像素）。",
                               min=8, max=256, multiple_of=8)
    bucket_no_upscale: bool = F(False, "Never upscale small images.", "不放大小图。")
    shuffle_caption: bool = F(False, "Shuffle caption tags each step.", "每步打乱标注中的标签顺序。")
    keep_tokens: int = F(0, "Tags kept in front when shuffling (set to the number of trigger tags).",
                         "打乱时保持在最前面的标签数（设为触发词个数）。", min=0, max=255)
    caption_dropout_rate: float = F(0.0, "Share of steps trained with an empty caption.", "以空标注训练的比例。",
                                    min=0.0, max=1.0)
    caption_tag_dropout_rate: float = F(0.0, "Each step, drop each comma-separated tag with this probability; the "
                                        "first keep_tokens tags always stay. 0 = off.",
                                        "每步以此概率丢弃每个逗号分隔的标签；前 keep_tokens 个标签始终保留。"
                                        "0 为关闭。",
                                        min=0.0, max=1.0)
    flip_aug: bool = F(False, "Random horizontal flips (not for asymmetric subjects).",
                       "随机水平翻转（不对称主体勿用）。")
    cache_latents: str = F("memory", "Cache VAE latents: none, memory, or disk (reused across runs).",
                           "缓存 VAE latent：none（不缓存）、memory（内存）或 disk（磁盘，可跨运行复用）。",
                           choices=("none", "memory", "disk"))
    cache_text_encoder_outputs: bool = F(False, "Cache text-encoder outputs (only with a frozen text encoder).",
                                         "缓存文本编码器输出（仅在不训练文本编码器时）。")
    num_workers: int = F(0, "Data loader worker processes.", "数据加载进程数。", min=0, max=64)
    validation_split: float = F(0.0, "Share of the images held out for the validation loss, scored at every save "
                                "with fixed noise so epochs and runs compare (0 = none). The same images are held out "
                                "in every run of this dataset; they are not trained on.",
                                "留作验证集的图片比例：每次保存时用固定噪声计算验证损失，可在不同轮次和不同运行之间比较"
                                "（0 为不使用）。同一数据集的每次运行留出的是同一批图，它们不参与训练。",
                                min=0.0, max=0.5)
    validation_dir: str = F("", "A separate folder of validation images (same layout as the dataset), scored "
                            "instead of a held-out share; empty = none.",
                            "单独的验证集文件夹（结构与训练集相同），代替按比例留出；留空为不使用。")


@dataclass
class NetworkConfig:
    rank: int = F(32, "LoRA rank (dim): capacity of the LoRA. 8–64 is usual.", "LoRA 秩（dim）：容量，常用 8–64。",
                  min=1, max=1024, basic=True)
    alpha: float = F(16.0, "LoRA alpha; scale = alpha / rank. About rank/2 is usual.",
                     "LoRA alpha；缩放 = alpha / rank，常用 rank 的一半。", min=0.0, max=4096.0, basic=True)
    train_unet: bool = F(True, "Train LoRA on the UNet.", "训练 UNet 的 LoRA。")
    train_text_encoder: bool = F(True, "Train LoRA on the text encoder(s).", "训练文本编码器的 LoRA。",
                                 families=("unet",))
    conv_dim: int = F(0, "LoCon: rank for 3×3 conv layers; 0 = off.", "LoCon：3×3 卷积层的秩；0 为关闭。",
                      min=0, max=1024, families=("unet",))
    conv_alpha: float = F(1.0, "LoCon alpha for conv layers.", "LoCon 卷积层的 alpha。", min=0.0, max=4096.0,
                          families=("unet",))
    dropout: float = F(0.0, "LoRA dropout (train only).", "LoRA dropout（仅训练时）。", min=0.0, max=1.0)
    loraplus_lr_ratio: float = F(0.0, "LoRA+: the up (B) matrices learn at LR × this ratio (16 is usual); 0 = off. "
                                 "LoRA only, not with Prodigy.",
                                 "LoRA+：up（B）矩阵的学习率为 LR × 此倍数（常用 16）；0 为关闭。仅限 LoRA，"
                                 "不能与 Prodigy 同用。", min=0.0, max=1000.0)
    rank_dropout: float = F(0.0, "Rank dropout (train only, LoRA): each step, each rank of a layer is dropped for "
                            "a sample with this probability, the rest scaled up. 0.1 is usual; 0 = off.",
                            "秩 dropout（仅训练时，LoRA）：每步每个样本以此概率丢弃层的每个秩，其余按比例放大。"
                            "常用 0.1；0 为关闭。", min=0.0, max=0.99)
    module_dropout: float = F(0.0, "Module dropout (train only, LoRA): each step, a layer's whole LoRA is skipped "
                              "with this probability. 0.1 is usual; 0 = off.",
                              "模块 dropout（仅训练时，LoRA）：每步以此概率跳过某层的整个 LoRA。常用 0.1；0 为关闭。",
                              min=0.0, max=1.0)
    down_lr_weight: str = F("", "Block-wise LR (UNet, LoRA): weights of the down blocks, shallow to deep, as "
                            "sd-scripts: 12 comma-separated values for SD1.5/SD2, 9 for SDXL (the first has no "
                            "LoRA), or a preset cosine, sine, linear, reverse_linear, zeros with optional +number "
                            "(e.g. sine+0.5). A block at weight 0 gets no LoRA. Empty = all 1.",
                            "分层学习率（UNet，LoRA）：down 层的权重，由浅到深，与 sd-scripts 相同：SD1.5/SD2 为 12 "
                            "个逗号分隔的值，SDXL 为 9 个（第一个没有 LoRA），或预设 cosine、sine、linear、"
                            "reverse_linear、zeros，可加 +数字（如 sine+0.5）。权重为 0 的块不加 LoRA。"
                            "留空 = 全部为 1。",
                            families=("unet",))
    mid_lr_weight: str = F("", "Block-wise LR: weight of the mid block (SD1.5/SD2: 1 value; SDXL: 3). Empty = 1.",
                           "分层学习率：mid 层的权重（SD1.5/SD2 为 1 个值；SDXL 为 3 个）。留空 = 1。",
                           families=("unet",))
    up_lr_weight: str = F("", "Block-wise LR: weights of the up blocks, deep to shallow (12 values for SD1.5/SD2, 9 "
                          "for SDXL) or a preset, as down_lr_weight. Empty = all 1.",
                          "分层学习率：up 层的权重，由深到浅（SD1.5/SD2 为 12 个值，SDXL 为 9 个），或预设，"
                          "同 down_lr_weight。留空 = 全部为 1。", families=("unet",))
    block_lr_zero_threshold: float = F(0.0, "Block-wise LR: a weight not above this becomes 0 (that block gets no "
                                       "LoRA).", "分层学习率：不大于此值的权重视为 0（该块不加 LoRA）。",
                                       min=0.0, max=100.0, families=("unet",))
    block_dims: str = F("", "Block-wise dims (UNet, LoRA): rank of each block's Linear/1×1 layers, as sd-scripts "
                        "numbers them: 25 comma-separated values for SD1.5/SD2 (12 down, mid, 12 up), 23 for SDXL. "
                        "0 = no LoRA in that block. Empty = rank everywhere.",
                        "分层 dim（UNet，LoRA）：各块 Linear/1×1 层的秩，编号与 sd-scripts 相同：SD1.5/SD2 为 25 个"
                        "逗号分隔的值（12 down、mid、12 up），SDXL 为 23 个。0 表示该块不加 LoRA。"
                        "留空 = 全部用 rank。",
                        families=("unet",))
    block_alphas: str = F("", "Block-wise alphas: one per block (25 or 23), with block_dims or LR weights. "
                          "Empty = alpha everywhere.",
                          "分层 alpha：每块一个（25 或 23 个），需配合 block_dims 或分层学习率。留空 = 全部用 alpha。",
                          families=("unet",))
    conv_block_dims: str = F("", "Block-wise LoCon dims: rank of each block's 3×3 convs (25 or 23 values), with "
                             "block_dims or LR weights. Empty = conv_dim everywhere.",
                             "分层 LoCon dim：各块 3×3 卷积的秩（25 或 23 个值），需配合 block_dims 或分层学习率。"
                             "留空 = 全部用 conv_dim。", families=("unet",))
    conv_block_alphas: str = F("", "Block-wise LoCon alphas: one per block (25 or 23), with conv_block_dims. "
                               "Empty = conv_alpha everywhere.",
                               "分层 LoCon alpha：每块一个（25 或 23 个），需配合 conv_block_dims。"
                               "留空 = 全部用 conv_alpha。", families=("unet",))
    use_dora: bool = F(False, "DoRA (weight-decomposed LoRA); needs a loader that supports it.",
                       "DoRA（权重分解 LoRA）；需要支持它的加载器。")
    type: str = F("lora", "Network type: lora (LoRA, with LoCon when conv_dim > 0), loha (LyCORIS LoHa) or lokr "
                  "(LyCORIS LoKr). LoHa/LoKr files load in WebUI's built-in Lora extension and ComfyUI, not in "
                  "diffusers; rank/alpha and conv_dim/conv_alpha apply to them as well.",
                  "网络类型：lora（LoRA，conv_dim > 0 时为 LoCon）、loha（LyCORIS LoHa）或 lokr（LyCORIS LoKr）。"
                  "LoHa/LoKr 文件可在 WebUI 自带的 Lora 扩展和 ComfyUI 中加载，diffusers 不支持；rank/alpha 与 "
                  "conv_dim/conv_alpha 同样适用。", choices=("lora", "loha", "lokr"))
    dit_targets: list[str] = F(list(DIT_TARGETS), "DiT models (Z-Image): the block linears that get LoRA — attention "
                               "(to_q/k/v/out), feed_forward (w1/w2/w3), adaLN (modulation).",
                               "DiT 模型（Z-Image）：加 LoRA 的模块——attention（to_q/k/v/out）、feed_forward"
                               "（w1/w2/w3）、adaLN（调制层）。", choices=DIT_TARGETS, families=("dit",))
    dit_refiners: bool = F(False, "DiT models: also train the noise and context refiner blocks (usually only the main "
                           "blocks are trained).",
                           "DiT 模型：同时训练噪声与文本 refiner 块（通常只训练主干块）。", families=("dit",))


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
                               families=("unet",))
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
                             "混合精度：no、fp16 或 bf16（RTX 30 系及更新）。", choices=("no", "fp16", "bf16"),
                             basic=True)
    gradient_checkpointing: bool = F(False, "Gradient checkpointing: less memory, slower.",
                                     "梯度检查点：省显存，较慢。")
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
    device: str = F("auto", "Device: auto, cuda, cpu, or mps.", "设备：auto、cuda、cpu 或 mps。",
                    choices=("auto", "cuda", "cpu", "mps"))
    timestep_type: str = F("weighted", "Flow models (Z-Image): how noise levels are drawn — uniform, sigmoid "
                           "(middle), shift (as the sampler, more noise), weighted (uniform with a loss weight per "
                           "level).",
                           "流匹配模型（Z-Image）：噪声强度的抽取方式——uniform（均匀）、sigmoid（偏中间）、"
                           "shift（与采样器相同，偏高噪声）、weighted（均匀抽取并按强度加权损失）。",
                           choices=TIMESTEP_TYPES, families=("flow",))
    timestep_bias: str = F("balanced", "Flow models: balanced, high_noise (composition, content) or low_noise "
                           "(details, style).",
                           "流匹配模型：balanced（均衡）、high_noise（偏高噪声，学构图与内容）或 low_noise"
                           "（偏低噪声，学细节与风格）。", choices=TIMESTEP_BIASES, families=("flow",))
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
    precision: str = F("fp16", "Precision of saved files: fp16, bf16, or float.", "保存精度：fp16、bf16 或 float。",
                       choices=("fp16", "bf16", "float"), basic=True)
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


SECTION_CLASSES = {"model": ModelConfig, "dataset": DatasetConfig, "network": NetworkConfig,
                   "optimizer": OptimizerConfig, "training": TrainingConfig, "saving": SavingConfig,
                   "sampling": SamplingConfig}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    saving: SavingConfig = field(default_factory=SavingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    schema_version: int = SCHEMA_VERSION

    def get(self, path: str) -> Any:
        section, key = path.split(".", 1)
        return getattr(getattr(self, section), key)

    @property
    def run_dir(self) -> Path:
        return Path(self.saving.output_dir) / self.saving.name


@dataclass(frozen=True)
class FieldSpec:
    """One declared field, as the UI, --help and the docs see it."""

    section: str
    name: str
    type: type
    default: Any
    en: str
    zh: str
    choices: tuple | None
    min: float | None
    max: float | None
    multiple_of: int | None
    basic: bool
    families: tuple[str, ...] | None = None   # None: every family (see F)

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def help(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list}


def schema() -> list[FieldSpec]:
    """Every field of every section, in declaration order."""
    specs = []
    for section, cls in SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            m = f.metadata
            specs.append(FieldSpec(section, f.name, _TYPES[f.type], default, m["en"], m["zh"], m["choices"],
                                   m["min"], m["max"], m["multiple_of"], m["basic"],
                                   m.get("families")))
    return specs


def field_spec(path: str) -> FieldSpec:
    for spec in schema():
        if spec.path == path:
            return spec
    raise KeyError(path)


def default_config() -> RunConfig:
    return RunConfig()


def to_dict(cfg: RunConfig) -> dict:
    """The config as nested plain data, in schema order (what the TOML holds)."""
    out: dict[str, Any] = {"schema_version": cfg.schema_version}
    for section in SECTIONS:
        out[section] = dataclasses.asdict(getattr(cfg, section))
    return out


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings"}[t]


def _type_name_zh(t: type) -> str:
    return {str: "字符串", int: "整数", float: "数字", bool: "true 或 false", list: "字符串列表"}[t]


def _check_value(spec: FieldSpec, value: Any) -> Any:
    """Return the value with the field's type, or raise ConfigError. No silent repair."""
    path = spec.path
    t = spec.type
    ok = (t is bool and isinstance(value, bool)) or \
         (t is int and isinstance(value, int) and not isinstance(value, bool)) or \
         (t is float and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
         (t is str and isinstance(value, str)) or \
         (t is list and isinstance(value, list) and all(isinstance(v, str) for v in value))
    if not ok:
        raise ConfigError(
            f"{path}: expected {_type_name(t)}, got {value!r} ({type(value).__name__}).",
            f"{path}：应为{_type_name_zh(t)}，实际是 {value!r}（{type(value).__name__}）。",
            f"Set {path} to {_type_name(t)}, for example {path.split('.')[1]} = {_example(spec)}.",
            f"把 {path} 改为{_type_name_zh(t)}，例如 {path.split('.')[1]} = {_example(spec)}。", key=path)
    if t is float:
        value = float(value)
    # a list field takes its items from the choices
    wrong = [v for v in value if v not in spec.choices][:1] if spec.choices is not None and t is list else \
        [value] if spec.choices is not None and value not in spec.choices else []
    if wrong:
        value = wrong[0]
        choices = ", ".join(map(str, spec.choices))
        close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1, cutoff=0.5)
        hint_en = f"Did you mean '{close[0]}'?" if close else f"Use one of: {choices}."
        hint_zh = f"是不是想写 '{close[0]}'？" if close else f"请使用其中之一：{choices}。"
        raise ConfigError(f"{path}: {value!r} is not one of {choices}.",
                          f"{path}：{value!r} 不在可选值 {choices} 中。",
                          hint_en, hint_zh, key=path)
    if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
        raise ConfigError(f"{path}: {value!r} is out of range; expected {spec.min} to {spec.max}.",
                          f"{path}：{value!r} 超出范围，应在 {spec.min} 到 {spec.max} 之间。",
                          f"Choose a value between {spec.min} and {spec.max}.",
                          f"请填写 {spec.min} 到 {spec.max} 之间的值。", key=path)
    if spec.multiple_of and value % spec.multiple_of:
        lower = value - value % spec.multiple_of
        raise ConfigError(f"{path}: {value} is not a multiple of {spec.multiple_of}.",
                          f"{path}：{value} 不是 {spec.multiple_of} 的倍数。",
                          f"Use {lower} or {lower + spec.multiple_of}.",
                          f"请改用 {lower} 或 {lower + spec.multiple_of}。",
                          key=path)
    return value


def _example(spec: FieldSpec) -> str:
    return {str: '"…"', int: "1", float: "0.5", bool: "true", list: '["…"]'}[spec.type]


def _check_name(cfg: RunConfig) -> None:
    name = cfg.saving.name
    if not name or name in (".", "..") or re.search(r'[\\/:*?"<>|\x00-\x1f]', name):
        raise ConfigError(f"saving.name: {name!r} cannot be used as a file name.",
                          f"saving.name：{name!r} 不能用作文件名。",
                          "Use letters, digits, Chinese characters, '-' or '_', with no slashes.",
                          "请使用字母、数字、中文、'-' 或 '_'，不要含斜杠等特殊字符。", key="saving.name")


def _unknown(path: str, valid: list[str], everywhere: list[str]) -> ConfigError:
    name = path.rsplit(".", 1)[-1]
    # The right key in the wrong section first, then the closest spelling.
    close = [p for p in everywhere if p.rsplit(".", 1)[-1] == name][:1] or \
        difflib.get_close_matches(path, everywhere, n=1, cutoff=0.6) or \
        difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        hint = close[0] if "." in close[0] or "." not in path else f"{path.rsplit('.', 1)[0]}.{close[0]}"
        return ConfigError(f"Unknown key '{path}'. Did you mean '{hint}'?",
                           f"未知的键 '{path}'。是不是想写 '{hint}'？",
                           f"Rename '{path}' to '{hint}'.", f"把 '{path}' 改为 '{hint}'。", key=path)
    return ConfigError(f"Unknown key '{path}'.", f"未知的键 '{path}'。",
                       "Remove it; `python launcher.py train --help-config` lists every key.",
                       "请删除它；`python launcher.py train --help-config` 列出了所有键。", key=path)


def merge_dict(cfg: RunConfig, data: dict) -> RunConfig:
    """Apply nested data (as read from TOML) onto a copy of cfg, validating every key and value."""
    cfg = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s)) for s in SECTIONS})
    specs = {s.path: s for s in schema()}
    everywhere = list(specs)
    for section, values in data.items():
        if section == "schema_version":
            if values != SCHEMA_VERSION:
                raise ConfigError(f"schema_version {values!r} is not supported (this Danlu reads {SCHEMA_VERSION}).",
                                  f"不支持 schema_version {values!r}（当前版本读取 {SCHEMA_VERSION}）。",
                                  f"Set schema_version = {SCHEMA_VERSION}.",
                                  f"请设 schema_version = {SCHEMA_VERSION}。",
                                  key="schema_version")
            continue
        if section not in SECTION_CLASSES:
            if not isinstance(values, dict):
                raise _unknown(section, [], everywhere)
            close = difflib.get_close_matches(section, SECTIONS, n=1, cutoff=0.6)
            if close:
                raise ConfigError(f"Unknown section '[{section}]'. Did you mean '[{close[0]}]'?",
                                  f"未知的段 '[{section}]'。是不是想写 '[{close[0]}]'？",
                                  f"Rename it to [{close[0]}].", f"请改为 [{close[0]}]。", key=section)
            raise ConfigError(f"Unknown section '[{section}]'.", f"未知的段 '[{section}]'。",
                              f"Sections are: {', '.join(SECTIONS)}.", f"可用的段：{', '.join(SECTIONS)}。",
                              key=section)
        if not isinstance(values, dict):
            raise ConfigError(f"'{section}' must be a table ([{section}]).",
                              f"'{section}' 必须是一个表（[{section}]）。",
                              key=section)
        target = getattr(cfg, section)
        valid = [f.name for f in dataclasses.fields(target)]
        for key, value in values.items():
            path = f"{section}.{key}"
            if path not in specs:
                raise _unknown(path, valid, everywhere)
            setattr(target, key, _check_value(specs[path], value))
    _check_name(cfg)
    return cfg


def from_dict(data: dict) -> RunConfig:
    return merge_dict(default_config(), data)


def parse_toml(text: str, source: str = "<text>") -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = m.group(1) if m else "?"
        raise ConfigError(f"{source}: TOML syntax error at line {line}: {e}",
                          f"{source}：第 {line} 行 TOML 语法错误：{e}",
                          "Check quotes, brackets and '=' on that line; Windows paths need single quotes or '\\\\'.",
                          "请检查该行的引号、括号和等号；Windows 路径请用单引号，或把 '\\' 写成 '\\\\'。",
                          key=f"line {line}") from None


def parse_override(item: str) -> tuple[str, Any]:
    """'section.key=value' → (path, value). The value is read as TOML, else taken as a plain string."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value.",
                          f"--set {item!r}：格式应为 section.key=value。",
                          "For example: --set network.rank=16", "例如：--set network.rank=16", key=item)
    path, raw = item.split("=", 1)
    path = path.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    for item in overrides:
        path, value = parse_override(item)
        if "." not in path:
            raise _unknown(path, [], [s.path for s in schema()])
        section, key = path.split(".", 1)
        cfg = merge_dict(cfg, {section: {key: value}})
    return cfg


def load(path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    """defaults → preset → the run file → overrides."""
    cfg = default_config()
    if preset:
        from core.presets import preset_dict
        cfg = merge_dict(cfg, preset_dict(preset))
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"Config file not found: {p}", f"找不到配置文件：{p}",
                              "Check the path, or create one with `python launcher.py demo`.",
                              "请检查路径，或用 `python launcher.py demo` 生成一个。", key=str(p)) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p} is not UTF-8 text.", f"{p} 不是 UTF-8 文本。", "Save it as UTF-8.",
                              "请以 UTF-8 编码保存。", key=str(p)) from None
        cfg = merge_dict(cfg, parse_toml(text, str(p)))
    return apply_overrides(cfg, overrides or [])


def loads(text: str, source: str = "<text>") -> RunConfig:
    return from_dict(parse_toml(text, source))


def dumps(cfg: RunConfig) -> str:
    import tomli_w

    return tomli_w.dumps(to_dict(cfg), multiline_strings=False)


def save(cfg: RunConfig, path: str | Path) -> Path:
    """Write the TOML atomically (temp file, then rename)."""
    return atomic_write_text(Path(path), dumps(cfg))


def describe() -> str:
    """Every key with its type, default, allowed values and help: for --help-config and the docs."""
    lines = []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for s in (s for s in schema() if s.section == section):
            allowed = f" one of {', '.join(map(str, s.choices))}" if s.choices else \
                (f" {s.min}..{s.max}" if s.min is not None else "")
            lines.append(f"  {s.name} = {s.default!r}  ({s.type.__name__}{allowed})  {s.en}")
    return "\n".join(lines)


def with_values(config: RunConfig | dict, values: dict[str, Any]) -> RunConfig | dict:
    """The config with `values` ({"section.key": value}) set, each validated as in a run file; the same form
    back (a RunConfig, or the nested dict the page holds). Raises ConfigError naming the key."""
    cfg = config if isinstance(config, RunConfig) else from_dict(config)
    data: dict[str, dict] = {}
    for path, value in values.items():
        section, _, key = path.partition(".")
        data.setdefault(section, {})[key] = value
    new = merge_dict(cfg, data)
    return new if isinstance(config, RunConfig) else to_dict(new)


def merge_lenient(cfg: RunConfig, data: dict) -> tuple[RunConfig, list[str], list[ConfigError], int]:
    """Apply nested data key by key, as the page imports settings: a bad value keeps the old one (its ConfigError
    is returned), an unknown key or section is listed, the rest is applied. Returns (config, unknown, rejected,
    number applied)."""
    specs = {s.path for s in schema()}
    unknown: list[str] = []
    rejected: list[ConfigError] = []
    applied = 0
    for section, values in data.items():
        if section == "schema_version":
            continue
        if not isinstance(values, dict) or section not in SECTIONS:
            unknown.append(section if not isinstance(values, dict) else f"[{section}]")
            continue
        for key, value in values.items():
            if f"{section}.{key}" not in specs:
                unknown.append(f"{section}.{key}")
                continue
            try:
                cfg = merge_dict(cfg, {section: {key: value}})
                applied += 1
            except ConfigError as e:
                rejected.append(e)
    return cfg, unknown, rejected, applied
