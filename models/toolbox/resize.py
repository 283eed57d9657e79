"""Resize a LoRA: to a fixed rank or by sd-scripts' dynamic rules (sv_ratio, sv_fro, sv_cumulative), per module.

For each module ΔW = up @ down · alpha / rank is factorised by SVD; the new factors keep the top-k singular
triplets, so the effect at weight 1 is the best rank-k approximation of ΔW (Eckart–Young), and alpha keeps its
meaning (the new alpha is chosen so that scale · up @ down equals that approximation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.toolbox.common import PAIRS, Job, check_outputs, iter_modules, lora_factors, open_lora, write_lora

METHODS = ("fixed", "sv_ratio", "sv_fro", "sv_cumulative")
MIN_SV = 1e-6  # below this the module's ΔW is zero: it keeps rank 1, as sd-scripts does


@dataclass
class ModuleResize:
    name: str
    old_rank: int
    new_rank: int
    fro_retained: float  # share of ΔW's Frobenius norm kept: sqrt(Σ_k s² / Σ s²)


@dataclass
class ResizeReport:
    out: Path
    modules: list[ModuleResize]

    def text(self, lang: str | None = None) -> str:
        """The per-module table and the mean retained share, in the user's language."""
        from core.errors import current_lang

        zh = (lang or current_lang()) == "zh"
        head = ("模块 | 原秩 → 新秩 | 保留的 Frobenius 比例" if zh else
                "module | rank → new rank | Frobenius share kept")
        rows = [f"{m.name} | {m.old_rank} → {m.new_rank} | {100 * m.fro_retained:.1f}%" for m in self.modules]
        mean = sum(m.fro_retained for m in self.modules) / max(1, len(self.modules))
        tail = (f"已写入 {self.out}：{len(self.modules)} 个模块，平均保留 {100 * mean:.1f}%" if zh else
                f"wrote {self.out}: {len(self.modules)} modules, {100 * mean:.1f}% kept on average")
        return "\n".join([head, *rows, tail])


def pick_rank(s: Any, method: str, param: float | None, max_rank: int, *, compat: bool = False) -> int:
    """The rank a method keeps of singular values `s` (descending), at most max_rank and at least 1.

    sv_ratio: the values above s[0] / param; sv_fro: the fewest whose squares hold param² of Σ s² (a Frobenius
    share of param); sv_cumulative: the fewest whose sum holds param of Σ s. compat=True keeps one more, as
    sd-scripts' resize_lora.py does (its index functions and rank_resize each add one)."""
    import torch

    if float(s[0]) <= MIN_SV:
        return 1
    if method == "fixed":
        k = max_rank
    elif param is None or param <= 0:
        raise DanluError(f"The {method} method needs a positive value.", f"{method} 方法需要一个正数参数。",
                         "Give e.g. 2 for sv_ratio, 0.9 for sv_fro or sv_cumulative.",
                         "例如 sv_ratio 填 2，sv_fro 或 sv_cumulative 填 0.9。")
    elif method == "sv_ratio":
        k = int((s > s[0] / param).sum())
    elif method in ("sv_fro", "sv_cumulative"):
        v = s.double().pow(2) if method == "sv_fro" else s.double()
        target = param ** 2 if method == "sv_fro" else param
        share = torch.cumsum(v, 0) / v.sum()
        k = int(torch.searchsorted(share, torch.tensor([float(target)], dtype=share.dtype))[0]) + 1
    else:
        raise DanluError(f"Unknown resize method {method!r}.", f"未知的缩放方法 {method!r}。",
                         f"Use one of {', '.join(METHODS)}.", f"请使用以下之一：{'、'.join(METHODS)}。")
    if compat and method != "fixed":
        k += 1
    return max(1, min(k, max_rank, len(s)))


