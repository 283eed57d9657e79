"""Merge several LoRAs into one, or LoRAs into a base checkpoint (built on common.py's helpers).

LoRAs into one (`merge_loras`): per module, ΔW = Σ weight_i · scale_i · up_i @ down_i. When no rank is asked, or
the ranks add up to no more than it, the factors are concatenated (down stacked, up side by side with each file's
weight and scale folded in): exact. Otherwise the sum is cut to the rank by SVD (through QR of the stacked
factors, so no full ΔW is formed) and the report gives each module's retained Frobenius share. LoHa / LoKr / DoRA
modules have no low-rank factors to stack (and DoRA depends on the base weight): they merge into a base only.

LoRAs into a base (`merge_into_base`): every module's delta is added to the base weight in fp32 and cast back,
as ComfyUI patches a model and WebUI merges (models/lycoris.py: LoRA, LoCon, LoHa, LoKr, and DoRA's input-axis
decomposition), each file at its weight, in the order given. The checkpoint is streamed tensor by tensor and
written with the base's keys, dtypes and metadata; only the patched weights differ, the rest is copied as bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.toolbox.common import (
    Job,
    LoraFile,
    check_outputs,
    lora_factors,
    open_lora,
    same_family,
    split_key,
    stream_safetensors,
    write_lora,
)
from models.toolbox.layers import Target, part_of


@dataclass
class ModuleMerge:
    name: str
    rank: int
    fro_retained: float  # 1.0 when the factors were concatenated (exact)
    cut: bool = False    # cut to the rank by SVD


@dataclass
class MergeReport:
    out: Path
    modules: list[ModuleMerge] = field(default_factory=list)
    into_base: bool = False

    @property
    def exact(self) -> bool:
        return not any(m.cut for m in self.modules)

    def text(self, lang: str | None = None) -> str:
        from core.errors import current_lang

        zh = (lang or current_lang()) == "zh"
        if self.into_base:
            return (f"{self.out.name}：已将 LoRA 合并进底模（{len(self.modules)} 个模块），"
                    "保持底模的键名与精度。" if zh else
                    f"{self.out.name}: LoRA merged into the base ({len(self.modules)} modules), in the base's own "
                    "keys and precision.")
        ranks = sorted({m.rank for m in self.modules})
        rank = f"{ranks[0]}" if len(ranks) == 1 else f"{ranks[0]}–{ranks[-1]}"
        if self.exact:
            return (f"{self.out.name}：{len(self.modules)} 个模块，直接拼接（精确），秩 {rank}。" if zh else
                    f"{self.out.name}: {len(self.modules)} modules, factors concatenated (exact), rank {rank}.")
        cuts = [m for m in self.modules if m.cut]
        worst = min(cuts, key=lambda m: m.fro_retained)
        mean = sum(m.fro_retained for m in cuts) / len(cuts)
        return (f"{self.out.name}：{len(cuts)} 个模块经 SVD 降到秩 {rank}；保留的 Frobenius 范数占比平均 "
                f"{100 * mean:.2f}%，最低 {100 * worst.fro_retained:.2f}%（{worst.name}）。" if zh else
                f"{self.out.name}: {len(cuts)} modules cut to rank {rank} by SVD; Frobenius norm retained "
                f"{100 * mean:.2f}% on average, {100 * worst.fro_retained:.2f}% at least ({worst.name}).")


def _refuse_non_lora(lora: LoraFile, name: str) -> DanluError:
    return DanluError(f"{lora.path.name}: {name} is a LoHa, LoKr or DoRA module, which cannot be merged into another "
                      "LoRA.",
                      f"{lora.path.name}：{name} 是 LoHa、LoKr 或 DoRA 模块，不能与其他 LoRA 合并成一个 LoRA。",
                      "Merge it into a base model instead.", "请改为合并进底模。", key=str(lora.path))


def _svd_cut(downs: list[Any], ups: list[Any], rank: int) -> tuple[Any, Any, float]:
    """(down, up, retained share) of the best rank-`rank` approximation of Σ up_i @ down_i (2-D factors)."""
    import torch

    from models.toolbox.resize import low_rank_svd

    u, s, vh = low_rank_svd(torch.cat(downs, 0), torch.cat(ups, 1))
    k = min(rank, int(s.shape[0]))
    total = float((s ** 2).sum())
    retained = (float((s[:k] ** 2).sum()) / total) ** 0.5 if total > 0 else 1.0
    return vh[:k].float(), (u[:, :k] * s[:k]).float(), retained


def merge_loras(inputs: list[tuple[str | Path, float]], out: str | Path, *, rank: int | None = None,
                precision: str | None = None, job: Job | None = None) -> MergeReport:
    """Merge LoRA files, each at its weight, into one file in the first file's layout.

    rank None: concatenate (exact; the rank is the sum of the files' ranks). A rank: concatenate where the ranks
    add up to no more than it, else SVD to it."""
    if not inputs:
        raise DanluError("No LoRA files to merge.", "没有要合并的 LoRA 文件。",
                         "Add at least one file.", "请至少添加一个文件。")
    files = [open_lora(p) for p, _ in inputs]
    same_family(files)
    _same_layout(files)
    check_outputs(out, [p for p, _ in inputs])
    weights = [float(w) for _, w in inputs]
    names = sorted({n for f in files for n in f.modules})
    kohya = files[0].layout == "kohya"
    state: dict[str, Any] = {}
    report = MergeReport(Path(out))
    for i, name in enumerate(names):
        if job is not None:
            job.step(i, len(names), name)
        downs, ups = [], []
        for f, w in zip(files, weights):
            if name not in f.modules:
                continue
            tensors = f.module(name)
            factors = lora_factors(tensors)
            if factors is None or "dora_scale" in tensors:
                raise _refuse_non_lora(f, name)
            down, up, scale = factors
            downs.append(down)
            ups.append(up * (scale * w))
        total = sum(d.shape[0] for d in downs)
        kernel = downs[0].shape[1:]
        if rank is None or total <= rank or any(d.shape[1:] != kernel for d in downs):
            import torch

            down, up, retained, cut = torch.cat(downs, 0), torch.cat(ups, 1), 1.0, False
        else:
            cut = True
            down, up, retained = _svd_cut([d.flatten(1) for d in downs], [u.flatten(1) for u in ups], rank)
            down = down.reshape(down.shape[0], *kernel)
            up = up.reshape(up.shape[0], down.shape[0], *ups[0].shape[2:])
        r = down.shape[0]
        suffix = ("lora_down.weight", "lora_up.weight") if kohya else ("lora_A.weight", "lora_B.weight")
        state[f"{name}.{suffix[0]}"], state[f"{name}.{suffix[1]}"] = down.contiguous(), up.contiguous()
        if kohya:
            import torch

            state[f"{name}.alpha"] = torch.tensor(float(r))  # every scale is folded into up
        report.modules.append(ModuleMerge(name, r, retained, cut))
    if job is not None:
        job.step(len(names), len(names), "")
    meta = dict(files[0].metadata)
    top = max(m.rank for m in report.modules)
    meta.update({"ss_network_dim": str(top), "ss_network_alpha": str(float(top)),
                 "danlu_merged_from": json.dumps([{"file": f.path.name, "weight": w} for f, w in zip(files, weights)],
                                                 ensure_ascii=False),
                 "danlu_merge": "concatenated" if report.exact else f"svd rank {rank}"})
    if "modelspec.title" in meta:
        meta["modelspec.title"] = Path(out).stem
    write_lora(out, state, meta, [p for p, _ in inputs], precision or _precision_of(files[0]))
    return report


def _same_layout(files: list[LoraFile]) -> None:
    from models.toolbox.convert import layout_of

    first = layout_of(files[0])
    for f in files[1:]:
        if (other := layout_of(f)) != first:
            raise DanluError(f"{files[0].path.name} is in the {first} layout but {f.path.name} is in the {other} "
                             "layout.", f"{files[0].path.name} 是 {first} 格式，而 {f.path.name} 是 {other} 格式。",
                             f"Convert {f.path.name} to {first} first (Convert section).",
                             f"请先把 {f.path.name} 转换为 {first} 格式（“转换”一栏）。", key=str(f.path))


def _precision_of(lora: LoraFile) -> str:
    from models.toolbox.convert import _precision

    return _precision(lora)


# --- into a base checkpoint ----------------------------------------------------------------------------------

def _base_info(base: Path):
    from models.detect import detect

    info = detect(str(base))
    if info.kind != "single_file" or not info.usable:
        raise DanluError(f"{base.name} is not a base checkpoint in one file"
                         f"{': ' + info.problem_en if info.problem_en else ''}.",
                         f"{base.name} 不是单文件底模{'：' + info.problem_zh if info.problem_zh else ''}。",
                         "Pick the .safetensors checkpoint that WebUI or ComfyUI loads.",
                         "请选择 WebUI 或 ComfyUI 加载的 .safetensors 底模文件。", key=str(base))
    return info


def _family_check(base: Path, family: str, files: list[LoraFile]) -> None:
    from models.families import LABELS

    for f in files:
        if f.family and f.family != family and not family.startswith(f.family):
            raise DanluError(f"{f.path.name} is for {LABELS.get(f.family, f.family)} but {base.name} is "
                             f"{LABELS.get(family, family)}.",
                             f"{f.path.name} 适用于 {LABELS.get(f.family, f.family)}，"
                             f"而 {base.name} 是 {LABELS.get(family, family)}。",
                             "Use a LoRA made for this base model's family.", "请使用为该底模系列训练的 LoRA。",
                             key=str(f.path))


def _module_reader(f: LoraFile, layout: str, prefix: str) -> dict[str, Callable[[], dict[str, Any]]]:
    """{module name without `prefix`: () → {kohya suffix: tensor}} of a LoRA file, each module read when its layer
    is written. A file in another layout of the family is converted first (in memory: a LoRA is small beside the
    checkpoint); LoHa, LoKr and DoRA files have one layout and are read as they are. lora_A / lora_B take the
    names models.lycoris computes deltas from."""
    from models.toolbox.convert import convert_state, layout_of

    rename = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"}
    plain = f.layout != "lycoris" and not any("dora_scale" in parts for parts in f.modules.values())
    if layout_of(f) == layout or not plain:
        def read(name: str) -> Callable[[], dict[str, Any]]:
            return lambda: {rename.get(s, s): t for s, t in f.module(name).items()}

        return {name.removeprefix(prefix): read(name) for name in f.modules}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in convert_state(f, layout).items():
        if (parts := split_key(key)) is not None:
            groups.setdefault(parts[0].removeprefix(prefix), {})[rename.get(parts[1], parts[1])] = value
    return {name: (lambda g=g: g) for name, g in groups.items()}


def merge_into_base(base: str | Path, inputs: list[tuple[str | Path, float]], out: str | Path, *,
                    job: Job | None = None) -> MergeReport:
    """Write `base` with the LoRA files merged in, each at its weight, as a single-file checkpoint with the base's
    keys, dtypes and metadata (WebUI, ComfyUI and diffusers load it as they load the base).

    Tensor by tensor: the layers are found from the header (models.toolbox.layers), and each checkpoint tensor a
    LoRA touches is read, patched and written before the next one is read; the others are copied as bytes. The
    memory needed is one tensor with two fp32 copies (the sum and ΔW) plus a LoRA module, whatever the
    checkpoint's size."""
    from models import families
    from models.files import read_header
    from models.toolbox.convert import layouts
    from models.toolbox.layers import dit_names, sd_layers

    base = Path(base)
    out = check_outputs(out, [base, *[p for p, _ in inputs]])
    info = _base_info(base)
    family = info.family or ""
    files = [open_lora(p) for p, _ in inputs]
    _family_check(base, family, files)
    header = read_header(base)[0]
    dit = families.dit_module(family)
    if dit is not None:
        found = {n.removesuffix(".weight"): ref for n, ref in dit_names(dit, header).items()}
        layers = {n: Target(n, ref.key, ref.part) for n, ref in found.items()}
    else:
        layers = {t.name: t for _, _, t in sd_layers(base, family, header)}
    readers = [_module_reader(f, layouts(family)[0], dit.LORA_PREFIX if dit else "") for f in files]
    plan: dict[str, list[tuple[int, Target, Callable[[], dict[str, Any]]]]] = {}
    for i, modules in enumerate(readers):
        missing = sorted(n for n in modules if n not in layers or layers[n].key not in header)
        if missing:
            raise _no_layer(base, f"{len(missing)} modules of {files[i].path.name} match no layer, e.g. {missing[:3]}",
                            f"{files[i].path.name} 中有 {len(missing)} 个模块找不到对应的层，如 {missing[:3]}")
        for name, read in modules.items():
            plan.setdefault(layers[name].key, []).append((i, layers[name], read))
    strengths = [float(w) for _, w in inputs]

    def patch(key: str) -> Callable[[Any], Any]:
        def apply(weight: Any) -> Any:  # weight is the tensor's own read buffer: patched in place
            for i, target, read in plan[key]:  # file by file in the order given, as loaders apply several LoRAs
                _merge_module(part_of(weight, target), read(), strengths[i])
            return weight

        return apply

    meta = dict(info.metadata)
    meta["danlu_merged_loras"] = json.dumps([{"file": f.path.name, "weight": w} for f, (_, w) in zip(files, inputs)],
                                            ensure_ascii=False)
    if "modelspec.title" in meta:
        meta["modelspec.title"] = out.stem
    stream_safetensors(out, base, {key: patch(key) for key in plan}, meta, [p for p, _ in inputs], job)
    return MergeReport(out, [ModuleMerge(n, 0, 1.0) for f in files for n in f.modules], into_base=True)


def _merge_module(weight: Any, tensors: dict[str, Any], strength: float) -> None:
    """W += strength · ΔW of one module, in fp32 and cast back to W's dtype, in place, as ComfyUI patches a model
    and WebUI merges. A plain LoRA / LoCon module takes the loaders' steps ((up @ down) · scale · strength + W)
    in place, so a layer costs two fp32 copies of its weight, not five; LoHa, LoKr and DoRA go through
    models.lycoris.merge_groups."""
    import torch

    from models.lycoris import merge_groups

    factors = None if "dora_scale" in tensors else lora_factors(tensors)
    if factors is None:
        merge_groups({"m": weight}, {"m": tensors}, strength)
        return
    down, up, scale = factors
    with torch.no_grad():
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
        merged = weight.float()
        merged.add_(delta.mul_(scale).mul_(strength))
        del delta
        weight.copy_(merged)


def _no_layer(base: Path, detail: str, detail_zh: str) -> DanluError:
    return DanluError(f"The LoRA does not fit {base.name}: {detail}.",
                      f"该 LoRA 与 {base.name} 的结构不符：{detail_zh}。",
                      "Use a LoRA trained on this base model's family and version.",
                      "请使用在该底模系列与版本上训练的 LoRA。", key=str(base))
