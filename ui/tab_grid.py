"""Step 7 验单: the XYZ grid tab — a run's epochs × LoRA weights (× other base models or prompts).

This module lays the tab out and wires it; the grid renders in a worker thread (ui/grid_jobs.py,
models.grid.render.run_grid) and the handler streams its progress to the page.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from ui import i18n
from ui.context import AppContext
from ui.grid_jobs import (
    cancel_grid,
    compare_choices,
    epoch_stems,
    files_recipe,
    list_runs,
    preselected,
    render_grid,
    run_choice,
    show_cell,
)
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
    "grid.no_run": ("请先选择一次运行。", "Pick a run first."),
    "grid.compare": ("对比其他运行（运行作为 Z 轴，可多选：并排显示相同轮次/步数的文件，各用自己的采样设置；"
                     "有验证损失时预选最佳轮次及其相邻轮次）",
                     "Compare with runs (runs as the Z axis, pick one or more: the same epochs/steps side by side, "
                     "each with its own sample settings; with a validation loss the best epoch and its neighbours "
                     "are preselected)"),
    "grid.prompt": ("提示词（先写触发词；Z 轴为提示词时用 Z 的值）",
                    "Prompt (the trigger word first; with Prompts as the Z axis, the Z values are used)"),
})

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


def _source_choices(lang: str) -> list[tuple[str, str]]:
    return [(t("grid.source_run", lang), "run"), (t("grid.source_files", lang), "files")]


def _z_choices(lang: str) -> list[tuple[str, str]]:
    return [(t("grid.z_none", lang), "none"), (t("grid.z_bases", lang), "bases"),
            (t("grid.z_prompts", lang), "prompts")]


def _form_column(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """What to render: a run (its files, runs to compare) or LoRA files on a base; weights, Z axis, margin;
    Start and Cancel, the progress line and the message."""
    tr, outputs_dir = ctx.tr, ctx.outputs_dir
    c = SimpleNamespace()
    c.source = tr.bind(gr.Radio(_source_choices(lang0), value="run", label=t("grid.source", lang0),
                                elem_id="grid-source"), label="grid.source")
    with gr.Group(visible=True) as c.run_group:
        with gr.Row():
            runs = list_runs(outputs_dir, lang0)
            c.run = tr.bind(gr.Dropdown(runs, value=runs[0][1] if runs else None, label=t("grid.run", lang0),
                                        elem_id="grid-run", scale=4), label="grid.run")
            c.refresh = tr.bind(gr.Button(t("grid.refresh", lang0), elem_id="grid-refresh", scale=1,
                                          size="sm"), value="grid.refresh")
        stems = epoch_stems(runs[0][1]) if runs else []
        c.epochs = tr.bind(gr.CheckboxGroup(stems, value=preselected(runs[0][1]) if runs else [],
                                            label=t("grid.epochs", lang0),
                                            elem_id="grid-epochs"), label="grid.epochs")
        c.compare = tr.bind(gr.Dropdown(compare_choices(outputs_dir, lang0), value=[], multiselect=True,
                                        label=t("grid.compare", lang0), elem_id="grid-compare"),
                            label="grid.compare")
    with gr.Group(visible=False) as c.files_group:
        c.lora_text = tr.bind(gr.Textbox(label=t("grid.files", lang0), lines=3, elem_id="grid-files"),
                              label="grid.files")
        c.base = tr.bind(gr.Textbox(label=t("grid.base", lang0), elem_id="grid-base"), label="grid.base")
        c.prompt = tr.bind(gr.Textbox(label=t("grid.prompt", lang0), elem_id="grid-prompt"), label="grid.prompt")
        c.files_recipe = i18n.follow(gr.Markdown("", elem_id="grid-files-recipe"), ctx.lang)
    c.weights = tr.bind(gr.Textbox("0.3, 0.6, 0.8, 1.0", label=t("grid.weights", lang0),
                                   elem_id="grid-weights"), label="grid.weights")
    c.base_column = tr.bind(gr.Checkbox(False, label=t("grid.base_column", lang0), elem_id="grid-base-column"),
                            label="grid.base_column")
    c.z_kind = tr.bind(gr.Radio(_z_choices(lang0), value="none", label=t("grid.z", lang0), elem_id="grid-z"),
                       label="grid.z")
    c.z_text = tr.bind(gr.Textbox(label=t("grid.z_values", lang0), lines=2, elem_id="grid-z-values"),
                       label="grid.z_values")
    c.margin = tr.bind(gr.Slider(0, 500, value=0, step=2, label=t("grid.margin", lang0),
                                 elem_id="grid-margin"), label="grid.margin")
    with gr.Row():
        c.start = tr.bind(gr.Button(t("grid.start", lang0), variant="primary", elem_id="grid-start"),
                          value="grid.start")
        c.cancel = tr.bind(gr.Button(t("grid.cancel", lang0), variant="stop", elem_id="grid-cancel",
                                     interactive=False), value="grid.cancel")
    # Their text is kept in both languages (i18n.follow), so a language switch re-renders them.
    c.progress = i18n.follow(gr.Markdown("", elem_id="grid-progress"), ctx.lang)
    c.message = i18n.follow(gr.Markdown("", elem_id="grid-message"), ctx.lang)
    return c


def _picture_column(ctx: AppContext, lang0: str, c: SimpleNamespace) -> None:
    """The grid picture with its zoom, and the clicked cell's image and recipe, added to `c`."""
    tr = ctx.tr
    tr.bind(gr.Markdown(t("grid.image", lang0)), value="grid.image")
    c.zoom = tr.bind(gr.Slider(0, 100, value=0, step=5, label=t("grid.zoom", lang0), elem_id="grid-zoom"),
                     label="grid.zoom")
    # No label badge: it would sit on top of the column headers.
    c.image = gr.Image(type="pil", format="png", interactive=False, show_label=False,
                       buttons=["download", "fullscreen"], elem_id="grid-image")
    with gr.Row():
        c.cell_image = tr.bind(gr.Image(label=t("grid.cell", lang0), type="pil", format="png",
                                        interactive=False, buttons=["download", "fullscreen"], height=256,
                                        elem_id="grid-cell", scale=1), label="grid.cell")
        c.recipe = tr.bind(gr.Textbox(label=t("grid.recipe", lang0), lines=8, interactive=False,
                                      elem_id="grid-recipe", scale=2), label="grid.recipe")


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    ctx.tr.bind(gr.Markdown(t("grid.intro", lang0)), value="grid.intro")
    token = gr.State("")
    grid_json = gr.State("")
    with gr.Row():
        with gr.Column(scale=2):
            c = _form_column(ctx, lang0)
        with gr.Column(scale=3):
            _picture_column(ctx, lang0, c)
    c.token, c.grid_json = token, grid_json
    _wire(ctx, c)


