"""The Dataset tab's view of a scan: the gallery (thumbnails made on first view, a page at a time), the step
table, the bucket chart, the check list and the summary, all from core.dataset.scan. ui/tab_dataset.py lays the
tab out and wires its events to these."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import gradio as gr

from core import config as cfgmod
from core.dataset.buckets import buckets_for, resolutions_of
from core.dataset.scan import DatasetScan, scan_dataset
from ui.i18n import t

PAGE = 48             # gallery thumbnails per page, made only when shown
THUMB = 256
LEVEL_ICON = {"error": "✖", "warn": "⚠", "info": "ℹ"}  # plain symbols: present in every UI font

_INFO_CACHE: dict = {}  # header facts per (path, size, mtime), shared by every session of this app




def thumbnail(path: Path) -> str:
    """A small JPEG of the image, made on first view and kept in the temp folder (never in the dataset)."""
    from core.dataset.images import load_rgb

    p = Path(path)
    st = p.stat()
    key = hashlib.blake2b(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode(), digest_size=12).hexdigest()
    out = Path(tempfile.gettempdir()) / "danlu-thumbs" / f"{key}.jpg"
    if not out.exists():
        from PIL import Image

        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            im = load_rgb(p, draft=(THUMB, THUMB))
            im.thumbnail((THUMB, THUMB))
        except Exception:  # the check list already says why; show a grey tile
            im = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
        im.save(out, "JPEG", quality=85)
    return str(out)


def gallery_items(scan_state: dict, page: int) -> list[tuple[str, str]]:
    items = scan_state.get("items", [])
    return [(thumbnail(Path(p)), cap) for p, cap in items[page * PAGE:(page + 1) * PAGE]]


def scan_state_of(scan: DatasetScan) -> dict:
    """What the page keeps between events: the folder and, per image, its path and gallery caption."""
    items = []
    several = len(resolutions_of(scan.config.dataset)) > 1
    for e in scan.entries:
        worst = min((i.level for i in e.issues), key=["error", "warn", "info"].index, default="")
        icon = LEVEL_ICON.get(worst, "") if worst != "info" else ""
        if e.bucket:
            b = e.bucket
            cap = f"{icon}{e.path.name} · {e.info.width}×{e.info.height} → {b.size[0]}×{b.size[1]}" + \
                (f" · {b.crop_fraction:.0%}" if b.crop_fraction >= 0.005 else "")
            if several:  # multi-resolution: the image's bucket at each resolution it trains at
                sizes = [f"{x.size[0]}×{x.size[1]}" for _, x in buckets_for(scan.config.dataset, e.info.width,
                                                                             e.info.height)]
                cap = f"{icon}{e.path.name} · {e.info.width}×{e.info.height} → {' / '.join(sizes)}"
        else:
            cap = f"✖{e.path.name}"
        items.append((str(e.path), cap))
    return {"parent": str(scan.parent), "reg": str(scan.reg_subsets[0].path.parent) if scan.reg_subsets else "",
            "items": items}


def steps_markdown(scan: DatasetScan, lang: str) -> str:
    plan = scan.plan
    if not plan.images_per_epoch:
        return t("dataset.no_images", lang)
    rows = [t("dataset.steps_head", lang)]
    for c in plan.concepts:
        mark = t("dataset.reg_mark", lang) if c.is_reg else ""
        rows.append(f"| `{c.name}`{mark} | {c.images} | {c.repeats} | {c.per_epoch} | {c.batches} |")
    text = "\n".join(rows) + "\n\n" + t("dataset.steps", lang, formula=plan.formula(lang))
    return text + plan.notes(lang)


def chart_frame(scan: DatasetScan, lang: str):
    """Bucket counts for the bar chart; the column names stay fixed, the axis titles follow the language."""
    import pandas as pd

    counts = scan.plan.bucket_counts
    return pd.DataFrame({"bucket": [f"{w}×{h}" for w, h in counts], "samples": list(counts.values())})


def chart_update(scan: DatasetScan | None, lang: str):
    return gr.BarPlot(chart_frame(scan, lang) if scan else None, x="bucket", y="samples",
                      x_title=t("dataset.col_bucket", lang), y_title=t("dataset.col_count", lang))


def check_rows(scan: DatasetScan, lang: str, show_info: bool):
    """The check list as a table whose headers are in the page's language."""
    import pandas as pd

    rows = [[f, LEVEL_ICON[level], msg] for f, level, msg in scan.rows(lang, "info" if show_info else "warn")]
    return pd.DataFrame(rows, columns=[t(f"dataset.col_{c}", lang) for c in ("file", "level", "message")])


def summary_markdown(scan: DatasetScan, lang: str) -> str:
    bad = sum(1 for e in scan.entries if not e.ok)
    return t("dataset.summary", lang, images=len(scan.entries), bad=bad, concepts=len(scan.subsets),
             errors=scan.count("error"), warns=scan.count("warn"), infos=scan.count("info"), seconds=scan.seconds,
             deep=t("dataset.deep_on", lang) if scan.decoded else "")


def run_scan(parent: str, reg: str, config: dict, deep: bool, show_info: bool, lang: str) -> tuple:
    """(scan, state, summary, steps, chart, rows, gallery, page label) for a kohya parent folder."""
    scan = scan_dataset(Path(parent), config, reg_dir=Path(reg) if reg else None, decode=deep,
                        cache=_INFO_CACHE)
    state = scan_state_of(scan)
    return (scan, state, summary_markdown(scan, lang), steps_markdown(scan, lang), chart_update(scan, lang),
            check_rows(scan, lang, show_info), gallery_items(state, 0), page_label(state, 0, lang))


def page_label(state: dict, page: int, lang: str) -> str:
    n = len(state.get("items", []))
    return t("dataset.page", lang, page=page + 1, pages=max(1, -(-n // PAGE)), n=n)


def with_dataset(config: dict, parent: str, reg: str, scan: DatasetScan | None) -> dict:
    """The config with dataset.dir (and reg_dir) set, and the trigger word from the concept name when empty."""
    values = {"dataset.dir": parent, "dataset.reg_dir": reg or ""}
    if scan and scan.subsets and not config["dataset"].get("trigger_word"):
        values["dataset.trigger_word"] = scan.subsets[0].name.strip()
    return cfgmod.with_values(config, values)
