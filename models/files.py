"""Names and files that detection and loading both read: paths as users paste them, hub ids, safetensors
headers read without touching the weights, and pickle checkpoints opened only through torch's weights-only
loader."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from core.errors import DanluError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
DTYPE_NAMES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1}
MAX_HEADER = 100 * 1024 * 1024


def clean_path(text: str) -> str:
    """A path as users paste it: surrounding quotes and spaces removed, `~` expanded."""
    text = (text or "").strip().strip('"').strip("'").strip()
    return str(Path(text).expanduser()) if text.startswith("~") else text


def is_hub_id(text: str) -> bool:
    """`org/name` or `org/name@revision` that is not also a local path."""
    return bool(HUB_ID.match(text)) and not Path(text).exists() and "\\" not in text


def split_hub_id(text: str) -> tuple[str, str | None]:
    repo, _, rev = text.partition("@")
    return repo, rev or None


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True (nothing in the file can run); raises DanluError when refused."""
    import torch

    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Files from torch < 1.6 are not zip archives and cannot be memory-mapped; read them whole.
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise refuse_pickle(path, exc) from exc


def refuse_pickle(path: Path, exc: Exception | None = None) -> DanluError:
    # Only torch's first sentence: its advice to retry with weights_only=False is exactly what we refuse to do.
    first = str(exc).split(". ")[0].splitlines()[0][:200] if exc else ""
    why = f" ({type(exc).__name__}: {first})" if exc else ""
    return DanluError(
        f"{path.name} is a pickle checkpoint that torch's safe (weights-only) loader cannot open{why}. "
        "Pickles can carry code, so Danlu will not unpickle it.",
        f"{path.name} 是 pickle 格式的模型，torch 的安全加载（weights_only）无法打开{why}。"
        "pickle 文件可能携带代码，丹炉不会执行它。",
        "Download the .safetensors version of this model, or convert it in a tool you trust.",
        "请下载该模型的 .safetensors 版本，或在你信任的工具中转换。", key="model.base")


def read_state_dict(path: Path) -> dict:
    """All tensors of a checkpoint: safetensors (memory-mapped) or a pickle through weights-only loading."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise DanluError(f"{path.name} holds no tensor dictionary.", f"{path.name} 中没有权重字典。")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


class HeaderError(ValueError):
    pass


def read_header(path: Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """{tensor: (dtype, shape)} and the metadata of a safetensors file, reading only its header.

    Raises HeaderError when the file is not safetensors or its data is cut short.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise HeaderError("the file is shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > min(MAX_HEADER, size - 8):
            raise HeaderError("the first 8 bytes are not a safetensors header length")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeaderError("the header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object")
    meta = {str(k): str(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    tensors: dict[str, tuple[str, list[int]]] = {}
    end = 0
    for name, spec in header.items():
        try:
            tensors[name] = (spec["dtype"], list(spec["shape"]))
            end = max(end, int(spec["data_offsets"][1]))
        except (KeyError, TypeError, IndexError) as exc:
            raise HeaderError(f"tensor entry {name!r} is malformed") from exc
    if 8 + n + end > size:
        raise HeaderError(f"the file is truncated: the header needs {8 + n + end:,} bytes, the file has {size:,}")
    return tensors, meta


def sniff_pickle(path: Path) -> str:
    """'zip' (torch's pickle archive), 'pickle' (a raw pickle stream) or ''."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "pickle"
    return ""
