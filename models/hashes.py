"""File hashes as WebUI and Civitai show them, computed once per file version.

`sha256_file` hashes the whole file (AutoV2 is its first 10 hex digits, WebUI's "Model hash").
Results are cached by resolved path + size + mtime, so a 7 GB checkpoint is read once, and a
file replaced under the same name is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.fsutil import atomic_write_text

_LOCK = threading.Lock()
CHUNK = 1 << 20


def cache_path() -> Path:
    """DANLU_CACHE_DIR/hashes.json, else ~/.cache/danlu/hashes.json."""
    root = os.environ.get("DANLU_CACHE_DIR") or Path.home() / ".cache" / "danlu"
    return Path(root) / "hashes.json"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a missing or damaged cache only costs a recomputation


def cached_sha256(path: Path | str) -> str | None:
    """The cached full sha256 of `path` if this exact version was hashed before, else None."""
    path = Path(path)
    try:
        return _read_cache().get(_key(path))
    except OSError:
        return None


def sha256_file(path: Path | str, progress: Callable[[int, int], None] | None = None) -> str:
    """Full sha256 hex of the file, from the cache when path, size and mtime are unchanged."""
    path = Path(path)
    key = _key(path)
    with _LOCK:
        hit = _read_cache().get(key)
    if hit:
        return hit
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    digest = h.hexdigest()
    with _LOCK:
        cache = _read_cache()
        cache[key] = digest
        atomic_write_text(cache_path(), json.dumps(cache, indent=0, ensure_ascii=False))
    return digest


def console_progress(label: str) -> Callable[[int, int], None]:
    """A progress callback printing `label NN%` in steps of 10 on stderr (the CLI's hash of a big file)."""
    import sys

    shown = [-1]

    def show(done: int, total: int) -> None:
        pct = done * 100 // max(total, 1) // 10 * 10
        if pct != shown[0]:
            shown[0] = pct
            end = "\n" if done >= total else ""
            print(f"\r{label} {pct}%", end=end, file=sys.stderr, flush=True)

    return show


def autov2(path: Path | str) -> str:
    """WebUI's "Model hash" (AutoV2): the first 10 hex digits of the file's sha256."""
    return sha256_file(path)[:10]


def legacy_hash(path: Path | str) -> str:
    """WebUI's old 8-hex hash: sha256 of 64 KiB at offset 1 MiB (kept in LoRA metadata as ss_sd_model_hash)."""
    with open(path, "rb") as f:
        f.seek(0x100000)
        return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]
