"""What the toolbox's tools share: reading a LoRA file tensor by tensor, its module layout, progress with ETA and
cancel, and atomic output that never overwrites an input.

A LoRA file's layout is read from its keys, not from a family name: each module is ``<name>.<suffix>`` where the
suffix is one of LORA_SUFFIXES (kohya: ``lora_down.weight`` / ``lora_up.weight`` / ``alpha``; diffusers/peft:
``lora_A.weight`` / ``lora_B.weight``, alpha folded into B; LyCORIS: ``hada_*`` / ``lokr_*``; DoRA:
``dora_scale``). The family (models.families.lora_family) says which base the file is for.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    def __init__(self) -> None:
        super().__init__("Cancelled: no file was written.", "已取消：没有写入任何文件。")


@dataclass
class Job:
    """Progress, ETA and cancel of one tool run: the tab passes its progress bar and Cancel button, the shell a
    console line; `step` calls both after each module and raises Cancelled when asked to stop."""

    progress: Progress | None = None
    cancel: Callable[[], bool] | None = None
    started: float = field(default_factory=time.monotonic)

    def step(self, done: int, total: int, what: str = "") -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled()
        if self.progress is not None:
            self.progress(done, total, what)

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left at the pace so far; None before the first module is done."""
        if done <= 0 or total <= 0:
            return None
        return (time.monotonic() - self.started) * (total - done) / done


