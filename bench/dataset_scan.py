"""Time the Dataset step's scan of 1,000 images (headers only) and the optional full decode.

    .venv/bin/python bench/dataset_scan.py [--images 1000] [--size 768] [--keep DIR]

Writes a synthetic kohya folder of JPEG/PNG/WebP images of mixed shapes with captions, then
prints the scan time. The target: a 1,000-image header scan under 2 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import config as cfgmod  # noqa: E402
from core.dataset.scan import scan_dataset  # noqa: E402

SHAPES = [(768, 768), (640, 960), (960, 640), (1024, 576), (512, 512), (1200, 800)]
FORMATS = [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")]


def make_images(folder: Path, count: int, scale: float) -> None:
    from PIL import Image

    rnd = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    tiles = []
    for w, h in SHAPES:
        w, h = int(w * scale), int(h * scale)
        img = Image.frombytes("RGB", (w // 8, h // 8), rnd.randbytes((w // 8) * (h // 8) * 3)).resize((w, h))
        tiles.append(img)
    encoded = {}
    for i in range(count):
        ext, fmt = FORMATS[i % len(FORMATS)]
        key = (i % len(SHAPES), fmt)
        if key not in encoded:  # encode each shape/format once, to keep writing fast
            from io import BytesIO

            buf = BytesIO()
            tiles[key[0]].save(buf, fmt)
            encoded[key] = buf.getvalue()
        # Unique bytes after the end marker (decoders ignore them) make every file distinct, as in a real dataset.
        data = encoded[key] + i.to_bytes(4, "big") * (1 + i % 7)
        (folder / f"img_{i:05d}.{ext}").write_bytes(data)
        (folder / f"img_{i:05d}.txt").write_text(f"bench, image {i}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1.0, help="image size factor (1.0 = up to 1200 px)")
    parser.add_argument("--keep", default="", help="write the images here instead of a temporary folder")
    parser.add_argument("--decode", action="store_true", help="also time the full-decode pass")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="danlu-bench-"))
    folder = root / "10_bench"
    if not folder.exists() or len(list(folder.glob("img_*.txt"))) != args.images:
        t0 = time.perf_counter()
        make_images(folder, args.images, args.scale)
        print(f"wrote {args.images} images in {time.perf_counter() - t0:.1f} s to {folder}")
    settings = cfgmod.load(overrides=["dataset.resolution=1024", "dataset.max_bucket_reso=2048",
                                      "training.batch_size=4", "training.epochs=10"])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        scan = scan_dataset(root, settings)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"header scan: {len(scan.entries)} images, best of 3 {best:.3f} s ({best / len(scan.entries) * 1e3:.2f} "
          f"ms/image), runs {', '.join(f'{t:.3f}' for t in times)}; steps {scan.plan.total_steps}; "
          f"{scan.count('error')} errors, {scan.count('warn')} warnings")
    if args.decode:
        t0 = time.perf_counter()
        scan = scan_dataset(root, settings, decode=True)
        dt = time.perf_counter() - t0
        print(f"decode scan: {len(scan.entries)} images in {dt:.2f} s ({dt / len(scan.entries) * 1e3:.1f} ms/image)")
    ok = best < 2.0
    print("target (< 2 s for 1,000 images):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
