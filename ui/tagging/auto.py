"""Tagging tab, auto-tagger: a WD ONNX tagger writes caption files (options: taggers/options.py).

A section composed into the Tagging tab (`build` takes the tab's folder, trigger and caption extension); the
tab's editor reloads the captions when a run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core.dataset.tags import split_tags
from taggers.catalog import DEFAULT_TAGGER, TAGGERS, default_thresholds
from taggers.options import DEFAULTS, TagRequest, request_from
from taggers.wd14 import POLICIES
from ui import choices, i18n
from ui.context import AppContext
from ui.i18n import t
from ui.start import demo_taggers
from ui.tagging.state import device_line, get_tagger, job_failed, progress_html, session_key

MODEL_CHOICES = list(TAGGERS)   # taggers/catalog.py


def model_choices(outputs_dir: Path | None) -> list[str]:
    """The catalog's taggers, then the demo's offline tagger folders once the demo is made (ui/start.py)."""
    return MODEL_CHOICES + [str(p) for p in demo_taggers(outputs_dir)]

i18n.add({
    "tagging.auto": ("自动打标（WD1.4 / WD v3）", "Auto-tagger (WD1.4 / WD v3)"),
    "tagging.model": ("打标模型", "Tagger model"),
    "tagging.model_info": ("从列表选择（从 Hugging Face 下载并缓存），或填 hub id（org/name）或本地文件夹"
                           "（含 model.onnx 与 selected_tags.csv）。",
                           "Pick one (downloaded from Hugging Face and cached), or type a hub id (org/name) or a "
                           "local folder holding model.onnx and selected_tags.csv."),
    "tagging.general": ("普通标签阈值", "General tag threshold"),
    "tagging.character": ("角色标签阈值", "Character tag threshold"),
    "tagging.mcut_general": ("普通标签用 MCut 自动阈值", "MCut threshold for general tags"),
    "tagging.mcut_character": ("角色标签用 MCut 自动阈值", "MCut threshold for character tags"),
    "tagging.rating": ("添加分级标签（general/sensitive…）", "Add the rating tag (general/sensitive…)"),
    "tagging.no_character": ("不写角色标签", "Write no character tags"),
    "tagging.exclude": ("排除的标签（逗号分隔）", "Tags never written (comma-separated)"),
    "tagging.policy": ("已有标注时", "When a caption exists"),
    "tagging.policy_info": ("跳过、覆盖、追加在后或插在前。修改前都会备份原文件。",
                            "skip, overwrite, append after, prepend before. Every original is backed up first."),
    "tagging.batch": ("批大小", "Batch size"),
    "tagging.run": ("开始打标", "Tag images"),
    "tagging.cancel": ("取消", "Cancel"),
    "tagging.on_cpu": ("在 CPU 上打标", "Tagging on CPU"),
    "tagging.on_gpu": ("在 GPU（CUDA）上打标", "Tagging on GPU (CUDA)"),
    "tagging.fallback": ("⚠ 在 CPU 上打标（很慢）：{why}", "⚠ Tagging on CPU (slow): {why}"),
    "tagging.downloading": ("下载 {name}", "Downloading {name}"),
    "tagging.connecting": ("正在连接下载源：{name}…（无法连接时几秒内会报错）",
                           "Connecting to the download source: {name}… (an unreachable source fails within seconds)"),
    "tagging.speed": ("{rate:.2f} 张/秒 · 剩余约 {eta}", "{rate:.2f} images/s · ETA {eta}"),
    "tagging.starting": ("正在加载打标模型…（首次使用时从下载源下载；无法连接时几秒内会报错）",
                         "Loading the tagger… (downloaded from the download source the first time; an unreachable "
                         "source fails within seconds)"),
    "tagging.cancelling": ("正在取消，已完成的部分会保留…", "Cancelling; finished images are kept…"),
    "tagging.failed": ("✖ 无法读取的图片：", "✖ Images that could not be read:"),
    "tagging.keep_tokens": ("触发词已放在最前：若在“调参”中打开了打乱标注，请把 keep_tokens 设为 {n}，"
                            "触发词就不会被打乱。",
                            "The trigger is first: if you shuffle captions (Parameters), set keep_tokens = {n} so "
                            "shuffling never moves it."),
})

_CANCELS: dict[str, threading.Event] = {}


def model_threshold(model: str) -> float:
    """The general-tag default of a tagger (its card's P=R point, taggers/catalog.py), to two decimals."""
    return round(default_thresholds(model or "")[0], 2)


def _eta(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def follow_job(job: Callable, key: str, lang: str, cancels: dict[str, threading.Event],
               device_line: Callable[[dict], str], name: str):
    """Run `job(box, download, progress, cancel)` in a thread and yield (progress html, device line) while it runs;
    returns the box with the job's result under 'report' or its exception under 'error'. The tagger and the
    captioner both run this way, so their progress, cancel and download lines behave alike."""
    cancel = threading.Event()
    cancels[key] = cancel
    # `started`: a damaged download set aside from here on is this job's (ui.tagging.state.job_failed)
    box: dict[str, Any] = {"label": t("tagging.starting", lang), "done": 0, "total": 0, "started": time.time()}

    def download(name: str, done: int, total: int) -> None:
        if not total:  # a library that does not know the size yet: no 0/0 count
            box.update(label=t("tagging.connecting", lang, name=name), done=0, total=0)
            return
        box.update(label=t("tagging.downloading", lang, name=f"{name} ({done / 1e6:.0f}/{total / 1e6:.0f} MB)"),
                   done=done * 100 // max(total, 1), total=100)

    def progress(p) -> None:
        box.update(label=t("tagging.speed", lang, rate=p.images_per_s, eta=_eta(p.eta_s)), done=p.done, total=p.total)

    def work() -> None:
        try:
            box["report"] = job(box, download, progress, cancel)
        except Exception as e:  # noqa: BLE001 - shown in the page
            box["error"] = e

    thread = threading.Thread(target=work, daemon=True, name=name)
    thread.start()
    while thread.is_alive():
        thread.join(0.3)
        label = t("tagging.cancelling", lang) if cancel.is_set() else box["label"]
        yield progress_html(box["done"], box["total"], label), device_line(box)
    cancels.pop(key, None)
    return box


def failed_text(report: Any, lang: str) -> str:
    """The files a run could not read, one per line ('' when none)."""
    if not report.failed:
        return ""
    return t("tagging.failed", lang) + "\n" + "\n".join(f"- `{p.name}`: {why}" for p, why in report.failed)


def run_tagger(folder: str, req: TagRequest, lang: str, key: str, refusal: Callable[[str, str], str] | None = None):
    """Generator for the Run button: yields (progress html, status markdown) until the folder is tagged.
    `refusal(key, lang)`: a reason not to run now ('' when none), e.g. the editor's unsaved changes."""
    from taggers.pipeline import tag_folder

    refused = refusal(key, lang) if refusal else ""
    if refused:
        yield progress_html(0, 0, "—"), refused
        return

    def job(box: dict, download, progress, cancel):
        box["tagger"] = get_tagger(req.model, download=download)
        return tag_folder(Path(folder), box["tagger"], req.tag_options(), req.policy,
                          caption_extension=req.caption_extension, batch_size=max(1, req.batch_size),
                          progress=progress, cancel=cancel)

    box = yield from follow_job(job, key, lang, _CANCELS, lambda b: device_line(b.get("tagger"), lang),
                                "danlu-tagging")
    if "error" in box:
        yield progress_html(0, 0, "—"), job_failed(box["error"], box["started"], lang)
        return
    report = box["report"]

    def said(lg: str) -> str:
        lines = [device_line(box["tagger"], lg), report.summary(lg), report.rating_text(lg)]
        if split_tags(req.trigger) and report.written:
            lines.append(t("tagging.keep_tokens", lg, n=len(split_tags(req.trigger))))
        lines.append(failed_text(report, lg))
        return "\n\n".join(line for line in lines if line)

    yield progress_html(report.total, report.total, t("tagging.speed", lang, rate=report.images_per_s, eta="0:00")), \
        i18n.both(said, lang)


def build(ctx: AppContext, folder, trigger, ext, refusal: Callable[[str, str], str] | None = None):
    """The auto-tagger section; returns (model, general, character, the Run event) for the tab to chain on."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    with B(gr.Accordion(t("tagging.auto", lang0), open=True, elem_id="tagging-auto"), label="tagging.auto"):
        with gr.Row():
            model = B(gr.Dropdown(model_choices(ctx.outputs_dir), value="wd-vit-tagger-v3", allow_custom_value=True,
                                  label=t("tagging.model", lang0), info=t("tagging.model_info", lang0),
                                  elem_id="tagging-model", scale=3), label="tagging.model", info="tagging.model_info")
            policy = B(gr.Radio(choices.pairs(POLICIES, lang0), value=DEFAULTS["policy"],
                                label=t("tagging.policy", lang0), info=t("tagging.policy_info", lang0),
                                elem_id="tagging-policy", scale=3), label="tagging.policy", info="tagging.policy_info",
                       choices=choices.labelled(POLICIES))
            batch = B(gr.Number(DEFAULTS["batch_size"], precision=0, minimum=1, maximum=256,
                                label=t("tagging.batch", lang0),
                                elem_id="tagging-batch", scale=1), label="tagging.batch")
        with gr.Row():
            general = B(gr.Slider(0.05, 0.95, model_threshold(DEFAULT_TAGGER), step=0.01,
                                  label=t("tagging.general", lang0),
                                  elem_id="tagging-general"), label="tagging.general")
            character = B(gr.Slider(0.05, 0.99, 0.85, step=0.01, label=t("tagging.character", lang0),
                                    elem_id="tagging-character"), label="tagging.character")
            exclude = B(gr.Textbox("", label=t("tagging.exclude", lang0), elem_id="tagging-exclude"),
                        label="tagging.exclude")
        with gr.Row():
            mcut_g = B(gr.Checkbox(False, label=t("tagging.mcut_general", lang0)), label="tagging.mcut_general")
            mcut_c = B(gr.Checkbox(False, label=t("tagging.mcut_character", lang0)), label="tagging.mcut_character")
            rating = B(gr.Checkbox(False, label=t("tagging.rating", lang0)), label="tagging.rating")
            no_char = B(gr.Checkbox(False, label=t("tagging.no_character", lang0)), label="tagging.no_character")
        with gr.Row():
            run = B(gr.Button(t("tagging.run", lang0), variant="primary", elem_id="tagging-run"), value="tagging.run")
            cancel = B(gr.Button(t("tagging.cancel", lang0), variant="stop", elem_id="tagging-cancel"),
                       value="tagging.cancel")
        bar = gr.HTML(progress_html(0, 0, "—"), elem_id="tagging-progress")
        status = i18n.follow(gr.Markdown("", elem_id="tagging-status"), ctx.lang)  # its text in both languages
    # The auto-tagger's options by name (taggers/options.py declares them for this tab and the CLI).
    tag_inputs = {"general_threshold": general, "character_threshold": character, "mcut_general": mcut_g,
                  "mcut_character": mcut_c, "rating": rating, "no_character": no_char, "exclude": exclude,
                  "policy": policy, "batch_size": batch, "trigger": trigger, "caption_extension": ext}

    def on_run(request: gr.Request, path: str, mdl: str, lang: str, **values):
        yield from run_tagger(path, request_from(mdl, values), lang, session_key(request), refusal)

    def on_cancel(request: gr.Request):
        ev = _CANCELS.get(session_key(request))
        if ev:
            ev.set()


    run_event = run.click(on_run, [folder, model, ctx.lang], [bar, status], inputs_kwargs=tag_inputs)
    cancel.click(on_cancel, None, None, queue=False)
    model.change(model_threshold, model, general, show_progress="hidden")   # each tagger's own P=R point

    def relist(demo_run: str = ""):
        """The list with the demo's tagger; a demo just made (ctx.demo) picks it, so its tagging works offline."""
        listed = model_choices(ctx.outputs_dir)
        demo = [str(p) for p in demo_taggers(ctx.outputs_dir)]
        return gr.update(choices=listed, **({"value": demo[0]} if demo_run and demo else {}))

    if ctx.demo is not None:  # a demo made on the page, or (on a page load) one made since the page was built
        ctx.demo.change(relist, ctx.demo, model, show_progress="hidden")
        if gr.context.Context.root_block is not None:
            gr.context.Context.root_block.load(relist, None, model, show_progress="hidden")
    return model, general, character, run_event
