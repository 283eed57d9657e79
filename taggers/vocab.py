"""A WD tagger's vocabulary with its Danbooru post counts, for tag autocomplete (no model is loaded)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

from core.errors import DanluError


def vocabulary(model: str) -> list[tuple[str, int]]:
    """(tag as written in captions, post count) for the tagger's general and character tags.

    Only a downloaded model (or a local folder) is read: autocomplete never starts a download. Unknown or
    not-downloaded models give an empty list.
    """
    from taggers.wd14 import TAGS_FILE, resolve_model

    try:
        folder = resolve_model(model, local_files_only=True)
    except DanluError:
        return []
    try:
        return list(_read(Path(folder) / TAGS_FILE))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError, TypeError):
        return []  # a damaged tag list gets its message when the tagger loads it; autocomplete only goes without


@functools.lru_cache(maxsize=4)
def _read(path: Path) -> tuple[tuple[str, int], ...]:
    from taggers.wd14 import CHARACTER, GENERAL, KAOMOJI, kaomoji_candidates, normalize_tag

    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["category"]) in (GENERAL, CHARACTER)]
    kaomoji = KAOMOJI | kaomoji_candidates([r["name"] for r in rows])
    return tuple((normalize_tag(r["name"], kaomoji), int(r.get("count") or 0)) for r in rows)
