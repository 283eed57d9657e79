"""Grid composition: WebUI X/Y/Z geometry, labels, wrapping, Chinese text, partial grids, PNG text chunk."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from models.grid import compose as G

COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (220, 180, 20), (150, 40, 160)]


def cells_for(nx: int, ny: int, nz: int, size=(160, 160), skip=()) -> dict:
    out = {}
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if (z, y, x) not in skip:
                    c = COLOURS[(x + 2 * y + 3 * z) % len(COLOURS)]
                    out[(z, y, x)] = Image.new("RGB", size, c)
    return out


def dark_pixels(img: Image.Image, box) -> int:
    return int((np.asarray(img.crop(box).convert("L")) < 128).sum())


@pytest.mark.parametrize("nx,ny,nz", [(1, 1, 1), (2, 1, 1), (3, 3, 1), (4, 2, 1), (5, 4, 1), (2, 2, 2), (5, 4, 2)])
@pytest.mark.parametrize("margin", [0, 12])
def test_geometry_and_labels(nx, ny, nz, margin, artifacts):
    xs = [f"demo-{2 * i:06d}" for i in range(nx - 1)] + ["demo"]
    ys = [f"Weight: {w}" for w in (0.3, 0.6, 0.8, 1.0)[:ny]]
    zs = [f"base {z}" for z in range(nz)] if nz > 1 else None
    grid = G.compose_grid(cells_for(nx, ny, nz), xs, ys, zs, margin=margin)
    img, lay = grid.image, grid.layout
    cw, ch = lay.cell_size
    assert (cw, ch) == (160, 160)
    assert lay.font_size == (cw + ch) // 25
    assert len(lay.boxes) == nx * ny * nz
    pad_left = cw * 3 // 4
    # Sub-grids side by side: width = margins + Z × (row-label pad + cells + inner margins) + gaps.
    sub_w = pad_left + nx * cw + (nx - 1) * margin
    gap = max(margin, lay.font_size) if nz > 1 else 0
    assert img.size[0] == 2 * margin + nz * sub_w + (nz - 1) * gap
    for (z, y, x), (left, top, right, bottom) in lay.boxes.items():
        assert (right - left, bottom - top) == (cw, ch)
        # The cell's own colour fills its box, and a click in it finds it again.
        assert img.getpixel(((left + right) // 2, (top + bottom) // 2)) == COLOURS[(x + 2 * y + 3 * z) % 5]
        assert lay.locate(left + 3, top + 3) == (z, y, x)
        if x:
            assert left - lay.boxes[(z, y, x - 1)][2] == margin
        if y:
            assert top - lay.boxes[(z, y - 1, x)][3] == margin
        # Column label above the first row, row label left of the first column: real ink, not blank.
        if y == 0:
            assert dark_pixels(img, (left, top - lay.font_size * 2, right, top)) > 20
        if x == 0:
            assert dark_pixels(img, (left - pad_left, top, left, bottom)) > 20
    assert lay.locate(0, 0) is None  # the corner is a label area, not a cell
    if nz > 1:  # Z title above each sub-grid
        first = lay.boxes[(1, 0, 0)]
        title = (first[0] - pad_left, margin, first[0] + sub_w - pad_left, margin + lay.font_size * 2)
        assert dark_pixels(img, title) > 20
    if (nx, ny, nz, margin) == (5, 4, 2, 12):
        img.save(artifacts / "grid_compose_5x4x2.png")


def test_font_scales_with_cell_size():
    small = G.compose_grid(cells_for(2, 2, 1, size=(256, 256)), ["a", "b"], ["1", "2"])
    large = G.compose_grid(cells_for(2, 2, 1, size=(512, 768)), ["a", "b"], ["1", "2"])
    assert small.layout.font_size == 20 and large.layout.font_size == 51


def test_small_cells_are_enlarged_for_readable_labels():
    grid = G.compose_grid(cells_for(3, 3, 1, size=(64, 64)), ["a", "b", "c"], ["1", "2", "3"])
    assert grid.layout.cell_size == (192, 192)  # ×3, nearest neighbour: colours stay exact
    left, top, *_ = grid.layout.boxes[(0, 1, 2)]
    assert grid.image.getpixel((left, top)) == COLOURS[(2 + 2) % 5]


def test_long_labels_wrap_inside_the_cell():
    font = G.load_font(12)
    long = "masterpiece, best quality, 1girl, solo, looking at viewer, a_single_very_long_tag_without_spaces_at_all"
    lines = G.wrap_label(long, font, 100)
    assert len(lines) > 3
    assert all(font.getlength(line) <= 100 for line in lines)
    assert "".join(lines).replace(" ", "") == long.replace(" ", "")
    zh = G.wrap_label("这是一个很长的中文提示词没有空格需要按字换行", font, 60)
    assert len(zh) > 2 and all(font.getlength(line) <= 60 for line in zh)
    grid = G.compose_grid(cells_for(2, 1, 1), [long, "b"], ["w"])
    top = grid.layout.boxes[(0, 0, 0)][1]
    assert top > grid.layout.font_size * len(G.wrap_label(long, G.load_font(grid.layout.font_size), 160)) - 1


def test_bundled_font_comes_before_system_fonts(monkeypatch):
    bundled = G.bundled_cjk_font()
    assert bundled is not None, "the CJK font package from requirements.txt should be installed"
    assert G._has_cjk_glyph(bundled)
    monkeypatch.delenv("DANLU_FONT", raising=False)
    G.find_cjk_font.cache_clear()
    try:
        assert G.find_cjk_font() == bundled
    finally:
        G.find_cjk_font.cache_clear()


def test_a_font_without_chinese_is_not_taken_for_one():
    latin = next((p for p in G._LATIN_FALLBACK if os.path.isfile(p)), None)
    if latin is None:
        pytest.skip("no Latin-only system font here to check against")
    assert not G._has_cjk_glyph(latin)


def test_chinese_labels_render_as_glyphs_not_boxes(monkeypatch):
    monkeypatch.delenv("DANLU_FONT", raising=False)
    G.find_cjk_font.cache_clear()
    G.load_font.cache_clear()
    assert G.find_cjk_font() == G.bundled_cjk_font() is not None  # the glyphs below are drawn with Danlu's own font
    cells = cells_for(1, 1, 1)
    zh = G.compose_grid(cells, ["底模"], ["权重"])
    tofu = G.compose_grid(cells, ["\U0010fffd\U0010fffd"], ["\U0010fffd\U0010fffd"])
    box = zh.layout.boxes[(0, 0, 0)]
    header = (box[0], 0, box[2], box[1])
    assert dark_pixels(zh.image, header) > 30
    a = np.asarray(zh.image.crop(header).convert("L"))
    b = np.asarray(tofu.image.crop(header).convert("L"))
    assert (a != b).sum() > 30  # real 底模 glyphs differ from the missing-glyph boxes
    assert zh.warnings == []


def test_warning_when_no_cjk_font(monkeypatch):
    monkeypatch.setattr(G, "find_cjk_font", lambda: None)
    G.load_font.cache_clear()
    try:
        grid = G.compose_grid(cells_for(1, 1, 1), ["底模"], ["1.0"])
        assert grid.warnings and "requirements.txt" in grid.warnings[0][0] and "中文" in grid.warnings[0][1]
        assert G.compose_grid(cells_for(1, 1, 1), ["plain"], ["1.0"]).warnings == []
    finally:
        G.load_font.cache_clear()


def test_missing_cells_keep_the_shape():
    grid = G.compose_grid(cells_for(3, 2, 1, skip={(0, 1, 2), (0, 1, 1)}), ["a", "b", "c"], ["1", "2"])
    left, top, right, bottom = grid.layout.boxes[(0, 1, 2)]
    assert grid.image.getpixel(((left + right) // 2, (top + bottom) // 2)) == (225, 225, 225)
    assert len(grid.layout.boxes) == 6


def test_png_keeps_parameters(tmp_path):
    grid = G.compose_grid(cells_for(1, 1, 1), ["a"], ["b"])
    text = "demo, 红色\nNegative prompt: bad\nSteps: 8, Sampler: Euler, Script: X/Y/Z plot"
    path = G.save_grid_png(grid.image, tmp_path / "grid.png", text)
    with Image.open(path) as im:
        assert im.text["parameters"] == text
        assert im.size == grid.image.size


def test_huge_grids_shrink_their_cells():
    grid = G.compose_grid(cells_for(5, 4, 2, size=(1024, 1024)), list("abcde"), list("1234"), ["z0", "z1"],
                          max_megapixels=20)
    w, h = grid.image.size
    assert w * h <= 20e6 * 1.1 and grid.layout.cell_size[0] < 1024
    left, top, right, bottom = grid.layout.boxes[(1, 3, 4)]
    assert grid.image.getpixel(((left + right) // 2, (top + bottom) // 2)) == COLOURS[(4 + 6 + 3) % 5]
