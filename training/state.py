"""Resumable training state in <run_dir>/state/: LoRA weights, optimizer, LR schedule, RNG, step.

The folder is written next to the old one and swapped in by renames, so a run killed while saving
keeps the previous complete state.
"""

from __future__ import annotations

import errno
import json
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import DanluError
from training import faults

STATE_DIR = "state"


def raise_if_disk_full(e: OSError, path: Path, kept_en: str, kept_zh: str) -> None:
    """A write that failed for lack of space becomes the user's message (what was not written, what is kept, what
    to do); any other error is left to the caller to re-raise."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return
    folder = Path(path).resolve().parent
    raise DanluError(f"The disk is full: {Path(path).name} could not be written in {folder}. {kept_en}",
                     f"磁盘空间已满：无法在 {folder} 中写入 {Path(path).name}。{kept_zh}",
                     "Free some space on that disk (or set another output folder), then continue the run with resume.",
                     "请清理该磁盘的空间（或改用其他输出文件夹），然后续训（resume）。",
                     key="saving.output_dir") from None


KEPT_EN = "The earlier LoRA files and the run's saved state are kept; the run stopped here."
KEPT_ZH = "之前的 LoRA 文件和训练状态都已保留；训练已在此停止。"


def rng_state() -> dict:
    import numpy as np
    import torch

    # Plain types only, so the state loads with torch's weights-only loader (a state folder can come from elsewhere).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def weights_restored(models: dict[str, Any]) -> Iterator[None]:
    """The trainable tensors put back exactly as they were on leaving. A schedule-free optimizer swaps its averaged
    weights in for validation and out again, and the swap back is not exact in floating point: the steps after a
    save must go on from the weights its state holds, as a resumed run does."""
    import torch

    kept = [(p, p.detach().clone()) for m in models.values() if m is not None
            for p in m.parameters() if p.requires_grad]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in kept:
                p.copy_(value)


def lora_weights(models: dict[str, Any]) -> dict[str, Any]:
    """Every trainable (LoRA) tensor, keyed component.parameter."""
    return {f"{comp}.{name}": p.detach().float().cpu().contiguous()
            for comp, m in models.items() if m is not None
            for name, p in m.named_parameters() if p.requires_grad}


def save_state(run_dir: Path, models: dict[str, Any], optimizer, scheduler, *, step: int, epoch: int,
               total_steps: int) -> Path:
    import torch
    from safetensors.torch import save_file

    final = Path(run_dir) / STATE_DIR
    tmp = final.with_name(f".{STATE_DIR}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_file(lora_weights(models), str(tmp / "lora.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
                   tmp / "train_state.pt")
        (tmp / "progress.json").write_text(json.dumps({"step": step, "epoch": epoch, "total_steps": total_steps}),
                                           encoding="utf-8")
        faults.point("state")
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)  # half a state is never read back: the previous one stays in place
        raise_if_disk_full(e, tmp / "train_state.pt", "This save's LoRA file is written; the previous state is kept.",
                           "本次保存的 LoRA 文件已写入；之前的训练状态已保留。")
        raise
    old = final.with_name(f".{STATE_DIR}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_state(run_dir: Path, resume: str) -> Path:
    """The state folder to resume from: 'auto'/'' = the run's own, else the given folder."""
    folder = Path(run_dir) / STATE_DIR if resume in ("", "auto") else Path(resume)
    if not (folder / "progress.json").is_file():
        old = folder.with_name(f".{STATE_DIR}.old")  # a run killed between the two renames
        if (old / "progress.json").is_file():
            return old
        raise DanluError(f"No saved training state in {folder}.", f"{folder} 中没有保存的训练状态。",
                         "A state is saved with each LoRA file and when a run is stopped; start without --resume.",
                         "每次保存 LoRA 或停止训练时会保存状态；请不带 --resume 重新开始。", key="training.resume")
    return folder


def load_state(folder: Path, models: dict[str, Any], optimizer, scheduler) -> dict:
    """Put the saved weights, optimizer, schedule and RNG back; return progress {step, epoch, total_steps}."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(folder / "lora.safetensors"))
    for comp, m in models.items():
        if m is None:
            continue
        params = dict(m.named_parameters())
        for key, value in weights.items():
            c, name = key.split(".", 1)
            if c == comp:
                if name not in params:
                    raise DanluError(f"The saved state does not match this network ({key}).",
                                     f"保存的状态与当前网络不一致（{key}）。",
                                     "Resume with the same network settings, or start a new run.",
                                     "请使用相同的网络设置续训，或重新开始。", key="training.resume")
                with torch.no_grad():
                    params[name].copy_(value.to(params[name].device, params[name].dtype))
    try:
        extra = torch.load(folder / "train_state.pt", weights_only=True)  # never unpickle code
    except Exception as e:  # noqa: BLE001 - any failure means the file is not a state this trainer wrote
        raise DanluError(f"The saved state in {folder} cannot be read safely: {e}",
                         f"{folder} 中保存的状态无法安全读取：{e}",
                         "Resume only from states Danlu saved, or start a new run.",
                         "请只从丹炉保存的状态续训，或重新开始。", key="training.resume") from None
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return json.loads((folder / "progress.json").read_text(encoding="utf-8"))