def console_progress(label: str) -> Progress:
    """A one-line progress display for the shell: done/total, percent and ETA."""
    import sys

    job_start = time.monotonic()

    def show(done: int, total: int, what: str = "") -> None:
        elapsed = time.monotonic() - job_start
        eta = elapsed * (total - done) / done if done else 0.0
        pct = 100 * done / total if total else 100.0
        sys.stderr.write(f"\r{label}: {done}/{total} ({pct:.0f}%) ETA {eta:.0f}s   ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


@dataclass
class LoraFile:
    """A LoRA file opened by its header: tensors are read one at a time (`tensor`, `module`)."""

    path: Path
    shapes: dict[str, tuple[str, list[int]]]  # key → (safetensors dtype, shape)
    metadata: dict[str, str]
    family: str | None
    modules: dict[str, dict[str, str]]  # module name → {suffix: key}

    def tensor(self, key: str) -> Any:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as f:
            return f.get_tensor(key)

    def module(self, name: str) -> dict[str, Any]:
        """{suffix: tensor} of one module, read from the file (memory-mapped, so only this module is loaded)."""
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as f:
            return {suffix: f.get_tensor(key) for suffix, key in self.modules[name].items()}

    @property
    def layout(self) -> str:
        """'kohya' (lora_down/lora_up/alpha), 'peft' (lora_A/lora_B) or 'lycoris' (LoHa/LoKr)."""
        suffixes = {s for parts in self.modules.values() for s in parts}
        if "lora_down.weight" in suffixes:
            return "kohya"
        if "lora_A.weight" in suffixes:
            return "peft"
        return "lycoris"


def split_key(key: str) -> tuple[str, str] | None:
    """(module name, suffix) of a LoRA key, None for a key that is no LoRA tensor."""
    for suffix in LORA_SUFFIXES:
        if key.endswith("." + suffix):
            return key[: -len(suffix) - 1], suffix
    return None


def _unreadable(path: Path, why_en: str, why_zh: str) -> DanluError:
    return DanluError(f"{path.name} cannot be read as a LoRA: {why_en}.",
                      f"{path.name} 无法作为 LoRA 读取：{why_zh}。",
                      "Check that the download finished and the file is a .safetensors LoRA.",
                      "请确认下载已完成，且文件是 .safetensors 格式的 LoRA。", key=str(path))


def open_lora(path: str | Path) -> LoraFile:
    """Open a LoRA file's header; DanluError (bilingual, with what to do) for a missing file, a pickle (refused,
    never unpickled), a truncated file, or a safetensors file that holds no LoRA modules."""
    from models.families import lora_family
    from models.files import HeaderError, read_header, refuse_pickle, sniff_pickle

    path = Path(path)
    if not path.is_file():
        raise DanluError(f"{path} does not exist.", f"{path} 不存在。", "Check the path.", "请检查路径。",
                         key=str(path))
    if sniff_pickle(path):  # a pickle can run code when loaded: it is named and refused, never opened
        raise refuse_pickle(path)
    try:
        shapes, meta = read_header(path)
    except HeaderError as exc:
        truncated = "truncated" in str(exc)
        raise _unreadable(path, str(exc), "文件不完整（被截断）" if truncated else "它不是 safetensors 文件") from None
    modules: dict[str, dict[str, str]] = {}
    for key in shapes:
        parts = split_key(key)
        if parts is not None:
            modules.setdefault(parts[0], {})[parts[1]] = key
    weights = [m for m in modules.values() if set(m) - {"alpha", "dora_scale"}]
    if not weights:
        raise DanluError(f"{path.name} holds no LoRA modules: it looks like a full model or another kind of file "
                         f"({len(shapes)} tensors, e.g. {list(shapes)[:2]}).",
                         f"{path.name} 中没有 LoRA 模块：它像是完整模型或其他文件（{len(shapes)} 个张量）。",
                         "Pick a LoRA file (.safetensors with lora_down/lora_up or lora_A/lora_B keys).",
                         "请选择 LoRA 文件（含 lora_down/lora_up 或 lora_A/lora_B 键的 .safetensors）。",
                         key=str(path))
    modules = {name: parts for name, parts in modules.items() if set(parts) - {"alpha", "dora_scale"}}
    return LoraFile(path, shapes, meta, lora_family(shapes, meta), modules)


def check_outputs(out: str | Path, inputs: list[str | Path]) -> Path:
    """The output path, refused (DanluError) when it is one of the inputs: a tool never overwrites its input."""
    out = Path(out)
    for inp in inputs:
        inp = Path(inp)
        if out.resolve() == inp.resolve() or (out.exists() and inp.exists() and out.samefile(inp)):
            raise DanluError(f"The output {out.name} is one of the input files; it would be overwritten.",
                             f"输出文件 {out.name} 就是输入文件之一，会被覆盖。",
                             "Choose another output name.", "请换一个输出文件名。", key=str(out))
    if out.suffix.lower() != ".safetensors":
        raise DanluError(f"The output {out.name} must end in .safetensors.",
                         f"输出文件 {out.name} 必须以 .safetensors 结尾。",
                         "Add .safetensors to the name.", "请在文件名后加上 .safetensors。", key=str(out))
    return out


@contextmanager
def atomic_output(path: str | Path, inputs: list[str | Path]) -> Iterator[Any]:
    """An open binary file that becomes `path` only when the block ends without error: written under a temporary
    name in the same folder, then fsynced and renamed (core.fsutil). A cancel, crash or error removes it, so no
    partial file is ever left under the output's name. For outputs written piece by piece (a whole checkpoint)."""
    from core.fsutil import replace_keeping_mode, temp_path_for

    path = check_outputs(path, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        replace_keeping_mode(tmp, path)
    finally:  # after the rename there is nothing left to remove; after an error, the partial file goes
        tmp.unlink(missing_ok=True)


def write_lora(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str], inputs: list[str | Path],
               precision: str | None = None) -> Path:
    """Write a LoRA file atomically (a temporary file renamed at the end, so a cancel or crash leaves none),
    with sd-scripts' sshs hashes of the written tensors. precision: 'fp16', 'bf16', 'float' or None (as given)."""
    import torch
    from safetensors.torch import save

    from core.fsutil import atomic_write_bytes
    from models.lora_file import safetensors_hashes, with_metadata

    path = check_outputs(path, inputs)
    if precision is not None:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32, "fp32": torch.float32}
        tensors = {k: v.to(dtype[precision]) for k, v in tensors.items()}
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items() if v is not None}
    meta["ss_output_name"] = path.stem
    meta.pop("sshs_model_hash", None)
    meta.pop("sshs_legacy_hash", None)
    data = save(tensors, metadata={k: v for k, v in meta.items() if k.startswith("ss_")})
    meta["sshs_model_hash"], meta["sshs_legacy_hash"] = safetensors_hashes(data)
    atomic_write_bytes(path, with_metadata(data, meta))
    return path


def same_family(files: list[LoraFile]) -> str | None:
    """The one family of several LoRA files; DanluError naming both when they differ."""
    from models.families import LABELS

    known = [f for f in files if f.family]
    for f in known[1:]:
        if f.family != known[0].family:
            a, b = known[0], f
            la, lb = LABELS.get(a.family, a.family), LABELS.get(b.family, b.family)
            raise DanluError(f"{a.path.name} is for {la} but {b.path.name} is for {lb}; they cannot be combined.",
                             f"{a.path.name} 适用于 {la}，而 {b.path.name} 适用于 {lb}，无法合并。",
                             "Use LoRAs made for the same base model family.", "请使用同一底模系列的 LoRA。")
    return known[0].family if known else None


