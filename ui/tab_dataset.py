"""Step 3 选图: pick images, get the `<repeats>_<name>` folder built, see every check, the buckets and the steps.

The page uses core.dataset_scan, which buckets with core.buckets exactly as training does. Header facts
are cached per file, so changing resolution, buckets, batch or epochs elsewhere re-counts at once.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import gradio as gr

from core import config as cfgmod
from core.dataset_build import REPEATS_RULE, build_dataset, detect_shape, import_files, suggest_repeats
from core.dataset_scan import DatasetScan, scan_dataset, scan_key
from core.errors import DanluError
from ui import i18n
from ui.context import AppContext
from ui.i18n import t

TAB_ID = "dataset"
TAB_KEY = "dataset.tab"
PAGE = 48             # gallery thumbnails per page, made only when shown
THUMB = 256
LEVEL_ICON = {"error": "✖", "warn": "⚠", "info": "ℹ"}  # plain symbols: present in every UI font

i18n.add({
    "dataset.tab": ("3 选图 训练集", "3 Dataset"),
    "dataset.intro": ("训练读取的是一个**父文件夹**，其中每个 `<重复次数>_<名称>` 子文件夹是一个概念"
                      "（如 `10_sks dog`）。给出图片所在的文件夹即可：若它还不是这种结构，丹炉会新建 "
                      "`<重复次数>_<名称>` 子文件夹并把图片和标注**复制**进去（勾选后才移动），绝不覆盖已有文件。",
                      "Training reads a **parent folder** whose `<repeats>_<name>` subfolders are the concepts (like "
                      "`10_sks dog`). Give the folder your images are in: if it is not laid out like that yet, Danlu "
                      "makes the `<repeats>_<name>` folder and **copies** the images and captions in (moves them only "
                      "if you tick it), never overwriting anything."),
    "dataset.path": ("图片文件夹或训练集父文件夹（可粘贴路径）",
                     "Image folder or dataset parent folder (paste a path)"),
    "dataset.open": ("读取文件夹", "Open folder"),
    "dataset.upload": ("或从浏览器上传图片（和 .txt 标注）", "Or upload images (and .txt captions) from the browser"),
    "dataset.import": ("导入上传的文件", "Import uploaded files"),
    "dataset.name": ("概念名 / 触发词（子文件夹名的后半部分）",
                     "Concept name / trigger word (second half of the folder name)"),
    "dataset.repeats": ("重复次数（0 = 按图片数自动）", "Repeats (0 = from the image count)"),
    "dataset.move": ("移动而不是复制（图片移入原文件夹下的新子文件夹）",
                     "Move instead of copy (the images go into a new subfolder of their folder)"),
    "dataset.build": ("建立训练文件夹", "Build the training folder"),
    "dataset.reg": ("可选：正则化图片父文件夹（命名规则相同）",
                    "Optional: regularisation parent folder (same naming)"),
    "dataset.deep": ("逐张解码检查（能发现损坏数据和近似重复；每张约 10 毫秒）",
                     "Decode every image (finds damaged data and near duplicates; about 10 ms per image)"),
    "dataset.show_info": ("也显示提示（ℹ）", "Also show notes (ℹ)"),
    "dataset.checks": ("逐张检查结果", "Checks, image by image"),
    "dataset.col_file": ("文件", "File"),
    "dataset.col_level": ("级别", "Level"),
    "dataset.col_message": ("问题与处理办法", "What is wrong and what to do"),
    "dataset.gallery": ("图片（标题：尺寸 → 分桶，裁剪比例）",
                        "Images (caption: size → bucket, share cropped)"),
    "dataset.prev": ("◀ 上一页", "◀ Previous"),
    "dataset.next": ("下一页 ▶", "Next ▶"),
    "dataset.chart": ("分桶分布（图片数 × 重复次数）", "Buckets (images × repeats)"),
    "dataset.col_bucket": ("分桶", "Bucket"),
    "dataset.col_count": ("每轮样本数", "Samples per epoch"),
    "dataset.needs_build": ("{path} 中有 {n} 张图片，但还不是训练用的结构。"
                            "填好概念名和重复次数后点“建立训练文件夹”。\n\n建议重复次数 **{repeats}**。规则：{rule}",
                            "{path} holds {n} images but is not laid out for training yet. Check the concept name "
                            "and repeats, then press “Build the training folder”.\n\nSuggested repeats **{repeats}**. "
                            "Rule: {rule}"),
    "dataset.built": ("✔ 已建立 {dir}：写入 {written} 个文件，{skipped} 个相同文件已存在被跳过，"
                      "{renamed} 个因重名而改名。",
                      "✔ Built {dir}: {written} files written, {skipped} identical files already there (skipped), "
                      "{renamed} renamed to avoid a clash."),
    "dataset.used_parent": ("ℹ 你选的是概念子文件夹；训练集文件夹设为它的上一级：{parent}",
                            "ℹ You picked a concept folder; the dataset folder is its parent: {parent}"),
    "dataset.summary": ("**{images}** 张图片（{bad} 张无法训练），{concepts} 个概念；"
                        "✖ {errors} 个错误，⚠ {warns} 个警告，ℹ {infos} 条提示。扫描用时 {seconds:.2f} 秒{deep}。",
                        "**{images}** images ({bad} cannot be trained), {concepts} concept folder(s); "
                        "✖ {errors} errors, ⚠ {warns} warnings, ℹ {infos} notes. Scanned in {seconds:.2f} s{deep}."),
    "dataset.deep_on": ("（已逐张解码）", " (every image decoded)"),
    "dataset.steps_head": ("| 概念文件夹 | 图片 | 重复 | 每轮样本 | 批次 |\n|---|---|---|---|---|",
                           "| Concept folder | Images | Repeats | Samples per epoch | Batches |\n"
                           "|---|---|---|---|---|"),
    "dataset.reg_mark": ("（正则化）", " (regularisation)"),
    "dataset.steps": ("**步数**：{formula}", "**Steps**: {formula}"),
    "dataset.no_images": ("没有可训练的图片。", "No trainable images."),
    "dataset.page": ("第 {page}/{pages} 页，共 {n} 张", "Page {page}/{pages}, {n} images"),
    "dataset.error": ("✖ ", "✖ "),
    "dataset.none": ("先给出一个文件夹。", "Give a folder first."),
})

i18n.add({"dataset.rule": ("ℹ 重复次数规则：" + REPEATS_RULE[1], "ℹ Repeats rule: " + REPEATS_RULE[0])})

_INFO_CACHE: dict = {}  # header facts per (path, size, mtime), shared by every session of this app




def thumbnail(path: Path) -> str:
    """A small JPEG of the image, made on first view and kept in the temp folder (never in the dataset)."""
    from core.imagecheck import load_rgb

    p = Path(path)
    st = p.stat()
    key = hashlib.blake2b(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode(), digest_size=12).hexdigest()
    out = Path(tempfile.gettempdir()) / "danlu-thumbs" / f"{key}.jpg"
    if not out.exists():
        from PIL import Image

        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            im = load_rgb(p, draft=(THUMB, THUMB))
            im.thumbnail((THUMB, THUMB))
        except Exception:  # the check list already says why; show a grey tile
            im = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
        im.save(out, "JPEG", quality=85)
    return str(out)


def gallery_items(scan_state: dict, page: int) -> list[tuple[str, str]]:
    items = scan_state.get("items", [])
    return [(thumbnail(Path(p)), cap) for p, cap in items[page * PAGE:(page + 1) * PAGE]]


def scan_state_of(scan: DatasetScan) -> dict:
    """What the page keeps between events: the folder and, per image, its path and gallery caption."""
    items = []
    for e in scan.entries:
        worst = min((i.level for i in e.issues), key=["error", "warn", "info"].index, default="")
        icon = LEVEL_ICON.get(worst, "") if worst != "info" else ""
        if e.bucket:
            b = e.bucket
            cap = f"{icon}{e.path.name} · {e.info.width}×{e.info.height} → {b.size[0]}×{b.size[1]}" + \
                (f" · {b.crop_fraction:.0%}" if b.crop_fraction >= 0.005 else "")
        else:
            cap = f"✖{e.path.name}"
        items.append((str(e.path), cap))
    return {"parent": str(scan.parent), "reg": str(scan.reg_subsets[0].path.parent) if scan.reg_subsets else "",
            "items": items}


def steps_markdown(scan: DatasetScan, lang: str) -> str:
    plan = scan.plan
    if not plan.images_per_epoch:
        return t("dataset.no_images", lang)
    rows = [t("dataset.steps_head", lang)]
    for c in plan.concepts:
        mark = t("dataset.reg_mark", lang) if c.is_reg else ""
        rows.append(f"| `{c.name}`{mark} | {c.images} | {c.repeats} | {c.per_epoch} | {c.batches} |")
    text = "\n".join(rows) + "\n\n" + t("dataset.steps", lang, formula=plan.formula(lang))
    return text + (f"\n\n{plan.saves_text(lang)}" if plan.save_steps else "")


def chart_frame(scan: DatasetScan, lang: str):
    """Bucket counts for the bar chart; the column names stay fixed, the axis titles follow the language."""
    import pandas as pd

    counts = scan.plan.bucket_counts
    return pd.DataFrame({"bucket": [f"{w}×{h}" for w, h in counts], "samples": list(counts.values())})


def chart_update(scan: DatasetScan | None, lang: str):
    return gr.BarPlot(chart_frame(scan, lang) if scan else None, x="bucket", y="samples",
                      x_title=t("dataset.col_bucket", lang), y_title=t("dataset.col_count", lang))


def check_rows(scan: DatasetScan, lang: str, show_info: bool):
    """The check list as a table whose headers are in the page's language."""
    import pandas as pd

    rows = [[f, LEVEL_ICON[level], msg] for f, level, msg in scan.rows(lang, "info" if show_info else "warn")]
    return pd.DataFrame(rows, columns=[t(f"dataset.col_{c}", lang) for c in ("file", "level", "message")])


