"""The tag editor's model: every caption of a dataset as tag lists, batch operations, undo, save with backups.

Nothing touches disk until `save`: edits are pending (and counted) in memory, every operation can be
undone, and save writes only the captions that changed, each original kept under
`<dataset>/.danlu_backup/<stamp>/`. Only the first line of a caption holds tags (the trainer reads that
line); any further lines are kept as they are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.dataset import is_image, parse_subset_name
from core.dataset.captions import (
    BACKUP_DIR,
    backup_stamp,
    caption_path,
    decode_caption_bytes,
    list_backups,
    restore_backup,
    write_caption,
)
from core.errors import DanluError
from core.filestamp import Fingerprint, fingerprint, read_stamped, unchanged

IDENTITY_SHARE = 0.8   # tags on ≥80 % of images probably describe what the trigger should learn
UNDO_LIMIT = 200


def tag_key(tag: str) -> str:
    """What tags are compared by: underscores as spaces, runs of spaces collapsed, case-folded."""
    return " ".join(tag.replace("_", " ").split()).casefold()


def split_tags(text: str) -> list[str]:
    """'a, b,,c ' → ['a', 'b', 'c']."""
    return [t.strip() for t in text.split(",") if t.strip()]


def dedupe(tags: Iterable[str]) -> list[str]:
    """Drop repeated tags (by tag_key), keeping the first spelling and the order."""
    seen, out = set(), []
    for tag in tags:
        k = tag_key(tag)
        if k not in seen:
            seen.add(k)
            out.append(tag)
    return out


def _dedupe_only(tags: list[str], keys: set[str]) -> list[str]:
    """Drop repeats of the given keys only (what a replace introduced); other duplicates are the user's."""
    seen, out = set(), []
    for tag in tags:
        k = tag_key(tag)
        if k in keys:
            if k in seen:
                continue
            seen.add(k)
        out.append(tag)
    return out


def join_tags(tags: list[str]) -> str:
    return ", ".join(tags)


