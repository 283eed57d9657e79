"""Small file-system helpers: atomic writes and names that cannot escape their folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def temp_path_for(path: Path) -> Path:
    """A temporary sibling name for writers that need a path (e.g. safetensors.save_file), renamed after."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def safe_child(folder: Path, name: str) -> Path:
    """folder/name, refusing names that would land outside folder (.., absolute paths, separators)."""
    folder = Path(folder).resolve()
    target = (folder / name).resolve()
    if target.parent != folder and folder not in target.parents or target == folder:
        raise ValueError(f"{name!r} escapes {folder}")
    return target
