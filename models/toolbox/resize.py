"""Resize a LoRA: to a fixed rank or by sd-scripts' dynamic rules (sv_ratio, sv_fro, sv_cumulative), per module.

For each module ΔW = up @ down · alpha / rank is factorised by SVD; the new factors keep the top-k singular
triplets, so the effect at weight 1 is the best rank-k approximation of ΔW (Eckart–Young), and alpha keeps its
meaning (the new alpha is chosen so that scale · up @ down equals that approximation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.toolbox.common import Job

METHODS = ("fixed", "sv_ratio", "sv_fro", "sv_cumulative")


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

    def text(self, lang: str | None = None) -> str: ...


def resize_lora(path: str | Path, out: str | Path, *, rank: int, method: str = "fixed",
                param: float | None = None, precision: str | None = None, job: Job | None = None) -> ResizeReport:
    """rank: the fixed rank, or the largest rank a dynamic method may pick; param: the method's threshold."""
    ...
