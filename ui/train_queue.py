"""The queue section of the Train tab: the queued runs in order, add the current run, move, remove, cancel, pause.

The queue lives on disk (core.runs.queue) and its runner (core.runs.queue_runner) starts runs through the same
Supervisor as the Start button, so the log, chart and Stop above follow a queued run too; a reloaded page or a
restarted server shows the same queue and goes on with it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from core.runs.queue import Item, Queue
from core.runs.queue_runner import QueueRunner, runner
from core.runs.supervisor import run_dir_for
from ui import i18n
from ui.context import AppContext
from ui.form import reads_form
from ui.i18n import t
from ui.train_runs import taken

i18n.add({
    "queue.title": ("运行队列", "Run queue"),
    "queue.intro": (("排队的运行会一个接一个地训练（同一时间只训练一个）。队列保存在输出文件夹中，"
                     "刷新页面或重启丹炉后会继续。"),
                    ("Queued runs train one after another (one at a time). The queue is kept in the outputs "
                     "folder, so it goes on after a page reload or a restart of Danlu.")),
    "queue.add": ("＋ 把当前设置加入队列", "＋ Add the current run"),
    "queue.item": ("选中的运行", "Selected run"),
    "queue.up": ("↑ 上移", "↑ Up"),
    "queue.down": ("↓ 下移", "↓ Down"),
    "queue.remove": ("移除", "Remove"),
    "queue.cancel": ("取消", "Cancel"),
    "queue.requeue": ("重新排队", "Queue again"),
    "queue.pause": ("当前运行结束后暂停", "Pause after the current run"),
    "queue.resume": ("▶ 继续队列", "▶ Resume the queue"),
    "queue.col_n": ("#", "#"),
    "queue.col_name": ("名称", "Name"),
    "queue.col_state": ("状态", "State"),
    "queue.col_note": ("说明 / 错误", "Note / error"),
    "queue.state.queued": ("排队中", "queued"),
    "queue.state.running": ("训练中", "running"),
    "queue.state.done": ("✔ 完成", "✔ done"),
    "queue.state.failed": ("✖ 失败", "✖ failed"),
    "queue.state.cancelled": ("已取消", "cancelled"),
    "queue.cancelling": ("（正在取消：保存后停止）", "(cancelling: saves, then stops)"),
    "queue.empty": ("队列为空。", "The queue is empty."),
    "queue.summary": ("{queued} 个排队，{done} 个完成，{failed} 个失败",
                      "{queued} queued, {done} done, {failed} failed"),
    "queue.paused": ("已暂停：当前运行结束后不再开始新的运行。",
                     "Paused: no new run starts after the current one."),
    "queue.busy": ("正在进行手动开始的训练，它结束后队列继续。",
                   "A run started by hand is in progress; the queue goes on after it."),
    "queue.other": ("另一个丹炉进程正在训练队列中的运行。", "Another Danlu process is training a queued run."),
    "queue.added": ("✔ 已加入队列：{name}", "✔ Queued: {name}"),
    "queue.added_taken": (("⚠ 已加入队列：{name}。它的文件夹 `{folder}` 已有结果：开始时这些结果会移到 "
                           "`{folder}/.previous/<时间>/`（不会删除，可在“查看的运行”中打开）。"
                           "想并排保留，请先改一个运行名。"),
                          ("⚠ Queued: {name}. Its folder `{folder}` already holds results: when it starts they "
                           "move to `{folder}/.previous/<time>/` (nothing is deleted; open them under “Run shown”). "
                           "To keep both side by side, give it another run name first.")),
    "queue.pick": ("请先在列表下方选择一个运行。", "Pick a run below the list first."),
    "queue.refused": ("✖ 不能加入队列：", "✖ Cannot queue it:"),
})


def item_label(n: int, item: Item, lang: str) -> str:
    return f"{n}. {item.name} · {t('queue.state.' + item.state, lang)} ({item.id})"


def rows(items: list[Item], lang: str) -> list[list[Any]]:
    out = []
    for n, item in enumerate(items, 1):
        note = item.note
        if item.error:
            key = ("message_zh", "hint_zh") if lang == "zh" else ("message", "hint")
            note = " ".join(filter(None, (item.error.get(key[0]) or item.error.get("message"),
                                          item.error.get(key[1]) or item.error.get("hint"))))
        state = t("queue.state." + item.state, lang)
        if item.state == "running" and item.cancel:
            state += " " + t("queue.cancelling", lang)
        out.append([n, item.name, state, note])
    return out


def summary(q: Queue, state: str, lang: str) -> str:
    items = q.items()
    if not items:
        return t("queue.empty", lang)
    count = {s: sum(i.state == s for i in items) for s in ("queued", "done", "failed")}
    text = t("queue.summary", lang, **count)
    if q.paused():
        text += "\n\n" + t("queue.paused", lang)
    elif state in ("busy", "other"):
        text += "\n\n" + t(f"queue.{state}", lang)
    return text


def status(q: Queue, state: str, lang: str) -> Any:
    """The summary, led by what was recovered when queue.json was found damaged (orange: nothing was lost), until
    the user resumes the rebuilt queue (it is paused so that its order is looked at first)."""
    text = summary(q, state, lang)  # first: reading the queue is what finds it damaged
    damaged = q.damage_notices()
    if not damaged or not q.paused():
        return gr.update(value=text, elem_classes=[])
    return gr.update(value=f"⚠ {damaged[-1].text(lang)}\n\n{text}", elem_classes=i18n.LEVELS["warn"])


def _layout(ctx: AppContext, q: Queue, run: QueueRunner, lang0: str) -> SimpleNamespace:
    """The section's components: the summary, the list, Add / Pause, the picked item's buttons, the message."""
    B = ctx.tr.bind
    c = SimpleNamespace()
    with B(gr.Accordion(t("queue.title", lang0), open=True, elem_id="train-queue"), label="queue.title"):
        B(gr.Markdown(t("queue.intro", lang0)), value="queue.intro")
        c.status = gr.Markdown(summary(q, run.last, lang0), elem_id="train-queue-status")
        headers = [t(f"queue.col_{col}", lang0) for col in ("n", "name", "state", "note")]
        c.table = gr.Dataframe(headers=headers, value=rows(q.items(), lang0) or None, interactive=False,
                               elem_id="train-queue-list", wrap=True)
        with gr.Row():
            c.add = B(gr.Button(t("queue.add", lang0), variant="primary", elem_id="train-queue-add"),
                      value="queue.add")
            c.pause = gr.Button(t("queue.resume" if q.paused() else "queue.pause", lang0),
                                elem_id="train-queue-pause")
        with gr.Row():
            c.pick = B(gr.Dropdown([], value=None, label=t("queue.item", lang0), elem_id="train-queue-item",
                                   scale=3), label="queue.item")
            c.up = B(gr.Button(t("queue.up", lang0), elem_id="train-queue-up", scale=1), value="queue.up")
            c.down = B(gr.Button(t("queue.down", lang0), elem_id="train-queue-down", scale=1), value="queue.down")
            c.cancel = B(gr.Button(t("queue.cancel", lang0), elem_id="train-queue-cancel", scale=1),
                         value="queue.cancel")
            c.again = B(gr.Button(t("queue.requeue", lang0), elem_id="train-queue-requeue", scale=1),
                        value="queue.requeue")
            c.remove = B(gr.Button(t("queue.remove", lang0), variant="stop", elem_id="train-queue-remove", scale=1),
                         value="queue.remove")
        c.message = i18n.follow(gr.Markdown("", elem_id="train-queue-message"), ctx.lang)  # text in both languages
    c.seen = gr.State(None)
    return c


def _make_view(q: Queue, run: QueueRunner, outputs: list):
    """The handler that redraws the section from the queue file when it changed (on each of the Train tab's looks, and
    after each button): a queue changed by another page or the shell shows at the next look."""

    def key_of(items: list[Item], lang: str) -> list[Any]:
        return [[(i.id, i.state, i.cancel, bool(i.error)) for i in items], q.paused(), run.last, lang,
                len(q.damage_notices())]

    def view(lang: str, selected: str | None, last: Any, force: bool = False) -> list[Any]:
        items = q.items()
        key = key_of(items, lang)
        if not force and last == key:
            return [gr.update()] * len(outputs)
        choices = [(item_label(n, i, lang), i.id) for n, i in enumerate(items, 1)]
        value = selected if selected in {c[1] for c in choices} else None
        headers = [t(f"queue.col_{c}", lang) for c in ("n", "name", "state", "note")]
        return [status(q, run.last, lang), gr.update(value=rows(items, lang) or None, headers=headers),
                gr.update(choices=choices, value=value),
                gr.update(value=t("queue.resume" if q.paused() else "queue.pause", lang)), key]

    view.key = lambda lang: key_of(q.items(), lang)  # what the Train tab's light look compares
    return view


def build(ctx: AppContext, sup: Any, start_checks: Any) -> tuple[Any, list, list]:
    """The section; `start_checks(cfg, lang)` is the Start button's refusal list, asked before a run is queued.

    The section has no timer of its own: each gradio event costs the browser a pass over the whole app, so the Train
    tab's look (its refresh, a language switch) redraws the queue in the same event. Returns that look: the view, its
    inputs and its outputs."""
    q = Queue(ctx.outputs_dir)
    run: QueueRunner = runner(ctx.outputs_dir, sup)
    c = _layout(ctx, q, run, ctx.lang.value)
    outputs = [c.status, c.table, c.pick, c.pause, c.seen]
    view = _make_view(q, run, outputs)
    _wire_buttons(ctx, q, run, c, view, outputs, start_checks)
    return view, [ctx.lang, c.pick, c.seen], outputs


def _wire_buttons(ctx: AppContext, q: Queue, run: QueueRunner, c: SimpleNamespace, view, outputs: list,
                  start_checks: Any) -> None:
    """Add (the current config, refused as Start would refuse it), Pause / Resume, and the picked item's moves."""

    def on_add(config: dict, lang: str, selected: str | None):
        try:
            cfg = cfgmod.from_dict(config)
            problems = start_checks(cfg, lang)
            if problems:
                refused = i18n.both(lambda lg: t("queue.refused", lg) + "\n\n" + "\n\n".join(
                    f"- {p}" for p in start_checks(cfg, lg)), lang)
                return [refused, *view(lang, selected, None, True)]
            folder = run_dir_for(cfg, ctx.root)
            earlier = taken(folder)  # asked before the runner may start it (and move them)
            item = q.add(cfg)
        except DanluError as e:
            return [i18n.with_error("queue.refused", e, lang), *view(lang, selected, None, True)]
        run.tick()  # start at once when nothing runs
        if earlier:  # no surprise: say where the earlier results go
            said = i18n.both(lambda lg: t("queue.added_taken", lg, name=item.name, folder=folder), lang,
                             classes=["danlu-warn"])
        else:
            said = i18n.text("queue.added", lang, name=item.name)
        return [said, *view(lang, item.id, None, True)]

    c.add.click(*reads_form(ctx, on_add, [ctx.config, ctx.lang, c.pick]), [c.message, *outputs])  # as shown

    def action(fn: Any) -> Any:
        def handler(lang: str, selected: str | None):
            if fn is not None and not selected:
                return [i18n.text("queue.pick", lang), *view(lang, selected, None, True)]
            try:
                if fn is None:
                    q.set_paused(not q.paused())
                else:
                    fn(selected)
            except DanluError as e:
                return [i18n.both(e.text, lang), *view(lang, selected, None, True)]
            run.tick()
            time.sleep(0.1)
            return ["", *view(lang, selected, None, True)]
        return handler

    for button, fn in ((c.up, lambda i: q.move(i, -1)), (c.down, lambda i: q.move(i, +1)), (c.remove, q.remove),
                       (c.cancel, q.cancel), (c.again, q.requeue), (c.pause, None)):
        button.click(action(fn), [ctx.lang, c.pick], [c.message, *outputs])
