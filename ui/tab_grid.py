"""Step 7 验单: the XYZ grid tab — a run's epochs × LoRA weights (× other base models or prompts).

The grid renders in a worker thread (models.xyz.run_grid); the handler streams its progress to the
page. Cancel stops between cells and the cells already done are still composed and saved.
"""

from __future__ import annotations

import queue
import threading
import uuid
from pathlib import Path

import gradio as gr

from core.errors import DanluError
from ui import i18n
from ui.context import AppContext
from ui.i18n import t

TAB_ID = "grid"
TAB_KEY = "grid.tab"

i18n.add({
    "grid.tab": ("7 验单 XYZ 网格", "7 XYZ grid"),
    "grid.intro": (("把每个保存的轮次（X）在不同 LoRA 权重（Y）下的效果画成一张带标注的网格，"
                   "和 WebUI 的 X/Y/Z 图一样；可选 Z 轴：换其他底模（看 LoRA 能否迁移）或换提示词。"
                   "底模和采样设置取自这次运行的 config.toml，"
                   "所以在训练样图的设置下，网格里的格子与该轮的训练样图逐像素相同。"),
                   ("Each saved epoch (X) at several LoRA weights (Y) in one labelled grid, like WebUI's X/Y/Z plot; "
                   "optional Z: other base models (does the LoRA transfer?) or prompts. The base model and the sample "
                   "settings come from the run's config.toml, so a cell at the sample settings equals that epoch's "
                   "training sample pixel for pixel.")),
    "grid.source": ("来源", "Source"),
    "grid.source_run": ("一次训练运行", "A training run"),
    "grid.source_files": ("LoRA 文件", "LoRA files"),
    "grid.run": ("运行（outputs 下含 config.toml 的文件夹）", "Run (a folder under outputs with config.toml)"),
    "grid.refresh": ("刷新列表", "Refresh list"),
    "grid.epochs": ("X：轮次文件（默认全部）", "X: epoch files (default all)"),
    "grid.files": ("LoRA 文件路径（每行一个）", "LoRA file paths (one per line)"),
    "grid.base": ("底模（这些 LoRA 训练时用的）", "Base model (the one these LoRAs were trained on)"),
    "grid.weights": ("Y：LoRA 权重（逗号分隔）", "Y: LoRA weights (comma separated)"),
    "grid.base_column": ("加一列底模原图（权重 0）", "Add a base-model column (weight 0)"),
    "grid.z": ("Z 轴", "Z axis"),
    "grid.z_none": ("无", "None"),
    "grid.z_bases": ("其他底模", "Other base models"),
    "grid.z_prompts": ("提示词", "Prompts"),
    "grid.z_values": ("Z 的值（每行一个：底模路径或提示词；提示词留空则用运行的全部样图提示词）",
                      ("Z values (one per line: base model paths or prompts; empty prompts = all the run's sample "
                      "prompts)")),
    "grid.margin": ("网格间距（像素）", "Grid margins (px)"),
    "grid.start": ("生成网格", "Render grid"),
    "grid.cancel": ("取消", "Cancel"),
    "grid.image": ("网格（点击格子查看它的参数）", "Grid (click a cell to see its recipe)"),
    "grid.zoom": ("缩放（0 = 适应宽度，100 = 原始像素，可滚动查看）",
                  "Zoom (0 = fit, 100 = actual pixels, scrollable)"),
    "grid.cell": ("选中的格子", "Selected cell"),
    "grid.recipe": ("格子的参数（A1111 parameters）", "Cell recipe (A1111 parameters)"),
    "grid.progress": ("格子 {done}/{total}{eta}", "Cells {done}/{total}{eta}"),
    "grid.eta": ("，预计还需 {s} 秒", ", about {s} s left"),
    "grid.planned": ("共 {total} 个格子：{cols} 列 × {rows} 个权重{z}。正在载入底模…",
                     "{total} cells: {cols} columns × {rows} weights{z}. Loading the base model…"),
    "grid.done": ("网格已保存：{path}", "Grid saved: {path}"),
    "grid.cancelled": ("已取消，保留已完成的 {done}/{total} 个格子：{path}",
                       "Cancelled; the {done}/{total} cells done are kept: {path}"),
    "grid.cancelling": ("正在取消：当前格子画完后停止…", "Cancelling after the current cell…"),
    "grid.nothing": ("没有正在生成的网格。", "No grid is rendering."),
    "grid.no_run": ("请先选择一次运行。", "Pick a run first."),
    "grid.warning": ("注意：", "Warning: "),
    "grid.error": ("出错：", "Error: "),
    "grid.crash": ("生成网格时出错：{e}", "The grid failed: {e}"),
    "grid.no_cell": ("这里不是格子（是标签或边距）。", "That is a label or margin, not a cell."),
    "grid.compare": ("对比其他运行（运行作为 Z 轴，可多选：并排显示相同轮次/步数的文件，各用自己的采样设置；"
                     "有验证损失时预选最佳轮次及其相邻轮次）",
                     "Compare with runs (runs as the Z axis, pick one or more: the same epochs/steps side by side, "
                     "each with its own sample settings; with a validation loss the best epoch and its neighbours "
                     "are preselected)"),
    "grid.compare_none": ("不对比", "No comparison"),
})

