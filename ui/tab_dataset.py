"""Step 3 选图: pick images, get the `<repeats>_<name>` folder built, see every check, the buckets and the steps.

The page uses core.dataset.scan, which buckets with core.dataset.buckets exactly as training does. Header facts
are cached per file, so changing resolution, buckets, batch or epochs elsewhere re-counts at once.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core.dataset.build import REPEATS_RULE, build_dataset, detect_shape, import_files, suggest_repeats
from core.dataset.scan import scan_key
from core.errors import DanluError
from ui import i18n
from ui.context import AppContext
from ui.dataset_view import (
    PAGE,
    chart_update,
    gallery_items,
    page_label,
    run_scan,
    with_dataset,
)
from ui.i18n import t

TAB_ID = "dataset"
TAB_KEY = "dataset.tab"
CHECK_COLUMNS = ("file", "level", "message")  # the checks table's, as dataset_view.check_rows fills it

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
    return i18n.both(lambda lg: t("dataset.error", lg) + e.text(lg).replace("\n", "\n\n"), lang, level="error")


def _built(result, lang: str) -> i18n.Text:
    """'Built <dir>: n written, …' in both languages."""
    return i18n.both(lambda lg: t("dataset.built", lg, dir=result.subset_dir, written=len(result.written),
                                  skipped=len(result.skipped), renamed=len(result.renamed)), lang, level="ok")


# what a scan fills (build's scan_outputs): state, page, status, summary, steps, chart, checks, gallery, page
# label, path, reg, config
N_OUTPUTS = 12


def _keep() -> list:
    return [gr.update()] * N_OUTPUTS


def show(parent: str, reg_dir: str, config: dict, deep_v: bool, info_v: bool, lang: str, note: str = ""):
    """Scan the parent folder and fill every output; the config gets dataset.dir (and reg_dir, trigger word)."""
    try:
        scan, st, summ, stp, frame, rows, items, label = run_scan(parent, reg_dir, config, deep_v, info_v, lang)
    except (DanluError, OSError) as e:
        return [{}, 0, _error(e, lang), "", "", chart_update(None, lang), [], [], "", parent, reg_dir, config]
    st["key"] = _key(parent, reg_dir, with_dataset(config, parent, reg_dir, scan), deep_v, info_v, lang)
    return [st, 0, note, summ, stp, frame, rows, items, label, parent, reg_dir,
            with_dataset(config, parent, reg_dir, scan)]


def _status(text, lang: str) -> list:
    """The status line, with the previous scan's results cleared (a new action's message never stands above an
    older folder's scan); the path, regularisation folder and config stay."""
    return [{}, 0, text, "", "", chart_update(None, lang), [], [], "", gr.update(), gr.update(), gr.update()]


def _needs_build(p: Path, shape: str, name_v: str, lang: str):
    """A folder of plain images (or nested folders): say how to build the `<repeats>_<name>` folder, suggest a
    concept name and repeats."""
    from core.dataset import folder_problems
    from core.dataset.build import _walk_images

    n = sum(1 for _ in _walk_images(p)) if shape == "nested" else len(
        [x for x in p.iterdir() if x.is_file() and x.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp",
                                                                        ".bmp", ".jfif", ".jpe")])
    problems = [pr for pr in folder_problems(p) if pr.fix]

    def needs_build(lg: str) -> str:
        text = t("dataset.needs_build", lg, path=p, n=n, repeats=suggest_repeats(n),
                 rule=REPEATS_RULE[1] if lg == "zh" else REPEATS_RULE[0])
        return "\n\n".join([text, *(f"⚠ {pr.text(lg)}" for pr in problems)])

    text = i18n.both(needs_build, lang, level="warn")
    concept = name_v or "".join(ch for ch in p.name if ch.isalnum() or ch in " -_").strip("_ ") or "concept"
    return _status(text, lang), concept, suggest_repeats(n)


def on_open(path_v, name_v, reg_v, deep_v, info_v, config, lang):
    """Open: a kohya parent folder (or one concept folder in it) is scanned; plain images need a build first."""
    folder, reg_dir = _clean_path(path_v), _clean_path(reg_v)
    if not folder:
        return _status(i18n.text("dataset.none", lang, level="warn"), lang), gr.update(), gr.update()
    p = Path(folder).expanduser()
    if not p.is_dir():
        missing = DanluError(f"Folder not found: {p}", f"找不到文件夹：{p}", "Paste the folder's full path.",
                             "请粘贴文件夹的完整路径。")
        return _status(_error(missing, lang), lang), gr.update(), gr.update()
    try:
        shape = detect_shape(p)
    except OSError as e:
        return _status(_error(e, lang), lang), gr.update(), gr.update()
    if shape in ("plain", "nested"):
        return _needs_build(p, shape, name_v, lang)
    parent = str(p.parent if shape == "subset" else p)
    note = i18n.text("dataset.used_parent", lang, parent=parent) if shape == "subset" else ""
    return show(parent, reg_dir, config, deep_v, info_v, lang, note), gr.update(), gr.update()


