"""Checks on one image file, and the one way training turns a file into RGB pixels.

`inspect_image` reads the header only (size, format, mode, EXIF orientation) plus the last bytes
of the file to spot truncation, so a thousand images scan in well under two seconds. With
`decode=True` it also decodes the pixels, which catches corrupt data in the middle of a file and
gives the perceptual hash used to find near duplicates.

`load_rgb` is what the trainer should use to read an image: EXIF orientation applied, 16-bit
scaled (not clipped), CMYK and palette converted, transparency composited on white — the same
facts this module reports to the user.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

# What each extension should hold (Pillow's format names). MPO is a camera JPEG with extra frames.
EXPECTED_FORMATS = {".png": {"PNG"}, ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".webp": {"WEBP"},
                    ".bmp": {"BMP", "DIB"}}
FORMAT_EXTENSION = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif",
                    "TIFF": ".tif"}
# Files Pillow can open that the trainer (like kohya) does not pick up: reported so nothing is skipped silently.
OTHER_IMAGE_EXTENSIONS = (".jfif", ".jpe", ".gif", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl", ".tga",
                          ".ico", ".psd", ".jp2")
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}

MESSAGES: dict[str, tuple[str, str]] = {
    "zero_bytes": ("Empty file (0 bytes); it cannot be trained. Delete it or copy the image again.",
                   "空文件（0 字节），无法训练。请删除或重新复制该图片。"),
    "unreadable": ("Not a readable image ({detail}). Delete it or re-export it as PNG/JPEG.",
                   "无法读取的图片（{detail}）。请删除或重新导出为 PNG/JPEG。"),
    "truncated": ("The file ends early (truncated download or copy). Download or export it again.",
                  "文件不完整（下载或复制被截断）。请重新下载或导出。"),
    "corrupt": ("The image data is damaged ({detail}). Re-export it, or delete it.",
                "图片数据已损坏（{detail}）。请重新导出或删除。"),
    "wrong_extension": ("This is a {fmt} file named {ext}. It still trains; rename it to {good} to avoid trouble "
                        "in other tools.",
                        "这是一个 {fmt} 文件，却以 {ext} 命名。仍可训练；建议改名为 {good}，以免其他工具出错。"),
    "other_format": ("{ext} files are not read by the trainer; convert it to PNG or JPEG to use it.",
                     "训练不会读取 {ext} 文件；要使用它，请转换为 PNG 或 JPEG。"),
    "cmyk": ("CMYK image (print colours); converted to RGB for training. Colours may shift; export as RGB to be "
             "sure.", "CMYK（印刷色）图片，训练时转换为 RGB，颜色可能有偏差；建议导出为 RGB。"),
    "sixteen_bit": ("16-bit image; scaled to 8 bits per channel for training.",
                    "16 位图片，训练时缩放为每通道 8 位。"),
    "palette": ("Palette (indexed-colour) image; converted to RGB for training.",
                "调色板（索引色）图片，训练时转换为 RGB。"),
    "alpha": ("Has transparency; transparent areas are composited on white for training.",
              "含透明通道；训练时透明部分会叠加在白色背景上。"),
    "grayscale": ("Grayscale image; trained as RGB (the LoRA may learn to drop colour).",
                  "灰度图片，按 RGB 训练（LoRA 可能学到去色）。"),
    "exif_rotated": ("EXIF orientation {orientation}: rotated/flipped upright for training ({w}×{h}).",
                     "EXIF 方向标记为 {orientation}：训练时会按标记旋转/翻转摆正（{w}×{h}）。"),
    "too_small": ("{w}×{h} is smaller than its {bw}×{bh} bucket; it will be upscaled ×{scale:.2f} and may look "
                  "soft. Use a larger original if you have one.",
                  "{w}×{h} 小于其分桶 {bw}×{bh}，训练时将放大 ×{scale:.2f}，可能发糊。如有更大的原图请替换。"),
    "small_no_upscale": ("{w}×{h} trains at only {bw}×{bh} (no upscaling is on).",
                         "{w}×{h} 只会以 {bw}×{bh} 训练（已开启不放大）。"),
    "extreme_aspect": ("Extreme aspect ratio {ratio:.1f}:1; {crop:.0%} of it is cropped away in its {bw}×{bh} bucket. "
                       "Crop it to the subject yourself.",
                       "长宽比极端（{ratio:.1f}:1）；在 {bw}×{bh} 分桶中会被裁掉 {crop:.0%}。建议自行裁剪到主体。"),
    "cropped": ("{crop:.0%} of it is cropped away to fit the {bw}×{bh} bucket (centre crop).",
                "为适配 {bw}×{bh} 分桶，居中裁掉 {crop:.0%}。"),
    "huge": ("Very large image ({mp:.0f} megapixels); it is shrunk for training, and scanning/decoding is slow.",
             "图片非常大（{mp:.0f} 百万像素）；训练时会缩小，扫描和解码较慢。"),
}


@dataclass(frozen=True)
class Issue:
    """One finding about a file. level: 'error' (the file cannot be trained), 'warn' (trains, but look), 'info'."""

    code: str
    level: str
    en: str
    zh: str

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def issue(code: str, level: str, **fmt) -> Issue:
    en, zh = MESSAGES[code]
    return Issue(code, level, en.format(**fmt), zh.format(**fmt))


@dataclass
class ImageInfo:
    """What the header says about one file; width/height are after EXIF orientation."""

    path: Path
    size_bytes: int = 0
    mtime: float = 0.0
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0
    orientation: int = 1
    bit_depth: int = 8
    dhash: int | None = None
    mean_rgb: tuple[int, ...] | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Readable and trainable (warnings allowed)."""
        return not any(i.level == "error" for i in self.issues)


