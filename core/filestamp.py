"""Read a file with a fingerprint, write it back only if nobody changed it since.

Two browser tabs (or a tab and a text editor) can hold the same caption or TOML. Without a check the later save
silently replaces the earlier one. A page records what it read (mtime and a hash of the bytes); before it
writes, it compares the file on disk with that record, and when they differ it stops and asks the user
(keep mine / take theirs / show both) instead of writing. The content hash decides: a file touched or saved
again with the same bytes counts as unchanged, and a file rewritten within one mtime tick still counts as changed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import DanluError
from core.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class Fingerprint:
    """What a file was when read: exists=False for a file that was not there (a new file to create)."""

    exists: bool
    mtime_ns: int = 0
    size: int = 0
    sha256: str = ""

    def when(self) -> str:
        """The file's modification time, local, for messages ('' for a missing file)."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.mtime_ns / 1e9)) if self.exists else ""


MISSING = Fingerprint(exists=False)


def fingerprint_of(data: bytes, mtime_ns: int) -> Fingerprint:
    return Fingerprint(True, mtime_ns, len(data), hashlib.sha256(data).hexdigest())


def read_stamped(path: Path) -> tuple[bytes | None, Fingerprint]:
    """The file's bytes (None when it does not exist) and its fingerprint, from one read.

    The mtime is taken before the bytes: a write landing between the two leaves an older mtime with newer bytes,
    and the hash (which decides) belongs to the bytes returned.
    """
    path = Path(path)
    try:
        mtime_ns = path.stat().st_mtime_ns
        data = path.read_bytes()
    except FileNotFoundError:
        return None, MISSING
    return data, fingerprint_of(data, mtime_ns)


def fingerprint(path: Path) -> Fingerprint:
    return read_stamped(path)[1]


def unchanged(path: Path, read: Fingerprint) -> bool:
    """Whether the file holds what it held when `read` was taken (both missing counts as unchanged)."""
    now = fingerprint(path)
    return now.exists == read.exists and now.sha256 == read.sha256


class FileChanged(DanluError):
    """A save refused because the file changed on disk since it was read; carries what is there now."""

    def __init__(self, path: Path, theirs: bytes | None, now: Fingerprint):
        self.path, self.theirs, self.now = Path(path), theirs, now
        if now.exists:
            en = f"{path} was changed on disk at {now.when()}, after this page read it: nothing was written."
            zh = f"{path} 在本页读取之后被修改过（{now.when()}）：没有写入。"
        else:
            en = f"{path} was deleted after this page read it: nothing was written."
            zh = f"{path} 在本页读取之后被删除了：没有写入。"
        super().__init__(en, zh, "Keep mine (the other version is backed up), take theirs, or show both.",
                         "可选择保留我的（另一版本会备份）、采用对方的，或并排查看两者。", key=str(path))


def save_if_unchanged(path: Path, data: bytes, read: Fingerprint | None) -> Fingerprint:
    """Write data atomically if the file is still what `read` recorded; return the new fingerprint.

    `read` None means the page never read this file: an existing file then counts as changed (it would be
    replaced unseen). Raises FileChanged with the file's current bytes otherwise. Identical bytes are not rewritten.
    """
    path = Path(path)
    theirs, now = read_stamped(path)
    expected = read if read is not None else MISSING
    if (now.exists, now.sha256) != (expected.exists, expected.sha256):
        if theirs == data:   # the other save wrote exactly this: nothing to ask
            return now
        raise FileChanged(path, theirs, now)
    if theirs == data:
        return now
    atomic_write_bytes(path, data)
    return fingerprint(path)


def backup_path(path: Path, stamp: str | None = None) -> Path:
    """Where `keep mine` puts the other version of a file that has no dataset backup folder: `<name>.<stamp>.bak`."""
    path = Path(path)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() // 1_000_000 % 1000:03d}"
    return path.with_name(f"{path.name}.{stamp}.bak")


def overwrite_keeping_theirs(path: Path, data: bytes) -> tuple[Fingerprint, Path | None]:
    """`Keep mine`: copy the file as it is now to a .bak beside it, then write data; (new fingerprint, backup)."""
    path = Path(path)
    theirs, _ = read_stamped(path)
    saved = None
    if theirs is not None and theirs != data:
        saved = atomic_write_bytes(backup_path(path), theirs)
    if theirs != data:
        atomic_write_bytes(path, data)
    return fingerprint(path), saved
