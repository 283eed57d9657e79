"""Caption a dataset folder in sentences (Florence-2, Qwen3-VL), optionally with WD tags, as the tagger does.

Images are decoded in worker threads while the model runs; captions are written after each batch (atomic,
with a backup of any caption they replace), so a cancel keeps everything done so far. The caption layout:
trigger word(s) first, then the sentence, then the tags, on one line (sd-scripts reads the first line only).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.dataset.captions import backup_stamp, caption_path, read_caption, write_caption
from core.dataset.tags import dataset_root, dedupe, list_dataset_images, split_tags, tag_key
from core.errors import DanluError
from taggers.pipeline import Progress, TagReport, decoded_batches

COMBINE = ("sentence", "tags", "sentence+tags")
CAPTION_POLICIES = ("skip", "overwrite")
MAX_SIDE = 1024   # longer sides are shrunk before the captioner sees them: Florence works at 768, Qwen's
                  # token count grows with the pixel count


@dataclass
class CaptionOptions:
    style: str = "detailed"         # short | detailed
    prefix: str = ""                # trigger word(s), comma-separated, put first
    max_new_tokens: int = 200       # the longest sentence, in tokens
    combine: str = "sentence"       # sentence | tags | sentence+tags


def compose(sentence: str, tags: list[str], opts: CaptionOptions) -> str:
    """Trigger word(s), then the sentence, then the tags not already in the trigger; ', ' between parts."""
    trigger = dedupe(split_tags(opts.prefix))
    keys = {tag_key(t) for t in trigger}
    parts = [", ".join(trigger)]
    if opts.combine in ("sentence", "sentence+tags"):
        parts.append(sentence.strip())
    if opts.combine in ("tags", "sentence+tags"):
        parts.append(", ".join(dedupe(t for t in tags if tag_key(t) not in keys)))
    return ", ".join(p for p in parts if p)


def check_options(opts: CaptionOptions, policy: str, captioner, tagger) -> None:
    if opts.combine not in COMBINE:
        raise DanluError(f"Unknown combine mode {opts.combine!r}; use one of {', '.join(COMBINE)}.",
                         f"未知的组合方式 {opts.combine!r}；可选 {', '.join(COMBINE)}。", key="caption.combine")
    if policy not in CAPTION_POLICIES:
        raise DanluError(f"Unknown caption policy {policy!r}; use skip or overwrite.",
                         f"未知的标注处理方式 {policy!r}；可选 skip 或 overwrite。", key="caption.policy")
    if opts.combine != "tags" and captioner is None:
        raise DanluError("Sentences need a captioner model.", "生成句子需要描述模型。", key="caption.model")
    if opts.combine != "sentence" and tagger is None:
        raise DanluError("Tags need a WD tagger model.", "生成标签需要 WD 打标模型。", key="tagger.model")
    if opts.max_new_tokens < 1:
        raise DanluError("The maximum length must be at least 1 token.", "最大长度至少为 1 个词元。",
                         key="caption.max_length")


def _load(path: Path, tag_side: int | None):
    """(PIL RGB no longer than MAX_SIDE, WD input array or None): what the decoding threads do."""
    from PIL import Image

    from core.dataset.images import load_rgb

    image = load_rgb(path)
    arr = None
    if tag_side:
        from taggers.wd14 import preprocess_rgb

        arr = preprocess_rgb(image, tag_side)
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.BICUBIC)
    return image, arr


def caption_folder(folder: Path, captioner, opts: CaptionOptions, policy: str = "skip", *, tagger=None,
                   tag_opts=None, caption_extension: str = ".txt", batch_size: int = 4, workers: int = 2,
                   progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
                   images: list[Path] | None = None) -> TagReport:
    """Caption every image of folder; captioner may be None for tags only, tagger None for sentences only."""
    check_options(opts, policy, captioner, tagger)
    images = list_dataset_images(folder) if images is None else list(images)
    root = dataset_root(folder)
    device = getattr(captioner, "device", None) or ("cuda" if getattr(tagger, "on_gpu", False) else "cpu")
    report = TagReport(total=len(images), providers=[device], backup_stamp=backup_stamp(),
                       fallback=getattr(tagger, "fallback", None) if opts.combine != "sentence" else None)
    todo = []
    for img in images:
        if policy == "skip" and read_caption(caption_path(img, caption_extension)).text:
            report.skipped += 1
        else:
            todo.append(img)
    tag_side = tagger.size if opts.combine != "sentence" else None
    batch = max(1, batch_size)
    start = time.perf_counter()
    done = report.skipped

    def emit(current: str = "") -> None:
        if progress:
            ran = done - report.skipped
            rate = ran / max(time.perf_counter() - start, 1e-9)
            left = len(images) - done
            progress(Progress(done, len(images), rate, left / rate if rate > 0 else float("inf"), current))

    emit()
    for chunk, decoded, failed in decoded_batches(todo, lambda p: _load(p, tag_side), batch, workers, cancel,
                                                  report):
        done += failed
        if not chunk:
            emit()
            continue
        pics, arrays = [d[0] for d in decoded], [d[1] for d in decoded]
        sentences = [""] * len(chunk)
        if opts.combine != "tags":
            sentences = captioner.caption(pics, opts.style, opts.max_new_tokens)
        tags = [[] for _ in chunk]
        if opts.combine != "sentence":
            tags = _tags(tagger, tag_opts, arrays)
        for img, sentence, tag_list in zip(chunk, sentences, tags):
            _write(img, compose(sentence, tag_list, opts), caption_extension, root, report)
            done += 1
        emit(chunk[-1].name)
    return report.finish(start, done)


def _tags(tagger, tag_opts, arrays: list) -> list[list[str]]:
    import numpy as np

    from taggers.wd14 import TagOptions, select, to_model_input

    tag_opts = tag_opts or TagOptions()
    probs = tagger.predict(to_model_input(np.stack(arrays)))
    # The trigger goes in front of the whole caption (compose), not in front of the tags.
    return [[n for n, _ in pred.character] + [n for n, _ in pred.general]
            for pred in (select(p, tagger.labels, tag_opts) for p in probs)]


def _write(img: Path, text: str, ext: str, root: Path, report: TagReport) -> None:
    cap = caption_path(img, ext)
    existing = read_caption(cap)
    if cap.is_file() and existing.text == text and existing.problem is None:
        report.unchanged += 1
    else:
        report.backups += write_caption(cap, text, stamp=report.backup_stamp, dataset_root=root) is not None
        report.written.append(cap)
    report.captions[img] = text
