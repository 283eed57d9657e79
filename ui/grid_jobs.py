"""The XYZ grid tab's jobs: the runs and files to pick from, the plan from the form, and a grid rendered in a
worker thread (models.grid.render.run_grid) whose progress the handler streams to the page. Cancel stops between cells
and the cells already done are still composed and saved. ui/tab_grid.py lays the tab out and wires these.
"""

from __future__ import annotations

import queue
import threading
import uuid
from pathlib import Path

import gradio as gr

from core.errors import DanluError
from ui import i18n
from ui.i18n import t

_CANCELS: dict[str, threading.Event] = {}



# The strings of the grid's jobs (the tab's own are in ui/tab_grid.py).
i18n.add({
    "grid.progress": ("格子 {done}/{total}{eta}", "Cells {done}/{total}{eta}"),
    "grid.eta": ("，预计还需 {s} 秒", ", about {s} s left"),
    "grid.planned": ("共 {total} 个格子：{cols} 列 × {rows} 个权重{z}。正在载入底模…",
                     "{total} cells: {cols} columns × {rows} weights{z}. Loading the base model…"),
    "grid.done": ("网格已保存：{path}", "Grid saved: {path}"),
    "grid.cancelled": ("已取消，保留已完成的 {done}/{total} 个格子：{path}",
                       "Cancelled; the {done}/{total} cells done are kept: {path}"),
    "grid.cancelling": ("正在取消：当前格子画完后停止…", "Cancelling after the current cell…"),
    "grid.nothing": ("没有正在生成的网格。", "No grid is rendering."),
    "grid.warning": ("注意：", "Warning: "),
    "grid.error": ("出错：", "Error: "),
    "grid.crash": ("生成网格时出错：{e}", "The grid failed: {e}"),
    "grid.no_cell": ("这里不是格子（是标签或边距）。", "That is a label or margin, not a cell."),
    "grid.compare_none": ("不对比", "No comparison"),
    "grid.files_recipe": ("生成设置：{w}×{h} 像素，{steps} 步，CFG {cfg}，{sampler}（{why}）。",
                          "Rendered at {w}×{h} px, {steps} steps, CFG {cfg}, {sampler} ({why})."),
    "grid.files_recipe_form": ("取自当前表单的样图设置，因为底模相同", "the form's sample settings: same base model"),
    "grid.files_recipe_base": ("底模的原生尺寸和它所属系列的采样设置",
                               "the base's native size and its family's settings"),
    "grid.earlier_run": ("{run} · 较早的一次运行（{when} 移到 {folder}）",
                         "{run} · earlier run (moved to {folder} at {when})"),
})


def run_label(folder: Path, outputs_dir: Path, lang: str = "en") -> str:
    """A run's name in the lists: its path under outputs_dir (outputs/demo/runs/demo → demo/runs/demo), and for
    an earlier run moved aside by a new run of the same name, when it was moved."""
    import re

    from core.runs.layout import PREVIOUS, previous_stamp

    folder, outputs_dir = Path(folder), Path(outputs_dir)
    stamp = previous_stamp(folder)
    run = folder.parent.parent if stamp else folder
    try:
        name = run.relative_to(outputs_dir).as_posix()
    except ValueError:  # kept outside the outputs folder
        name = run.name
    if not stamp:
        return name
    m = re.fullmatch(r"(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)(-\d+)?", stamp)
    when = f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]}:{m[6]}" if m else stamp
    return t("grid.earlier_run", lang, run=name, when=when, folder=f"{PREVIOUS}/{stamp}")


def list_runs(outputs_dir: Path, lang: str = "en") -> list[tuple[str, str]]:
    """(label, folder) of the run folders at any depth under outputs_dir that hold config.toml, earlier runs moved
    aside included, newest first."""
    from core.runs.layout import list_runs as run_folders

    return [run_choice(p, outputs_dir, lang) for p in run_folders(outputs_dir)]


def run_choice(folder: Path, outputs_dir: Path, lang: str = "en") -> tuple[str, str]:
    """(label, folder) of one run in the run lists: its label and how many LoRA files it holds."""
    count = sum(1 for _ in Path(folder).glob("*.safetensors"))
    return f"{run_label(folder, outputs_dir, lang)}  ({count} LoRA)", str(folder)


def epoch_stems(run: str | None) -> list[str]:
    """The run's LoRA file stems in training order (name-000002, …, name)."""
    if not run:
        return []
    from core.runs.layout import resolve_run
    from models.grid.plan import epoch_files

    try:
        cfg, run_dir = resolve_run(run)
    except DanluError:
        return []
    return [f.stem for _, f in epoch_files(run_dir, cfg.saving.name)]