_CANCELS: dict[str, threading.Event] = {}

ZOOM_JS = """(z) => {
  const img = document.querySelector('#grid-image img');
  if (!img) return [];
  const box = img.closest('button'), frame = img.parentElement;
  const on = z > 0 && img.naturalWidth > 0;
  img.style.width = on ? Math.round(img.naturalWidth * z / 100) + 'px' : '';
  img.style.maxWidth = on ? 'none' : '';
  img.style.height = on ? 'auto' : '';
  for (const el of [box, frame]) {
    el.style.justifyContent = on ? 'flex-start' : '';
    el.style.alignItems = on ? 'flex-start' : '';
  }
  box.style.overflow = on ? 'auto' : '';
  box.style.maxHeight = on ? '75vh' : '';
  return [];
}"""


def list_runs(outputs_dir: Path) -> list[tuple[str, str]]:
    """(label, folder) of the run folders under outputs_dir that hold config.toml, newest first."""
    from core.run_layout import list_runs as run_folders

    out = []
    for p in run_folders(outputs_dir):
        count = sum(1 for _ in p.glob("*.safetensors"))
        out.append((f"{p.name}  ({count} LoRA)", str(p)))
    return out


def epoch_stems(run: str | None) -> list[str]:
    """The run's LoRA file stems in training order (name-000002, …, name)."""
    if not run:
        return []
    from models.xyz import epoch_files, resolve_run

    try:
        cfg, run_dir = resolve_run(run)
    except DanluError:
        return []
    return [f.stem for _, f in epoch_files(run_dir, cfg.saving.name)]


def make_plan(source: str, run: str | None, epochs: list[str] | None, weights: str, base_column: bool, z_kind: str,
              z_text: str, margin: float, lora_text: str, base: str, config: dict | None, outputs_dir: Path):
    """The GridPlan for the form (raises DanluError with what to fix)."""
    from models.xyz import parse_weights, plan_from_loras, plan_from_run

    w = parse_weights(weights or "")
    z_values = [line.strip() for line in (z_text or "").splitlines() if line.strip()]
    bases = z_values if z_kind == "bases" else None
    prompts = z_values if z_kind == "prompts" else None
    if source == "files":
        files = [line.strip().strip('"') for line in (lora_text or "").splitlines() if line.strip()]
        sampling = dict((config or {}).get("sampling") or {})
        clip_skip = int(((config or {}).get("training") or {}).get("clip_skip", 1))
        return plan_from_loras(files, (base or "").strip(), sampling=sampling, weights=w, bases=bases,
                               prompts=prompts, include_base=base_column, margin=int(margin or 0),
                               clip_skip=clip_skip, out_dir=Path(outputs_dir) / "grids")
    if not run:
        raise DanluError("No run picked.", "没有选择运行。", "Pick a run in the list (Refresh after training).",
                         "请在列表中选择一次运行（训练后点刷新）。", key="run")
    return plan_from_run(run, weights=w, epochs=",".join(epochs) if epochs else None, bases=bases,
                         prompts=prompts, all_prompts=z_kind == "prompts" and not z_values,
                         include_base=base_column, margin=int(margin or 0))


def preselected(run: str | None) -> list[str]:
    """The files a grid of the run starts with: the best epoch by validation loss and its neighbours, else all."""
    if not run:
        return []
    from models.xyz_compare import best_stems

    try:
        return best_stems(run)
    except DanluError:
        return epoch_stems(run)


def compare_choices(outputs_dir: Path, lang: str) -> list[tuple[str, str]]:
    return [(t("grid.compare_none", lang), "")] + list_runs(outputs_dir)


