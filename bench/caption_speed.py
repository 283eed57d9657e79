"""Captioner speed: captions per second through our folder pipeline, batched against one image at a time, in the
same run and on the same loaded model, alternating runs so a busy shared machine biases neither.

By default the tiny random-weight Florence-2 and Qwen3-VL models built here (no download), which measure the
pipeline and generate() overhead rather than real inference; `--model` takes real ones (a catalog name, a hub id
or a folder), e.g. on a GPU: --model florence-2-base --model qwen3-vl-2b --images 32 --max-length 64.

    .venv/bin/python bench/caption_speed.py [--images 24] [--batch 8] [--max-length 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taggers.caption_pipeline import CaptionOptions, caption_folder  # noqa: E402
from taggers.captioners import Captioner, resolve_captioner  # noqa: E402
from taggers.tiny_captioners import make_tiny_florence2, make_tiny_qwen3_vl  # noqa: E402


def make_images(folder: Path, n: int) -> None:
    """Photo-sized JPEGs (1024×768, some portrait) with smooth, differing content."""
    import numpy as np
    from PIL import Image

    sub = folder / "10_bench"
    sub.mkdir(parents=True, exist_ok=True)
    base = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for i in range(n):
        size = (1024, 768) if i % 3 else (768, 1024)
        Image.fromarray(np.roll(base, 5 * i, axis=1)).resize(size, Image.BILINEAR).save(sub / f"{i:04d}.jpg",
                                                                                      quality=90)


def run(data: Path, cap: Captioner, opts: CaptionOptions, batch: int) -> float:
    report = caption_folder(data, cap, opts, "overwrite", batch_size=batch, workers=2)
    shutil.rmtree(data / ".danlu_backup", ignore_errors=True)
    return report.images_per_s


def compare(name: str, cap: Captioner, data: Path, n: int, batch: int, opts: CaptionOptions, repeats: int) -> float:
    run(data, cap, opts, batch)   # warm-up: allocation, first-call dispatch
    single, batched = [], []
    for _ in range(repeats):
        single.append(run(data, cap, opts, 1))
        batched.append(run(data, cap, opts, batch))
    s, b = max(single), max(batched)
    print(f"{name:34s} {cap.device:4s} {n:3d} images × {repeats}  one at a time {s:7.2f} captions/s   "
          f"batch {batch} {b:7.2f} captions/s   ratio ×{b / s:.2f}")
    return b / s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=16, help="new tokens per caption")
    parser.add_argument("--style", default="detailed", choices=["short", "detailed"])
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument("--model", action="append", default=[], help="a real captioner (repeatable)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = parser.parse_args(argv)
    import os

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu else "no GPU"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {gpu}, {os.cpu_count()} CPU cores, "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}")
    opts = CaptionOptions(style=args.style, max_new_tokens=args.max_length)
    device = "cpu" if args.cpu else "auto"
    with tempfile.TemporaryDirectory(prefix="danlu-bench-") as tmp:
        work = Path(tmp)
        data = work / "data"
        make_images(data, args.images)
        if args.model:
            models = [(m, lambda m=m: resolve_captioner(m)) for m in args.model]
        else:
            models = [("tiny Florence-2 (random weights)", lambda: make_tiny_florence2(work / "florence2")),
                      ("tiny Qwen3-VL (random weights)", lambda: make_tiny_qwen3_vl(work / "qwen3_vl"))]
        for name, folder in models:
            t0 = time.perf_counter()
            cap = Captioner(folder(), device=device)
            print(f"  ({name}: loaded in {time.perf_counter() - t0:.1f} s)")
            compare(name, cap, data, args.images, args.batch, opts, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
