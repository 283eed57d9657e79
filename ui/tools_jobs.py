"""The Tools tab's jobs: one toolbox function at a time in a worker thread, its progress (done/total, ETA) streamed
to the page, Cancel between modules (models.toolbox.common.Job: nothing is written on cancel), and the result as
a status line in both languages with its level (ok green, warn orange, error red). ui/tab_tools.py lays the tab
out and says what each section runs.
"""

from __future__ import annotations

import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import DanluError
from ui import i18n
from ui.i18n import t

_CANCELS: dict[str, threading.Event] = {}
LOOK_S = 0.25  # how often the handler looks at the worker's queue

i18n.add({
    "tools.progress": ("{what}：{done}/{total}（{pct}%）· 预计还需 {eta}",
                       "{what}: {done}/{total} ({pct}%) · ETA {eta}"),
    "tools.progress_start": ("{what}：开始…", "{what}: starting…"),
    "tools.eta_unknown": ("估算中", "estimating"),
    "tools.done_in": ("{what}：完成，用时 {secs:.1f} 秒", "{what}: done in {secs:.1f} s"),
    "tools.cancelling": ("正在取消：当前模块处理完后停止，不会留下不完整的文件…",
                         "Cancelling after the current module; no partial file is left…"),
    "tools.cancelled": ("已取消：没有写入任何文件。", "Cancelled: no file was written."),
    "tools.nothing_running": ("没有正在运行的任务。", "Nothing is running."),
    "tools.saved_to": ("已保存到 {path}", "Saved to {path}"),
    "tools.no_file": ("请先选择文件。", "Pick a file first."),
    "tools.bad_weights": ("权重“{text}”不是数字列表；请写成 1.0, 0.5 这样，每个文件一个。",
                          "The weights “{text}” are not a list of numbers; write them like 1.0, 0.5, one per file."),
})


def _eta(seconds: float | None, lang: str) -> str:
    if seconds is None:
        return t("tools.eta_unknown", lang)
    if lang == "zh":
        return f"{seconds:.0f} 秒" if seconds < 120 else f"{seconds / 60:.1f} 分钟"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def progress_text(what_key: str, done: int, total: int, eta: float | None, lang: str) -> i18n.Text:
    def render(code: str) -> str:
        what = t(what_key, code)
        if total <= 0:
            return t("tools.progress_start", code, what=what)
        return t("tools.progress", code, what=what, done=done, total=total, pct=int(100 * done / total),
                 eta=_eta(eta, code))

    return i18n.both(render, lang)


def _worker(work: Callable[[Any], Any], cancel: threading.Event) -> queue.Queue:
    """Run work(job) in a thread; the queue receives ("progress", done, total, eta), ("error", exc) or
    ("done", result)."""
    from models.toolbox.common import Job

    events: queue.Queue = queue.Queue()
    job = Job(cancel=cancel.is_set)
    job.progress = lambda done, total, what="": events.put(("progress", done, total, job.eta(done, total)))

    def run() -> None:
        try:
            events.put(("done", work(job)))
        except Exception as exc:  # noqa: BLE001 - shown on the page in the user's language
            events.put(("error", exc))

    threading.Thread(target=run, daemon=True, name="danlu-tools").start()
    return events