def _compare_job(run, others, epochs, weights, base_column, z_kind, z_text, margin):
    """(first plan, total cells, columns, render function) of runs side by side (models.xyz_compare)."""
    from models.xyz import parse_weights
    from models.xyz_compare import plan_runs, run_label, run_runs

    if not run:
        raise DanluError("No run picked.", "没有选择运行。", "Pick a run in the list (Refresh after training).",
                         "请在列表中选择一次运行（训练后点刷新）。", key="run")
    z_values = [line.strip() for line in (z_text or "").splitlines() if line.strip()]
    runs = [run, *others]
    plans, keys, warnings = plan_runs(
        runs, weights=parse_weights(weights or ""), epochs=",".join(epochs) if epochs else None,
        bases=z_values if z_kind == "bases" else None, prompts=z_values if z_kind == "prompts" else None,
        include_base=base_column, margin=int(margin or 0))
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{chr(65 + i)}: {label}" for i, label in enumerate(labels)]

    def render(**kwargs):
        return run_runs(plans, keys, labels, warnings=warnings, **kwargs)

    return plans[0], sum(len(p.cells()) for p in plans), len(plans[0].columns), render


def _progress_text(done: int, total: int, eta: float | None, lang: str) -> str:
    eta_text = t("grid.eta", lang, s=f"{eta:.0f}") if eta is not None and done < total else ""
    return t("grid.progress", lang, done=done, total=total, eta=eta_text)


def _warnings_text(warnings: list, lang: str) -> str:
    return "\n\n".join(t("grid.warning", lang) + (zh if lang == "zh" else en) for en, zh in warnings)


def _finished(result, lang: str) -> tuple[i18n.Text, i18n.Text]:
    """The progress line and the message of a finished (or cancelled) grid, in both languages."""
    key = "grid.done" if result.status == "finished" else "grid.cancelled"

    def said(lg: str) -> str:
        message = t(key, lg, path=result.grid_png, done=result.done, total=result.total)
        return message + ("\n\n" + _warnings_text(result.warnings, lg) if result.warnings else "")

    return i18n.both(lambda lg: _progress_text(result.done, result.total, None, lg), lang), i18n.both(said, lang)


def render_grid(source, run, epochs, weights, base_column, z_kind, z_text, margin, lora_text, base, lang, config,
                outputs_dir: Path, compare: str | list[str] = ""):
    """Generator for the page: yields (token, progress, grid image, message, grid.json path, buttons…)."""
    from models.xyz import run_grid

    idle = (gr.update(interactive=True), gr.update(interactive=False))
    busy = (gr.update(interactive=False), gr.update(interactive=True))
    try:
        others = [c for c in ([compare] if isinstance(compare, str) else compare or []) if c and c != run]
        if source == "run" and others:
            plan, total, cols, render = _compare_job(run, others, epochs, weights, base_column, z_kind, z_text,
                                                     margin)
            z = f" × {len(others) + 1} Z"
        else:
            plan = make_plan(source, run, epochs, weights, base_column, z_kind, z_text, margin, lora_text, base,
                             config, outputs_dir)
            total, cols = len(plan.cells()), len(plan.columns)
            z = f" × {len(plan.z_labels() or [])} Z" if plan.z_axis else ""

            def render(**kwargs):
                return run_grid(plan, **kwargs)
    except DanluError as e:
        yield "", "", gr.update(), i18n.with_error("grid.error", e, lang, sep=""), gr.update(), *idle
        return
    token = uuid.uuid4().hex
    cancel = _CANCELS[token] = threading.Event()
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            events.put(("done", render(cancel=cancel, lang=lang,
                                       progress=lambda d, n, eta, _note="": events.put(("progress", d, n, eta)),
                                       on_warnings=lambda ws: events.put(("warnings", ws)))))
        except DanluError as e:
            events.put(("error", e))
        except Exception as e:  # noqa: BLE001 - the page must say what went wrong instead of hanging
            detail = f"{type(e).__name__}: {e}"
            events.put(("error", DanluError(t("grid.crash", "en", e=detail), t("grid.crash", "zh", e=detail))))

    threading.Thread(target=work, daemon=True, name="danlu-grid").start()
    planned = i18n.text("grid.planned", lang, total=total, cols=cols, rows=len(plan.weights), z=z)
    yield token, planned, gr.update(), "", gr.update(), *busy
    early = ""
    try:
        while True:
            item = events.get()
            if item[0] == "warnings":
                early = i18n.both(lambda lg, ws=item[1]: _warnings_text(ws, lg), lang)
                yield token, gr.update(), gr.update(), early, gr.update(), *busy
                continue
            if item[0] == "progress":
                done = i18n.both(lambda lg, d=item: _progress_text(d[1], d[2], d[3], lg), lang)
                yield token, done, gr.update(), early, gr.update(), *busy
                continue
            if item[0] == "error":
                yield "", "", gr.update(), i18n.with_error("grid.error", item[1], lang, sep=""), gr.update(), *idle
                return
            result = item[1]
            done, said = _finished(result, lang)
            yield "", done, result.grid.image, said, str(result.out_dir / "grid.json"), *idle
            return
    finally:
        _CANCELS.pop(token, None)


