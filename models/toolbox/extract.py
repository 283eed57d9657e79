"""Extract a LoRA (LoCon for conv layers) from the difference of two checkpoints of one family.

Module by module: ΔW = tuned − base, truncated SVD to a fixed rank or a dynamic rule (resize.py's), written in the
family's LoRA layout with alpha = rank (scale 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.toolbox.common import Job


@dataclass
class ExtractReport:
    out: Path | None       # None when the two checkpoints are identical (nothing to extract)
    modules: int
    skipped: int           # modules whose difference is below the threshold

    def text(self, lang: str | None = None) -> str: ...


def extract_lora(base: str | Path, tuned: str | Path, out: str | Path, *, rank: int, conv_rank: int = 0,
                 method: str = "fixed", param: float | None = None, threshold: float = 0.0,
                 job: Job | None = None) -> ExtractReport:
    ...