def run_tool(what_key: str, work: Callable[[Any], Any], said: Callable[[Any, str], str], lang: str,
             level: Callable[[Any], str] = lambda result: "ok") -> Iterator[tuple]:
    """Generator for the page: yields (token, progress, status, output file, Start, Cancel).

    work(job) does the work and returns its report; said(report, lang) is the status line's text and
    level(report) its level; a report with an `out` path offers that file for download."""
    import time

    idle = (gr.update(interactive=True), gr.update(interactive=False))
    busy = (gr.update(interactive=False), gr.update(interactive=True))
    token = uuid.uuid4().hex
    cancel = _CANCELS[token] = threading.Event()
    started = time.monotonic()
    events = _worker(work, cancel)
    yield token, progress_text(what_key, 0, 0, None, lang), "", gr.update(value=None, visible=False), *busy
    try:
        while True:
            try:
                item = events.get(timeout=LOOK_S)
            except queue.Empty:
                continue
            if item[0] == "progress":
                yield token, progress_text(what_key, *item[1:], lang), gr.update(), gr.update(), *busy
                continue
            if item[0] == "error":
                from models.toolbox.common import Cancelled

                if isinstance(item[1], Cancelled):
                    yield "", "", i18n.text("tools.cancelled", lang, level="warn"), gr.update(), *idle
                else:
                    yield "", "", i18n.failed(item[1], lang), gr.update(), *idle
                return
            report, secs = item[1], time.monotonic() - started
            out = getattr(report, "out", None)
            # both() renders at once, but the defaults bind this item's values so the lambdas never see a later one
            done = i18n.both(lambda code, s=secs: t("tools.done_in", code, what=t(what_key, code), secs=s), lang)
            status = i18n.both(lambda code, r=report, o=out: _with_path(said(r, code), o, code), lang,
                               level=level(report))
            written = bool(out) and Path(out).is_file()
            yield "", done, status, gr.update(value=str(out) if written else None, visible=written), *idle
            return
    finally:
        _CANCELS.pop(token, None)


def _with_path(text: str, out: Any, lang: str) -> str:
    if out and Path(out).is_file():
        return f"{text}\n\n{t('tools.saved_to', lang, path=out)}"
    return text


def cancel_tool(token: str, lang: str) -> i18n.Text:
    event = _CANCELS.get(token or "")
    if event is None:
        return i18n.text("tools.nothing_running", lang)
    event.set()
    return i18n.text("tools.cancelling", lang, level="warn")


def refused(error: Exception, lang: str) -> Iterator[tuple]:
    """What run_tool yields for input refused before any work starts."""
    yield "", "", i18n.failed(error, lang), gr.update(), gr.update(interactive=True), gr.update(interactive=False)


def run_on_file(what_key: str, path: Any, folder: Path, out_name: str, default: Callable[[Path], str],
                work: Callable[[Path, Path, Any], Any], said: Callable[[Any, str], str], lang: str,
                level: Callable[[Any], str] = lambda result: "ok") -> Iterator[tuple]:
    """run_tool for a tool of one input file: the file and its output name (default(src) when `out_name` is empty)
    are checked first, and refused on the page before any work; work(src, out, job) then runs in the worker."""
    try:
        src = need_file(path)
        out = output_path(folder, out_name, default(src))
    except Exception as exc:  # noqa: BLE001 - said on the page
        yield from refused(exc, lang)
        return
    yield from run_tool(what_key, lambda job: work(src, out, job), said, lang, level)


def need_file(path: Any) -> Path:
    """The path of an uploaded or typed file; DanluError when there is none."""
    text = str(path or "").strip().strip('"')
    if not text:
        raise DanluError(t("tools.no_file", "en"), t("tools.no_file", "zh"))
    return Path(text)


def parse_weights(text: str, n: int) -> list[float]:
    """One weight per file from '1.0, 0.5' (missing ones are 1.0); DanluError for a word that is no number."""
    parts = [p for p in re.split(r"[,\s，;；]+", str(text or "").strip()) if p]
    try:
        weights = [float(p) for p in parts]
    except ValueError:
        raise DanluError(t("tools.bad_weights", "en", text=text), t("tools.bad_weights", "zh", text=text)) from None
    return (weights + [1.0] * n)[:n]


def output_path(folder: Path, name: str, default: str) -> Path:
    """Where a tool writes: `name` (or `default`) under the outputs' tools folder, .safetensors added, and a
    number added when that file already exists (a tool never replaces an earlier result)."""
    stem = Path(str(name or "").strip() or default).name
    stem = stem[:-len(".safetensors")] if stem.lower().endswith(".safetensors") else stem
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stem}.safetensors", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}.safetensors", n + 1
    return path