def cancel_grid(token: str, lang: str) -> i18n.Text:
    event = _CANCELS.get(token or "")
    if event is None:
        return i18n.text("grid.nothing", lang)
    event.set()
    return i18n.text("grid.cancelling", lang)


def show_cell(grid_json: str, lang: str, evt: gr.SelectData):
    """A click on the grid → that cell's own image and A1111 recipe."""
    from PIL import Image

    from models.xyz import cell_at

    if not grid_json or evt is None or evt.index is None:
        return gr.update(), ""
    x, y = evt.index[0], evt.index[1]
    cell = cell_at(Path(grid_json), x, y)
    if cell is None:
        return gr.update(value=None), t("grid.no_cell", lang)
    with Image.open(Path(grid_json).parent / cell["png"]) as im:
        image = im.convert("RGB")
    scale = max(1, 256 // max(1, min(image.size)))  # small cells are shown enlarged; the file keeps its pixels
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image, cell["parameters"]


def _source_choices(lang: str) -> list[tuple[str, str]]:
    return [(t("grid.source_run", lang), "run"), (t("grid.source_files", lang), "files")]


def _z_choices(lang: str) -> list[tuple[str, str]]:
    return [(t("grid.z_none", lang), "none"), (t("grid.z_bases", lang), "bases"),
            (t("grid.z_prompts", lang), "prompts")]


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    tr = ctx.tr
    outputs_dir = ctx.outputs_dir
    tr.bind(gr.Markdown(t("grid.intro", lang0)), value="grid.intro")
    token = gr.State("")
    grid_json = gr.State("")
    with gr.Row():
        with gr.Column(scale=2):
            source = tr.bind(gr.Radio(_source_choices(lang0), value="run", label=t("grid.source", lang0),
                                      elem_id="grid-source"), label="grid.source")
            with gr.Group(visible=True) as run_group:
                with gr.Row():
                    runs = list_runs(outputs_dir)
                    run = tr.bind(gr.Dropdown(runs, value=runs[0][1] if runs else None, label=t("grid.run", lang0),
                                              elem_id="grid-run", scale=4), label="grid.run")
                    refresh = tr.bind(gr.Button(t("grid.refresh", lang0), elem_id="grid-refresh", scale=1,
                                                size="sm"), value="grid.refresh")
                stems = epoch_stems(runs[0][1]) if runs else []
                epochs = tr.bind(gr.CheckboxGroup(stems, value=preselected(runs[0][1]) if runs else [],
                                                  label=t("grid.epochs", lang0),
                                                  elem_id="grid-epochs"), label="grid.epochs")
                compare = tr.bind(gr.Dropdown(compare_choices(outputs_dir, lang0), value=[], multiselect=True,
                                              label=t("grid.compare", lang0), elem_id="grid-compare"),
                                  label="grid.compare")
            with gr.Group(visible=False) as files_group:
                lora_text = tr.bind(gr.Textbox(label=t("grid.files", lang0), lines=3, elem_id="grid-files"),
                                    label="grid.files")
                base = tr.bind(gr.Textbox(label=t("grid.base", lang0), elem_id="grid-base"), label="grid.base")
            weights = tr.bind(gr.Textbox("0.3, 0.6, 0.8, 1.0", label=t("grid.weights", lang0),
                                         elem_id="grid-weights"), label="grid.weights")
            base_column = tr.bind(gr.Checkbox(False, label=t("grid.base_column", lang0), elem_id="grid-base-column"),
                                  label="grid.base_column")
            z_kind = tr.bind(gr.Radio(_z_choices(lang0), value="none", label=t("grid.z", lang0), elem_id="grid-z"),
                             label="grid.z")
            z_text = tr.bind(gr.Textbox(label=t("grid.z_values", lang0), lines=2, elem_id="grid-z-values"),
                             label="grid.z_values")
            margin = tr.bind(gr.Slider(0, 500, value=0, step=2, label=t("grid.margin", lang0),
                                       elem_id="grid-margin"), label="grid.margin")
            with gr.Row():
                start = tr.bind(gr.Button(t("grid.start", lang0), variant="primary", elem_id="grid-start"),
                                value="grid.start")
                cancel = tr.bind(gr.Button(t("grid.cancel", lang0), variant="stop", elem_id="grid-cancel",
                                           interactive=False), value="grid.cancel")
            # Their text is kept in both languages (i18n.follow), so a language switch re-renders them.
            progress = i18n.follow(gr.Markdown("", elem_id="grid-progress"), ctx.lang)
            message = i18n.follow(gr.Markdown("", elem_id="grid-message"), ctx.lang)
        with gr.Column(scale=3):
            tr.bind(gr.Markdown(t("grid.image", lang0)), value="grid.image")
            zoom = tr.bind(gr.Slider(0, 100, value=0, step=5, label=t("grid.zoom", lang0), elem_id="grid-zoom"),
                           label="grid.zoom")
            # No label badge: it would sit on top of the column headers.
            image = gr.Image(type="pil", format="png", interactive=False, show_label=False,
                             buttons=["download", "fullscreen"], elem_id="grid-image")
            with gr.Row():
                cell_image = tr.bind(gr.Image(label=t("grid.cell", lang0), type="pil", format="png",
                                              interactive=False, buttons=["download", "fullscreen"], height=256,
                                              elem_id="grid-cell", scale=1), label="grid.cell")
                recipe = tr.bind(gr.Textbox(label=t("grid.recipe", lang0), lines=8, interactive=False,
                                            elem_id="grid-recipe", scale=2), label="grid.recipe")

    def on_source(value: str):
        return gr.update(visible=value == "run"), gr.update(visible=value == "files")

    def on_refresh(current: str | None, selected: str | None = None):
        choices = list_runs(outputs_dir)
        if selected and (Path(selected) / "config.toml").is_file() and selected not in [p for _, p in choices]:
            choices.insert(0, (Path(selected).name, selected))  # a run kept outside the outputs folder
        paths = [p for _, p in choices]
        want = selected if selected in paths else (current if current in paths else (paths[0] if paths else None))
        return gr.update(choices=choices, value=want)

    def on_run(value: str | None):
        return gr.update(choices=epoch_stems(value), value=preselected(value))

    def on_config(config: dict, current_base: str):
        return gr.update(value=current_base or ((config or {}).get("model") or {}).get("base", ""))

    # render_grid's parameters by name: the form's order no longer matters
    form = {"source": source, "run": run, "epochs": epochs, "weights": weights, "base_column": base_column,
            "z_kind": z_kind, "z_text": z_text, "margin": margin, "lora_text": lora_text, "base": base,
            "lang": ctx.lang, "config": ctx.config, "compare": compare}

    def on_start(**values):
        yield from render_grid(**(values | {"compare": values["compare"] or []}), outputs_dir=outputs_dir)

    def on_lang(lang: str):  # radio choices are not labels, so the table cannot relabel them
        return (gr.update(choices=_source_choices(lang)), gr.update(choices=_z_choices(lang)))

    ctx.lang.change(on_lang, ctx.lang, [source, z_kind])
    source.change(on_source, source, [run_group, files_group])
    refresh.click(on_refresh, run, run)
    for event in (refresh.click, ctx.tabs.change):
        event(lambda cur, lang: gr.update(choices=compare_choices(outputs_dir, lang), value=cur or []),
              [compare, ctx.lang], compare, show_progress="hidden")
    ctx.tabs.change(on_refresh, run, run)  # runs finished since the page was built appear without a click
    run.change(on_run, run, epochs)
    ctx.config.change(on_config, [ctx.config, base], base)
    if getattr(ctx, "selected_run", None) is not None:
        ctx.selected_run.change(lambda p, cur: on_refresh(cur, p), [ctx.selected_run, run], run)
    start.click(on_start, None, [token, progress, image, message, grid_json, start, cancel], inputs_kwargs=form)
    cancel.click(cancel_grid, [token, ctx.lang], message)
    image.select(show_cell, [grid_json, ctx.lang], [cell_image, recipe])
    # Zoom in the browser, up to the picture's own pixels: the page's click mapping stays exact up to 100 %.
    zoom.change(None, zoom, None, js=ZOOM_JS)
    image.change(None, zoom, None, js=ZOOM_JS)
