"""Estimates shown before a run: the step count (from the dataset and buckets) and GPU memory.

The memory estimate is a sum of parts a user can check: frozen weights at the compute precision,
the LoRA's trainable parameters with their gradients and optimizer state, and activations scaled
from the native resolution by pixel count and batch. It is rough (±30 %) and says what it is
based on; no trainer in the field estimates memory at all, and OOM without guidance is the most
common failure on 4–8 GB cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import family_facts
from core.config import RunConfig

GB = 1024 ** 3

# Parameter counts (millions) of the frozen parts, from the published architectures.
FAMILY_PARAMS_M = {
    "sd15": {"unet": 859.5, "text_encoder": 123.1, "vae": 83.7},
    "sd2": {"unet": 865.9, "text_encoder": 340.4, "vae": 83.7},
    "sdxl": {"unet": 2567.5, "text_encoder": 817.0, "vae": 83.7},
}
NATIVE_RES = {"sd15": 512, "sd2": 768, "sdxl": 1024}
# LoRA parameters per unit of rank (in + out features of each target) of each UNet block, by sd-scripts' block
# numbers (core/config/blocks.py), counted from the architectures in models/configs with the targets training/lora.py
# picks (tests/test_estimate_lora_params.py recounts them): "attn" the transformer blocks' linears and 1×1 convs
# (kohya's default targets), "res" the ResNet and sampler linears and 1×1 convs and "conv" the 3×3 convs
# (in·9 + out), both LoRA-trained only with conv LoRA (conv_dim / conv_block_dims). A rank-32 SD1.5 file (UNet and
# text encoder) holds 18.9 M parameters, about 38 MB in fp16.
_SD_RES = [0, 1600, 1600, 0, 2880, 1920, 0, 4480, 2560, 0, 2560, 2560, 5120, 6400, 6400, 6400, 6400, 6400, 5760,
           4480, 3840, 3520, 2880, 2560, 2560]
_SD_CONV = [0, 6400, 6400, 3200, 9920, 12800, 6400, 19840, 25600, 12800, 25600, 25600, 51200, 37120, 37120, 49920,
            37120, 37120, 44160, 24320, 18560, 22080, 12160, 9280, 9280]
UNET_BLOCK_PER_RANK = {
    "sd15": {"attn": [0, 11776, 11776, 0, 22016, 22016, 0, 42496, 42496, 0, 0, 0, 42496, 0, 0, 0, 42496, 42496,
                      42496, 22016, 22016, 22016, 11776, 11776, 11776], "res": _SD_RES, "conv": _SD_CONV},
    "sd2": {"attn": [0, 12288, 12288, 0, 22528, 22528, 0, 43008, 43008, 0, 0, 0, 43008, 0, 0, 0, 43008, 43008,
                     43008, 22528, 22528, 22528, 12288, 12288, 12288], "res": _SD_RES, "conv": _SD_CONV},
    "sdxl": {"attn": [0, 0, 0, 0, 0, 46592, 46592, 0, 404480, 404480, 0, 404480, 0, 404480, 404480, 404480, 46592,
                      46592, 46592, 0, 0, 0, 0],
             "res": [0, 0, 1600, 1600, 0, 2880, 1920, 0, 4480, 2560, 2560, 0, 2560, 6400, 6400, 5760, 4480, 3840,
                     3520, 2880, 2560, 2560, 0],
             "conv": [0, 0, 6400, 6400, 3200, 9920, 12800, 6400, 19840, 25600, 25600, 0, 25600, 37120, 37120, 44160,
                      24320, 18560, 22080, 12160, 9280, 9280, 0]},
}
# The text encoder(s): every linear of the CLIP encoder layers, per unit of rank.
TEXT_PER_RANK = {"sd15": 165888, "sd2": 423936, "sdxl": 903168}
# Activation memory (GB) of one sample at the native resolution in fp16 with SDPA attention,
# without and with gradient checkpointing: measured figures reported by kohya_ss users
# (SD1.5 LoRA ≈ 6 GB at batch 1, SDXL LoRA ≈ 12 GB with checkpointing at batch 1).
ACTIVATION_GB = {"sd15": (2.9, 0.9), "sd2": (5.5, 1.6), "sdxl": (14.0, 3.2)}
# Bytes per trainable parameter: fp32 master + fp32 gradient + optimizer state.
# CAME: first moment plus factored second moments and residuals; schedule-free AdamW: z and the second moment;
# DAdaptAdam: both moments and its s accumulator.
OPTIMIZER_STATE_BYTES = {"AdamW": 8, "AdamW8bit": 2, "Lion": 4, "Prodigy": 16, "Adafactor": 1, "CAME": 5,
                         "AdamWScheduleFree": 8, "DAdaptAdam": 12}
CARDS_GB = (6, 8, 10, 12, 16, 24, 32, 48, 80)  # common GPU memory sizes, for "fits … cards"
CUDA_OVERHEAD_GB = 0.8  # CUDA context, cuDNN workspaces, allocator fragmentation


@dataclass
class MemoryEstimate:
    total_gb: float
    parts: list[tuple[str, str, float]]   # (English, 中文, GB)
    basis_en: str
    basis_zh: str

    @property
    def fits(self) -> list[int]:
        """The common card sizes (GB) this estimate fits in."""
        return [c for c in CARDS_GB if self.total_gb <= c]

    def fits_text(self, lang: str) -> str:
        """'Fits 8 GB cards and larger (not 6 GB).'"""
        if not self.fits:
            return "超过 80 GB 显卡的容量。" if lang == "zh" else "More than an 80 GB card holds."
        smallest = self.fits[0]
        below = [c for c in CARDS_GB if c < smallest][-1:]
        if lang == "zh":
            return f"{smallest} GB 及以上的显卡可用" + (f"（{below[0]} GB 不够）。" if below else "。")
        return f"Fits {smallest} GB cards and larger" + (f" (not {below[0]} GB)." if below else ".")

    def text(self, lang: str) -> str:
        """Markdown: the total, one line per part, then what it is based on."""
        names = [(zh if lang == "zh" else en, gb) for en, zh, gb in self.parts]
        lines = "\n".join(f"- {n}: {gb:.2f} GB" for n, gb in names)
        return f"**≈ {self.total_gb:.1f} GB**: {self.fits_text(lang)}\n\n{lines}\n\n" \
            f"{self.basis_zh if lang == 'zh' else self.basis_en}"


def largest_resolution(cfg: RunConfig) -> int:
    """The resolution the activations are sized for: the largest of a multi-resolution run (its batches at that
    size are the peak), else dataset.resolution."""
    from core.dataset.buckets import resolutions_of

    return max(resolutions_of(cfg.dataset))


def _largest(cfg: RunConfig, lang: str) -> str:
    """', the largest of 512/768/1024' on the activations line of a multi-resolution run."""
    from core.dataset.buckets import resolutions_of

    listed = resolutions_of(cfg.dataset)
    if len(listed) < 2:
        return ""
    text = "/".join(map(str, listed))
    return f"，{text} 中最大的" if lang == "zh" else f", the largest of {text}"


def estimate_memory(cfg: RunConfig, family: str | None = None) -> MemoryEstimate:
    """GPU memory for training cfg on family (default: the config's, else sd15)."""
    fam = family or (cfg.model.family if cfg.model.family != "auto" else "sd15")
    row = family_facts.get(fam)
    if row is not None and row.dit is not None:
        return _estimate_dit(cfg, row)
    fam = "sdxl" if fam.startswith("sdxl") else ("sd2" if fam.startswith("sd2") else "sd15")
    params = FAMILY_PARAMS_M[fam]
    t = cfg.training
    half = t.mixed_precision in ("fp16", "bf16") or t.full_bf16
    wbytes = 2 if half else 4
    unet_bytes = 1 if t.fp8_base else wbytes  # fp8 base: one byte per UNet weight (its few norms and biases aside)
    frozen_m = params["vae"]
    text_on_gpu = not cfg.dataset.cache_text_encoder_outputs or cfg.network.train_text_encoder
    if text_on_gpu:
        frozen_m += params["text_encoder"]
    weights_gb = (frozen_m * wbytes + params["unet"] * unet_bytes) * 1e6 / GB

    lora_m = lora_params(cfg, fam) / 1e6
    state_bytes = 4 + 4 + OPTIMIZER_STATE_BYTES.get(cfg.optimizer.name, 8)
    if t.full_bf16:  # weights, gradients and optimizer state in bf16, no fp32 copy
        state_bytes /= 2
    lora_gb = lora_m * 1e6 * state_bytes / GB

    no_ckpt, ckpt = ACTIVATION_GB[fam]
    per_sample = ckpt if cfg.training.gradient_checkpointing else no_ckpt
    res = largest_resolution(cfg)
    pixels = (res / NATIVE_RES[fam]) ** 2
    act_gb = per_sample * pixels * cfg.training.batch_size * (1.0 if half else 2.0)
    if cfg.network.use_dora:
        act_gb *= 1.25
    if cfg.dataset.cache_latents == "none":
        act_gb += 0.6 * pixels * cfg.training.batch_size * (1.0 if half else 2.0)  # VAE encode each step

    fp8_en, fp8_zh = (", UNet in fp8", "，UNet 为 fp8") if t.fp8_base else ("", "")
    lora_bits = "bf16" if t.full_bf16 else "fp32"
    parts = [("frozen weights (UNet, VAE" + (", text encoder" if text_on_gpu else "") + f", {wbytes * 8}-bit{fp8_en})",
              "冻结权重（UNet、VAE" + ("、文本编码器" if text_on_gpu else "") + f"，{wbytes * 8} 位{fp8_zh}）",
              weights_gb),
             (f"LoRA {lora_m:.1f} M parameters + gradients + {cfg.optimizer.name} state ({lora_bits})",
              f"LoRA {lora_m:.1f} M 参数 + 梯度 + {cfg.optimizer.name} 状态（{lora_bits}）", lora_gb),
             (f"activations (batch {cfg.training.batch_size} at {res} px{_largest(cfg, 'en')})",
              f"激活（批大小 {cfg.training.batch_size}，{res} px{_largest(cfg, 'zh')}）", act_gb),
             ("CUDA context and workspace", "CUDA 上下文与工作区", CUDA_OVERHEAD_GB)]
    total = sum(p[2] for p in parts)
    ck_en = "with" if cfg.training.gradient_checkpointing else "without"
    ck_zh = "开启" if cfg.training.gradient_checkpointing else "未开启"
    basis_en = (f"Based on: {fam} parameter counts ({params['unet']:.0f} M UNet), {NATIVE_RES[fam]} px native "
                f"activation figures reported by kohya users, {ck_en} gradient checkpointing, SDPA attention. "
                "Rough: ±30 %.")
    basis_zh = (f"依据：{fam} 的参数量（UNet {params['unet']:.0f} M）、"
                f"kohya 用户报告的 {NATIVE_RES[fam]} px 激活显存，"
                f"{ck_zh}梯度检查点，SDPA 注意力。粗略估计：±30 %。")
    return MemoryEstimate(total, parts, basis_en, basis_zh)


def dit_lora_params(n, figures: family_facts.DitFigures) -> int:
    """Trainable LoRA parameters of a DiT run: network.dit_targets on the main blocks (and the refiners)."""
    per_block = sum(figures.per_rank[k] for k in n.dit_targets)
    blocks = figures.blocks * per_block
    if n.dit_refiners:
        blocks += figures.refiners * per_block + figures.refiners_no_adaln * sum(
            figures.per_rank[k] for k in n.dit_targets if k != "adaLN")
    return blocks * n.rank


def _estimate_dit(cfg: RunConfig, row: family_facts.Family) -> MemoryEstimate:
    """A DiT family: the transformer at one byte per weight with training.fp8_base or model.quantize = int8, the
    text encoder in CPU memory on that low-VRAM path when its outputs are cached (training/families/)."""
    figures = row.dit
    t, params = cfg.training, figures.params_m
    half = t.mixed_precision in ("fp16", "bf16") or t.full_bf16
    wbytes = 2 if half else 4
    low = "fp8" if t.fp8_base else ("int8" if cfg.model.quantize != "none" else "")
    text_on_gpu = not (low and cfg.dataset.cache_text_encoder_outputs)
    frozen_m = params["vae"] + (params["text_encoder"] if text_on_gpu else 0.0)
    # Block swap (training/block_swap.py): the swapped blocks' frozen weights stay in CPU memory and one at a time
    # is on the card; the blocks are taken as the whole transformer, in equal shares.
    swapped = min(max(t.blocks_to_swap, 0), figures.blocks - 1)
    on_card = params["transformer"] * (figures.blocks - swapped + (1 if swapped else 0)) / figures.blocks
    weights_gb = (frozen_m * wbytes + on_card * (1 if low else wbytes)) * 1e6 / GB
    lora_m = dit_lora_params(cfg.network, figures) / 1e6
    state_bytes = (4 + 4 + OPTIMIZER_STATE_BYTES.get(cfg.optimizer.name, 8)) / (2 if t.full_bf16 else 1)
    lora_gb = lora_m * 1e6 * state_bytes / GB
    res = largest_resolution(cfg)
    pixels = (res / row.native) ** 2
    act_gb = figures.activation_gb[bool(t.gradient_checkpointing)] * pixels * t.batch_size * (1.0 if half else 2.0)
    if cfg.dataset.cache_latents == "none":
        act_gb += 0.6 * pixels * t.batch_size * (1.0 if half else 2.0)  # VAE encode each step
    low_en, low_zh = (f", transformer in {low}", f"，transformer 为 {low}") if low else ("", "")
    if swapped:
        low_en += f", {swapped} of {figures.blocks} blocks swapped to CPU memory"
        low_zh += f"，{figures.blocks} 个块中 {swapped} 个交换到内存"
    lora_bits = "bf16" if t.full_bf16 else "fp32"
    parts = [("frozen weights (transformer, VAE" + (", text encoder" if text_on_gpu else "")
              + f", {wbytes * 8}-bit{low_en})",
              "冻结权重（transformer、VAE" + ("、文本编码器" if text_on_gpu else "") + f"，{wbytes * 8} 位{low_zh}）",
              weights_gb),
             (f"LoRA {lora_m:.1f} M parameters + gradients + {cfg.optimizer.name} state ({lora_bits})",
              f"LoRA {lora_m:.1f} M 参数 + 梯度 + {cfg.optimizer.name} 状态（{lora_bits}）", lora_gb),
             (f"activations (batch {t.batch_size} at {res} px{_largest(cfg, 'en')})",
              f"激活（批大小 {t.batch_size}，{res} px{_largest(cfg, 'zh')}）", act_gb),
             ("CUDA context and workspace", "CUDA 上下文与工作区", CUDA_OVERHEAD_GB)]
    sample_gb = (params["transformer"] + params["text_encoder"] + params["vae"]) * 1e6 * wbytes / GB
    ck_en = "with" if t.gradient_checkpointing else "without"
    ck_zh = "开启" if t.gradient_checkpointing else "未开启"
    basis_en = (f"Based on: {row.label} parameter counts ({params['transformer']:.0f} M transformer, "
                f"{params['text_encoder']:.0f} M text encoder), {figures.basis_en}, {ck_en} gradient checkpointing. "
                f"Samples load the plain base at "
                f"{wbytes * 8}-bit (≈ {sample_gb:.1f} GB with its text encoder) while the training copy waits in CPU "
                "memory. Rough: ±30 %.")
    basis_zh = (f"依据：{row.label} 的参数量（transformer {params['transformer']:.0f} M、文本编码器 "
                f"{params['text_encoder']:.0f} M）、{figures.basis_zh}，{ck_zh}梯度检查点。"
                f"生成样图时以 {wbytes * 8} 位加载原始底模（连同文本编码器约 {sample_gb:.1f} GB），"
                "训练副本暂存于内存。粗略估计：±30 %。")
    return MemoryEstimate(sum(p[2] for p in parts), parts, basis_en, basis_zh)


def unet_lora_params(n, fam: str) -> int:
    """Trainable LoRA parameters of an SD family's UNet: each block at its own dim (network.block_dims, or an LR
    weight of 0 turning it off, as core/config/blocks.py plans it) or at network.rank, conv LoRA likewise."""
    from core.config import blocks
    from core.errors import ConfigError

    table = UNET_BLOCK_PER_RANK[fam]
    count = len(table["attn"])
    try:
        plan = blocks.from_config(n, fam)
    except ConfigError:  # the Parameters tab shows what is wrong; estimate as if no block-wise option were set
        plan = None
    dims = plan.dims if plan else [n.rank] * count
    conv_dims = plan.conv_dims if plan else ([n.conv_dim] * count if n.conv_dim else None)
    total = sum(d * w for d, w in zip(dims, table["attn"]))
    if conv_dims is not None:  # the ResNet linears take the block's dim, its 3×3 convs the conv dim
        total += sum(d * w for d, w in zip(dims, table["res"])) + sum(d * w for d, w in zip(conv_dims, table["conv"]))
    return total


def lora_params(cfg: RunConfig, fam: str) -> int:
    """Trainable LoRA parameters of a run on an SD family: UNet (block-wise dims counted) and text encoder(s)."""
    n = cfg.network
    unet = unet_lora_params(n, fam) if n.train_unet else 0
    return unet + (TEXT_PER_RANK[fam] * n.rank if n.train_text_encoder else 0)


_SCAN_CACHE: dict = {}  # image facts by (path, size, mtime): the live count stays fast while the user types


def count_steps(cfg: RunConfig):
    """The run's step plan (core.dataset.steps.StepPlan) from the Dataset tab's scan: the trainer's image reader
    (EXIF orientation, unreadable files skipped), buckets, repeats and regularisation. Raises DanluError for a
    folder that cannot be used."""
    from core.dataset.scan import scan_dataset

    reg = Path(cfg.dataset.reg_dir) if cfg.dataset.reg_dir else None
    return scan_dataset(Path(cfg.dataset.dir), cfg, reg_dir=reg, cache=_SCAN_CACHE).plan
