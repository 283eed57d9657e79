"""The sweep section of the Parameters tab: the current settings with a few keys given several values become one queued
run per combination (core.runs.sweep), shown with their names, steps and total time before anything is queued."""

from __future__ import annotations

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from core.runs.queue_runner import runner
from core.runs.supervisor import supervisor
from core.runs.sweep import plan, queue_plan
from ui import i18n
from ui.context import AppContext
from ui.form import reads_form
from ui.i18n import t
from ui.tab_train import start_checks

i18n.add({
    "sweep.title": ("参数扫描（多个运行排队）", "Sweep (several runs, queued)"),
    "sweep.intro": (("每行一个设置及其取值，例如 `network.rank=8,16`、`optimizer.lr=1e-4,2e-4`。"
                     "每种组合成为一个运行，名称写明不同之处（如 `mylora-rank8-lr1e-4`），"
                     "加入 “6 炼丹” 页的运行队列，依次训练。"),
                    ("One setting per line with its values, e.g. `network.rank=8,16`, `optimizer.lr=1e-4,2e-4`. "
                     "Each combination becomes a run named after what differs (`mylora-rank8-lr1e-4`), queued in "
                     "the Train tab's run queue and trained one after another.")),
    "sweep.lines": ("扫描的设置（每行一个）", "Settings to sweep (one per line)"),
    "sweep.preview": ("预览", "Preview"),
    "sweep.queue": ("加入队列", "Queue them"),
    "sweep.nothing": ("请至少写一行，例如 network.rank=8,16。", "Write at least one line, e.g. network.rank=8,16."),
    "sweep.queued": ("✔ 已加入队列的运行：{n} 个。到 “6 炼丹” 页查看进度。",
                     "✔ Queued {n} runs. The Train tab shows their progress."),
    "sweep.refused": ("✖ 不能开始扫描：", "✖ Cannot sweep:"),
})


def sweep_lines(text: str) -> list[str]:
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not ln.strip().startswith("#")]


def build(ctx: AppContext) -> None:
    """The section; every run of a sweep gets the Start button's checks before anything is queued."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    with B(gr.Accordion(t("sweep.title", lang0), open=False, elem_id="params-sweep"), label="sweep.title"):
        B(gr.Markdown(t("sweep.intro", lang0)), value="sweep.intro")
        lines = B(gr.Textbox("", lines=3, label=t("sweep.lines", lang0), placeholder="network.rank=8,16",
                             elem_id="params-sweep-lines"), label="sweep.lines")
        with gr.Row():
            preview = B(gr.Button(t("sweep.preview", lang0), elem_id="params-sweep-preview"), value="sweep.preview")
            go = B(gr.Button(t("sweep.queue", lang0), variant="primary", elem_id="params-sweep-queue"),
                   value="sweep.queue")
        result = i18n.follow(gr.Markdown("", elem_id="params-sweep-plan"), ctx.lang)  # its text in both languages

    def make_plan(config: dict, text: str, lang: str):
        sweeps = sweep_lines(text)
        if not sweeps:
            raise DanluError(t("sweep.nothing", "en"), t("sweep.nothing", "zh"))
        return plan(cfgmod.from_dict(config), sweeps, ctx.outputs_dir, ctx.root)

    def on_preview(config: dict, text: str, lang: str) -> str:
        try:
            return i18n.both(make_plan(config, text, lang).text, lang)
        except DanluError as e:
            return i18n.with_error("sweep.refused", e, lang)

    def on_queue(config: dict, text: str, lang: str) -> str:
        try:
            p = make_plan(config, text, lang)
            problems = {lg: [f"- `{r.cfg.saving.name}`: {msg}" for r in p.runs for msg in start_checks(r.cfg, lg)]
                        for _, lg in i18n.LANG_CHOICES}
            if problems[lang]:
                return i18n.both(lambda lg: t("sweep.refused", lg) + "\n\n" + "\n".join(problems[lg]), lang)
            items = queue_plan(p, ctx.outputs_dir)
        except DanluError as e:
            return i18n.with_error("sweep.refused", e, lang)
        runner(ctx.outputs_dir, supervisor(ctx.root)).tick()
        return i18n.both(lambda lg: f"{t('sweep.queued', lg, n=len(items))}\n\n{p.text(lg)}", lang)

    preview.click(*reads_form(ctx, on_preview, [ctx.config, lines, ctx.lang]), result)
    go.click(*reads_form(ctx, on_queue, [ctx.config, lines, ctx.lang]), result)
