"""The Tagging tab's session state, shared by its sections (auto-tagger, captions, editor, tag help): the editor
of each browser session and the lock its handlers take, the loaded tagger, and the lines they show alike."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from core.dataset.tags import TagEditor
from core.errors import DanluError
from core.state_files import Notice, notices
from ui import i18n
from ui.i18n import t

EDITORS: dict[str, TagEditor] = {}        # one editor per browser session
EDIT_LOCK = threading.RLock()             # a blur and a click of one page may run at once
_TAGGERS: dict[tuple[str, str], Any] = {}  # reuse the onnxruntime session between runs


def session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def error_line(e: Exception, lang: str) -> i18n.Text:
    """The error line, in both languages, red."""
    return i18n.failed(e, lang)


def download_notices(since: float) -> list[Notice]:
    """Files of a hub download found damaged since `since` (a time.time()): core.state_files.set_aside_download
    moved their blob aside, so the file's link points into the cache's `blobs/` folder."""
    return [n for n in notices(since) if Path(os.path.realpath(n.path)).parent.name == "blobs"]


def job_failed(e: Exception, since: float, lang: str) -> i18n.Text:
    """A tagger or captioner run's error line: red, but orange when the run stopped on a damaged download that was
    moved aside (the user lost nothing; the next run downloads it again): then it says where the file went."""
    damaged = download_notices(since)
    if not damaged:
        return error_line(e, lang)

    def render(lg: str) -> str:
        hint = e.hint(lg) if isinstance(e, DanluError) else ""
        return "\n\n".join([f"⚠ {n.text(lg)}" for n in damaged] + ([hint] if hint else []))

    return i18n.both(render, lang, level="warn")


def unsaved(key: str, lang: str) -> str:
    """A refusal message when the session's editor holds unsaved edits (reloading would drop them), else ''."""
    ed = EDITORS.get(key)
    n = len(ed.pending) if ed is not None else 0
    return i18n.text("tagging.unsaved", lang, level="error", n=n) if n else ""


def progress_html(done: int, total: int, label: str) -> str:
    pct = 100 * done / total if total else 0
    count = f"{done}/{total} ({pct:.0f}%) · " if total else ""  # nothing counted yet: only what is happening
    return (f'<div id="tagging-bar" style="margin:4px 0">'
            f'<div style="background:#e4e7ec;border-radius:6px;height:14px">'
            f'<div style="width:{pct:.1f}%;background:#12b76a;height:14px;border-radius:6px"></div></div>'
            f'<div style="font-size:0.9em">{count}{label}</div></div>')


def get_tagger(model: str, device: str = "auto", download: Any = None) -> Any:
    """The tagger for model, reusing the last session; only one is kept (EVA02-large holds ~1.3 GB)."""
    from taggers.wd14 import Tagger, resolve_model

    folder = resolve_model(model, download)
    key = (str(folder), device)
    if key not in _TAGGERS:
        _TAGGERS.clear()
        _TAGGERS[key] = Tagger(folder, device=device)
    return _TAGGERS[key]


def device_line(tagger: Any, lang: str) -> str:
    if tagger is None:
        return ""
    if tagger.fallback:
        en, zh = tagger.fallback
        return t("tagging.fallback", lang, why=zh if lang == "zh" else en)
    return t("tagging.on_gpu" if tagger.on_gpu else "tagging.on_cpu", lang) + f" · {', '.join(tagger.providers)}"
