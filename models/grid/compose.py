"""Grid composition with PIL, laid out like WebUI's X/Y/Z plot.

One X×Y sub-grid per Z value, side by side, each titled with its Z label; column labels on top,
row labels on the left (pad ¾ of a cell wide), font size (cell_w + cell_h) // 25, long labels
wrapped to fit. A CJK font is used so Chinese labels render; without one a warning says so.
The layout remembers where every cell is, so a click on the picture can be mapped to its cell.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from core.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

# Danlu brings its own CJK font (Noto Sans SC, SIL OFL 1.1) in a package from requirements.txt, so labels look
# the same on every machine; it comes before any system font. DANLU_FONT overrides it.

# Known CJK-capable system fonts, most likely first: used only when the bundled font is missing.
CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/msyh.ttf",
    "C:/Windows/Fonts/simhei.ttf",
    "C:/Windows/Fonts/simsun.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
)
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
             "C:/Windows/Fonts", "/System/Library/Fonts", "/Library/Fonts")
_CJK_NAME = re.compile(r"(wqy|cjk|sourcehan|source-han|msyh|simhei|simsun|pingfang|heiti|hiragino|droidsansfallback"
                       r"|notosanssc|notoserifsc|unifont|arialuni)", re.IGNORECASE)
_LATIN_FALLBACK = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "C:/Windows/Fonts/arial.ttf",
                   "/System/Library/Fonts/Helvetica.ttc")
_CJK_CHAR = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")

NO_CJK_WARNING = (("No CJK font was found, so Chinese labels in the grid show as boxes. Reinstall Danlu's "
                   "requirements (pip install -r requirements.txt brings Noto Sans SC), install a system font "
                   "(Debian/Ubuntu: apt install fonts-wqy-microhei) or set DANLU_FONT to a .ttf/.ttc/.otf file."),
                  ("没有找到中文字体，网格图里的中文标签会显示成方框。请重新安装 Danlu 的依赖"
                   "（pip install -r requirements.txt 会带上思源黑体 Noto Sans SC），或安装一个系统字体"
                   "（Debian/Ubuntu：apt install fonts-wqy-microhei），或把环境变量 DANLU_FONT 设为一个 "
                   ".ttf/.ttc/.otf 字体文件。"))


def _has_cjk_glyph(path: str) -> bool:
    """True when the font draws 汉 differently from a code point no font has (its 'tofu' box)."""
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False

    def ink(text: str) -> bytes:
        img = Image.new("L", (48, 48))
        ImageDraw.Draw(img).text((4, 4), text, font=font, fill=255)
        return img.tobytes()

    return ink("汉") != ink("\U0010fffd")


def bundled_cjk_font() -> str | None:
    """The Noto Sans SC file of the font package in requirements.txt, or None when it is not installed."""
    try:
        from pylopdf_fonts_zh_cn import sans_path

        path = Path(sans_path())
    except ImportError:
        return None
    return str(path) if path.is_file() else None


@lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """A font file that can draw Chinese: DANLU_FONT, the bundled font, the known list, then the font folders."""
    env = os.environ.get("DANLU_FONT", "")
    if env and Path(env).is_file():
        return env
    bundled = bundled_cjk_font()
    if bundled:
        return bundled
    for path in CJK_FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in (".ttf", ".ttc", ".otf") and _CJK_NAME.search(path.name) \
                    and _has_cjk_glyph(str(path)):
                return str(path)
    log.warning(NO_CJK_WARNING[0])
    return None


@lru_cache(maxsize=64)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The label font at `size` px: the CJK font, else a Latin one, else Pillow's built-in font."""
    for path in (find_cjk_font(), *_LATIN_FALLBACK):
        if path and Path(path).is_file():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size)


