"""The run config's sections about what is trained: the base model, the dataset, the network (LoRA and its
variants). Every field is declared once here with F (core/config/fields.py); core.config re-exports them."""

from __future__ import annotations

from dataclasses import dataclass

from core.config.fields import (
    DIT_TARGETS,
    FAMILIES,
    FLUX_VARIANTS,
    QWEN_IMAGE_VARIANTS,
    ZIMAGE_VARIANTS,
    F,
)


@dataclass
class ModelConfig:
    base: str = F("", "Base model: a .safetensors file, a diffusers folder, or a hub id (org/name or org/name@rev).",
                  "底模：.safetensors 文件、diffusers 文件夹，或 hub id（org/name 或 org/name@版本）。", basic=True)
    family: str = F("auto", "Model family; auto detects it from the file.", "模型系列；自动（auto）表示从文件识别。",
                    choices=("auto", *FAMILIES))
    prediction_type: str = F("auto", "epsilon or v_prediction; auto reads it from the model.",
                             "预测类型：噪声预测（epsilon）或 v 预测（v_prediction）；自动（auto）表示从模型读取。",
                             choices=("auto", "epsilon", "v_prediction"), families=("unet",))
    zero_terminal_snr: bool = F(False, "Zero terminal SNR: rescale the noise schedule's betas so the last step is "
                                "pure noise, in training and in samples, as NoobAI/Illustrious v-pred models were "
                                "trained. Use with v_prediction.",
                                "零终端信噪比（ZTSNR）：重新缩放噪声调度的 beta，使最后一步为纯噪声，"
                                "训练和样图都使用；NoobAI/Illustrious v-pred 模型即如此训练。需配合 v_prediction。",
                                families=("unet",))
    vae: str = F("", "Optional separate VAE (file or folder); empty uses the base model's VAE.",
                 "可选的独立 VAE（文件或文件夹）；留空则用底模自带的 VAE。")
    variant: str = F("turbo", "Z-Image: turbo (8-step distilled), deturbo (de-distilled) or base (the file "
                     "cannot tell them apart, so say which). FLUX.1: dev or schnell (read from the file where it "
                     "can tell). Qwen-Image: image, edit, edit_2509 or edit_2511 (read from a folder's pipeline or "
                     "the name; the weights cannot tell).",
                     "Z-Image：8 步蒸馏版（turbo）、去蒸馏版（deturbo）或基础版（base）（文件本身无法区分，"
                     "需要手动选择）。FLUX.1：dev 或 schnell（文件能区分时自动读取）。Qwen-Image：文生图（image）、"
                     "编辑版（edit、edit_2509、edit_2511）（从文件夹的 pipeline 或名称读取；权重本身无法区分）。",
                     choices=(*ZIMAGE_VARIANTS, *FLUX_VARIANTS, *QWEN_IMAGE_VARIANTS),
                     families=("zimage", "flux", "qwen_image"))
    training_adapter: str = F("none", "Z-Image Turbo only: a training adapter merged into the base while training and "
                              "never saved: none, v1, v2 (ostris/zimage_turbo_training_adapter) or a .safetensors "
                              "file. Samples use the plain Turbo base, as users will.",
                              "仅 Z-Image Turbo：训练时合并进底模、但不会保存的训练适配器：无（none）、v1、v2"
                              "（ostris/zimage_turbo_training_adapter）或一个 .safetensors 文件。样图用不含适配器的 "
                              "Turbo 底模生成，与用户实际使用一致。", families=("zimage",))
    quantize: str = F("none", "Low VRAM: keep the frozen transformer weights in 8 bits (int8, bitsandbytes, CUDA "
                      "only); the adapter is merged before. Z-Image only.",
                      "低显存：冻结的 transformer 权重以 8 位保存（int8，bitsandbytes，仅 CUDA）；"
                      "训练适配器在此之前合并。仅 Z-Image。", choices=("none", "int8"), families=("dit",))
    download_source: str = F("auto", "Where hub ids (base models, training adapters, taggers) are downloaded from: "
                             "huggingface, mirror (hub_mirror), modelscope, or auto (DANLU_DOWNLOAD_SOURCE, else "
                             "HF_ENDPOINT, else huggingface).",
                             "hub id（底模、训练适配器、打标模型）的下载源：Hugging Face（huggingface）、"
                             "镜像站（mirror，见 hub_mirror）、"
                             "魔搭（modelscope），或自动（auto：读环境变量 DANLU_DOWNLOAD_SOURCE，其次 HF_ENDPOINT，"
                             "否则 huggingface）。", choices=("auto", "huggingface", "mirror", "modelscope"))
    hub_mirror: str = F("https://hf-mirror.com", "The Hugging Face mirror used when download_source = mirror.",
                        "下载源为镜像站（mirror）时使用的 Hugging Face 镜像地址。")