def on_build(path_v, name_v, repeats_v, move_v, reg_v, deep_v, info_v, config, lang):
    try:
        result = build_dataset(Path(_clean_path(path_v)), name=name_v, repeats=int(repeats_v or 0) or None,
                               move=bool(move_v), caption_extension=config["dataset"]["caption_extension"])
    except (DanluError, OSError) as e:
        return _status(_error(e, lang), lang)
    note = _built(result, lang) if result.subset_dir is not None and result.kind in ("plain", "nested") else ""
    return show(str(result.parent), _clean_path(reg_v), config, deep_v, info_v, lang, note)


def on_import(outputs_dir: Path, files, name_v, repeats_v, reg_v, deep_v, info_v, config, lang):
    """Uploaded files go into <project>/datasets/<name>/<repeats>_<name>, which is then scanned."""
    if not files:
        return _status(i18n.text("dataset.none", lang, level="warn"), lang)
    try:
        from core.dataset.build import check_concept_name

        folder = outputs_dir.parent / "datasets" / check_concept_name(name_v or "concept")
        result = import_files([Path(f) for f in files], folder, name=name_v or "concept",
                              repeats=int(repeats_v or 0) or None,
                              caption_extension=config["dataset"]["caption_extension"])
    except (DanluError, OSError) as e:
        return _status(_error(e, lang), lang)
    note = _built(result, lang)
    return show(str(result.parent), _clean_path(reg_v), config, deep_v, info_v, lang, note)


def on_config(config, st, deep_v, info_v, lang):
    """A changed config re-scans when it changes what the scan shows (dataset fields, options, language)."""
    parent = config["dataset"].get("dir", "")
    reg_dir = config["dataset"].get("reg_dir", "")
    if not parent or st.get("key") == _key(parent, reg_dir, config, deep_v, info_v, lang):
        return _keep()
    out = show(parent, reg_dir, config, deep_v, info_v, lang, "")
    out[-1] = gr.update()  # never write the config from its own change event
    return out


def on_lang(config, st, d, i, lang):
    out = list(on_config(config, st, d, i, lang))
    out[2] = gr.update()  # the status line keeps its message: i18n.follow shows it in the new language
    return out