def list_dataset_images(folder: Path) -> list[Path]:
    """Images directly in folder and in its subfolders (the `N_name` subsets); hidden and backup folders skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DanluError(f"The folder {folder} does not exist.", f"文件夹 {folder} 不存在。",
                         "Enter the dataset folder (the parent of the 10_name folders) or an image folder.",
                         "请填写训练集文件夹（10_name 等子文件夹的上级）或图片文件夹。", key="dataset.dir")
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if any(p.startswith(".") or p == BACKUP_DIR for p in rel[:-1]):
            continue
        if path.is_file() and is_image(path):
            out.append(path)
    return out


def dataset_root(folder: Path) -> Path:
    """Where backups go: the parent when folder is itself a `N_name` subset."""
    folder = Path(folder).resolve()
    return folder.parent if parse_subset_name(folder.name) else folder


@dataclass
class Item:
    image: Path
    caption: Path
    original: list[str]          # tags on disk (first line)
    tags: list[str]              # tags now, maybe pending
    rest: str = ""               # lines after the first, kept untouched
    problem: str | None = None   # from read_caption: 'not_utf8', 'bom', 'empty'
    read: Fingerprint | None = None  # the file as read (None: built in memory); save refuses if it changed since

    @property
    def changed(self) -> bool:
        return self.tags != self.original

    def text(self) -> str:
        return join_tags(self.tags) + (f"\n{self.rest}" if self.rest else "")


@dataclass
class SaveReport:
    written: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    stamp: str = ""
    conflicts: list[int] = field(default_factory=list)  # changed on disk since read: not written, still pending


class TagEditor:
    """All captions of one dataset folder, editable in memory with a global multi-step undo."""

    def __init__(self, folder: Path, caption_extension: str = ".txt", trigger: str = "",
                 items: list[Item] | None = None):
        """Read the captions of folder; `items` instead builds an editor from captions held in memory."""
        self.folder = Path(folder)
        self.root = dataset_root(self.folder)
        self.caption_extension = caption_extension
        self.trigger = split_tags(trigger)
        self.items: list[Item] = []
        self._undo: list[tuple[str, dict[int, list[str]]]] = []
        self.conflicts: list[int] = []   # set by save: captions changed on disk since read
        if items is None:
            self.reload()
        else:
            self.items = items

    # ------------------------------------------------------------ reading
    def reload(self) -> None:
        """Read every caption from disk again; pending edits and the undo history are dropped."""
        self.items = []
        for image in list_dataset_images(self.folder):
            cap = caption_path(image, self.caption_extension)
            self.items.append(self._read_item(image, cap))
        self._undo = []
        self.conflicts = []

    @staticmethod
    def _read_item(image: Path, cap: Path) -> Item:
        raw, stamp = read_stamped(cap)
        read = decode_caption_bytes(raw or b"")
        first, _, rest = read.text.partition("\n")
        tags = split_tags(first)
        return Item(image, cap, list(tags), list(tags), rest.strip(), read.problem, stamp)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def pending(self) -> list[int]:
        return [i for i, it in enumerate(self.items) if it.changed]

    def diff(self, index: int) -> tuple[list[str], list[str]]:
        """(removed, added) tags of one caption against the file on disk; both empty for a pure reorder."""
        it = self.items[index]
        old, new = {tag_key(t) for t in it.original}, {tag_key(t) for t in it.tags}
        return [t for t in it.original if tag_key(t) not in new], [t for t in it.tags if tag_key(t) not in old]

    def counts(self, indices: Iterable[int] | None = None) -> Counter:
        """Images per tag (a tag repeated within one caption counts once)."""
        c: Counter = Counter()
        for i in self._indices(indices):
            c.update(set(self.items[i].tags))
        return c

    def table(self, sort: str = "count", search: str = "", indices: Iterable[int] | None = None
              ) -> list[tuple[str, int, bool]]:
        """(tag, images, identity flag) rows; sort by 'count', 'name' or 'length'; search is a substring."""
        n = len(self.items) or 1
        needle = tag_key(search)
        trig = {tag_key(t) for t in self.trigger}
        rows = [(tag, k, k / n >= IDENTITY_SHARE and tag_key(tag) not in trig)
                for tag, k in self.counts(indices).items() if needle in tag_key(tag)]
        keys: dict[str, Callable] = {"count": lambda r: (-r[1], r[0]), "name": lambda r: (tag_key(r[0]), r[0]),
                                     "length": lambda r: (-len(r[0]), r[0])}
        return sorted(rows, key=keys.get(sort, keys["count"]))

    def identity_tags(self) -> list[tuple[str, float]]:
        """Tags (other than the trigger) on ≥80 % of images, with their share: probably the identity or style."""
        n = len(self.items) or 1
        return [(tag, k / n) for tag, k, flag in self.table("count") if flag]

    def filter(self, include: Iterable[str] = (), exclude: Iterable[str] = (), mode: str = "and") -> list[int]:
        """Images whose tags contain all (mode 'and') or any (mode 'or') of include and none of exclude."""
        inc, exc = {tag_key(t) for t in include if t.strip()}, {tag_key(t) for t in exclude if t.strip()}
        out = []
        for i, it in enumerate(self.items):
            keys = {tag_key(t) for t in it.tags}
            if exc & keys:
                continue
            if inc and not (inc <= keys if mode == "and" else inc & keys):
                continue
            out.append(i)
        return out

    # ------------------------------------------------------------ operations
    def _indices(self, indices: Iterable[int] | None) -> Iterable[int]:
        return range(len(self.items)) if indices is None else indices

    def _apply(self, name: str, fn: Callable[[list[str]], list[str]], indices: Iterable[int] | None,
               dry_run: bool) -> int:
        """Run fn on each caption's tags; record what changed for undo. Returns the number of captions changed."""
        before: dict[int, list[str]] = {}
        for i in self._indices(indices):
            it = self.items[i]
            new = fn(it.tags)
            if new != it.tags:
                before[i] = it.tags
                if not dry_run:
                    it.tags = new
        if before and not dry_run:
            self._undo.append((name, before))
            del self._undo[:-UNDO_LIMIT]
        return len(before)

    def remove(self, tags: Iterable[str], indices: Iterable[int] | None = None, dry_run: bool = False) -> int:
        keys = {tag_key(t) for t in tags if t.strip()}
        return self._apply("remove", lambda ts: [t for t in ts if tag_key(t) not in keys], indices, dry_run)

    def replace(self, old: str, new: str, *, regex: bool = False, indices: Iterable[int] | None = None,
                dry_run: bool = False) -> int:
        """Rename a tag (new may be several comma-separated tags, or empty to remove it).

        With regex, old is a pattern matched against each whole tag (re.fullmatch) and new its replacement
        (\\1 groups allowed); a tag that becomes empty is dropped.
        """
        if regex:
            try:
                pat = re.compile(old)
            except re.error as e:
                raise DanluError(f"The pattern {old!r} is not a valid regular expression: {e}.",
                                 f"{old!r} 不是有效的正则表达式：{e}。", key="tags.regex") from e

            def fn(ts: list[str]) -> list[str]:
                out, made = [], set()
                for t in ts:
                    if pat.fullmatch(t):
                        repl = split_tags(pat.sub(new, t))
                        made.update(tag_key(r) for r in repl)
                        out.extend(repl)
                    else:
                        out.append(t)
                return _dedupe_only(out, made) if made else out
        else:
            k, repl = tag_key(old), split_tags(new)
            made = {tag_key(r) for r in repl}

            def fn(ts: list[str]) -> list[str]:
                if not any(tag_key(t) == k for t in ts):
                    return ts
                out = []
                for t in ts:
                    out.extend(repl if tag_key(t) == k else [t])
                return _dedupe_only(out, made)
        return self._apply("replace", fn, indices, dry_run)

    def add(self, tags: Iterable[str], position: str = "back", indices: Iterable[int] | None = None,
            dry_run: bool = False) -> int:
        """Add tags at the 'front' (after the trigger tags) or 'back'; tags already present stay where they are."""
        new = dedupe(t.strip() for t in tags if t.strip())
        trig = {tag_key(t) for t in self.trigger}

        def fn(ts: list[str]) -> list[str]:
            have = {tag_key(t) for t in ts}
            extra = [t for t in new if tag_key(t) not in have]
            if not extra:
                return ts
            if position == "back":
                return ts + extra
            lead = 0
            while lead < len(ts) and tag_key(ts[lead]) in trig:
                lead += 1
            return ts[:lead] + extra + ts[lead:]
        return self._apply("add", fn, indices, dry_run)

    def trigger_first(self, trigger: str | None = None, indices: Iterable[int] | None = None,
                      dry_run: bool = False) -> int:
        """Put the trigger tags first in every caption (adding them where missing), so keep_tokens protects them."""
        trig = dedupe(split_tags(trigger)) if trigger is not None else self.trigger
        if trigger is not None:
            self.trigger = trig
        keys = {tag_key(t) for t in trig}
        return self._apply("trigger", lambda ts: trig + [t for t in ts if tag_key(t) not in keys],
                           indices, dry_run)

    def remove_duplicates(self, indices: Iterable[int] | None = None, dry_run: bool = False) -> int:
        return self._apply("dedupe", dedupe, indices, dry_run)

    def set_caption(self, index: int, text: str) -> bool:
        """Per-image edit from the text box (first line = tags). Returns whether anything changed."""
        tags = split_tags(text.strip().partition("\n")[0])
        return self._apply("edit", lambda ts: tags, [index], False) > 0

    def discard(self) -> int:
        """Drop all pending tag edits (undoable)."""
        before = {}
        for i in self.pending:
            before[i] = self.items[i].tags
            self.items[i].tags = list(self.items[i].original)
        if before:
            self._undo.append(("discard", before))
        self.conflicts = []   # nothing of mine is left to keep; the next save asks again if an undo brings it back
        return len(before)

    @property
    def undo_names(self) -> list[str]:
        return [name for name, _ in reversed(self._undo)]

    def undo(self) -> str | None:
        """Undo the last operation; returns its name, or None when there is nothing to undo."""
        if not self._undo:
            return None
        name, before = self._undo.pop()
        for i, tags in before.items():
            self.items[i].tags = tags
        return name

    # ------------------------------------------------------------ disk
    def save(self) -> SaveReport:
        """Write the changed captions (UTF-8, atomic), each original backed up under one stamp folder.

        A caption changed on disk since it was read (another page, another program) is not written: it stays
        pending, listed in `report.conflicts` and `self.conflicts` until `keep_mine` or `take_theirs`.
        """
        report = SaveReport(stamp=backup_stamp())
        for i, it in enumerate(self.items):
            if not it.changed:
                continue
            if it.read is not None and not unchanged(it.caption, it.read):
                report.conflicts.append(i)
                continue
            self._write(it, report)
        self.conflicts = report.conflicts
        return report

    def _write(self, it: Item, report: SaveReport) -> None:
        saved = write_caption(it.caption, it.text(), stamp=report.stamp, dataset_root=self.root)
        if saved is not None:
            report.backups.append(saved)
        report.written.append(it.caption)
        it.original = list(it.tags)
        it.problem = None if it.tags else "empty"
        it.read = fingerprint(it.caption)

    def keep_mine(self) -> SaveReport:
        """Resolve the conflicts by writing this editor's captions; the versions on disk go to the backup."""
        report = SaveReport(stamp=backup_stamp())
        for i in self.conflicts:
            if self.items[i].changed:   # an edit undone or discarded since has nothing of mine to write
                self._write(self.items[i], report)
        self.conflicts = []
        return report

    def take_theirs(self) -> int:
        """Resolve the conflicts by reading the captions on disk into the editor (this editor's edits drop,
        undoably). Returns how many were read."""
        before = {i: self.items[i].tags for i in self.conflicts}
        for i in self.conflicts:
            self.items[i] = self._read_item(self.items[i].image, self.items[i].caption)
        if before:
            self._undo.append(("theirs", before))
        n, self.conflicts = len(self.conflicts), []
        return n

    def theirs(self, index: int) -> str:
        """The caption on disk now, for showing it beside this editor's."""
        return self._read_item(self.items[index].image, self.items[index].caption).text()

    def backups(self) -> list:
        return list_backups(self.root)

    def restore(self, stamp: str) -> list[Path]:
        """Put a backup's originals back on disk (current files are backed up first) and reload."""
        restored = restore_backup(self.root, stamp)
        self.reload()
        return restored
