"""Tagger speed: our pipeline (worker-thread decoding, batches when the model allows) against a plain loop that
opens, preprocesses, runs and writes one image at a time, on the same onnxruntime session.

Two models, both built here (no download): a tiny one, where decoding and file handling dominate (pipeline
overhead), and a random-weight ViT-B/16 at 448 px with the WD v3 interface (realistic inference cost).

    .venv/bin/python bench/tagger_speed.py [--images 96] [--vit-images 16] [--repeats 3] [--skip-vit]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from taggers.pipeline import tag_folder  # noqa: E402
from taggers.tiny import make_tiny_tagger, make_vit_tagger  # noqa: E402
from taggers.wd14 import Tagger, TagOptions, caption_tags, preprocess, select  # noqa: E402


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Photo-sized JPEGs (768×1024, some landscape) with smooth content, so decoding costs what it does in life."""
    from PIL import Image

    sub = folder / "10_bench"
    sub.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        size = (1024, 768) if i % 3 else (768, 1024)
        img = Image.fromarray(np.roll(base, i, axis=1)).resize(size, Image.BILINEAR)
        path = sub / f"{i:04d}.jpg"
        img.save(path, quality=90)
        out.append(path)
    return out


def plain_loop(images: list[Path], tagger: Tagger, opts: TagOptions) -> float:
    """The usual script: for each image, open → preprocess → run (batch 1) → write. Returns images/s."""
    from PIL import Image

    start = time.perf_counter()
    for path in images:
        with Image.open(path) as im:
            arr = preprocess(im, tagger.size)[None]
        probs = tagger.session.run([tagger.output_name], {tagger.input_name: np.ascontiguousarray(arr)})[0][0]
        path.with_suffix(".txt").write_text(", ".join(caption_tags(select(probs, tagger.labels, opts), opts)),
                                            encoding="utf-8")
    return len(images) / (time.perf_counter() - start)


def pipeline(folder: Path, tagger: Tagger, opts: TagOptions, batch: int, workers: int) -> float:
    report = tag_folder(folder, tagger, opts, "overwrite", batch_size=batch, workers=workers)
    return report.images_per_s


def compare(name: str, model_dir: Path, n: int, batch: int, workers: int, work: Path, repeats: int) -> float:
    """Alternate plain and pipeline runs and keep each one's best, so a busy shared machine biases neither."""
    tagger = Tagger(model_dir, device="cpu")
    opts = TagOptions(trigger="sks")
    data = work / f"data-{name.split()[0]}"
    images = make_images(data, n)
    # warm-up: the first runs pay for memory allocation and page faults
    tagger.predict(np.zeros((min(batch, 2) if tagger.dynamic_batch else 1, tagger.size, tagger.size, 3), np.float32))
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(plain_loop(images, tagger, opts))
        ours.append(pipeline(data, tagger, opts, batch, workers))
        shutil.rmtree(data / ".danlu_backup", ignore_errors=True)
    p, o = max(plain), max(ours)
    print(f"{name:28s} {n:4d} images × {repeats}  plain {p:8.2f} img/s   pipeline {o:8.2f} img/s   ratio ×{o / p:.2f}")
    return o / p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="images for the tiny model")
    parser.add_argument("--vit-images", type=int, default=16, help="images for the ViT-B model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best counts")
    parser.add_argument("--skip-vit", action="store_true")
    args = parser.parse_args(argv)
    import os

    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPU cores, CPUExecutionProvider, "
          f"load average {os.getloadavg()[0]:.1f}, batch {args.batch}, {args.workers} decode threads")
    with tempfile.TemporaryDirectory(prefix="danlu-bench-") as tmp:
        work = Path(tmp)
        compare("tiny (pipeline overhead)", make_tiny_tagger(work / "tiny", size=448), args.images, args.batch,
                args.workers, work, args.repeats)
        if not args.skip_vit:
            t0 = time.perf_counter()
            vit = make_vit_tagger(work / "vit")
            print(f"  (built a random-weight ViT-B/16 448 px tagger in {time.perf_counter() - t0:.1f} s)")
            compare("ViT-B/16 448px (realistic)", vit, args.vit_images, args.batch, args.workers, work,
                    max(1, args.repeats - 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
