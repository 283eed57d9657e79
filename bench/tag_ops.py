"""Tag editor speed: batch remove / replace / add over many captions (the bar: 10,000 in under 1 s).

    .venv/bin/python bench/tag_ops.py [--captions 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dataset.tags import Item, TagEditor  # noqa: E402


def make_editor(folder: Path, n: int, tags_per_caption: int = 25, vocabulary: int = 2000, seed: int = 0
                ) -> TagEditor:
    """An editor over n generated captions held in memory (the file reading is not what is measured)."""
    rng = random.Random(seed)
    vocab = [f"tag {i}" for i in range(vocabulary)]
    weights = [1 / (i + 1) for i in range(vocabulary)]   # a few very common tags, a long tail, like real data
    items = []
    for i in range(n):
        tags = ["sks"] + list(dict.fromkeys(rng.choices(vocab, weights, k=tags_per_caption)))
        img = Path(folder) / "10_sks" / f"{i:06d}.png"
        items.append(Item(img, img.with_suffix(".txt"), list(tags), list(tags)))
    return TagEditor(folder, trigger="sks", items=items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=10_000)
    args = parser.parse_args(argv)
    ed = make_editor(Path("bench-data"), args.captions)
    ops = [("table (counts)", lambda: ed.table()),
           ("filter AND", lambda: ed.filter(["tag 1", "tag 2"])),
           ("remove", lambda: ed.remove(["tag 3", "tag 4"])),
           ("replace", lambda: ed.replace("tag 5", "tag five")),
           ("replace regex", lambda: ed.replace(r"tag (1\d)", r"t\1", regex=True)),
           ("add front", lambda: ed.add(["masterpiece"], "front")),
           ("undo", lambda: ed.undo())]
    print(f"{args.captions} captions, ~25 tags each")
    worst = 0.0
    for name, fn in ops:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        worst = max(worst, dt)
        changed = out if isinstance(out, int) else (len(out) if isinstance(out, list) else out)
        print(f"  {name:16s} {dt * 1000:8.1f} ms   ({changed})")
    print(f"slowest operation: {worst * 1000:.1f} ms ({'under' if worst < 1 else 'OVER'} the 1 s bar)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