def on_page(st, current, delta, lang):
    n = len(st.get("items", []))
    new = min(max(0, current + delta), max(0, -(-n // PAGE) - 1))
    return new, gallery_items(st, new), page_label(st, new, lang)


def _empty_checks(lang: str) -> dict:
    """The checks table before a scan, its headers in lang. The language switch shows it (gradio keeps an empty
    table's old headers otherwise); the switch's rescan (on_lang) then fills a scanned folder's rows again."""
    return {"data": [], "headers": [t(f"dataset.col_{col}", lang) for col in CHECK_COLUMNS]}


def _layout(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tab's components, top to bottom."""
    c = SimpleNamespace()
    bind = ctx.tr.bind
    bind(gr.Markdown(t("dataset.intro", lang0)), value="dataset.intro")
    with gr.Row(equal_height=True):
        c.path = bind(gr.Textbox(label=t("dataset.path", lang0), elem_id="dataset-path", scale=5),
                      label="dataset.path")
        c.open_btn = bind(gr.Button(t("dataset.open", lang0), variant="primary", elem_id="dataset-open", scale=1),
                          value="dataset.open")
    with gr.Row(equal_height=True):
        c.name = bind(gr.Textbox(label=t("dataset.name", lang0), elem_id="dataset-name", scale=3),
                      label="dataset.name")
        c.repeats = bind(gr.Number(0, precision=0, minimum=0, maximum=10000, label=t("dataset.repeats", lang0),
                                   elem_id="dataset-repeats", scale=1), label="dataset.repeats")
        c.move = bind(gr.Checkbox(False, label=t("dataset.move", lang0), elem_id="dataset-move", scale=2),
                      label="dataset.move")
        c.build_btn = bind(gr.Button(t("dataset.build", lang0), elem_id="dataset-build", scale=1),
                           value="dataset.build")
    bind(gr.Markdown(t("dataset.rule", lang0), elem_id="dataset-rule"), value="dataset.rule")
    with gr.Row(equal_height=True):
        c.upload = bind(gr.File(file_count="multiple", type="filepath", label=t("dataset.upload", lang0),
                                elem_id="dataset-upload", scale=4, height=120), label="dataset.upload")
        c.import_btn = bind(gr.Button(t("dataset.import", lang0), elem_id="dataset-import", scale=1),
                            value="dataset.import")
    with gr.Row(equal_height=True):
        c.reg = bind(gr.Textbox(label=t("dataset.reg", lang0), elem_id="dataset-reg", scale=3), label="dataset.reg")
        c.deep = bind(gr.Checkbox(True, label=t("dataset.deep", lang0), elem_id="dataset-deep", scale=2),
                      label="dataset.deep")
        c.show_info = bind(gr.Checkbox(False, label=t("dataset.show_info", lang0), elem_id="dataset-show-info",
                                       scale=1), label="dataset.show_info")
    c.status = i18n.follow(gr.Markdown("", elem_id="dataset-status"), ctx.lang)  # its text in both languages
    c.summary = gr.Markdown("", elem_id="dataset-summary")
    with gr.Row():
        with gr.Column(scale=3):
            c.steps = gr.Markdown("", elem_id="dataset-steps")
        with gr.Column(scale=2):
            c.chart = bind(gr.BarPlot(None, x="bucket", y="samples", x_title=t("dataset.col_bucket", lang0),
                                      y_title=t("dataset.col_count", lang0), label=t("dataset.chart", lang0),
                                      elem_id="dataset-chart", height=260, sort=None,
                                      y_lim=[0, None]),
                           label="dataset.chart")
    c.checks = bind(gr.Dataframe(_empty_checks(lang0), interactive=False, wrap=True, elem_id="dataset-checks",
                                 label=t("dataset.checks", lang0), column_widths=["28%", "6%", "66%"]),
                    label="dataset.checks", value=_empty_checks)
    c.gallery = bind(gr.Gallery([], label=t("dataset.gallery", lang0), columns=8, height=420, object_fit="contain",
                                elem_id="dataset-gallery", allow_preview=True), label="dataset.gallery")
    with gr.Row():
        c.prev_btn = bind(gr.Button(t("dataset.prev", lang0), size="sm", elem_id="dataset-prev"),
                          value="dataset.prev")
        c.page_md = gr.Markdown("", elem_id="dataset-page")
        c.next_btn = bind(gr.Button(t("dataset.next", lang0), size="sm", elem_id="dataset-next"),
                          value="dataset.next")
    c.state = gr.State({})
    c.page = gr.State(0)
    return c


def build(ctx: AppContext) -> None:
    c = _layout(ctx, ctx.lang.value)
    scan_outputs = [c.state, c.page, c.status, c.summary, c.steps, c.chart, c.checks, c.gallery, c.page_md, c.path,
                    c.reg, ctx.config]
    assert len(scan_outputs) == N_OUTPUTS
    common = [c.reg, c.deep, c.show_info, ctx.config, ctx.lang]
    c.open_btn.click(lambda *a: _flatten(on_open(*a)), [c.path, c.name, *common], [*scan_outputs, c.name, c.repeats])
    c.path.submit(lambda *a: _flatten(on_open(*a)), [c.path, c.name, *common], [*scan_outputs, c.name, c.repeats])
    c.build_btn.click(on_build, [c.path, c.name, c.repeats, c.move, *common], scan_outputs)
    c.import_btn.click(lambda *a: on_import(ctx.outputs_dir, *a), [c.upload, c.name, c.repeats, *common],
                       scan_outputs)
    ctx.config.change(on_config, [ctx.config, c.state, c.deep, c.show_info, ctx.lang], scan_outputs)
    for box in (c.deep, c.show_info):
        box.change(lambda config, st, d, i, lang: on_config(config, st, d, i, lang),
                   [ctx.config, c.state, c.deep, c.show_info, ctx.lang], scan_outputs)
    ctx.lang.change(on_lang, [ctx.config, c.state, c.deep, c.show_info, ctx.lang], scan_outputs)
    c.prev_btn.click(lambda st, cur, lang: on_page(st, cur, -1, lang), [c.state, c.page, ctx.lang],
                     [c.page, c.gallery, c.page_md])
    c.next_btn.click(lambda st, cur, lang: on_page(st, cur, 1, lang), [c.state, c.page, ctx.lang],
                     [c.page, c.gallery, c.page_md])


def _flatten(result: tuple) -> list:
    outputs, name_update, repeats_update = result
    return [*outputs, name_update, repeats_update]