def font_size_for(cell_w: int, cell_h: int) -> int:
    """WebUI's rule: (cell_w + cell_h) // 25, never below 8 px."""
    return max(8, (cell_w + cell_h) // 25)


def _text_w(font, text: str) -> float:
    return font.getlength(text)


def wrap_label(text: str, font, max_width: float) -> list[str]:
    """Lines no wider than max_width: break at spaces, and inside words (or between CJK characters) when needed."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        current = ""
        for word in re.findall(r"\S+\s*", paragraph) or [""]:
            candidate = current + word
            if _text_w(font, candidate.rstrip()) <= max_width or not current:
                current = candidate
            else:
                lines.append(current.rstrip())
                current = word
            # A single word wider than the box is cut character by character.
            while _text_w(font, current.rstrip()) > max_width and len(current.rstrip()) > 1:
                cut = len(current)
                while cut > 1 and _text_w(font, current[:cut]) > max_width:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current.rstrip())
    return lines


@dataclass
class GridLayout:
    """Where everything went: cell boxes (left, top, right, bottom) keyed by (z, y, x)."""

    size: tuple[int, int]
    cell_size: tuple[int, int]
    font_size: int
    boxes: dict[tuple[int, int, int], tuple[int, int, int, int]] = field(default_factory=dict)

    def locate(self, px: float, py: float) -> tuple[int, int, int] | None:
        """The (z, y, x) of the cell under a pixel of the grid image, or None for labels and margins."""
        for key, (left, top, right, bottom) in self.boxes.items():
            if left <= px < right and top <= py < bottom:
                return key
        return None


@dataclass
class Grid:
    image: Image.Image
    layout: GridLayout
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh)


def _block_height(lines: list[str], line_h: int) -> int:
    return len(lines) * line_h


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], font, cx: float, top: float, line_h: int,
                fill=(0, 0, 0)) -> None:
    for i, line in enumerate(lines):
        draw.text((cx, top + i * line_h + line_h / 2), line, font=font, fill=fill, anchor="mm")


def compose_grid(cells: dict[tuple[int, int, int], Image.Image | None], x_labels: list[str], y_labels: list[str],
                 z_labels: list[str] | None = None, *, margin: int = 0, cell_size: tuple[int, int] | None = None,
                 min_cell: int = 160, draw_legend: bool = True, max_megapixels: float = 150.0) -> Grid:
    """Compose cells[(z, y, x)] into one labelled picture.

    Missing cells (not rendered yet, or cancelled) are drawn as grey boxes so a partial grid keeps its shape.
    Cells smaller than `min_cell` px are enlarged by a whole factor (nearest neighbour) so the labels, whose size
    follows the cell size, stay readable; the cell files themselves keep their own pixels.
    """
    nz = max(1, len(z_labels or []))
    nx, ny = len(x_labels), len(y_labels)
    if nx < 1 or ny < 1:
        raise ValueError("a grid needs at least one column and one row")
    present = [im for im in cells.values() if im is not None]
    if cell_size is None:
        cell_size = present[0].size if present else (min_cell, min_cell)
    scale = max(1, -(-min_cell // max(1, min(cell_size))))
    cw, ch = cell_size[0] * scale, cell_size[1] * scale
    margin = max(0, int(margin))
    # Size guard (WebUI's img_max_size_mp): a huge grid shrinks its cells rather than exhaust memory.
    estimate = nz * (nx + 0.75) * cw * (ny + 0.5) * ch
    if estimate > max_megapixels * 1e6:
        shrink = (max_megapixels * 1e6 / estimate) ** 0.5
        cw, ch = max(16, int(cw * shrink)), max(16, int(ch * shrink))

    fs = font_size_for(cw, ch)
    font = load_font(fs)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (fs, fs // 4)
    line_h = ascent + descent + max(1, fs // 8)
    pad = max(2, fs // 3)

    col_lines = [wrap_label(s, font, cw - 2 * pad) for s in x_labels] if draw_legend else [[] for _ in x_labels]
    pad_left = cw * 3 // 4 if draw_legend and any(y_labels) else 0
    row_lines = [wrap_label(s, font, pad_left - 2 * pad) if pad_left else [] for s in y_labels]
    pad_top = max(_block_height(lines, line_h) for lines in col_lines) + 2 * pad if draw_legend else 0

    sub_w = pad_left + nx * cw + (nx - 1) * margin
    sub_h = pad_top + ny * ch + (ny - 1) * margin
    z_lines = [wrap_label(s, font, sub_w - 2 * pad) for s in z_labels] if z_labels else []
    title_h = max(_block_height(lines, line_h) for lines in z_lines) + 2 * pad if z_lines else 0
    gap = max(margin, fs) if nz > 1 else 0

    width = 2 * margin + nz * sub_w + (nz - 1) * gap
    height = 2 * margin + title_h + sub_h
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    layout = GridLayout(size=(width, height), cell_size=(cw, ch), font_size=fs)

    for z in range(nz):
        left0 = margin + z * (sub_w + gap)
        top0 = margin + title_h
        if z_lines:
            _draw_lines(draw, z_lines[z], font, left0 + sub_w / 2, margin + pad, line_h)
        for x in range(nx):
            cx = left0 + pad_left + x * (cw + margin) + cw / 2
            block = _block_height(col_lines[x], line_h)
            _draw_lines(draw, col_lines[x], font, cx, top0 + pad_top - pad - block, line_h)
        for y in range(ny):
            top = top0 + pad_top + y * (ch + margin)
            if pad_left:
                block = _block_height(row_lines[y], line_h)
                _draw_lines(draw, row_lines[y], font, left0 + pad_left / 2, top + (ch - block) / 2, line_h)
            for x in range(nx):
                left = left0 + pad_left + x * (cw + margin)
                box = (left, top, left + cw, top + ch)
                layout.boxes[(z, y, x)] = box
                im = cells.get((z, y, x))
                if im is None:
                    draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(225, 225, 225))
                    continue
                if im.size != (cw, ch):
                    im = im.resize((cw, ch), Image.NEAREST if scale > 1 else Image.LANCZOS)
                image.paste(im.convert("RGB"), box[:2])

    warnings = []
    labels = [*x_labels, *y_labels, *(z_labels or [])]
    if find_cjk_font() is None and any(_CJK_CHAR.search(str(s)) for s in labels):
        warnings.append(NO_CJK_WARNING)
    return Grid(image=image, layout=layout, warnings=warnings)


def png_bytes(image: Image.Image, text_chunks: dict[str, str]) -> bytes:
    """PNG bytes with tEXt/iTXt chunks (the WebUI reads 'parameters')."""
    info = PngInfo()
    for key, value in text_chunks.items():
        info.add_itxt(key, value) if any(ord(c) > 255 for c in value) else info.add_text(key, value)
    buf = BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_grid_png(image: Image.Image, path: Path, parameters: str, extra: dict[str, str] | None = None) -> Path:
    """Write the grid atomically with its parameters in the PNG text chunk."""
    return atomic_write_bytes(Path(path), png_bytes(image, {"parameters": parameters, **(extra or {})}))
