"""`python launcher.py caption DIR [options]`: caption a dataset folder in sentences, as the Tagging tab does."""

from __future__ import annotations

import argparse
import sys
import threading

from core.errors import DanluError, current_lang
from taggers.caption_pipeline import CAPTION_POLICIES, COMBINE, CaptionOptions
from taggers.captioners import STYLES
from taggers.catalog import CAPTIONERS, DEFAULT_CAPTIONER, DEFAULT_TAGGER
from taggers.cli import download_progress, print_report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launcher.py caption", description="Write natural-language captions "
                                "(Florence-2 or Qwen3-VL, optionally with WD tags) as caption files next to the "
                                "images of DIR. Every caption that is changed is backed up first under "
                                "DIR/.danlu_backup/<time>/. Exit code 0 when done, 1 on an error, 2 when some "
                                "images could not be read (the others are captioned), 130 when interrupted.")
    p.add_argument("dir", help="dataset folder or image folder")
    p.add_argument("--model", default=DEFAULT_CAPTIONER,
                   help=f"a local model folder, a hub id org/name, or one of: {', '.join(CAPTIONERS)} "
                        f"(default {DEFAULT_CAPTIONER})")
    p.add_argument("--style", default="detailed", choices=STYLES, help="short: one sentence; detailed (default)")
    p.add_argument("--prefix", default="", help="trigger word(s), comma-separated, put first in every caption")
    p.add_argument("--max-length", type=int, default=200, help="the longest sentence in tokens (default 200)")
    p.add_argument("--combine", default="sentence", choices=COMBINE,
                   help="sentence (default), tags (WD tags only) or sentence+tags")
    p.add_argument("--tagger", default=DEFAULT_TAGGER, help=f"WD tagger for --combine with tags (default "
                                                            f"{DEFAULT_TAGGER})")
    p.add_argument("--policy", default="skip", choices=CAPTION_POLICIES,
                   help="images that already have a caption: skip (default) or overwrite")
    p.add_argument("--caption-extension", default=".txt", help="caption file extension, with the dot (default .txt)")
    p.add_argument("--batch-size", type=int, default=4, help="images per model run (default 4)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when a CUDA GPU is present")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lang = current_lang()
    from taggers.caption_pipeline import caption_folder
    from taggers.pipeline import Progress

    def show(p: Progress) -> None:
        eta = f"{p.eta_s:.0f}s" if p.eta_s != float("inf") else "?"
        print(f"\r  {p.done}/{p.total}  {p.images_per_s:.2f} images/s  ETA {eta}   ", end="", flush=True)

    opts = CaptionOptions(style=args.style, prefix=args.prefix, max_new_tokens=args.max_length,
                          combine=args.combine)
    device = "cpu" if args.cpu else "auto"
    try:
        captioner = tagger = tag_opts = None
        if args.combine != "tags":
            from taggers.captioners import Captioner, resolve_captioner

            captioner = Captioner(resolve_captioner(args.model, download_progress), device=device)
            print(f"Captioner: {captioner.folder} ({captioner.kind}) on {captioner.device.upper()}")
        if args.combine != "sentence":
            from taggers.catalog import default_thresholds
            from taggers.wd14 import Tagger, TagOptions, resolve_model

            tagger = Tagger(resolve_model(args.tagger, download_progress), device=device)
            general, character = default_thresholds(args.tagger)
            tag_opts = TagOptions(general_threshold=general, character_threshold=character)
            print(f"Tagger: {tagger.folder} on {'GPU (CUDA)' if tagger.on_gpu else 'CPU'}")
        cancel = threading.Event()
        try:
            report = caption_folder(args.dir, captioner, opts, args.policy, tagger=tagger, tag_opts=tag_opts,
                                    caption_extension=args.caption_extension, batch_size=args.batch_size,
                                    progress=show, cancel=cancel)
        except KeyboardInterrupt:
            print("\nStopped. Captions written so far are kept.")
            return 130
    except DanluError as e:
        print(f"\n{e.text(lang)}", file=sys.stderr)
        return 2  # a problem the user can fix, as every subcommand says it
    return print_report(report, lang)