@dataclass
class DatasetConfig:
    dir: str = F("", "Parent folder holding <repeats>_<name> subfolders of images and captions.",
                 "训练集父文件夹，其中是 <重复次数>_<名称> 形式的子文件夹（图片和标注）。", basic=True)
    reg_dir: str = F("", "Optional regularisation parent folder, same naming.",
                     "可选的正则化图片父文件夹，命名规则相同。")
    resolution: int = F(512, "Training resolution (side of the square area); SD1.5 512, SDXL 1024.",
                        "训练分辨率（正方形面积的边长）；SD1.5 用 512，SDXL 用 1024。",
                        min=256, max=4096, multiple_of=64, basic=True)
    resolutions: list[int] = F([], "Multi-resolution training (ai-toolkit's resolution: [512, 768, 1024]): every "
                               "image is bucketed and trained at each of these resolutions, so an epoch sees each "
                               "image once per resolution and the LoRA learns the subject at every size. When set, "
                               "it replaces resolution; empty = resolution alone.",
                               "多分辨率训练（即 ai-toolkit 的 resolution: [512, 768, 1024]）：每张图在列出的每个"
                               "分辨率下各分一次桶、各训练一次，所以每轮每张图按分辨率个数各出现一次，LoRA 在每种尺寸"
                               "下都学到主体。填写后代替“分辨率”一项；留空则只用“分辨率”。",
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
                           "缓存 VAE latent：不缓存（none）、内存（memory）或磁盘（disk，可跨运行复用）。",
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
    train_unet: bool = F(True, "Train LoRA on the denoiser: the UNet (SD), or the transformer (DiT models such as "
                         "Z-Image).", "训练去噪网络的 LoRA：UNet（SD 系列），或 Transformer（Z-Image 等 DiT 模型）。")
    train_text_encoder: bool = F(True, "Train LoRA on the text encoder(s) (FLUX.1: CLIP-L; T5 never).",
                                 "训练文本编码器的 LoRA（FLUX.1：CLIP-L；T5 从不训练）。",
                                 families=("text_encoder_trainable",))
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
                            "个逗号分隔的值，SDXL 为 9 个（第一个没有 LoRA），或预设（cosine、sine、linear、"
                            "reverse_linear、zeros），可加 +数字（如 sine+0.5）。权重为 0 的块不加 LoRA。"
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
                  "网络类型：LoRA（lora；conv_dim > 0 时为 LoCon）、LyCORIS LoHa（loha）或 LyCORIS LoKr（lokr）。"
                  "LoHa/LoKr 文件可在 WebUI 自带的 Lora 扩展和 ComfyUI 中加载，diffusers 不支持；rank/alpha 与 "
                  "conv_dim/conv_alpha 同样适用。", choices=("lora", "loha", "lokr"), families=("unet",))
    dit_targets: list[str] = F(list(DIT_TARGETS), "DiT models (Z-Image): the block linears that get LoRA — attention "
                               "(to_q/k/v/out), feed_forward (w1/w2/w3), adaLN (modulation).",
                               "DiT 模型（Z-Image）：加 LoRA 的模块——注意力（attention：to_q/k/v/out）、前馈层"
                               "（feed_forward：w1/w2/w3）、调制层（adaLN）。", choices=DIT_TARGETS, families=("dit",))
    dit_refiners: bool = F(False, "DiT models: also train the noise and context refiner blocks (usually only the main "
                           "blocks are trained).",
                           "DiT 模型：同时训练噪声与文本 refiner 块（通常只训练主干块）。", families=("dit",))