def summary_markdown(scan: DatasetScan, lang: str) -> str:
    bad = sum(1 for e in scan.entries if not e.ok)
    return t("dataset.summary", lang, images=len(scan.entries), bad=bad, concepts=len(scan.subsets),
             errors=scan.count("error"), warns=scan.count("warn"), infos=scan.count("info"), seconds=scan.seconds,
             deep=t("dataset.deep_on", lang) if scan.decoded else "")


def run_scan(parent: str, reg: str, config: dict, deep: bool, show_info: bool, lang: str) -> tuple:
    """(scan, state, summary, steps, chart, rows, gallery, page label) for a kohya parent folder."""
    scan = scan_dataset(Path(parent), config, reg_dir=Path(reg) if reg else None, decode=deep,
                        cache=_INFO_CACHE)
    state = scan_state_of(scan)
    return (scan, state, summary_markdown(scan, lang), steps_markdown(scan, lang), chart_update(scan, lang),
            check_rows(scan, lang, show_info), gallery_items(state, 0), page_label(state, 0, lang))


def page_label(state: dict, page: int, lang: str) -> str:
    n = len(state.get("items", []))
    return t("dataset.page", lang, page=page + 1, pages=max(1, -(-n // PAGE)), n=n)


def with_dataset(config: dict, parent: str, reg: str, scan: DatasetScan | None) -> dict:
    """The config with dataset.dir (and reg_dir) set, and the trigger word from the concept name when empty."""
    values = {"dataset.dir": parent, "dataset.reg_dir": reg or ""}
    if scan and scan.subsets and not config["dataset"].get("trigger_word"):
        values["dataset.trigger_word"] = scan.subsets[0].name.strip()
    return cfgmod.with_values(config, values)


def _clean_path(text: str) -> str:
    """Paths pasted from Windows' "Copy as path" come in quotes."""
    return (text or "").strip().strip('"').strip("'").strip()


def _key(parent: str, reg: str, config: dict, deep: bool, show_info: bool, lang: str) -> list:
    return [parent, reg, list(scan_key(config)), deep, show_info, lang]


def _error(e: DanluError | OSError, lang: str) -> i18n.Text:
    """The status line for an error, in both languages (i18n.follow shows it)."""
    if isinstance(e, OSError):  # a folder that vanished or cannot be read: say so instead of failing the event
        where = e.filename or ""
        e = DanluError(f"Cannot read {where}: {e.strerror or e}", f"无法读取 {where}：{e.strerror or e}",
                       "Check that the folder exists and that you may read and write it.",
                       "请确认文件夹存在，并且有读写权限。")
    return i18n.both(lambda lg: t("dataset.error", lg) + e.text(lg).replace("\n", "\n\n"), lang)


def _built(result, lang: str) -> i18n.Text:
    """'Built <dir>: n written, …' in both languages."""
    return i18n.both(lambda lg: t("dataset.built", lg, dir=result.subset_dir, written=len(result.written),
                                  skipped=len(result.skipped), renamed=len(result.renamed)), lang)


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    bind = ctx.tr.bind
    bind(gr.Markdown(t("dataset.intro", lang0)), value="dataset.intro")
    with gr.Row(equal_height=True):
        path = bind(gr.Textbox(label=t("dataset.path", lang0), elem_id="dataset-path", scale=5), label="dataset.path")
        open_btn = bind(gr.Button(t("dataset.open", lang0), variant="primary", elem_id="dataset-open", scale=1),
                        value="dataset.open")
    with gr.Row(equal_height=True):
        name = bind(gr.Textbox(label=t("dataset.name", lang0), elem_id="dataset-name", scale=3), label="dataset.name")
        repeats = bind(gr.Number(0, precision=0, minimum=0, maximum=10000, label=t("dataset.repeats", lang0),
                                 elem_id="dataset-repeats", scale=1), label="dataset.repeats")
        move = bind(gr.Checkbox(False, label=t("dataset.move", lang0), elem_id="dataset-move", scale=2),
                    label="dataset.move")
        build_btn = bind(gr.Button(t("dataset.build", lang0), elem_id="dataset-build", scale=1), value="dataset.build")
    bind(gr.Markdown(t("dataset.rule", lang0), elem_id="dataset-rule"), value="dataset.rule")
    with gr.Row(equal_height=True):
        upload = bind(gr.File(file_count="multiple", type="filepath", label=t("dataset.upload", lang0),
                              elem_id="dataset-upload", scale=4, height=120), label="dataset.upload")
        import_btn = bind(gr.Button(t("dataset.import", lang0), elem_id="dataset-import", scale=1),
                          value="dataset.import")
    with gr.Row(equal_height=True):
        reg = bind(gr.Textbox(label=t("dataset.reg", lang0), elem_id="dataset-reg", scale=3), label="dataset.reg")
        deep = bind(gr.Checkbox(True, label=t("dataset.deep", lang0), elem_id="dataset-deep", scale=2),
                    label="dataset.deep")
        show_info = bind(gr.Checkbox(False, label=t("dataset.show_info", lang0), elem_id="dataset-show-info", scale=1),
                         label="dataset.show_info")
    status = i18n.follow(gr.Markdown("", elem_id="dataset-status"), ctx.lang)  # its text in both languages
    summary = gr.Markdown("", elem_id="dataset-summary")
    with gr.Row():
        with gr.Column(scale=3):
            steps = gr.Markdown("", elem_id="dataset-steps")
        with gr.Column(scale=2):
            chart = bind(gr.BarPlot(None, x="bucket", y="samples", x_title=t("dataset.col_bucket", lang0),
                                    y_title=t("dataset.col_count", lang0), label=t("dataset.chart", lang0),
                                    elem_id="dataset-chart", height=260, sort=None,
                                    y_lim=[0, None]),
                         label="dataset.chart")
    checks = bind(gr.Dataframe(headers=[t(f"dataset.col_{c}", lang0) for c in ("file", "level", "message")],
                               value=[], interactive=False, wrap=True, elem_id="dataset-checks",
                               label=t("dataset.checks", lang0), column_widths=["28%", "6%", "66%"]),
                  label="dataset.checks")
    gallery = bind(gr.Gallery([], label=t("dataset.gallery", lang0), columns=8, height=420, object_fit="contain",
                              elem_id="dataset-gallery", allow_preview=True), label="dataset.gallery")
    with gr.Row():
        prev_btn = bind(gr.Button(t("dataset.prev", lang0), size="sm", elem_id="dataset-prev"), value="dataset.prev")
        page_md = gr.Markdown("", elem_id="dataset-page")
        next_btn = bind(gr.Button(t("dataset.next", lang0), size="sm", elem_id="dataset-next"), value="dataset.next")
    state = gr.State({})
    page = gr.State(0)

    scan_outputs = [state, page, status, summary, steps, chart, checks, gallery, page_md, path, reg, ctx.config]
    keep = [gr.update()] * len(scan_outputs)

    def show(parent: str, reg_dir: str, config: dict, deep_v: bool, info_v: bool, lang: str, note: str = ""):
        try:
            scan, st, summ, stp, frame, rows, items, label = run_scan(parent, reg_dir, config, deep_v, info_v, lang)
        except (DanluError, OSError) as e:
            return [{}, 0, _error(e, lang), "", "", chart_update(None, lang), [], [], "", parent, reg_dir, config]
        st["key"] = _key(parent, reg_dir, with_dataset(config, parent, reg_dir, scan), deep_v, info_v, lang)
        return [st, 0, note, summ, stp, frame, rows, items, label, parent, reg_dir,
                with_dataset(config, parent, reg_dir, scan)]

    def on_open(path_v, name_v, reg_v, deep_v, info_v, config, lang):
        folder, reg_dir = _clean_path(path_v), _clean_path(reg_v)
        if not folder:
            return [*keep[:2], i18n.text("dataset.none", lang), *keep[3:]], gr.update(), gr.update()
        p = Path(folder).expanduser()
        if not p.is_dir():
            return [*keep[:2], _error(DanluError(f"Folder not found: {p}", f"找不到文件夹：{p}",
                                                 "Paste the folder's full path.", "请粘贴文件夹的完整路径。"), lang),
                    *keep[3:]], gr.update(), gr.update()
        try:
            shape = detect_shape(p)
        except OSError as e:
            return [*keep[:2], _error(e, lang), *keep[3:]], gr.update(), gr.update()
        if shape in ("plain", "nested"):
            from core.dataset import folder_problems
            from core.dataset_build import _walk_images

            n = sum(1 for _ in _walk_images(p)) if shape == "nested" else len(
                [x for x in p.iterdir() if x.is_file() and x.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp",
                                                                                ".bmp", ".jfif", ".jpe")])
            problems = [pr for pr in folder_problems(p) if pr.fix]

            def needs_build(lg: str) -> str:
                text = t("dataset.needs_build", lg, path=p, n=n, repeats=suggest_repeats(n),
                         rule=REPEATS_RULE[1] if lg == "zh" else REPEATS_RULE[0])
                return "\n\n".join([text, *(f"⚠ {pr.text(lg)}" for pr in problems)])

            text = i18n.both(needs_build, lang)
            concept = name_v or "".join(ch for ch in p.name if ch.isalnum() or ch in " -_").strip("_ ") or "concept"
            return [*keep[:2], text, *keep[3:]], concept, suggest_repeats(n)
        parent = str(p.parent if shape == "subset" else p)
        note = i18n.text("dataset.used_parent", lang, parent=parent) if shape == "subset" else ""
        return show(parent, reg_dir, config, deep_v, info_v, lang, note), gr.update(), gr.update()

    def on_build(path_v, name_v, repeats_v, move_v, reg_v, deep_v, info_v, config, lang):
        try:
            result = build_dataset(Path(_clean_path(path_v)), name=name_v, repeats=int(repeats_v or 0) or None,
                                   move=bool(move_v), caption_extension=config["dataset"]["caption_extension"])
        except (DanluError, OSError) as e:
            return [*keep[:2], _error(e, lang), *keep[3:]]
        note = _built(result, lang) if result.subset_dir is not None and result.kind in ("plain", "nested") else ""
        return show(str(result.parent), _clean_path(reg_v), config, deep_v, info_v, lang, note)

    def on_import(files, name_v, repeats_v, reg_v, deep_v, info_v, config, lang):
        if not files:
            return [*keep[:2], i18n.text("dataset.none", lang), *keep[3:]]
        try:
            from core.dataset_build import check_concept_name

            folder = ctx.outputs_dir.parent / "datasets" / check_concept_name(name_v or "concept")
            result = import_files([Path(f) for f in files], folder, name=name_v or "concept",
                                  repeats=int(repeats_v or 0) or None,
                                  caption_extension=config["dataset"]["caption_extension"])
        except (DanluError, OSError) as e:
            return [*keep[:2], _error(e, lang), *keep[3:]]
        note = _built(result, lang)
        return show(str(result.parent), _clean_path(reg_v), config, deep_v, info_v, lang, note)

    def on_config(config, st, deep_v, info_v, lang):
        parent = config["dataset"].get("dir", "")
        reg_dir = config["dataset"].get("reg_dir", "")
        if not parent or st.get("key") == _key(parent, reg_dir, config, deep_v, info_v, lang):
            return keep
        out = show(parent, reg_dir, config, deep_v, info_v, lang, "")
        out[-1] = gr.update()  # never write the config from its own change event
        return out

    def on_page(st, current, delta, lang):
        n = len(st.get("items", []))
        new = min(max(0, current + delta), max(0, -(-n // PAGE) - 1))
        return new, gallery_items(st, new), page_label(st, new, lang)

    common = [reg, deep, show_info, ctx.config, ctx.lang]
    open_btn.click(lambda *a: _flatten(on_open(*a)), [path, name, *common], [*scan_outputs, name, repeats])
    path.submit(lambda *a: _flatten(on_open(*a)), [path, name, *common], [*scan_outputs, name, repeats])
    build_btn.click(on_build, [path, name, repeats, move, *common], scan_outputs)
    import_btn.click(on_import, [upload, name, repeats, *common], scan_outputs)
    ctx.config.change(on_config, [ctx.config, state, deep, show_info, ctx.lang], scan_outputs)
    for box in (deep, show_info):
        box.change(lambda config, st, d, i, lang: on_config(config, st, d, i, lang),
                   [ctx.config, state, deep, show_info, ctx.lang], scan_outputs)

    def on_lang(config, st, d, i, lang):
        out = list(on_config(config, st, d, i, lang))
        out[2] = gr.update()  # the status line keeps its message: i18n.follow shows it in the new language
        return out

    ctx.lang.change(on_lang, [ctx.config, state, deep, show_info, ctx.lang], scan_outputs)
    prev_btn.click(lambda st, cur, lang: on_page(st, cur, -1, lang), [state, page, ctx.lang], [page, gallery, page_md])
    next_btn.click(lambda st, cur, lang: on_page(st, cur, 1, lang), [state, page, ctx.lang], [page, gallery, page_md])


def _flatten(result: tuple) -> list:
    outputs, name_update, repeats_update = result
    return [*outputs, name_update, repeats_update]