def iter_modules(lora: LoraFile, job: Job | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(module name, {suffix: tensor}) one module at a time, reporting progress and honouring cancel."""
    from safetensors import safe_open

    names = sorted(lora.modules)
    with safe_open(str(lora.path), framework="pt") as f:
        for i, name in enumerate(names):
            if job is not None:
                job.step(i, len(names), name)
            yield name, {suffix: f.get_tensor(key) for suffix, key in lora.modules[name].items()}
    if job is not None:
        job.step(len(names), len(names), "")


def lora_factors(tensors: dict[str, Any]) -> tuple[Any, Any, float] | None:
    """(down, up, scale) of a plain LoRA module in either layout, fp32, scale = alpha / rank (1 without alpha,
    as the peft layout folds it into up); None for LoHa / LoKr modules."""
    for down_key, up_key in PAIRS:
        if down_key in tensors:
            down, up = tensors[down_key].float(), tensors[up_key].float()
            alpha = tensors.get("alpha")
            scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
            return down, up, scale
    return None


# Untouched tensors are copied in pieces of this size, so a large one (an embedding table) is never held whole.
COPY_CHUNK = 16 * 2**20


def _data_spans(path: Path) -> tuple[int, dict[str, tuple[int, int]]]:
    """(where the data starts, {key: (start, end) within the data}) of a safetensors file whose header
    models.files.read_header has already checked."""
    import json

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, {k: (int(v["data_offsets"][0]), int(v["data_offsets"][1])) for k, v in header.items()}


def release_freed_memory() -> None:
    """Hand memory freed by Python and torch back to the OS (glibc's malloc_trim; elsewhere nothing to do).

    glibc raises its threshold for serving large blocks from the heap each time one is freed, so the layer-sized
    buffers of a streamed checkpoint end up in the heap, and freed heap pages stay with the process: measured on
    an SD1.5 merge, 450 MiB kept that no tensor used any more. Trimming after each layer keeps the resident memory
    at what the current layer needs."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c") if os.name == "posix" else None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def stream_safetensors(out: str | Path, like: str | Path, patches: dict[str, Callable[[Any], Any]],
                       metadata: dict[str, str], inputs: list[str | Path], job: Job | None = None) -> Path:
    """Write a checkpoint with the keys, order, dtypes and shapes of the safetensors file `like`, one tensor at a
    time: a key in `patches` is read, handed to its function (which returns the new tensor, cast and reshaped
    here to the original), and written; every other tensor's bytes are copied as they are, in COPY_CHUNK pieces.

    The file is read with plain reads, not safetensors' memory map: the pages of a map stay in the process's
    resident memory once touched, so a checkpoint streamed through a map looks (to the OS and to a measurement)
    as large as the whole file. The header is known before any data, so at most one tensor (and its fp32 copy,
    in the patch) is held. A temporary file is renamed at the end; a cancel or error removes it."""
    import json

    import torch

    from models.files import DTYPE_BYTES, read_header

    out, like = Path(out), Path(like)
    shapes, _ = read_header(like)
    start, spans = _data_spans(like)
    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool, "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
              "F8_E5M2": getattr(torch, "float8_e5m2", None)}
    header: dict[str, Any] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset = 0
    for key, (dtype, shape) in shapes.items():
        size = torch.Size(shape).numel() * DTYPE_BYTES[dtype]
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with atomic_output(out, [like, *inputs]) as w, open(like, "rb") as f:
        w.write(len(raw).to_bytes(8, "little") + raw)
        for i, (key, (dtype, shape)) in enumerate(shapes.items()):
            if job is not None:
                job.step(i, len(shapes), key)
            a, b = spans[key]
            f.seek(start + a)
            if key not in patches:
                for left in range(b - a, 0, -COPY_CHUNK):
                    w.write(f.read(min(left, COPY_CHUNK)))
                continue
            data = bytearray(b - a)
            f.readinto(data)
            t = torch.frombuffer(data, dtype=dtypes[dtype]).reshape(shape) if data else \
                torch.empty(shape, dtype=dtypes[dtype])
            t = patches[key](t).detach().to(dtypes[dtype]).reshape(shape)
            w.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
            del t, data
            release_freed_memory()
    if job is not None:
        job.step(len(shapes), len(shapes), "")
    return out
