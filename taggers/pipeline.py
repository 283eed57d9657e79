"""Tag a dataset folder: decode in worker threads while the model runs, write captions with backups.

onnxruntime releases the GIL inside `run`, and PIL releases it while decoding and resizing, so a small
thread pool keeps the model fed (at batch 1 a GPU idles at ~30 % otherwise). Captions are written after
each batch, so a cancel keeps everything done so far.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.dataset.captions import backup_stamp, caption_path, read_caption, write_caption
from core.dataset.tags import dataset_root, list_dataset_images
from taggers.wd14 import Tagger, TagOptions, caption_tags, load_rgb, merge_caption, select, to_model_input

find_images = list_dataset_images


@dataclass
class Progress:
    done: int
    total: int
    images_per_s: float
    eta_s: float
    current: str = ""


@dataclass
class TagReport:
    total: int = 0
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    skipped: int = 0                   # kept by the 'skip' policy
    failed: list[tuple[Path, str]] = field(default_factory=list)
    backups: int = 0
    backup_stamp: str = ""
    cancelled: bool = False
    seconds: float = 0.0
    images_per_s: float = 0.0
    providers: list[str] = field(default_factory=list)
    fallback: tuple[str, str] | None = None
    captions: dict[Path, str] = field(default_factory=dict)   # image → caption written
    ratings: Counter = field(default_factory=Counter)          # most probable rating → images
    ratings_written: bool = False                               # whether the rating tag went into the captions

    def finish(self, start: float, done: int) -> TagReport:
        """Time and speed once the loop ends; done counts the skipped and failed images too."""
        self.seconds = time.perf_counter() - start
        ran = done - self.skipped - len(self.failed)
        self.images_per_s = ran / self.seconds if self.seconds > 0 else 0.0
        return self

    def rating_text(self, lang: str = "en") -> str:
        if not self.ratings:
            return ""
        parts = ", ".join(f"{name} {n}" for name, n in self.ratings.most_common())
        if lang == "zh":
            return f"分级（{'已' if self.ratings_written else '未'}写入标注）：{parts}"
        return f"Ratings ({'written' if self.ratings_written else 'not written'} to captions): {parts}"

    def summary(self, lang: str = "en") -> str:
        if lang == "zh":
            text = (f"共 {self.total} 张：写入 {len(self.written)}，未变 {self.unchanged}，"
                    f"跳过（已有标注）{self.skipped}，"
                    f"失败 {len(self.failed)}；备份 {self.backups} 个原文件。{self.images_per_s:.2f} 张/秒。")
            return text + (" 已取消，已完成的部分已保存。" if self.cancelled else "")
        text = (f"{self.total} images: {len(self.written)} written, {self.unchanged} unchanged, "
                f"{self.skipped} skipped (had a caption), {len(self.failed)} failed; "
                f"{self.backups} originals backed up. {self.images_per_s:.2f} images/s.")
        return text + (" Cancelled; the finished part is saved." if self.cancelled else "")


def tag_folder(folder: Path, tagger: Tagger, opts: TagOptions, policy: str = "skip", *,
               caption_extension: str = ".txt", batch_size: int = 8, workers: int = 2,
               progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
               images: list[Path] | None = None) -> TagReport:
    """Tag every image of folder and write its caption under policy (skip/overwrite/append/prepend)."""
    images = find_images(folder) if images is None else list(images)
    root = dataset_root(folder)
    report = TagReport(total=len(images), providers=tagger.providers, fallback=tagger.fallback,
                       backup_stamp=backup_stamp(), ratings_written=opts.rating)
    todo = []
    for img in images:  # 'skip' never runs the model on a captioned image
        if policy == "skip" and read_caption(caption_path(img, caption_extension)).text:
            report.skipped += 1
        else:
            todo.append(img)
    batch = batch_size if tagger.dynamic_batch else 1
    start = time.perf_counter()
    done = report.skipped

    def emit(current: str = "") -> None:
        if progress:
            elapsed = max(time.perf_counter() - start, 1e-9)
            ran = done - report.skipped
            rate = ran / elapsed
            left = len(images) - done
            progress(Progress(done, len(images), rate, left / rate if rate > 0 else float("inf"), current))

    emit()
    for chunk, arrays, failed in decoded_batches(todo, lambda p: load_rgb(p, tagger.size), batch, workers, cancel,
                                                 report):
        done += failed
        if not chunk:
            emit()
            continue
        import numpy as np

        probs = tagger.predict(to_model_input(np.stack(arrays)))
        for img, p in zip(chunk, probs):
            pred = select(p, tagger.labels, opts)
            if pred.rating:
                report.ratings[max(pred.rating, key=pred.rating.get)] += 1
            _write(img, caption_tags(pred, opts), opts, policy, caption_extension, root, report)
            done += 1
        emit(chunk[-1].name)
    return report.finish(start, done)


def decoded_batches(todo: list[Path], load: Callable[[Path], object], batch: int, workers: int,
                    cancel: threading.Event | None, report: TagReport) -> Iterator[tuple[list[Path], list, int]]:
    """Decode `todo` in worker threads one batch ahead of the model; yield (images, decoded, failures).

    An unreadable file goes to report.failed (the rest go on); a set cancel stops before the next batch and
    marks report.cancelled. The look-ahead is bounded: decoded images wait in memory, not the whole set.
    """
    window = max(2 * batch, workers * 2)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="danlu-decode") as pool:
        pending: deque = deque()
        it = iter(todo)

        def refill() -> None:
            while len(pending) < window:
                img = next(it, None)
                if img is None:
                    return
                pending.append((img, pool.submit(load, img)))

        refill()
        while pending:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                for _, fut in pending:
                    fut.cancel()
                return
            chunk, decoded, failed = [], [], 0
            while pending and len(chunk) < batch:
                img, fut = pending.popleft()
                try:
                    decoded.append(fut.result())
                    chunk.append(img)
                except Exception as e:  # noqa: BLE001 - a broken image is reported, the rest are processed
                    report.failed.append((img, f"{type(e).__name__}: {e}"))
                    failed += 1
            refill()  # decode the next batch while this one runs
            yield chunk, decoded, failed


def _write(img: Path, tags: list[str], opts: TagOptions, policy: str, ext: str, root: Path,
           report: TagReport) -> None:
    cap = caption_path(img, ext)
    existing = read_caption(cap)
    text = merge_caption(existing.text, tags, policy, opts.trigger)
    if text is None:
        report.skipped += 1
        return
    if cap.is_file() and existing.text == text and existing.problem is None:
        report.unchanged += 1
        report.captions[img] = text
        return
    saved = write_caption(cap, text, stamp=report.backup_stamp, dataset_root=root)
    report.backups += saved is not None
    report.written.append(cap)
    report.captions[img] = text