def make_plan(source: str, run: str | None, epochs: list[str] | None, weights: str, base_column: bool, z_kind: str,
              z_text: str, margin: float, lora_text: str, base: str, config: dict | None, outputs_dir: Path,
              prompt: str = ""):
    """The GridPlan for the form (raises DanluError with what to fix); `prompt`: the LoRA files' prompt."""
    from models.grid.plan import parse_weights, plan_from_loras, plan_from_run

    w = parse_weights(weights or "")
    z_values = [line.strip() for line in (z_text or "").splitlines() if line.strip()]
    bases = z_values if z_kind == "bases" else None
    prompts = z_values if z_kind == "prompts" else None
    if source == "files":
        files = [line.strip().strip('"') for line in (lora_text or "").splitlines() if line.strip()]
        sampling, _ = files_sampling(config, base)
        if not prompts:
            if not (prompt or "").strip():
                raise DanluError("No prompt for the LoRA files.", "没有为这些 LoRA 文件填写提示词。",
                                 "Type the prompt the cells are rendered with (the LoRA's trigger word first), or "
                                 "choose Prompts as the Z axis.",
                                 "请填写生成格子用的提示词（先写 LoRA 的触发词），或把 Z 轴设为提示词。", key="prompt")
            prompts = [prompt.strip()]
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


def _same_model(a: str, b: str) -> bool:
    a, b = (a or "").strip().strip('"'), (b or "").strip().strip('"')
    if a and b and Path(a).exists() and Path(b).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def files_sampling(config: dict | None, base: str) -> tuple[dict, bool]:
    """The [sampling] a grid of LoRA files on `base` is rendered with, and whether it is the form's own.

    The form's settings when the files are on the form's base model (its size and steps were set for that base);
    otherwise only its seed and negative prompt, and the base's native size and its family's steps, CFG and sampler
    (models.grid.plan.base_sampling). The prompt is the grid's own field."""
    from models.grid.plan import base_sampling

    config = config or {}
    form = {k: v for k, v in (config.get("sampling") or {}).items() if k != "prompts"}
    model = config.get("model") or {}
    if _same_model(model.get("base", ""), base):
        return form, True
    own = base_sampling((base or "").strip().strip('"'), str(model.get("variant") or ""))
    return own | {k: form[k] for k in ("seed", "negative_prompt") if k in form}, False


def files_recipe(config: dict | None, base: str, lang: str) -> str:
    """The line under the base box: the size, steps, CFG and sampler the files' cells get, and why."""
    from core import config as cfgmod

    if not (base or "").strip():
        return ""
    sampling, own = files_sampling(config, base)
    s = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": sampling}).sampling
    why = t("grid.files_recipe_form" if own else "grid.files_recipe_base", lang)
    return t("grid.files_recipe", lang, w=s.width, h=s.height, steps=s.steps, cfg=f"{s.cfg:g}", sampler=s.sampler,
             why=why)


def preselected(run: str | None) -> list[str]:
    """The files a grid of the run starts with: the best epoch by validation loss and its neighbours, else all."""
    if not run:
        return []
    from models.grid.compare import best_stems

    try:
        return best_stems(run)
    except DanluError:
        return epoch_stems(run)


def compare_choices(outputs_dir: Path, lang: str) -> list[tuple[str, str]]:
    return [(t("grid.compare_none", lang), "")] + list_runs(outputs_dir, lang)


def _compare_job(run, others, epochs, weights, base_column, z_kind, z_text, margin):
    """(first plan, total cells, columns, render function) of runs side by side (models.grid.compare)."""
    from models.grid.compare import plan_runs, run_label, run_runs
    from models.grid.plan import parse_weights

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


def _job(source, run, epochs, weights, base_column, z_kind, z_text, margin, lora_text, base, config,
         outputs_dir: Path, compare, prompt: str = ""):
    """(plan, total cells, columns, the Z part of the planned line, render function) of the form's grid: one
    run or files (models.grid.render.run_grid), or runs side by side (models.grid.compare). Raises DanluError."""
    from models.grid.render import run_grid

    others = [c for c in ([compare] if isinstance(compare, str) else compare or []) if c and c != run]
    if source == "run" and others:
        plan, total, cols, render = _compare_job(run, others, epochs, weights, base_column, z_kind, z_text, margin)
        return plan, total, cols, f" × {len(others) + 1} Z", render
    plan = make_plan(source, run, epochs, weights, base_column, z_kind, z_text, margin, lora_text, base,
                     config, outputs_dir, prompt)
    z = f" × {len(plan.z_labels() or [])} Z" if plan.z_axis else ""

    def render(**kwargs):
        return run_grid(plan, **kwargs)

    return plan, len(plan.cells()), len(plan.columns), z, render


def _start(render, cancel: threading.Event, lang: str) -> queue.Queue:
    """Render in a worker thread; the queue receives ("progress", done, total, eta), ("warnings", [...]),
    ("error", DanluError) or ("done", result)."""
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
    return events


def render_grid(source, run, epochs, weights, base_column, z_kind, z_text, margin, lora_text, base, lang, config,
                outputs_dir: Path, compare: str | list[str] = "", prompt: str = ""):
    """Generator for the page: yields (token, progress, grid image, message, grid.json path, buttons…)."""
    idle = (gr.update(interactive=True), gr.update(interactive=False))
    busy = (gr.update(interactive=False), gr.update(interactive=True))
    try:
        plan, total, cols, z, render = _job(source, run, epochs, weights, base_column, z_kind, z_text, margin,
                                            lora_text, base, config, outputs_dir, compare, prompt)
    except DanluError as e:
        yield "", "", gr.update(), i18n.with_error("grid.error", e, lang, sep=""), gr.update(), *idle
        return
    token = uuid.uuid4().hex
    cancel = _CANCELS[token] = threading.Event()
    events = _start(render, cancel, lang)
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

    from models.grid.render import cell_at

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
