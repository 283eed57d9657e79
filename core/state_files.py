"""Files Danlu writes and reads back as its own state (the run queue, a run's trainer.json, the page's saved
settings, caption backups, downloaded tagger files): read them, or else move the damaged file aside and say so.

A damaged state file is never deleted nor silently replaced: it is renamed to `<name>.damaged-<stamp>` next to
where it was (copied instead, when another process may still be appending to it), the shell is told on stderr,
and the page reads the same notice from `notices()`; the caller rebuilds what it can and says what it recovered.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from core.errors import current_lang

T = TypeVar("T")
# What a parser of a state file may raise on bytes that are not what was written (RecursionError: deep nesting).
DAMAGE = (ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError, AttributeError, RecursionError)
_MAX_NOTICES = 50


@dataclass(frozen=True)
class Notice:
    """What happened to one damaged state file, in both languages (the page shows it as a warning line)."""

    path: Path          # the state file as it was named
    aside: Path | None  # where its bytes are now (None: it could not be moved; it was left where it was)
    en: str
    zh: str
    time: float

    def text(self, lang: str | None = None) -> str:
        return self.zh if (lang or current_lang()) == "zh" else self.en


_lock = threading.Lock()
_read_lock = threading.RLock()
_notices: list[Notice] = []


def notices(since: float = 0.0) -> list[Notice]:
    """The notices of this process newer than `since` (a time.time()), oldest first."""
    with _lock:
        return [n for n in _notices if n.time > since]


def aside_path(path: Path) -> Path:
    """`<name>.damaged-<YYYYmmdd-HHMMSS>` beside path, with a counter when that name is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return target


def set_aside(path: str | Path, copy: bool = False) -> Path | None:
    """Rename (or copy, when a writer may still hold it open) a damaged file beside itself; None when it can't be."""
    path = Path(path)
    target = aside_path(path)
    try:
        if copy:
            shutil.copy2(path, target)
        else:
            os.replace(path, target)
    except OSError:
        return None
    return target


def report(path: str | Path, aside: Path | None, what: tuple[str, str], why: str | tuple[str, str],
           recovered: tuple[str, str]) -> Notice:
    """Tell the shell (stderr) and the page (notices()) that a state file was damaged and what became of it."""
    path = Path(path)
    why_en, why_zh = (why, why) if isinstance(why, str) else why
    where_en = f"kept as {aside}" if aside else "left where it is (it could not be moved)"
    where_zh = f"已保留为 {aside}" if aside else "无法移动，已留在原处"
    notice = Notice(path, aside, f"{what[0]} {path} was damaged ({why_en}); {where_en}. {recovered[0]}",
                    f"{what[1]} {path} 已损坏（{why_zh}）；{where_zh}。{recovered[1]}", time.time())
    with _lock:
        _notices.append(notice)
        del _notices[:-_MAX_NOTICES]
    print(f"[Danlu] {notice.text()}", file=sys.stderr, flush=True)
    return notice


def read_state(path: str | Path, parse: Callable[[bytes], T], what: tuple[str, str],
               recovered: tuple[str, str] | Callable[[], tuple[str, str]], copy: bool = False) -> T | None:
    """parse(the file's bytes); None when the file is missing, or damaged: then it is set aside and reported.

    `recovered` says what the caller does instead (or a function that does it and says so, run after the move and
    under this module's lock: a rebuild written there is what the next reader finds). A file that cannot be read at
    all (a folder in its place, no permission) counts as damaged too.
    """
    with _read_lock:  # two threads finding one damaged file: the second reads what the first rebuilt
        return _read_state(Path(path), parse, what, recovered, copy)


def _read_state(path: Path, parse: Callable[[bytes], T], what: tuple[str, str],
                recovered: tuple[str, str] | Callable[[], tuple[str, str]], copy: bool) -> T | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        why = e.strerror or type(e).__name__
    else:
        try:
            return parse(raw)
        except DAMAGE as e:
            why = _short(e)
    aside = set_aside(path, copy=copy)
    report(path, aside, what, why, recovered() if callable(recovered) else recovered)
    return None


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) <= 120 else text[:117] + "…"


def set_aside_download(path: str | Path, what: tuple[str, str], why: str | tuple[str, str]) -> bool:
    """A damaged file of a hub download cache (a link into `blobs/`, or the blob itself): move the blob aside so
    the next run downloads it again, and report it. False (nothing done) for any other file: a user's own file is
    refused with a message, never moved."""
    real = Path(os.path.realpath(path))  # not resolve(): that raises on a link loop
    if real.parent.name != "blobs" or not real.is_file():
        return False
    report(path, set_aside(real), what, why, ("The next run downloads it again.", "下次运行会重新下载。"))
    return True