def _tail_truncated(path: Path, fmt: str, size: int) -> bool:
    """Cheap truncation check: the end marker of PNG/JPEG/GIF, the declared length of WebP/BMP."""
    try:
        with open(path, "rb") as f:
            if fmt in ("WEBP", "BMP"):
                head = f.read(8)
                if fmt == "WEBP":
                    declared = struct.unpack("<I", head[4:8])[0] + 8
                else:
                    declared = struct.unpack("<I", head[2:6])[0]  # 0 is allowed by the format: unknown
                return declared > size
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return True
    if fmt == "PNG":
        return b"IEND" not in tail
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" not in tail
    if fmt == "GIF":
        return not tail.rstrip(b"\x00").endswith(b";")
    return False


def _png_bit_depth(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            head = f.read(26)
        return head[24] if len(head) >= 25 and head[12:16] == b"IHDR" else 8
    except OSError:
        return 8


def _orientation(im: Image.Image) -> int:
    """EXIF orientation from the header. PNG's getexif() would decode the whole image, so only its eXIf chunk."""
    try:
        if im.format == "PNG":
            if "exif" not in im.info:
                return 1
            exif = Image.Exif()
            exif.load(im.info["exif"])
        else:
            exif = im.getexif()
        value = int(exif.get(0x0112, 1) or 1)
    except Exception:  # broken EXIF is common in phone pictures and must not stop the scan
        return 1
    return value if 1 <= value <= 8 else 1


def dhash(im: Image.Image) -> int:
    """64-bit difference hash: robust to resizing and re-encoding, so re-saved copies match."""
    small = im.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    px = list(small.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return bits


def inspect_image(path: Path, decode: bool = False) -> ImageInfo:
    """Header facts and file-level problems for one image. Never raises for a bad file."""
    path = Path(path)
    info = ImageInfo(path)
    try:
        st = path.stat()
    except OSError as e:
        info.issues.append(issue("unreadable", "error", detail=e.strerror or type(e).__name__))
        return info
    info.size_bytes, info.mtime = st.st_size, st.st_mtime
    ext = path.suffix.lower()
    if st.st_size == 0:
        info.issues.append(issue("zero_bytes", "error"))
        return info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning and EXIF warnings become our own messages
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            info.issues.append(issue("unreadable", "error", detail="larger than Pillow's safety limit of "
                                     f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels"))
            return info
        except Exception as e:
            info.issues.append(issue("unreadable", "error", detail=_detail(e, path)))
            return info
        with im:
            info.format, info.mode = im.format, im.mode
            transparency = "transparency" in im.info
            w, h = im.size
            info.orientation = _orientation(im)
            if info.orientation in (5, 6, 7, 8):
                w, h = h, w
            info.width, info.height = w, h
            if decode:
                try:
                    im.draft("RGB", (max(64, w // 8), max(64, h // 8)))  # JPEG decodes at 1/8: enough for a hash
                    im.load()
                    rgb = to_rgb(im)
                    info.dhash = dhash(rgb)
                    info.mean_rgb = tuple(rgb.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0)))
                except Exception as e:
                    info.issues.append(issue("corrupt", "error", detail=_detail(e, path)))
    fmt = info.format or ""
    if ext in OTHER_IMAGE_EXTENSIONS:
        info.issues.append(issue("other_format", "warn", ext=ext))
    elif ext in EXPECTED_FORMATS and fmt not in EXPECTED_FORMATS[ext]:
        good = FORMAT_EXTENSION.get(fmt, ".png")
        info.issues.append(issue("wrong_extension", "warn", fmt=fmt, ext=ext, good=good))
    if _tail_truncated(path, fmt, st.st_size):  # the clearer message: say "truncated", not "damaged"
        info.issues = [i for i in info.issues if i.code != "corrupt"] + [issue("truncated", "error")]
    info.bit_depth = _png_bit_depth(path) if fmt == "PNG" else (16 if info.mode in SIXTEEN_BIT_MODES else 8)
    mode = info.mode or ""
    if mode == "CMYK":
        info.issues.append(issue("cmyk", "info"))
    if info.bit_depth == 16 or mode in SIXTEEN_BIT_MODES:
        info.bit_depth = 16
        info.issues.append(issue("sixteen_bit", "info"))
    if mode in ("P", "PA"):
        info.issues.append(issue("palette", "info"))
    if mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and transparency):
        info.issues.append(issue("alpha", "warn"))
    elif mode in ("L", "1", "I;16", "I;16B", "I;16L", "I"):
        info.issues.append(issue("grayscale", "info"))
    if info.orientation != 1:
        info.issues.append(issue("exif_rotated", "info", orientation=info.orientation, w=info.width, h=info.height))
    if info.width * info.height > 40_000_000:
        info.issues.append(issue("huge", "warn", mp=info.width * info.height / 1e6))
    return info


def _detail(e: BaseException, path: Path) -> str:
    """Pillow's message without the long path (the check list already names the file)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.replace(f"'{os.fspath(path)}'", "").replace(os.fspath(path), "").replace("  ", " ").strip()[:160]


def size_issues(info: ImageInfo, bucket, *, no_upscale: bool = False, resolution: int = 512) -> list[Issue]:
    """Upscaling, tiny training size and heavy cropping, from the bucket the image lands in."""
    out = []
    bw, bh = bucket.size
    w, h = info.width, info.height
    if bucket.upscaled and bucket.scale > 1.05:
        out.append(issue("too_small", "warn", w=w, h=h, bw=bw, bh=bh, scale=bucket.scale))
    elif no_upscale and bw * bh < 0.5 * resolution * resolution:
        out.append(issue("small_no_upscale", "info", w=w, h=h, bw=bw, bh=bh))
    ratio = max(w, h) / max(1, min(w, h))
    if ratio >= 3.0:
        out.append(issue("extreme_aspect", "warn", ratio=ratio, crop=bucket.crop_fraction, bw=bw, bh=bh))
    elif bucket.crop_fraction >= 0.15:
        out.append(issue("cropped", "info", crop=bucket.crop_fraction, bw=bw, bh=bh))
    return out


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow image → 8-bit RGB: 16-bit scaled, palette/CMYK converted, transparency on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        im = im.convert("I")
    if im.mode == "I":
        im = im.point(lambda v: v * (1 / 257)).convert("L")
    elif im.mode == "F":
        im = im.point(lambda v: v * 255).convert("L")  # float images are 0..1 by convention
    if im.mode == "P" or (im.mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "LA":
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im.convert("RGB") if im.mode != "RGB" else im


def load_rgb(path: Path, draft: tuple[int, int] | None = None) -> Image.Image:
    """Read an image for training: EXIF orientation applied, then to_rgb. Raises on unreadable files.

    draft: for previews, let JPEG decode at a reduced size of at least this (much faster on big photos).
    """
    with Image.open(path) as im:
        if draft:
            im.draft("RGB", draft)
        im.load()
        im = ImageOps.exif_transpose(im) or im
        return to_rgb(im).copy()
