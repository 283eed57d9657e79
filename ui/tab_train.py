"""Step 6 炼丹: start the trainer as a child process and watch it live; stop, kill, resume.

The page runs exactly the command it shows. The page looks at the server-wide Supervisor, so a
reloaded page or a second tab reattaches to the running job; the console still shows the log. What a
look sends (only the parts that changed) is ui/train_live.py; earlier runs and a run name already used,
ui/train_runs.py.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from core.runs.summary import summarize
from core.runs.supervisor import Run, run_dir_for, supervisor
from core.state_files import notices
from ui import i18n, train_live, train_queue, train_runs
from ui.context import AppContext
from ui.form import reads_form
from ui.i18n import t

TAB_ID = "train"
TAB_KEY = "train.tab"
LOG_SHOWN = 400

i18n.add({
    "train.tab": ("6 炼丹", "6 Train"),
    "train.intro": (("开始后，页面会运行下面显示的同一条命令（也可以复制到终端里运行）。"
                     "刷新页面或打开第二个标签页会自动接上正在进行的训练。"),
                    ("Start runs the command shown below, the same one you can paste into a shell. Reloading the "
                    "page or opening a second tab reattaches to the running job.")),
    "train.start": ("▶ 开始训练", "▶ Start"),
    "train.stop": ("■ 停止（保存后退出）", "■ Stop (save, then exit)"),
    "train.kill": ("✖ 强制结束", "✖ Kill"),
    "train.resume": ("↻ 续训", "↻ Resume"),
    "train.grid": ("在 XYZ 对比图中打开此运行 →", "Open this run in the XYZ grid →"),
    "train.command": ("命令（可在终端中重跑）", "Command (rerun it from a shell)"),
    "train.search": ("搜索日志", "Search the log"),
    "train.log": ("日志", "Log"),
    "train.loss": ("损失（原始与平滑）", "Loss (raw and smoothed)"),
    "train.samples": ("样图（按轮排列）", "Samples by epoch"),
    "train.files": ("已保存的文件", "Saved files"),
    "train.col_file": ("文件", "File"),
    "train.col_epoch": ("轮", "Epoch"),
    "train.col_step": ("步", "Step"),
    "train.axis_loss": ("损失", "Loss"),
    "train.axis_series": ("曲线", "Curve"),
    "train.col_size": ("大小", "Size"),
    "train.raw": ("原始", "raw"),
    "train.smoothed": ("平滑", "smoothed"),
    "train.validation": ("验证", "validation"),
    "train.best": ("★ 最佳", "★ best"),
    "train.sample_caption": ("第 {epoch} 轮 · #{n} {prompt}", "epoch {epoch} · #{n} {prompt}"),
    "train.best_line": ("★ 最佳轮次（验证损失最低）：第 {epoch} 轮，第 {step} 步，验证损失 {loss}",
                        "★ Best epoch (lowest validation loss): epoch {epoch}, step {step}, validation loss {loss}"),
    "train.caching": ("缓存{what}（第一步之前）：{done}/{total} · 其中 {disk} 个从磁盘读取 · 剩余 {eta}",
                      "Caching {what} before the first step: {done}/{total} · {disk} read from disk · ETA {eta}"),
    "train.caching.latents": ("潜变量", "latents"),
    "train.caching.text": ("文本特征", "text features"),
    "train.idle": ("还没有开始训练。", "No run yet."),
    "train.status.starting": ("启动中", "Starting"),
    "train.status.running": ("训练中", "Running"),
    "train.status.stopping": ("正在停止（完成当前步并保存）", "Stopping (finishing the step and saving)"),
    "train.status.finished": ("✔ 已完成", "✔ Finished"),
    "train.status.stopped": ("■ 已停止，可续训", "■ Stopped; resume continues it"),
    "train.status.failed": ("✖ 失败", "✖ Failed"),
    "train.stats": ("步 {step}/{total} · 轮 {epoch}/{epochs} · {speed} · 剩余 {eta} · 损失 {loss}",
                    "step {step}/{total} · epoch {epoch}/{epochs} · {speed} · ETA {eta} · loss {loss}"),
    "train.started": ("✔ 已开始：{run}", "✔ Started: {run}"),
    "train.resumed": ("✔ 已续训：{run}", "✔ Resumed: {run}"),
    "train.stop_sent": ("已请求停止：训练会完成当前步、保存后退出。",
                        "Stop requested: the trainer finishes the step, saves and exits."),
    "train.killed": ("已强制结束训练进程。", "The trainer was killed."),
    "train.nothing": ("没有正在进行的训练。", "No run in progress."),
    "train.refused": ("✖ 不能开始：", "✖ Cannot start:"),
    "train.error": ("训练出错", "The training failed"),
    "train.last_lines": ("日志最后几行：", "Last lines of the log:"),
})


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def caching_line(event: dict, lang: str) -> str:
    """The progress of the caches filled before the first step, from a `caching` event."""
    what = event.get("what") if event.get("what") in ("latents", "text") else "latents"
    return t("train.caching", lang, what=t(f"train.caching.{what}", lang), done=event.get("done", 0),
             total=event.get("total", "?"), disk=event.get("from_disk") or 0, eta=fmt_eta(event.get("eta_s")))


def fmt_size(size: int | None) -> str:
    if size is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def smooth(values: list[float], beta: float = 0.9) -> list[float]:
    """Debiased exponential moving average (what TensorBoard's smoothing shows)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return out


def loss_frame(losses: list[tuple[int, float]], lang: str, validation: list[tuple] | None = None) -> Any:
    """Raw and smoothed loss for the chart, and the validation loss at each save; None while there is none (an
    empty first frame leaves the chart unable to draw the data that comes later)."""
    import pandas as pd

    if not losses:
        return None
    if len(losses) > 2000:  # the chart stays light on long runs
        stride = len(losses) // 2000 + 1
        losses = losses[::stride]
    steps = [s for s, _ in losses]
    raw = [float(v) for _, v in losses]
    val = validation or []
    return pd.DataFrame({"step": pd.Series(steps * 2 + [v[0] for v in val], dtype="int64"),
                         "loss": pd.Series(raw + smooth(raw) + [float(v[1]) for v in val], dtype="float64"),
                         "series": pd.Series([t("train.raw", lang)] * len(raw)
                                             + [t("train.smoothed", lang)] * len(raw)
                                             + [t("train.validation", lang)] * len(val),
                                             dtype="object")})


def progress_html(step: int, total: int, status: str) -> str:
    pct = 100.0 * step / total if total else 0.0
    colour = {"failed": "#d92d20", "stopped": "#f79009", "finished": "#12b76a"}.get(status, "#2e90fa")
    return (f'<div id="train-progress-bar" data-step="{step}" data-total="{total}" '
            f'style="background:#eaecf0;border-radius:6px;height:18px;overflow:hidden">'
            f'<div style="width:{pct:.1f}%;background:{colour};height:100%"></div></div>'
            f'<div style="text-align:right;font-size:0.9em">{step} / {total} ({pct:.0f}%)</div>')


def error_markdown(error: dict | None, lang: str) -> str:
    if not error:
        return ""
    msg = error.get("message_zh") if lang == "zh" and error.get("message_zh") else error.get("message", "")
    hint = error.get("hint_zh") if lang == "zh" and error.get("hint_zh") else error.get("hint", "")
    tail = (error.get("log_tail") or "").replace("```", "ˋˋˋ")  # keep the code block closed
    return (f"### ✖ {t('train.error', lang)}\n\n**{msg}**\n\n{hint}\n\n{t('train.last_lines', lang)}\n\n"
            f"```\n{tail}\n```")


def servable(png: str, outputs_dir: Path, root: Path) -> str:
    """A path the page may serve: run folders outside the app's folders get a preview copy, made once."""
    path = Path(png).resolve()
    allowed = (Path(outputs_dir).resolve(), Path(root).resolve(), Path(tempfile.gettempdir()).resolve())
    if any(path.is_relative_to(a) for a in allowed):
        return str(path)
    digest = hashlib.sha1(f"{path}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    copy = Path(outputs_dir) / ".danlu" / "preview" / f"{digest}{path.suffix}"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return str(copy)


def render(run: Run | None, lang: str, search: str, serve: Any = str, live: Any = "same") -> dict[str, Any]:
    """Everything the tab shows for a run (None: nothing yet), as plain values. `live`: the run the Start, Stop,
    Kill and Resume buttons act on when `run` is an earlier run picked for viewing ("same": `run` itself)."""
    live = run if live == "same" else live
    if run is None:
        return {"status": t("train.idle", lang), "progress": progress_html(0, 0, "idle"), "command": "",
                "log": "", "loss": loss_frame([], lang), "loss_key": [None, lang, 0, 0], "samples": [], "columns": 4,
                "files": [], "error": "", "warnings": "", "buttons": buttons(live), "lang": lang}
    info = summarize(run)
    speed = f"{info['samples_per_s']:.2f} img/s" if info["samples_per_s"] else "–"
    loss = f"{info['loss']:.4f}" if isinstance(info["loss"], (int, float)) else "–"
    stats = t("train.stats", lang, step=info["step"], total=info["total"] or "?", epoch=info["epoch"] or 0,
              epochs=info["epochs"] or "?", speed=speed, eta=fmt_eta(info["eta_s"] if run.active else None), loss=loss)
    status = f"**{t('train.status.' + run.status, lang)}** · `{run.run_dir}`\n\n{stats}"
    caching = info.get("caching")
    if caching and run.active:
        status += "\n\n" + caching_line(caching, lang)
    best = info.get("best")
    if best:
        status += "\n\n" + t("train.best_line", lang, epoch=best.get("epoch"), step=best.get("step"),
                             loss=f"{best['loss']:.5f}")
    lines = list(run.log)
    if search:
        lines = [ln for ln in lines if search.lower() in ln.lower()]
    samples = sorted(info["samples"], key=lambda s: (s.get("epoch") or 0, s.get("prompt_index") or 0))
    gallery = [(serve(s["png"]), t("train.sample_caption", lang, epoch=s.get("epoch"),
                                   n=(s.get("prompt_index") or 0) + 1, prompt=s.get("prompt", ""))) for s in samples]
    # A row holds whole epochs: every prompt of one epoch side by side, then the next epoch.
    prompts = len({s.get("prompt_index") for s in samples}) or 1
    columns = prompts * max(1, 4 // prompts)
    best_step = best.get("step") if best else None
    files = [[Path(f["file"]).name + (f"  {t('train.best', lang)}" if f["step"] == best_step else ""), f["epoch"],
              f["step"], fmt_size(f["size"])] for f in info["saved"]]
    warnings = "\n\n".join(f"⚠ {w.get('message_zh') if lang == 'zh' and w.get('message_zh') else w.get('message')}"
                           for w in info["warnings"])
    b = buttons(live)
    b["grid"] = buttons(run)["grid"]  # the grid opens the run shown
    validation = info.get("validation") or []
    return {"status": status, "progress": progress_html(info["step"], info["total"], run.status),
            "command": run.command, "log": "\n".join(lines[-LOG_SHOWN:]),
            "loss": loss_frame(info["losses"], lang, validation),
            # which run and language, then how many points: what the chart shows, without comparing frames
            "loss_key": [[str(run.run_dir), run.started], lang, len(info["losses"]), len(validation)],
            "samples": gallery, "columns": columns, "files": files, "error": error_markdown(info["error"], lang),
            "warnings": warnings, "buttons": b, "lang": lang}


def buttons(run: Run | None) -> dict[str, dict]:
    """Which buttons work in this state: never a stuck Stop, never a Start during a run."""
    active = run is not None and run.active
    ended = run is not None and not active
    # With no run in this session, a run stopped before a restart may still be resumed (Start refuses
    # with the reason when there is nothing to resume).
    resumable = run is None or ended and run.status in ("stopped", "failed") and (run.run_dir / "config.toml").exists()
    has_files = ended and any(run.run_dir.glob("*.safetensors"))
    return {"start": {"interactive": not active}, "stop": {"interactive": active and run.status != "stopping"},
            "kill": {"interactive": active}, "resume": {"interactive": bool(resumable)},
            "grid": {"visible": bool(has_files)}}


def current_run(sup: Any, outputs_dir: Path) -> Run | None:
    """This server's run; after a restart, the trainer still running in a run folder, reattached."""
    return sup.poll() or sup.reattach(outputs_dir)


def start_checks(cfg: cfgmod.RunConfig, lang: str) -> list[str]:
    """Reasons not to start (core.checks' errors), in the user's language. Warnings reach the page from the
    trainer, which runs the same checks first."""
    from core.checks import errors
    from models import preflight

    return [i.text(lang) for i in errors(preflight.issues(cfg))]


def _layout(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tab's components: the buttons, the message and status, progress, the loss chart, files, samples, the
    log and its search."""
    B = ctx.tr.bind
    c = SimpleNamespace()
    B(gr.Markdown(t("train.intro", lang0)), value="train.intro")
    with gr.Row():
        c.start = B(gr.Button(t("train.start", lang0), variant="primary", elem_id="train-start"),
                    value="train.start")
        c.stop = B(gr.Button(t("train.stop", lang0), interactive=False, elem_id="train-stop"), value="train.stop")
        c.kill = B(gr.Button(t("train.kill", lang0), variant="stop", interactive=False, elem_id="train-kill"),
                   value="train.kill")
        c.resume = B(gr.Button(t("train.resume", lang0), elem_id="train-resume"), value="train.resume")
    c.message = i18n.follow(gr.Markdown("", elem_id="train-message"), ctx.lang)  # its text in both languages
    with gr.Group(visible=False, elem_id="train-taken") as c.taken:  # Start's question when the name holds results
        with gr.Row():
            c.new_name = B(gr.Textbox("", label=t("train.new_name", lang0), max_lines=1, elem_id="train-new-name",
                                      scale=2), label="train.new_name")
            c.as_new = B(gr.Button(t("train.as_new", lang0), variant="primary", elem_id="train-as-new", scale=1),
                         value="train.as_new")
            c.go_on = B(gr.Button(t("train.continue", lang0), elem_id="train-continue", scale=1),
                        value="train.continue")
            c.over = B(gr.Button(t("train.over", lang0), variant="stop", elem_id="train-over", scale=1),
                       value="train.over")
    c.pick = B(gr.Dropdown([(t("train.pick_live", lang0), "")], value="", label=t("train.pick", lang0),
                           elem_id="train-pick"), label="train.pick")
    # HTML rather than Markdown: the page's script writes the live lines into them (ui/train_live.py)
    c.status = gr.HTML(train_live.live_html(train_live.markdown_html(t("train.idle", lang0))), elem_id="train-status")
    c.progress = gr.HTML(train_live.live_html(progress_html(0, 0, "idle")), elem_id="train-progress")
    # shown only when they hold something: two empty blocks left a gap under the progress bar
    c.error = gr.Markdown("", elem_id="train-error", elem_classes=["danlu-error"], visible=False)
    c.warnings = gr.Markdown("", elem_id="train-warnings", elem_classes=["danlu-warn"], visible=False)
    c.grid = B(gr.Button(t("train.grid", lang0), visible=False, variant="primary", elem_id="train-grid"),
                   value="train.grid")
    c.command = B(gr.Textbox("", label=t("train.command", lang0), interactive=False, buttons=["copy"],
                             elem_id="train-command", max_lines=3), label="train.command")
    with gr.Row():
        with gr.Column(scale=1):
            # Colours fixed up front: a chart that starts empty otherwise never learns its series.
            colours = {t(k, lg): colour for k, colour in (("train.raw", "#98a2b3"), ("train.smoothed", "#2e90fa"),
                                                          ("train.validation", "#f04438")) for lg in ("zh", "en")}
            # The axes and the legend are titled in the user's language (the frame's column names are not).
            c.loss = B(gr.LinePlot(None, x="step", y="loss", color="series", color_map=colours,
                                   x_title=t("train.col_step", lang0), y_title=t("train.axis_loss", lang0),
                                   color_title=t("train.axis_series", lang0),
                                   label=t("train.loss", lang0), elem_id="train-loss", height=260),
                       label="train.loss", x_title="train.col_step", y_title="train.axis_loss",
                       color_title="train.axis_series")
            headers0 = [t(f"train.col_{col}", lang0) for col in ("file", "epoch", "step", "size")]
            c.files = B(gr.Dataframe(headers=headers0, value=[], interactive=False, label=t("train.files", lang0),
                                     elem_id="train-files"), label="train.files")
        with gr.Column(scale=1):
            c.samples = B(gr.Gallery([], label=t("train.samples", lang0), columns=4, height=360, preview=False,
                                     object_fit="contain", elem_id="train-samples"), label="train.samples")
    c.search = B(gr.Textbox("", label=t("train.search", lang0), elem_id="train-search", max_lines=1),
                 label="train.search")
    c.log = B(gr.Textbox("", label=t("train.log", lang0), lines=14, max_lines=14, autoscroll=True,
                         interactive=False, elem_id="train-log"), label="train.log")
    c.seen = gr.State(None)
    # The light channel's two hidden ends (ui/train_live.py): what the page's script asks about, and the button it
    # clicks when anything besides the live lines moved.
    c.ctx = gr.HTML(train_live.context_html(lang0, "", ""), elem_id="train-live-ctx", elem_classes=["danlu-hidden"])
    c.refresh = gr.Button("↻", elem_id="train-refresh", elem_classes=["danlu-hidden"])
    return c


def _look(ctx: AppContext, sup, lang: str, query: str, picked: str) -> tuple[Run | None, Run | None, list]:
    """The live run, the run shown and the key that says whether anything moved."""
    live = current_run(sup, ctx.outputs_dir)
    shown, key = train_runs.look(sup, live, picked, LOG_SHOWN)
    # the newest damaged state file (looking for a trainer may have found one): a new one redraws the warnings
    return live, shown, [*key, lang, query, picked, [n.time for n in notices()[-1:]]]


def _draw(ctx: AppContext, shown: Run | None, live: Run | None, lang: str, query: str) -> dict[str, Any]:
    """The tab's values for the run shown."""
    r = render(shown, lang, query, lambda png: servable(png, ctx.outputs_dir, ctx.root), live)
    r["warnings"] = "\n\n".join(w for w in (train_runs.damage_lines(shown, live, lang), r["warnings"]) if w)
    return r


def _light_look(ctx: AppContext, sup, queue_view):
    """The page script's look (ui/train_live.py): the live lines, and a digest of the rest of the tab and the
    queue so that the script asks for the gradio view only when one of them moved."""

    def train_live_look(lang: str, query: str, picked: str) -> dict:
        live, shown, _ = _look(ctx, sup, lang, query, picked)
        r = _draw(ctx, shown, live, lang, query)
        active = shown is not None and shown.active
        live_state = None if live is None else [str(live.run_dir), live.started, live.status]
        heavy = [train_live.heavy_parts(r, active, time.monotonic()), live_state, queue_view.key(lang),
                 [n.time for n in notices()[-1:]]]
        return train_live.light(r, live is not None and live.active, heavy)

    return train_live_look


def _make_view(ctx: AppContext, sup, c: SimpleNamespace):
    """The tab's look at the run (each tick, after each button, and when the search or the picked run changes)."""

    def look(lang: str, query: str, picked: str):
        return _look(ctx, sup, lang, query, picked)

    def draw(shown: Run | None, live: Run | None, lang: str, query: str) -> dict[str, Any]:
        return _draw(ctx, shown, live, lang, query)

    def choices(lang: str, picked: str | None):
        options = train_runs.run_choices(ctx.outputs_dir, sup.run, lang)
        return gr.update(choices=options, value=picked if picked in {v for _, v in options} else "")

    def headers(lang: str) -> list[str]:
        return [t(f"train.col_{col}", lang) for col in ("file", "epoch", "step", "size")]

    return train_live.make_view(c, look, draw, choices, headers)


def build(ctx: AppContext) -> None:
    sup = supervisor(ctx.root)
    c = _layout(ctx, ctx.lang.value)
    view, outputs = _make_view(ctx, sup, c)
    watch = [ctx.lang, c.search, c.pick, c.seen]
    # Textbox autoscroll does not follow values set by the server; keep the newest line in view.
    c.log.change(None, None, None, js="() => { requestAnimationFrame(() => { const el = document.querySelector("
                 "'#train-log textarea'); if (el) el.scrollTop = el.scrollHeight; }); }")
    c.search.change(view, watch, outputs, show_progress="hidden")
    c.pick.change(view, watch, outputs, show_progress="hidden")
    _wire_buttons(ctx, sup, c, view, outputs)
    queue_view, queue_watch, queue_outputs = train_queue.build(ctx, sup, start_checks)

    def look(*values: Any) -> list[Any]:
        """The run and the queue in one event: each event costs the browser a pass over the whole app."""
        return [*view(*values[:len(watch)]), *queue_view(*values[len(watch):])]

    # always_last: a click while a refresh is still drawing (a loaded machine) runs once that one ends; the default
    # drops it, and the page would miss the state it was clicked for (a run that just failed).
    c.refresh.click(look, watch + queue_watch, outputs + queue_outputs, show_progress="hidden",
                    trigger_mode="always_last")
    gr.api(_light_look(ctx, sup, queue_view), api_name="train_live")
    # A language switch redraws the tab at once (the idle look may be seconds away); the look's key holds the language.
    ctx.lang.change(look, watch + queue_watch, outputs + queue_outputs, show_progress="hidden")


def _wire_buttons(ctx: AppContext, sup, c: SimpleNamespace, view, outputs: list) -> None:
    """Start (and its three answers to a name that holds results), Resume, Stop, Kill and 'Open in the grid'; each
    answers with a message and the redrawn tab."""
    message = train_live.PARTS.index("message")

    def answer(text: Any, lang: str, query: str, picked: str, seen: Any) -> list[Any]:
        out = view(lang, query, picked, seen, True)
        out[message] = text
        return out

    def on_start(config: dict, lang: str, query: str, picked: str, seen: Any, new_name: str = "", mode: str = "start"):
        """mode: start (asks first when the name holds results), resume, new (under new_name), over (start over)."""
        hide, keep = [gr.update(visible=False), gr.update(), gr.update()], gr.update()  # the question, unasked
        try:
            cfg = cfgmod.from_dict(config)
            if mode == "new":
                cfg = cfgmod.with_values(cfg, {"saving.name": new_name.strip()})
                if train_runs.taken(run_dir_for(cfg, ctx.root)):
                    return [*answer(i18n.text("train.name_used", lang, name=cfg.saving.name), lang, query, picked,
                                    seen), keep, gr.update(value=train_runs.free_name(run_dir_for(cfg, ctx.root))),
                            keep, keep]
            problems = [] if mode == "resume" else start_checks(cfg, lang)
            if problems:
                refused = i18n.both(lambda lg: t("train.refused", lg) + "\n\n" + "\n\n".join(
                    f"- {p}" for p in start_checks(cfg, lg)), lang)
                return [*answer(refused, lang, query, picked, seen), *hide, keep]
            run_dir = run_dir_for(cfg, ctx.root)
            if mode == "start" and not (sup.run and sup.run.active) and train_runs.taken(run_dir):
                ask = train_runs.taken_message(run_dir, lang)
                return [*answer(ask, lang, query, picked, seen), gr.update(visible=True),
                        gr.update(value=train_runs.free_name(run_dir)),
                        gr.update(interactive=train_runs.resumable(run_dir)), keep]
            run = sup.start(cfg, resume=mode == "resume")
        except DanluError as e:
            return [*answer(i18n.with_error("train.refused", e, lang), lang, query, picked, seen), *hide, keep]
        time.sleep(0.2)  # let the first output line arrive so the log is not empty
        key = "train.resumed" if mode == "resume" else "train.started"

        def said(lg: str) -> str:
            moved = "\n\n" + t("train.moved", lg, folder=run.archived) if run.archived else ""
            return t(key, lg, run=run_dir) + moved
        new_config = cfgmod.to_dict(cfg) if mode == "new" else keep  # the form shows the name the run has
        return [*answer(i18n.both(said, lang), lang, query, "", seen), *hide, new_config]

    inputs = [ctx.config, ctx.lang, c.search, c.pick, c.seen]
    start_outputs = [*outputs, c.taken, c.new_name, c.go_on, ctx.config]
    c.start.click(*reads_form(ctx, on_start, inputs), start_outputs)  # the config as the form shows it
    for button, mode in ((c.resume, "resume"), (c.go_on, "resume"), (c.over, "over"), (c.as_new, "new")):
        c_inputs = inputs + [c.new_name] if mode == "new" else inputs

        def handler(*args, mode=mode):
            return on_start(*args[:5], args[5] if len(args) > 5 else "", mode=mode)
        button.click(*reads_form(ctx, handler, c_inputs), start_outputs)

    def on_stop(lang: str, query: str, picked: str, seen: Any):
        key = "train.stop_sent" if sup.stop() else "train.nothing"
        return answer(i18n.text(key, lang), lang, query, picked, seen)

    def on_kill(lang: str, query: str, picked: str, seen: Any):
        key = "train.killed" if sup.kill() else "train.nothing"
        sup.wait(5)
        return answer(i18n.text(key, lang), lang, query, picked, seen)

    c.stop.click(on_stop, inputs[1:], outputs)
    c.kill.click(on_kill, inputs[1:], outputs)

    def on_grid(picked: str):
        run = sup.poll()
        return gr.Tabs(selected="grid"), picked or (str(run.run_dir) if run else "")

    if ctx.selected_run is not None:
        c.grid.click(on_grid, c.pick, [ctx.tabs, ctx.selected_run])