def low_rank_svd(down: Any, up: Any) -> tuple[Any, Any, Any]:
    """U, S, Vh of up @ down (flattened to 2-D) without forming it: QR of each factor, then the SVD of the small
    r×r core. Exact for a rank-r product, and costs O((out + in)·r²) instead of a full out×in SVD."""
    import torch

    d = down.flatten(1).double()  # (r, in)
    u = up.flatten(1).double()    # (out, r)
    qu, ru = torch.linalg.qr(u)            # u = qu ru
    qd, rd = torch.linalg.qr(d.T)          # d = rd^T qd^T
    uc, s, vhc = torch.linalg.svd(ru @ rd.T)
    return qu @ uc, s, vhc @ qd.T


def resize_module(tensors: dict[str, Any], rank: int, method: str, param: float | None, *, compat: bool = False
                  ) -> tuple[dict[str, Any], ModuleResize | None]:
    """New {suffix: tensor} of one module and its report line; the module's alpha semantics kept:
    new alpha = old scale × new rank, so scale × up @ down is the best rank-k approximation of the old ΔW."""
    import torch

    factors = lora_factors(tensors)
    if factors is None:
        raise DanluError("LoHa/LoKr modules cannot be resized rank by rank.", "LoHa/LoKr 模块无法按秩缩放。",
                         "Resize a LoRA or LoCon file; or extract a LoRA from a merged model.",
                         "请缩放 LoRA 或 LoCon 文件；或从融合后的模型中提取 LoRA。")
    down, up, scale = factors
    down_key, up_key = next(p for p in PAIRS if p[0] in tensors)
    u, s, vh = low_rank_svd(down, up)
    k = pick_rank(s, method, param, rank, compat=compat)
    new_up = (u[:, :k] * s[:k]).float()
    new_down = vh[:k].float()
    if down.dim() == 4:
        new_down = new_down.reshape(k, *down.shape[1:])
        new_up = new_up.reshape(up.shape[0], k, 1, 1)
    out = dict(tensors)
    out[down_key], out[up_key] = new_down.contiguous(), new_up.contiguous()
    if "alpha" in tensors:
        out["alpha"] = torch.tensor(scale * k, dtype=torch.float32)
    total = float(s.pow(2).sum())
    kept = (float(s[:k].pow(2).sum()) / total) ** 0.5 if total > 0 else 1.0
    return out, ModuleResize("", down.shape[0], k, kept)


def resize_lora(path: str | Path, out: str | Path, *, rank: int, method: str = "fixed", param: float | None = None,
                conv_rank: int | None = None, precision: str | None = None, compat: bool = False,
                job: Job | None = None) -> ResizeReport:
    """rank: the fixed rank, or the largest rank a dynamic method may pick (conv_rank: the same for convolutions
    with a kernel larger than 1×1, default rank); param: the method's threshold. Writes `out` atomically."""
    lora = open_lora(path)
    check_outputs(out, [path])  # before the work: a refused name should not cost a resize
    if rank < 1:
        raise DanluError("The rank must be at least 1.", "秩（rank）至少为 1。")
    tensors: dict[str, Any] = {}
    report: list[ModuleResize] = []
    for name, parts in iter_modules(lora, job):
        down = next((parts[d] for d, _ in PAIRS if d in parts), None)
        conv = down is not None and down.dim() == 4 and down.shape[-1] > 1
        new, line = resize_module(parts, conv_rank or rank if conv else rank, method, param, compat=compat)
        line.name = name
        report.append(line)
        tensors.update({f"{name}.{suffix}": t for suffix, t in new.items()})
    meta = dict(lora.metadata)
    old = max(m.old_rank for m in report)
    comment = meta.get("ss_training_comment", "")
    if method == "fixed":
        meta["ss_training_comment"] = f"dimension is resized from {old} to {rank}; {comment}"
        meta["ss_network_dim"] = str(rank)
        alphas = {float(t) for k, t in tensors.items() if k.endswith(".alpha")}
        if len(alphas) == 1:
            meta["ss_network_alpha"] = str(alphas.pop())
    else:
        meta["ss_training_comment"] = f"Dynamic resize with {method}: {param} from {old}; {comment}"
        meta["ss_network_dim"] = meta["ss_network_alpha"] = "Dynamic"
    written = write_lora(out, tensors, meta, [path], precision)
    return ResizeReport(written, report)
