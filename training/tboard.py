"""TensorBoard scalars beside events.jsonl (saving.tensorboard): the same numbers, for people who live in TensorBoard.

The `tensorboard` package is optional: without it the run goes on and says how to get it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

FOLDER = "tensorboard"
# event type → {event field: scalar tag}
SCALARS = {"progress": {"loss": "loss/train", "loss_avg": "loss/train_avg", "lr": "lr", "samples_per_s": "speed"},
           "validation": {"loss": "loss/validation"}}
MISSING_EN = ("saving.tensorboard is on but the tensorboard package is not installed; the run goes on without it. "
              "Install it with: python -m pip install tensorboard")
MISSING_ZH = ("已开启 saving.tensorboard，但没有安装 tensorboard 包；训练会继续，只是不写 TensorBoard。"
              "安装命令：python -m pip install tensorboard")


class Mirror:
    """Writes the scalar fields of progress and validation events to <run>/tensorboard."""

    def __init__(self, writer: Any):
        self.writer = writer

    def emit(self, type_: str, fields: dict) -> None:
        step = fields.get("step")
        for key, tag in SCALARS.get(type_, {}).items():
            value = fields.get(key)
            if isinstance(step, int) and isinstance(value, (int, float)):
                self.writer.add_scalar(tag, float(value), step)
        if type_ == "validation":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_mirror(run_dir: Path, warn: Callable[[str, str], None]) -> Mirror | None:
    """A Mirror, or None (with a warning) when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warn(MISSING_EN, MISSING_ZH)
        return None
    return Mirror(SummaryWriter(log_dir=str(Path(run_dir) / FOLDER)))
