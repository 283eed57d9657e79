"""`python launcher.py tag DIR [options]`: auto-tag a dataset folder from a shell, as the Tagging tab does."""

from __future__ import annotations

import argparse
import sys
import threading

from core.errors import DanluError, current_lang
from taggers.options import add_arguments, request_from
from taggers.wd14 import DEFAULT_MODEL, MODELS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launcher.py tag", description="Write WD1.4 / WD v3 tags as caption files "
                                "next to the images of DIR (a dataset folder with N_name subfolders, or an image "
                                "folder). Every caption that is changed is backed up first under "
                                "DIR/.danlu_backup/<time>/. Exit code 0 when done, 1 on an error, 2 when some "
                                "images could not be read (the others are tagged), 130 when interrupted.")
    p.add_argument("dir", help="dataset folder or image folder")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"a local folder with model.onnx + selected_tags.csv, a hub id org/name[@rev], or one of: "
                        f"{', '.join(MODELS)} (default {DEFAULT_MODEL})")
    add_arguments(p)  # the options the Tagging tab has too (taggers/options.py)
    p.add_argument("--workers", type=int, default=2, help="threads decoding images while the model runs")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when a CUDA GPU is present")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lang = current_lang()
    from taggers.pipeline import Progress, tag_folder
    from taggers.wd14 import Tagger, resolve_model

    last = [-1]

    def show(p: Progress) -> None:
        pct = int(100 * p.done / p.total) if p.total else 100
        if pct != last[0] or p.done == p.total:
            last[0] = pct
            eta = f"{p.eta_s:.0f}s" if p.eta_s != float("inf") else "?"
            print(f"\r  {p.done}/{p.total} ({pct}%)  {p.images_per_s:.2f} images/s  ETA {eta}   ", end="", flush=True)

    cancel = threading.Event()
    try:
        folder = resolve_model(args.model, download_progress)
        tagger = Tagger(folder, device="cpu" if args.cpu else "auto")
        where = "GPU (CUDA)" if tagger.on_gpu else "CPU"
        print(f"Tagger: {folder}  [{tagger.size}px, {'batched' if tagger.dynamic_batch else 'one image per run'}, "
              f"{len(tagger.labels.names)} tags] on {where}")
        if tagger.fallback:
            en, zh = tagger.fallback
            print(f"  ! tagging on CPU: {zh if lang == 'zh' else en}", file=sys.stderr)
        req = request_from(args.model, vars(args))
        try:
            report = tag_folder(args.dir, tagger, req.tag_options(), req.policy,
                                caption_extension=req.caption_extension, batch_size=req.batch_size,
                                workers=args.workers, progress=show, cancel=cancel)
        except KeyboardInterrupt:  # the worker threads finish their image; what is written stays written
            print("\nStopped. Captions written so far are kept.")
            return 130
    except DanluError as e:
        print(f"\n{e.text(lang)}", file=sys.stderr)
        return 2  # a problem the user can fix, as every subcommand says it
    return print_report(report, lang)


def download_progress(name: str, done: int, total: int) -> None:
    print(f"\r  downloading {name}: {done / 1e6:.1f} / {total / 1e6:.1f} MB", end="", flush=True)


def print_report(report, lang: str) -> int:
    """The summary, the files that could not be read and where the backups are; the exit code (0 or 2)."""
    print()
    print(report.summary(lang))
    if report.ratings:
        print(report.rating_text(lang))
    for path, why in report.failed:
        print(f"  could not read {path}: {why}", file=sys.stderr)
    if report.backups:
        print(f"Originals backed up in {report.backup_stamp} under .danlu_backup/")
    return 0 if not report.failed else 2
