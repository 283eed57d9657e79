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


# ------------------------------------------------------------------ files the user hands over

TEXT_LIMIT = 16 * 1024 * 1024  # a config, a prompt list or an argument file is kilobytes; more is not one


def read_user_text(path: Path, what: tuple[str, str], hint: tuple[str, str], limit: int = TEXT_LIMIT) -> str:
    """A text file the user gave (a config, an argument file, a prompt list), as UTF-8 (a BOM is dropped).

    Every way it can fail is a DanluError naming the file and saying what it is instead (missing, a folder, a link
    that leads nowhere, too large, empty bytes aside: binary data, UTF-16, GBK) plus `hint`, what to give instead.
    `what` names the thing in English and Chinese ("the config", "配置").
    """
    from core.errors import DanluError

    path = Path(path)

    def refuse(en: str, zh: str) -> DanluError:
        return DanluError(f"Cannot read {what[0]} {path}: {en}", f"无法读取{what[1]} {path}：{zh}", hint[0], hint[1],
                          key=str(path))

    try:
        if path.is_dir():
            raise refuse("it is a folder, not a file.", "这是一个文件夹，不是文件。")
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        if path.is_symlink():
            raise refuse("it is a link to a file that does not exist.", "它是指向不存在文件的链接。") from None
        raise refuse("the file does not exist.", "文件不存在。") from None
    except OSError as e:
        raise refuse(f"{e.strerror or type(e).__name__}.", f"{e.strerror or type(e).__name__}。") from None
    if len(raw) > limit:
        raise refuse(f"it is larger than {limit // (1024 * 1024)} MB, too large for a text file of settings.",
                     f"文件超过 {limit // (1024 * 1024)} MB，不是设置文本文件。")
    return decode_user_text(raw, refuse)


def decode_user_text(raw: bytes, refuse) -> str:
    """UTF-8 text, else refuse(en, zh) saying what the bytes look like (UTF-16, binary, GBK)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise refuse("it is UTF-16 text; save it as UTF-8.", "它是 UTF-16 编码的文本，请另存为 UTF-8。")
    if b"\x00" in raw:
        raise refuse("it holds binary data, not text.", "它包含二进制数据，不是文本。")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        try:
            raw.decode("gbk")
            en, zh = "it is GBK (Chinese Windows) text; save it as UTF-8.", "它是 GBK 编码的文本，请另存为 UTF-8。"
        except UnicodeDecodeError:
            en, zh = f"it is not UTF-8 text (byte {e.start}).", f"它不是 UTF-8 文本（第 {e.start} 字节）。"
        raise refuse(en, zh) from None
