"""Help while editing tags: suggestions with counts, and the tags most images of one folder share.

Suggestions merge the dataset's own tags (images per tag) with a tagger's vocabulary (its Danbooru post
counts), so typing 'hai' offers 'long hair' with both numbers. The folder view lists the tags on at least
IDENTITY_SHARE of one `N_name` folder's images: what the trigger word should absorb. Dropping them is one
TagEditor operation, so Undo takes it back and Save writes backups first.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.dataset.tags import IDENTITY_SHARE, TagEditor, tag_key

SUGGEST_LIMIT = 5000   # a dropdown filters its choices in the browser; more than this makes the page sluggish


def suggestions(dataset: Counter, vocabulary: list[tuple[str, int]], limit: int = SUGGEST_LIMIT
                ) -> list[tuple[str, int, int]]:
    """(tag, images here, posts) rows: the dataset's tags first (most used first), then the vocabulary by posts.

    `posts` is the tagger's Danbooru count (0 when the vocabulary does not know the tag).
    """
    known = {tag_key(t): n for t, n in vocabulary}
    out, seen = [], set()
    for tag, n in sorted(dataset.items(), key=lambda kv: (-kv[1], kv[0])):
        seen.add(tag_key(tag))
        out.append((tag, n, known.get(tag_key(tag), 0)))
    for tag, posts in sorted(vocabulary, key=lambda kv: -kv[1]):
        if len(out) >= limit:
            break
        if tag_key(tag) not in seen:
            seen.add(tag_key(tag))
            out.append((tag, 0, posts))
    return out[:limit]


def folders(ed: TagEditor) -> dict[str, list[int]]:
    """Image indices per folder (relative to the editor's folder; '.' for images directly in it)."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(ed.items):
        try:
            name = str(item.image.parent.relative_to(ed.folder)) or "."
        except ValueError:
            name = str(item.image.parent)
        groups.setdefault(name, []).append(i)
    return dict(sorted(groups.items()))


def frequent_tags(ed: TagEditor, indices: list[int], share: float = IDENTITY_SHARE) -> list[tuple[str, int, float]]:
    """(tag, images, share) for the tags on at least `share` of these images, the trigger left out."""
    n = len(indices)
    if not n:
        return []
    trigger = {tag_key(t) for t in ed.trigger}
    rows = [(tag, k, k / n) for tag, k in ed.counts(indices).items() if k / n >= share and tag_key(tag) not in trigger]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def drop_from_folder(ed: TagEditor, folder: str, tags: list[str]) -> int:
    """Remove tags from the captions of one folder as one undoable edit; returns the captions changed."""
    indices = folders(ed).get(folder, [])
    return ed.remove(tags, indices) if indices and tags else 0


def folder_of(ed: TagEditor, path: Path) -> str:
    """The folders() key of an image path."""
    try:
        return str(Path(path).parent.relative_to(ed.folder)) or "."
    except ValueError:
        return str(Path(path).parent)
