"""Small file-system helpers: atomic writes and names that cannot escape their folder."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask. os.umask can only be read by setting it, so set and restore under a lock."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """An overwritten file keeps its permission bits; a new one gets what open() would give it (0666 & ~umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def fsync_folder(folder: Path) -> None:
    """Make a rename inside folder durable. POSIX only: Windows cannot open a folder for fsync."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network mounts) refuse fsync on a folder; the rename itself stands
        pass
    finally:
        os.close(fd)


def replace_keeping_mode(tmp: Path, path: Path) -> Path:
    """Rename a finished temporary file over path, giving it path's mode (or the umask default), fsync the folder."""
    path = Path(path)
    os.chmod(tmp, _mode_for(path))
    os.replace(tmp, path)
    fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: Path, data: bytes | tuple) -> Path:
    """Write to a temporary file in the same folder, then rename over the target (data: bytes, or a tuple of
    buffers written one after the other).

    mkstemp creates the temporary file with mode 0600; it is given the target's mode (or the umask default for a
    new file) before the rename, so a user's caption or config keeps the permissions it had.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in data if isinstance(data, tuple) else (data,):
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        replace_keeping_mode(Path(tmp), path)
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
