"""A corpus of nasty files generated here: each one is reported with the right message, nothing crashes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image

from core.dataset.images import inspect_image, load_rgb
from core.dataset.scan import scan_dataset

LONG = "a" * 120 + "长" * 30  # 210 bytes: near the file-name limit, and a path longer than Windows' 260


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rnd = random.Random(seed)
    return Image.frombytes("RGB", (w, h), rnd.randbytes(w * h * 3))


def _pattern(w: int, h: int) -> Image.Image:
    """A smooth picture whose resized, re-encoded copy keeps the same perceptual hash."""
    g = Image.linear_gradient("L")
    return Image.merge("RGB", (g, g.rotate(90), Image.radial_gradient("L"))).resize((w, h))


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def make_corpus(root: Path) -> Path:
    """<root>/数据 集 with spaces/deep…/10_nasty 猫/…: every problem the Dataset step must name."""
    parent = root / "数据 集 with spaces" / ("deep " * 12).strip()
    d = parent / "10_nasty 猫"
    d.mkdir(parents=True)

    def put(name: str, content, caption: str | bytes | None = "nasty, tag", **save) -> None:
        if isinstance(content, bytes):
            (d / name).write_bytes(content)
        else:
            content.save(d / name, **save)
        if caption is not None:
            raw = caption if isinstance(caption, bytes) else caption.encode("utf-8")
            (d / name).with_suffix(".txt").write_bytes(raw)

    jpg = _bytes(_noise(256, 256, 1), "JPEG")
    png = bytearray(_bytes(_noise(256, 256, 2), "PNG"))
    truncated_png = bytes(png[: len(png) * 2 // 3])
    i = png.find(b"IDAT")
    for k in range(i + 200, i + 260):
        png[k] ^= 0x5A
    exif = Image.Exif()
    exif[0x0112] = 6
    dup = _bytes(_noise(512, 512, 8), "PNG")

    put("ok.png", _noise(512, 512))
    put("zero.png", b"")
    put("notimage.jpg", b"this is not a picture")
    put("truncated.jpg", jpg[: len(jpg) // 2])
    put("truncated.png", truncated_png)
    put("corrupt.png", bytes(png))
    put("fake.png", _bytes(_noise(512, 512, 3), "JPEG"))
    put("cmyk.jpg", Image.new("CMYK", (512, 512), (0, 200, 200, 0)))
    put("gray16.png", Image.new("I;16", (512, 512), 40000))
    put("palette.png", _noise(512, 512, 4).convert("P", palette=Image.Palette.ADAPTIVE))
    put("alpha.png", Image.new("RGBA", (512, 512), (255, 0, 0, 0)))
    put("rotated.jpg", _noise(768, 512, 5), exif=exif.tobytes())
    put("small.png", _noise(100, 100, 6))
    put("wide.png", _noise(2000, 300, 7))
    put("dup_a.png", dup)
    put("dup_b.png", dup)
    put("near_a.png", _pattern(768, 768))
    put("near_b.jpg", _pattern(600, 600), quality=85)
    put("format.webp", _noise(512, 512, 9))
    put("bitmap.bmp", _noise(512, 512, 10), caption=None)
    put("gbk.png", _noise(512, 512, 11), caption="猫, 坐着".encode("gbk"))
    put("utf16.png", _noise(512, 512, 12), caption="猫, 躺着".encode("utf-16"))
    put("bom.png", _noise(512, 512, 13), caption="\ufeffcat, standing")
    put("empty.png", _noise(512, 512, 14), caption="  \n")
    put("nocap.png", _noise(512, 512, 15), caption=None)
    put("photo.jfif", _noise(512, 512, 16), caption=None, format="JPEG")
    put("anim.gif", _noise(64, 64, 17), caption=None)
    put(f"{LONG}.png", _noise(512, 512, 18), caption="long, 名字")
    (d / "orphan.txt").write_text("a caption without its picture", encoding="utf-8")
    (parent / "cat").mkdir()
    _noise(64, 64, 19).save(parent / "cat" / "x.png")
    return parent


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    parent = make_corpus(tmp_path_factory.mktemp("corpus"))
    return scan_dataset(parent, decode=True)  # the default config: 512 px


def codes(scan, name: str) -> set[str]:
    found = [e for e in scan.entries if e.path.name == name]
    assert found, f"{name} not scanned"
    return {i.code for i in found[0].issues}


EXPECTED = {
    "ok.png": set(),
    "zero.png": {"zero_bytes"},
    "notimage.jpg": {"unreadable"},
    "truncated.jpg": {"truncated"},
    "truncated.png": {"truncated"},
    "corrupt.png": {"corrupt"},
    "fake.png": {"wrong_extension"},
    "cmyk.jpg": {"cmyk"},
    "gray16.png": {"sixteen_bit", "grayscale"},
    "palette.png": {"palette"},
    "alpha.png": {"alpha"},
    "rotated.jpg": {"exif_rotated"},
    "small.png": {"too_small"},
    "wide.png": {"extreme_aspect"},
    "dup_b.png": {"exact_duplicate"},
    "near_b.jpg": {"near_duplicate"},
    "format.webp": set(),
    "bitmap.bmp": {"no_caption"},
    "gbk.png": {"caption_not_utf8"},
    "utf16.png": {"caption_not_utf8"},
    "bom.png": {"caption_bom"},
    "empty.png": {"caption_empty"},
    "nocap.png": {"no_caption"},
    f"{LONG}.png": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_nasty_file_gets_its_message(scan, name):
    got = codes(scan, name)
    assert got == EXPECTED[name], f"{name}: {got}"


def test_messages_say_what_to_do(scan):
    rows = {(r[0].rstrip("/").rsplit("/", 1)[-1], r[2]) for r in scan.rows("en")}
    text = "\n".join(f"{f}: {m}" for f, m in rows)
    assert "zero.png: Empty file (0 bytes)" in text
    assert "fake.png: This is a JPEG file named .png" in text and "rename it to .jpg" in text
    assert "alpha.png: Has transparency; transparent areas are composited on white" in text
    assert "small.png: 100×100 is smaller than its 512×512 bucket; it will be upscaled ×5.12" in text
    assert "gbk.png: Caption saved as GBK" in text
    assert "orphan.txt: Caption without an image" in text
    assert "photo.jfif: .jfif files are not read by the trainer" in text
    assert "anim.gif: .gif files are not read by the trainer" in text
    assert "cat: 'cat' is not named <repeats>_<name>" in text and "rename to 10_cat" in text
    zh = "\n".join(r[2] for r in scan.rows("zh"))
    assert "空文件（0 字节）" in zh and "含透明通道" in zh


def test_captions_in_other_encodings_are_read_correctly(scan):
    caps = {e.path.name: e.caption for e in scan.entries if e.caption}
    assert caps["gbk.png"].text == "猫, 坐着" and caps["gbk.png"].encoding in ("gbk", "gb18030")
    assert caps["utf16.png"].text == "猫, 躺着"
    assert caps["bom.png"].text == "cat, standing"
    assert caps[f"{LONG}.png"].text == "long, 名字"


def test_orientation_and_buckets(scan):
    rotated = next(e for e in scan.entries if e.path.name == "rotated.jpg")
    assert (rotated.info.width, rotated.info.height) == (512, 768)
    assert rotated.bucket.size[0] < rotated.bucket.size[1]  # portrait bucket after EXIF
    wide = next(e for e in scan.entries if e.path.name == "wide.png")
    assert wide.bucket.size == (1024, 256) and wide.bucket.crop_fraction > 0.2
    assert all(e.bucket is None for e in scan.entries if e.path.name in ("zero.png", "notimage.jpg"))


def test_bad_files_are_left_out_of_the_step_count(scan):
    ok = sum(1 for e in scan.entries if e.ok)
    bad = sum(1 for e in scan.entries if not e.ok)
    assert bad == 5 and ok == len(scan.entries) - 5
    assert scan.plan.images_per_epoch == ok * 10


def test_header_scan_is_fast_and_finds_file_level_problems(scan):
    quick = scan_dataset(scan.parent)
    assert not quick.decoded
    names = {e.path.name for e in quick.entries if not e.ok}
    assert names == {"zero.png", "notimage.jpg", "truncated.jpg", "truncated.png"}  # corrupt data needs decoding
    assert all(e.info.dhash is None for e in quick.entries)


def test_load_rgb_matches_what_the_page_says(scan):
    d = scan.subsets[0].path
    assert load_rgb(d / "alpha.png").getpixel((5, 5)) == (255, 255, 255)  # transparent → white
    assert load_rgb(d / "gray16.png").getpixel((5, 5)) == (155, 155, 155)  # 40000/257, not clipped to 255
    assert load_rgb(d / "rotated.jpg").size == (512, 768)
    assert load_rgb(d / "cmyk.jpg").mode == "RGB"
    assert load_rgb(d / "palette.png").mode == "RGB"


def test_inspect_never_raises(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    assert not inspect_image(tmp_path / "x.png", decode=True).ok
    assert not inspect_image(tmp_path / "missing.png").ok
