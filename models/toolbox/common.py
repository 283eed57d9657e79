"""What the toolbox's tools share: reading a LoRA file tensor by tensor, its module layout, progress with ETA and
cancel, and atomic output that never overwrites an input.

A LoRA file's layout is read from its keys, not from a family name: each module is ``<name>.<suffix>`` where the
suffix is one of LORA_SUFFIXES (kohya: ``lora_down.weight`` / ``lora_up.weight`` / ``alpha``; diffusers/peft:
``lora_A.weight`` / ``lora_B.weight``, alpha folded into B; LyCORIS: ``hada_*`` / ``lokr_*``; DoRA:
``dora_scale``). The family (models.families.lora_family) says which base the file is for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DanluError

# (down, up) suffix pairs of the two plain LoRA layouts, kohya first.
PAIRS = (("lora_down.weight", "lora_up.weight"), ("lora_A.weight", "lora_B.weight"))
LORA_SUFFIXES = ("lora_down.weight", "lora_up.weight", "lora_A.weight", "lora_B.weight", "alpha", "dora_scale",
                 "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a",
                 "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "lora_mid.weight")

Progress = Callable[[int, int, str], None]  # (done, total, what): a tool reports after each module


class Cancelled(DanluError):
    """The user pressed Cancel: nothing was written."""


@dataclass
class Job:
    """Progress, ETA and cancel of one tool run: the tab passes its progress bar and Cancel button, the shell a
    console line; `step` calls both after each module and raises Cancelled when asked to stop."""

    progress: Progress | None = None
    cancel: Callable[[], bool] | None = None
    started: float = field(default_factory=time.monotonic)

    def step(self, done: int, total: int, what: str = "") -> None: ...

    def eta(self, done: int, total: int) -> float | None: ...


@dataclass
class LoraFile:
    """A LoRA file opened by its header: tensors are read one at a time (`tensor`, `module`)."""

    path: Path
    shapes: dict[str, tuple[str, list[int]]]  # key → (safetensors dtype, shape)
    metadata: dict[str, str]
    family: str | None
    modules: dict[str, dict[str, str]]  # module name → {suffix: key}

    def tensor(self, key: str) -> Any: ...

    def module(self, name: str) -> dict[str, Any]: ...

    @property
    def layout(self) -> str: ...


def open_lora(path: str | Path) -> LoraFile:
    """Open a LoRA file's header; DanluError (bilingual, with what to do) for a missing file, a pickle (refused,
    never unpickled), a truncated file, or a safetensors file that holds no LoRA modules."""
    ...


def check_outputs(out: str | Path, inputs: list[str | Path]) -> Path:
    """The output path, refused (DanluError) when it is one of the inputs: a tool never overwrites its input."""
    ...


def write_lora(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str], inputs: list[str | Path],
               precision: str | None = None) -> Path:
    """Write a LoRA file atomically (a temporary file renamed at the end, so a cancel or crash leaves none),
    with sd-scripts' sshs hashes of the written tensors."""
    ...


def same_family(files: list[LoraFile]) -> str | None:
    """The one family of several LoRA files; DanluError naming both when they differ."""
    ...


def iter_modules(lora: LoraFile, job: Job | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(module name, {suffix: tensor}) one module at a time, reporting progress and honouring cancel."""
    ...
