"""Extract a LoRA (LoCon for conv layers) from the difference of two checkpoints of one family.

Module by module: ΔW = tuned − base, truncated SVD to a fixed rank or a dynamic rule (resize.py's), written in the
family's LoRA layout with alpha = rank (scale 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DanluError, current_lang
from models.toolbox.common import Job, check_outputs, open_lora, write_lora
from models.toolbox.layers import Target, dit_targets, part_of, sd_targets
from models.toolbox.resize import pick_rank


@dataclass
class ExtractReport:
    out: Path | None       # None when the two checkpoints do not differ (nothing to extract, nothing written)
    modules: int
    skipped: int           # layers whose difference is at most the threshold
    ranks: dict[str, int] = field(default_factory=dict)

    def text(self, lang: str | None = None) -> str:
        zh = (lang or current_lang()) == "zh"
        if self.out is None:
            return ("两个模型在所选层上完全相同（或差异不超过阈值）：没有可提取的内容，未写入文件。" if zh else
                    "The two checkpoints do not differ in the chosen layers (or only within the threshold): there is "
                    "nothing to extract, and no file was written.")
        ranks = sorted(set(self.ranks.values()))
        span = f"{ranks[0]}–{ranks[-1]}" if len(ranks) > 1 else str(ranks[0])
        return (f"已写入 {self.out}：{self.modules} 个模块，秩 {span}；{self.skipped} 层无差异已跳过" if zh else
                f"wrote {self.out}: {self.modules} modules, rank {span}; {self.skipped} unchanged layers skipped")


def _checkpoint(path: str | Path) -> tuple[Path, str, dict[str, tuple[str, list[int]]]]:
    """(path, family, header) of a single-file checkpoint; DanluError for a pickle, a LoRA or an unknown file."""
    from models.detect import detect
    from models.files import read_header, refuse_pickle, sniff_pickle

    path = Path(path)
    if path.is_file() and sniff_pickle(path):
        raise refuse_pickle(path)
    info = detect(str(path))
    if info.kind != "single_file" or not info.family or info.kind == "lora":
        en = info.problem_en or f"{path.name} is not a single-file checkpoint of a known family."
        zh = info.problem_zh or f"{path.name} 不是已知系列的单文件模型。"
        raise DanluError(en, zh, "Pick two .safetensors checkpoints of the same family.",
                         "请选择两个同系列的 .safetensors 单文件模型。", key=str(path))
    return path, info.family, read_header(path)[0]


def _read(f: Any, target: Target) -> Any:
    return part_of(f.get_tensor(target.key), target).float()


def extract_lora(base: str | Path, tuned: str | Path, out: str | Path, *, rank: int, conv_rank: int = 0,
                 method: str = "fixed", param: float | None = None, threshold: float = 0.0,
                 precision: str | None = None, job: Job | None = None) -> ExtractReport:
    """A LoRA of ΔW = tuned − base, layer by layer (two layers in memory at a time): the truncated SVD at `rank`
    (or what `method` picks, at most `rank`), LoCon for k×k convolutions when conv_rank > 0, alpha = rank
    (scale 1). Layers whose largest |ΔW| is at most `threshold` are skipped. Nothing is written when no layer
    differs. The output is never one of the inputs."""
    import torch
    from safetensors import safe_open

    from models import families

    (base_path, family, base_header), (tuned_path, tuned_family, tuned_header) = _checkpoint(base), _checkpoint(tuned)
    check_outputs(out, [base_path, tuned_path])  # before the work: a refused name should not cost an extraction
    if families.module(family) is not families.module(tuned_family):
        la, lb = families.LABELS.get(family, family), families.LABELS.get(tuned_family, tuned_family)
        raise DanluError(f"{base_path.name} is {la} but {tuned_path.name} is {lb}: a LoRA can only be extracted "
                         "from two checkpoints of one family.",
                         f"{base_path.name} 是 {la}，而 {tuned_path.name} 是 {lb}："
                         "只能从同一系列的两个模型中提取 LoRA。",
                         "Pick the base the fine-tune was trained from.", "请选择该微调模型所基于的底模。")
    dit = families.dit_module(family)
    targets = dit_targets(dit, base_header) if dit else sd_targets(base_path, family, base_header, conv_rank > 0)
    # layers the base file leaves out (a pruned or partial checkpoint) are not extracted; none at all is refused
    targets = [t for t in targets if t.key in base_header]
    if not targets:
        raise DanluError(f"{base_path.name} holds none of the layers a LoRA is extracted for.",
                         f"{base_path.name} 不含任何可提取 LoRA 的层。",
                         "Pick a complete single-file checkpoint.", "请选择完整的单文件模型。", key=str(base_path))
    for t in targets:
        if t.key not in tuned_header or tuned_header[t.key][1] != base_header[t.key][1]:
            got = tuned_header.get(t.key, ("", "missing"))[1]
            raise DanluError(f"{tuned_path.name} does not match {base_path.name} at {t.key}: {got} against "
                             f"{base_header[t.key][1]}. The two checkpoints are of different sizes.",
                             f"{tuned_path.name} 与 {base_path.name} 在 {t.key} 处不一致：{got} 对 "
                             f"{base_header[t.key][1]}。两个模型的规模不同。",
                             "Pick the base the fine-tune was trained from.", "请选择该微调模型所基于的底模。")
    peft = dit is not None  # a DiT family's files are lora_A/lora_B with alpha folded in
    tensors: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    skipped = 0
    with safe_open(str(base_path), framework="pt") as fa, safe_open(str(tuned_path), framework="pt") as fb:
        for i, t in enumerate(targets):
            if job is not None:
                job.step(i, len(targets), t.name)
            if t.conv and conv_rank <= 0:
                continue
            a = _read(fa, t)
            diff = _read(fb, t) - a
            if float(diff.abs().max()) <= threshold:
                skipped += 1
                continue
            u, s, vh = torch.linalg.svd(diff.flatten(1), full_matrices=False)
            k = pick_rank(s, method, param, conv_rank if t.conv else rank)
            down = vh[:k].reshape(k, *diff.shape[1:])
            up = (u[:, :k] * s[:k]).reshape(diff.shape[0], k, *([1] * (diff.dim() - 2)))
            d_key, u_key = ("lora_A.weight", "lora_B.weight") if peft else ("lora_down.weight", "lora_up.weight")
            tensors[f"{t.name}.{d_key}"], tensors[f"{t.name}.{u_key}"] = down.contiguous(), up.contiguous()
            if not peft:
                tensors[f"{t.name}.alpha"] = torch.tensor(float(k))
            ranks[t.name] = k
    if job is not None:
        job.step(len(targets), len(targets), "")
    if not tensors:
        return ExtractReport(None, 0, skipped)
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank) if method == "fixed" else "Dynamic",
            "ss_network_alpha": str(float(rank)) if method == "fixed" else "Dynamic",
            "ss_base_model_version": families.module(family).lora_version(), "ss_sd_model_name": base_path.name,
            "ss_training_comment": f"extracted from the difference {tuned_path.name} − {base_path.name}"
                                   + (f" ({method}: {param})" if method != "fixed" else "")}
    if conv_rank > 0:
        meta["ss_network_args"] = f'{{"conv_dim": "{conv_rank}", "conv_alpha": "{conv_rank}"}}'
    if dit is not None:
        meta = families.part(dit, "lora").lora_metadata(meta)
    written = write_lora(out, tensors, meta, [base_path, tuned_path], precision)
    open_lora(written)  # the written file reads back as a LoRA (its family rule sees what was written)
    return ExtractReport(written, len(ranks), skipped, ranks)
