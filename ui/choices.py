"""How a radio's or dropdown's choices read: their values are config values (what the run TOML holds and the docs
name), shown as they are in English and with their Chinese name first in 简体中文, e.g. "余弦（cosine）".

One table for every list of choices (the Parameters form's fields, the Model tab's family and prediction type, the
tagger's caption policy, the tag filter's mode), so one value reads the same wherever it is offered. A value
missing here is a name that reads the same in both languages (AdamW, euler_a, fp16).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

ZH: dict[str, str] = {
    # several fields
    "auto": "自动", "none": "无",
    # model.family, model.prediction_type, model.variant, model.download_source
    "sd15": "SD1.5", "sd2": "SD2.x", "sdxl": "SDXL", "zimage": "Z-Image", "flux": "FLUX.1", "chroma": "Chroma",
    "qwen_image": "Qwen-Image",
    "epsilon": "噪声预测", "v_prediction": "v 预测",
    "turbo": "Turbo 蒸馏版", "deturbo": "De-Turbo 去蒸馏版", "base": "Base 基础版",
    "dev": "dev 引导蒸馏版", "schnell": "schnell 4 步版",
    "image": "文生图", "edit": "Edit 编辑版", "edit_2509": "Edit-2509 编辑版", "edit_2511": "Edit-2511 编辑版",
    "huggingface": "Hugging Face", "mirror": "镜像站", "modelscope": "魔搭 ModelScope",
    # dataset.cache_latents, network.type, network.dit_targets
    "memory": "内存", "disk": "磁盘",
    "lora": "LoRA", "loha": "LoHa", "lokr": "LoKr",
    "attention": "注意力", "feed_forward": "前馈层", "adaLN": "adaLN 调制",
    # optimizer.scheduler
    "constant": "恒定", "cosine": "余弦", "cosine_with_restarts": "余弦重启", "linear": "线性",
    "polynomial": "多项式", "constant_with_warmup": "预热后恒定", "cosine_with_min_lr": "余弦（保留最低学习率）",
    # training.mixed_precision, training.device, saving.precision
    "no": "不用", "float": "32 位浮点", "cuda": "NVIDIA 显卡", "cpu": "CPU", "mps": "Apple 芯片",
    # training.timestep_type, training.timestep_bias
    "uniform": "均匀", "sigmoid": "S 形", "shift": "偏移", "weighted": "加权", "flux_shift": "按分辨率偏移",
    "balanced": "均衡", "high_noise": "偏高噪声", "low_noise": "偏低噪声",
    # sampling.sampler: the names A1111 and ComfyUI show
    "euler": "Euler", "heun": "Heun", "ddim": "DDIM", "unipc": "UniPC", "lms": "LMS",
    # the auto-tagger's caption policy, the tag filter's mode
    "skip": "跳过", "overwrite": "覆盖", "append": "追加在后", "prepend": "插在前",
    "AND": "全部包含", "OR": "任一包含",
}


def label(value: Any, lang: str) -> str:
    """The text shown for one choice: the value itself, or in Chinese its name with the value in brackets."""
    zh = ZH.get(str(value))
    return f"{zh}（{value}）" if lang == "zh" and zh and zh != value else str(value)


def pairs(values: Iterable[Any], lang: str) -> list[tuple[str, Any]]:
    """(label, value) choices for a gr.Radio or gr.Dropdown."""
    return [(label(v, lang), v) for v in values]


def labelled(values: Iterable[Any]) -> Callable[[str], list[tuple[str, Any]]]:
    """The choices as a function of the language, for Translator.bind(component, choices=labelled(values))."""
    values = list(values)
    return lambda lang: pairs(values, lang)
