"""Caption files: read whatever encoding users saved, write UTF-8 atomically, back up every original.

Captions written by Windows tools arrive as UTF-8 with a BOM, GBK or UTF-16. The trainer must not
train a literal BOM or mojibake, so `read_caption` decodes them and flags the problem for the page.
Every write keeps the previous file under `<dataset>/.danlu_backup/<stamp>/<same relative path>`
(the layout `list_backups` / `restore_backup` read back), so no edit can lose a user's caption.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core.fsutil import atomic_write_bytes
from core.state_files import report, set_aside

BACKUP_DIR = ".danlu_backup"
MAX_CAPTION_BYTES = 1 << 20
_SUBSET_RE = re.compile(r"^\d+_.+")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class CaptionRead:
    """One caption file as read.

    text:     the whole text, BOM removed, line endings made '\\n', surrounding whitespace stripped
    encoding: the encoding it was decoded with ('utf-8', 'utf-8-sig', 'utf-16', 'gbk', 'gb18030', 'latin-1')
    had_bom:  the file started with a byte-order mark
    problem:  'not_utf8' (decoded from another encoding), 'bom' (UTF-8 with BOM), 'empty' (missing,
              blank), 'not_text' (binary or huge: read as empty) or None; a write through write_caption fixes
              the first two.
    """

    text: str
    encoding: str
    had_bom: bool
    problem: str | None


def decode_caption_bytes(raw: bytes) -> CaptionRead:
    """Decode caption bytes, trying UTF-8 first and the encodings Chinese Windows tools write after it."""
    had_bom = False
    if raw.startswith(_UTF8_BOM):
        text, encoding, had_bom, problem = raw[3:].decode("utf-8", errors="replace"), "utf-8-sig", True, "bom"
    elif raw.startswith(_UTF16_BOMS):
        text, encoding, had_bom, problem = raw.decode("utf-16", errors="replace"), "utf-16", True, "not_utf8"
    else:
        problem = None
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            problem = "not_utf8"
            for encoding in ("gbk", "gb18030"):
                try:
                    text = raw.decode(encoding)
                    break
                except UnicodeDecodeError:
                    continue
            else:  # latin-1 decodes any byte string, so the user still sees something to fix
                text, encoding = raw.decode("latin-1"), "latin-1"
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text and problem is None:
        problem = "empty"
    return CaptionRead(text=text, encoding=encoding, had_bom=had_bom, problem=problem)


def read_caption(path: Path) -> CaptionRead:
    """Read one caption file. A missing file reads as empty text with problem 'empty'; a file that is no caption
    (binary bytes, over MAX_CAPTION_BYTES, unreadable) as empty text with problem 'not_text'."""
    path = Path(path)
    if not path.is_file():
        return CaptionRead(text="", encoding="utf-8", had_bom=False, problem="empty")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CAPTION_BYTES + 1)  # a caption is a line of tags: never read a 1 GB file whole
    except OSError:
        return CaptionRead(text="", encoding="", had_bom=False, problem="not_text")
    if len(raw) > MAX_CAPTION_BYTES or not _is_text(raw):
        return CaptionRead(text="", encoding="", had_bom=False, problem="not_text")
    return decode_caption_bytes(raw)


def caption_path(image: Path, extension: str = ".txt") -> Path:
    """The caption file next to an image. The extension needs its dot: 'txt' once trained with no captions."""
    if not extension.startswith(".") or len(extension) < 2:
        from core.errors import DanluError

        raise DanluError(f"Caption extension {extension!r} must start with a dot, e.g. '.txt'.",
                         f"标注扩展名 {extension!r} 必须以点开头，例如 '.txt'。",
                         "Without the dot no caption file is found and training runs with empty captions.",
                         "缺少点号会找不到标注文件，训练会在没有标注的情况下进行。", key="dataset.caption_extension")
    return Path(image).with_suffix(extension)


def dataset_root_for(path: Path) -> Path:
    """The dataset folder a caption belongs to: the parent of its `N_name` subset, else its own folder."""
    folder = Path(path).resolve().parent
    if _SUBSET_RE.match(folder.name):
        return folder.parent
    return folder


def backup_stamp() -> str:
    """A backup folder name; callers saving many files pass one stamp so a save is one folder."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() // 1_000_000 % 1000:03d}"


def backup_file(path: Path, stamp: str | None = None, dataset_root: Path | None = None) -> Path | None:
    """Copy path to <dataset>/.danlu_backup/<stamp>/<relative path>; None when there is nothing to keep.

    Within one stamp the first copy wins: saving the same caption twice in one batch keeps the original.
    """
    path = Path(path).resolve()
    if not path.is_file():
        return None
    root = Path(dataset_root).resolve() if dataset_root else dataset_root_for(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    dest = root / BACKUP_DIR / (stamp or backup_stamp()) / rel
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dest)
    return dest


def write_caption(path: Path, text: str, backup: bool = True, *, stamp: str | None = None,
                  dataset_root: Path | None = None) -> Path | None:
    """Write text as UTF-8 without BOM, atomically; back up the previous file first and return the backup path.

    Writing bytes identical to the file on disk is skipped (no write, no backup, returns None).
    """
    path = Path(path)
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return None
    saved = backup_file(path, stamp, dataset_root) if backup else None
    atomic_write_bytes(path, data)
    return saved


@dataclass(frozen=True)
class Backup:
    stamp: str
    folder: Path
    files: list[Path]   # relative to the dataset root


def list_backups(dataset_root: Path) -> list[Backup]:
    """Backups of a dataset, newest first."""
    base = Path(dataset_root) / BACKUP_DIR
    if not base.is_dir():
        return []
    out = []
    for folder in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and ".damaged-" not in p.name)
        out.append(Backup(stamp=folder.name, folder=folder, files=files))
    return out


def restore_backup(dataset_root: Path, stamp: str) -> list[Path]:
    """Put one backup's files back. The current files are backed up first, so a restore can be undone too."""
    root = Path(dataset_root).resolve()
    folder = root / BACKUP_DIR / stamp
    if not folder.is_dir() or "/" in stamp or "\\" in stamp or stamp in ("", ".", ".."):
        from core.errors import DanluError

        raise DanluError(f"No backup named {stamp!r} in {root / BACKUP_DIR}.",
                         f"在 {root / BACKUP_DIR} 中没有名为 {stamp!r} 的备份。",
                         "Pick one of the listed backups.", "请从列出的备份中选择。")
    before = backup_stamp()
    restored = []
    for src in sorted(p for p in folder.rglob("*") if p.is_file() and ".damaged-" not in p.name):
        rel = src.relative_to(folder)
        target = root / rel
        raw = src.read_bytes()
        if not _is_text(raw):  # a damaged backup must not overwrite the caption the user has now
            report(src, set_aside(src), ("The caption backup", "标注备份"), ("not text", "不是文本"),
                   (f"{target} was left as it is; the rest of the backup was restored.",
                    f"{target} 保持不变；备份中的其余文件已恢复。"))
            continue
        backup_file(target, before, root)
        atomic_write_bytes(target, raw)
        restored.append(target)
    return restored


def _is_text(raw: bytes) -> bool:
    """Caption bytes in an encoding read_caption understands, with no NUL byte (binary noise, a truncated copy
    of something else). An empty file is text: a caption may be empty."""
    if raw.startswith(_UTF16_BOMS):
        try:
            return "\x00" not in raw.decode("utf-16")
        except UnicodeDecodeError:
            return False
    if b"\x00" in raw:
        return False
    return decode_caption_bytes(raw).encoding != "latin-1"
