"""The detection report of a model file (models/detect.py fills it): family, prediction type, resolution,
precision, size, hash and problems, printed in the user's language."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DanluError
from models import families

# Chinese for the report's short English values (sources, EMA state, kinds).
ZH = {"metadata": "元数据", "v_pred key": "v_pred 键", "file name": "文件名", "family rule": "系列默认规则",
      "scheduler config": "调度器配置", "EMA weights included (not pruned)": "含 EMA 权重（未精简）",
      "pruned (no EMA weights)": "已精简（无 EMA 权重）", "single_file": "单文件模型", "diffusers": "diffusers 文件夹",
      "pickle": "pickle 文件", "lora": "LoRA", "hub": "hub 模型", "missing": "不存在", "unknown": "未知",
      "flow matching": "流匹配（flow matching）"}


def local(text: str, lang: str) -> str:
    """`text` in the user's language when it is one of the report's fixed values."""
    return ZH.get(text, text) if lang == "zh" else text


@dataclass
class ModelInfo:
    """The detection report. `usable` is False for anything that cannot serve as a base (problem says why)."""

    path: str
    kind: str = "unknown"           # single_file, diffusers, lora, pickle, hub, missing, unknown
    family: str | None = None       # sd15, sd2, sdxl, sdxl_refiner
    variant: str = ""               # what the weights tell of a family's variants (FLUX.1: dev, schnell); "" unknown
    prediction_type: str = "epsilon"
    prediction_source: str = "family rule"
    zero_terminal_snr: bool = False  # a `ztsnr` marker key (NoobAI-style v-pred files): trained with rescaled betas
    native_resolution: int = 512
    precision: str = ""
    size: int = 0
    sha256: str = ""                # filled when known (cached) or computed
    ema: str = ""                   # 'EMA weights included', 'pruned (no EMA)'
    tensors: int = 0
    has_vae: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh)
    usable: bool = False
    problem_en: str = ""
    problem_zh: str = ""
    hint_en: str = ""
    hint_zh: str = ""

    @property
    def autov2(self) -> str:
        return self.sha256[:10]

    @property
    def label(self) -> str:
        return families.LABELS.get(self.family or "", "?")

    def refuse(self, en: str, zh: str, hint_en: str = "", hint_zh: str = "") -> ModelInfo:
        self.usable, self.problem_en, self.problem_zh, self.hint_en, self.hint_zh = False, en, zh, hint_en, hint_zh
        return self

    def error(self) -> DanluError:
        return DanluError(self.problem_en, self.problem_zh, self.hint_en, self.hint_zh, key="model.base")

    def report(self, lang: str = "en") -> str:
        """A readable multi-line report (the CLI prints it; the Model tab shows the same facts)."""
        zh = lang == "zh"
        name = Path(self.path).name or self.path
        lines = [f"{'模型' if zh else 'Model'}: {name}"]
        if self.family:
            pred = {"v_prediction": "v-prediction", "flow": "flow matching"}.get(self.prediction_type, "epsilon")
            pred = local(pred, lang)
            lines += [f"{'系列' if zh else 'Family'}: {self.label} ({self.family})"
                      + (f", {'版本' if zh else 'variant'} {self.variant}" if self.variant else ""),
                      f"{'预测类型' if zh else 'Prediction'}: {pred} ({local(self.prediction_source, lang)})",
                      f"{'原生分辨率' if zh else 'Native resolution'}: {self.native_resolution}px"]
        if self.precision:
            lines.append(f"{'存储精度' if zh else 'Stored precision'}: {self.precision}")
        if self.size:
            lines.append(f"{'大小' if zh else 'Size'}: {human_size(self.size)}")
        if self.sha256:
            lines.append(f"{'哈希' if zh else 'Hash'} (AutoV2): {self.autov2}   sha256: {self.sha256}")
        if self.ema:
            lines.append(f"EMA: {local(self.ema, lang)}")
        for en, zh_text in self.warnings:
            lines.append(f"{'注意' if zh else 'Warning'}: {zh_text if zh else en}")
        if not self.usable:
            lines.append(f"{'不可用' if zh else 'Not usable'}: {self.problem_zh if zh else self.problem_en}")
            hint = self.hint_zh if zh else self.hint_en
            if hint:
                lines.append(hint)
        return "\n".join(lines)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
