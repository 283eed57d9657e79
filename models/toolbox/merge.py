"""Merge several LoRAs into one, or LoRAs into a base checkpoint (built on common.py's helpers).

LoRAs into one (`merge_loras`): per module, ΔW = Σ weight_i · scale_i · up_i @ down_i. When no rank is asked, or
the ranks add up to no more than it, the factors are concatenated (down stacked, up side by side with each file's
weight and scale folded in): exact. Otherwise the sum is cut to the rank by SVD (through QR of the stacked
factors, so no full ΔW is formed) and the report gives each module's retained Frobenius share. LoHa / LoKr / DoRA
modules have no low-rank factors to stack (and DoRA depends on the base weight): they merge into a base only.

LoRAs into a base (`merge_into_base`): every module's delta is added to the base weight in fp32 and cast back,
as ComfyUI patches a model and WebUI merges (models/lycoris.py: LoRA, LoCon, LoHa, LoKr, and DoRA's input-axis
decomposition), each file at its weight, in the order given. The checkpoint is written with the base's keys,
dtypes and metadata; only the patched weights differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.toolbox.common import Job, LoraFile, check_outputs, lora_factors, open_lora, same_family, write_lora


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
            return (f"{self.out.name}：已将 LoRA 合并进底模（{len(self.modules)} 个模块），保持底模的键名与精度。" if zh else
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
                      "LoRA.", f"{lora.path.name}：{name} 是 LoHa、LoKr 或 DoRA 模块，不能与其他 LoRA 合并成一个 LoRA。",
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
        raise DanluError("No LoRA files to merge.", "没有要合并的 LoRA 文件。", "Add at least one file.", "请至少添加一个文件。")
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
                             f"{LABELS.get(family, family)}.", f"{f.path.name} 适用于 {LABELS.get(f.family, f.family)}，"
                             f"而 {base.name} 是 {LABELS.get(family, family)}。",
                             "Use a LoRA made for this base model's family.", "请使用为该底模系列训练的 LoRA。",
                             key=str(f.path))


def _lora_state(f: LoraFile, layout: str) -> dict[str, Any]:
    """All tensors of a LoRA file in `layout` (LoHa/LoKr/DoRA files are read as they are)."""
    from models.toolbox.convert import convert_state, layout_of

    plain = f.layout != "lycoris" and not any("dora_scale" in parts for parts in f.modules.values())
    if layout_of(f) == layout or not plain:  # LoHa, LoKr and DoRA have one layout
        return {key: f.tensor(key) for parts in f.modules.values() for key in parts.values()}
    return convert_state(f, layout)


def merge_into_base(base: str | Path, inputs: list[tuple[str | Path, float]], out: str | Path, *,
                    job: Job | None = None) -> MergeReport:
    """Write `base` with the LoRA files merged in, each at its weight, as a single-file checkpoint with the base's
    keys, dtypes and metadata (WebUI, ComfyUI and diffusers load it as they load the base)."""
    from models import families
    from models.toolbox.convert import layouts

    base = Path(base)
    out = check_outputs(out, [base, *[p for p, _ in inputs]])
    info = _base_info(base)
    family = info.family or ""
    files = [open_lora(p) for p, _ in inputs]
    _family_check(base, family, files)
    layout = layouts(family)[0]
    states = [(_lora_state(f, layout), float(w)) for f, (_, w) in zip(files, inputs)]
    dit = families.dit_module(family)
    if dit is not None:
        patched = _merge_dit(dit, base, states, job)
    else:
        patched = _merge_unet(base, family, info.prediction_type, states, job)
    from models.toolbox.common import stream_safetensors

    meta = dict(info.metadata)
    meta["danlu_merged_loras"] = json.dumps([{"file": f.path.name, "weight": w} for f, (_, w) in zip(files, inputs)],
                                            ensure_ascii=False)
    if "modelspec.title" in meta:
        meta["modelspec.title"] = out.stem
    stream_safetensors(out, base, patched, meta, job)
    return MergeReport(out, [ModuleMerge(n, 0, 1.0) for f in files for n in f.modules], into_base=True)


def _merge_unet(base: Path, family: str, prediction: str, states: list[tuple[dict, float]],
                job: Job | None) -> dict[str, Any]:
    """{file key: tensor} of the patched model, for an SD-UNet family: through the diffusers pipeline, whose layer
    names the kohya keys follow, and back to the file's names by models/ldm.py. Weights no LoRA touches come back
    bitwise (the base's dtype → fp32 → the base's dtype)."""
    from models.ldm import diffusers_to_ldm
    from models.loading import load_single_file
    from models.lycoris import file_weights, group_modules, merge_groups, pipe_components

    # Loaded in the file's widest float type (an fp16 checkpoint stays fp16: half the memory of fp32); the deltas
    # are added in fp32 and cast back (models.lycoris.merge_groups), as the write would cast them anyway.
    pipe = load_single_file(base, family, prediction, torch_dtype=_widest_float(base))
    comps = pipe_components(pipe)
    for i, (state, strength) in enumerate(states):
        if job is not None:
            job.step(i, len(states) + 1, "merging")
        groups = group_modules(state)
        try:
            weights = file_weights(comps, groups, family)
        except ValueError as exc:
            raise _no_layer(base, str(exc)) from None
        merge_groups(weights, groups, strength)
    return diffusers_to_ldm(pipe, family)


def _widest_float(path: Path) -> Any:
    """The float dtype that holds every float tensor of a checkpoint exactly (fp32 when fp16 and bf16 mix)."""
    import torch

    from models.files import read_header

    found = {dtype for dtype, _ in read_header(path)[0].values()}
    if "F32" in found or "F64" in found or {"F16", "BF16"} <= found:
        return torch.float32
    return torch.bfloat16 if "BF16" in found else torch.float16 if "F16" in found else torch.float32


def _no_layer(base: Path, detail: str) -> DanluError:
    return DanluError(f"The LoRA does not fit {base.name}: {detail}.", f"该 LoRA 与 {base.name} 的结构不符：{detail}。",
                      "Use a LoRA trained on this base model's family and version.",
                      "请使用在该底模系列与版本上训练的 LoRA。", key=str(base))


def _merge_dit(dit: Any, base: Path, states: list[tuple[dict, float]], job: Job | None) -> dict[str, Any]:
    """{file key: tensor} of the patched transformer, for a DiT family: the base's weights renamed by the family,
    patched in fp32, and renamed back (q/k/v fused into qkv again)."""
    from safetensors import safe_open

    from models.lycoris import merge_groups
    from models.toolbox.convert import file_names

    with safe_open(str(base), framework="pt") as f:
        keys = list(f.keys())
        prefix = dit.FILE_PREFIX if any(k.startswith(dit.FILE_PREFIX) for k in keys) else ""
        named = file_names(dit).from_file_keys({k: f.get_tensor(k) for k in keys if k.startswith(prefix)})
    weights: dict[str, Any] = {}
    for i, (lora, strength) in enumerate(states):
        if job is not None:
            job.step(i, len(states) + 1, "merging")
        groups = {name.removeprefix(dit.LORA_PREFIX): parts for name, parts in _dit_groups(lora).items()}
        missing = sorted(n for n in groups if f"{n}.weight" not in named)
        if missing:
            raise _no_layer(base, f"{len(missing)} modules match no layer, e.g. {missing[:3]}")
        for n in groups:
            weights.setdefault(n, named[f"{n}.weight"].float().clone())
        merge_groups(weights, groups, strength)
    named.update({f"{n}.weight": w for n, w in weights.items()})
    return file_names(dit).to_file_keys(named, prefix)


def _dit_groups(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{module: {kohya suffix: tensor}} of a DiT LoRA (lora_A/lora_B named as models.lycoris reads them)."""
    from models.toolbox.common import split_key

    rename = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        if (parts := split_key(key)) is not None:
            groups.setdefault(parts[0], {})[rename.get(parts[1], parts[1])] = value
    return groups