def _wire(ctx: AppContext, c: SimpleNamespace) -> None:
    """The tab's events: source and run choices, Start (streams render_grid), Cancel, a click on a cell, zoom."""
    outputs_dir = ctx.outputs_dir

    def on_source(value: str):
        return gr.update(visible=value == "run"), gr.update(visible=value == "files")

    def on_refresh(current: str | None, lang: str, selected: str | None = None, applied: str | None = None):
        """The run list again; a run the Train tab opened here is chosen once (applied: that run and the time of
        its config.toml, so a later visit keeps the user's own pick, and the same run trained again is chosen)."""
        choices = list_runs(outputs_dir, lang)
        paths = [p for _, p in choices]
        pick, key = None, applied
        toml = Path(selected) / "config.toml" if selected else None
        if toml and toml.is_file():
            same = [p for p in paths if Path(p).resolve() == Path(selected).resolve()]
            if not same:  # a run kept outside the outputs folder
                choices.insert(0, run_choice(Path(selected), outputs_dir, lang))
                paths.insert(0, selected)
            key = f"{selected}@{toml.stat().st_mtime_ns}"
            pick = (same or [selected])[0] if key != applied else None
        want = pick or (current if current in paths else (paths[0] if paths else None))
        return gr.update(choices=choices, value=want), key or ""

    def on_run(value: str | None):
        return gr.update(choices=epoch_stems(value), value=preselected(value))

    def on_config(config: dict, current_base: str, current_prompt: str, lang: str):
        """The form's base and first sample prompt fill the files' empty boxes; the recipe line follows."""
        base = current_base or ((config or {}).get("model") or {}).get("base", "")
        prompts = ((config or {}).get("sampling") or {}).get("prompts") or []
        trigger = ((config or {}).get("dataset") or {}).get("trigger_word", "")
        prompt = current_prompt or (prompts[0] if prompts else trigger)
        return gr.update(value=base), gr.update(value=prompt), recipe_line(config, base, lang)

    def recipe_line(config: dict, base: str, lang: str) -> i18n.Text:
        return i18n.both(lambda lg: files_recipe(config, base, lg), lang)

    # render_grid's parameters by name: the form's order no longer matters
    form = {"source": c.source, "run": c.run, "epochs": c.epochs, "weights": c.weights,
            "base_column": c.base_column, "z_kind": c.z_kind, "z_text": c.z_text, "margin": c.margin,
            "lora_text": c.lora_text, "base": c.base, "lang": ctx.lang, "config": ctx.config, "compare": c.compare,
            "prompt": c.prompt}

    def on_start(**values):
        yield from render_grid(**(values | {"compare": values["compare"] or []}), outputs_dir=outputs_dir)

    def on_lang(lang: str):  # radio choices are not labels, so the table cannot relabel them
        return (gr.update(choices=_source_choices(lang)), gr.update(choices=_z_choices(lang)))

    ctx.lang.change(on_lang, ctx.lang, [c.source, c.z_kind])
    c.source.change(on_source, c.source, [c.run_group, c.files_group])
    applied = gr.State("")  # the Train tab's selected run once chosen here (see on_refresh)
    c.refresh.click(lambda cur, lang: on_refresh(cur, lang)[0], [c.run, ctx.lang], c.run)
    for event in (c.refresh.click, ctx.tabs.change):
        event(lambda cur, lang: gr.update(choices=compare_choices(outputs_dir, lang), value=cur or []),
              [c.compare, ctx.lang], c.compare, show_progress="hidden")
    # Runs finished since the page was built appear without a click. The Train tab's "Open this run in the XYZ
    # grid" sets selected_run and this tab in one step: one listener reads both, so no second refresh can land
    # after it with the old list (gradio then refuses the run as "not in the list of choices").
    selected = ctx.selected_run if getattr(ctx, "selected_run", None) is not None else gr.State("")
    ctx.tabs.change(on_refresh, [c.run, ctx.lang, selected, applied], [c.run, applied], show_progress="hidden")
    c.run.change(on_run, c.run, c.epochs)
    ctx.config.change(on_config, [ctx.config, c.base, c.prompt, ctx.lang], [c.base, c.prompt, c.files_recipe])
    c.base.change(recipe_line, [ctx.config, c.base, ctx.lang], c.files_recipe, show_progress="hidden")
    c.start.click(on_start, None, [c.token, c.progress, c.image, c.message, c.grid_json, c.start, c.cancel],
                  inputs_kwargs=form)
    c.cancel.click(cancel_grid, [c.token, ctx.lang], c.message)
    c.image.select(show_cell, [c.grid_json, ctx.lang], [c.cell_image, c.recipe])
    # Zoom in the browser, up to the picture's own pixels: the page's click mapping stays exact up to 100 %.
    c.zoom.change(None, c.zoom, None, js=ZOOM_JS)
    c.image.change(None, c.zoom, None, js=ZOOM_JS)
