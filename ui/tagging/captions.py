"""Tagging tab, sentence captions: Florence-2 / Qwen3-VL, optionally with the WD tags of the auto-tagger above.

A section composed into the Tagging tab (`build` takes the tab's folder, trigger, extension and tagger
components). The run happens in a thread; the page polls its progress, and Cancel keeps what is written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr

from taggers.catalog import CAPTIONERS, DEFAULT_CAPTIONER
from ui import choices, i18n
from ui.context import AppContext
from ui.i18n import t
from ui.tagging.state import device_line, get_tagger, job_failed, progress_html, session_key, unsaved

STYLES = ("short", "detailed")
COMBINE = ("sentence", "tags", "sentence+tags")
POLICIES = ("skip", "overwrite")  # what a captioner does with a caption already there

i18n.add({
    "caption.section": ("自然语言描述（Florence-2 / Qwen-VL）", "Sentence captions (Florence-2 / Qwen-VL)"),
    "caption.intro": ("Z-Image、FLUX、Qwen-Image 等新模型用句子训练效果更好。可只写句子、只写 WD 标签，或句子加标签"
                      "（标签用上方自动打标的模型和阈值）。",
                      "Newer models (Z-Image, FLUX, Qwen-Image) learn better from sentences. Write sentences, WD "
                      "tags, or both (the tags use the tagger and thresholds of the auto-tagger above)."),
    "caption.model": ("描述模型", "Captioner model"),
    "caption.model_info": ("从列表选择（首次使用时下载并缓存），或填 hub id（org/name）或本地文件夹。"
                           "florence-2-base 在 CPU 上也可用；Qwen3-VL 建议使用 GPU。",
                           "Pick one (downloaded and cached on first use), or type a hub id (org/name) or a local "
                           "folder. florence-2-base is usable on a CPU; Qwen3-VL wants a GPU."),
    "caption.style": ("描述风格", "Caption style"),
    "caption.style_short": ("简短（一句话）", "Short (one sentence)"),
    "caption.style_detailed": ("详细", "Detailed"),
    "caption.combine": ("写入内容", "Write"),
    "caption.combine_sentence": ("仅句子", "Sentence only"),
    "caption.combine_tags": ("仅标签", "Tags only"),
    "caption.combine_sentence+tags": ("句子 + 标签", "Sentence + tags"),
    "caption.prefix": ("触发词放在最前", "Put the trigger word first"),
    "caption.max_length": ("最大长度（词元）", "Maximum length (tokens)"),
    "caption.policy": ("已有标注时", "When a caption exists"),
    "caption.policy_info": ("跳过，或覆盖（先备份原文件）。", "skip, or overwrite (the original is "
                                                                          "backed up first)."),
    "caption.batch": ("批大小", "Batch size"),
    "caption.run": ("开始描述", "Caption images"),
    "caption.cancel": ("取消", "Cancel"),
    "caption.on_gpu": ("在 GPU（CUDA）上生成描述", "Captioning on GPU (CUDA)"),
    "caption.on_cpu": ("⚠ 在 CPU 上生成描述：较慢，Qwen3-VL 尤其慢", "⚠ Captioning on CPU: slow, Qwen3-VL especially"),
    "caption.loading": ("加载模型…", "Loading the model…"),
})

_CANCELS: dict[str, threading.Event] = {}
_CAPTIONERS: dict[tuple[str, str], Any] = {}   # one loaded model, reused between runs
_LOAD_LOCK = threading.Lock()


def get_captioner(model: str, device: str = "auto", download: Any = None) -> Any:
    """The captioner for model, reusing the last one; only one is kept (Qwen3-VL-2B holds ~4 GB)."""
    from taggers.captioners import Captioner, resolve_captioner

    folder = resolve_captioner(model, download)
    key = (str(folder), device)
    with _LOAD_LOCK:
        if key not in _CAPTIONERS:
            _CAPTIONERS.clear()
            _CAPTIONERS[key] = Captioner(folder, device=device)
        return _CAPTIONERS[key]


def run_captioner(folder: str, model: str, style: str, combine: str, prefix: bool, max_length: int, policy: str,
                  batch: int, trigger: str, ext: str, tagger_model: str, general: float, character: float,
                  lang: str, key: str):
    """Generator for the Caption button: yields (progress html, status markdown) until the folder is done."""
    from taggers.caption_pipeline import CaptionOptions, caption_folder
    from ui.tagging.auto import failed_text, follow_job

    refusal = unsaved(key, lang)
    if refusal:
        yield progress_html(0, 0, "—"), refusal
        return

    def job(box: dict, download, progress, cancel):
        from taggers.wd14 import TagOptions

        opts = CaptionOptions(style=style, prefix=trigger if prefix else "", max_new_tokens=int(max_length),
                              combine=combine)
        captioner = tagger = None
        if combine != "tags":
            box["label"] = t("caption.loading", lang)
            captioner = box["captioner"] = get_captioner(model or DEFAULT_CAPTIONER, download=download)
        if combine != "sentence":
            tagger = box["tagger"] = get_tagger(tagger_model, download=download)
        return caption_folder(Path(folder), captioner, opts, policy, tagger=tagger,
                              tag_opts=TagOptions(general_threshold=general, character_threshold=character),
                              caption_extension=ext, batch_size=int(batch or 1), progress=progress, cancel=cancel)

    box = yield from follow_job(job, key, lang, _CANCELS, lambda b: device_text(b, lang, device_line),
                                "danlu-caption")
    if "error" in box:
        yield progress_html(0, 0, "—"), job_failed(box["error"], box["started"], lang)
        return
    report = box["report"]

    def said(lg: str) -> str:
        lines = [device_text(box, lg, device_line), report.summary(lg), failed_text(report, lg)]
        return "\n\n".join(line for line in lines if line)

    done = t("tagging.speed", lang, rate=report.images_per_s, eta="0:00")
    yield progress_html(report.total, report.total, done), i18n.both(said, lang)


def device_text(box: dict, lang: str, tagger_line) -> str:
    parts = []
    if box.get("captioner") is not None:
        parts.append(t("caption.on_gpu" if box["captioner"].on_gpu else "caption.on_cpu", lang))
    if box.get("tagger") is not None:
        parts.append(tagger_line(box["tagger"], lang))
    return " · ".join(parts)


def build(ctx: AppContext, folder, trigger, ext, tagger_model, general, character) -> None:
    """The section, inside the Tagging tab; the arguments are the tab's own components."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    with B(gr.Accordion(t("caption.section", lang0), open=False, elem_id="caption-section"),
           label="caption.section"):
        B(gr.Markdown(t("caption.intro", lang0)), value="caption.intro")
        with gr.Row():
            model = B(gr.Dropdown(list(CAPTIONERS), value=DEFAULT_CAPTIONER, allow_custom_value=True,
                                  label=t("caption.model", lang0), info=t("caption.model_info", lang0),
                                  elem_id="caption-model", scale=3), label="caption.model", info="caption.model_info")
            style = B(gr.Radio(_choices("style", STYLES, lang0), value="detailed", label=t("caption.style", lang0),
                               elem_id="caption-style", scale=2), label="caption.style")
            combine = B(gr.Radio(_choices("combine", COMBINE, lang0), value="sentence",
                                 label=t("caption.combine", lang0), elem_id="caption-combine", scale=3),
                        label="caption.combine")
        with gr.Row():
            prefix = B(gr.Checkbox(True, label=t("caption.prefix", lang0), elem_id="caption-prefix"),
                       label="caption.prefix")
            max_length = B(gr.Slider(16, 512, 200, step=8, label=t("caption.max_length", lang0),
                                     elem_id="caption-max-length"), label="caption.max_length")
            policy = B(gr.Radio(choices.pairs(POLICIES, lang0), value="skip", label=t("caption.policy", lang0),
                                info=t("caption.policy_info", lang0), elem_id="caption-policy"),
                       label="caption.policy", info="caption.policy_info", choices=choices.labelled(POLICIES))
            batch = B(gr.Number(4, precision=0, minimum=1, maximum=64, label=t("caption.batch", lang0),
                                elem_id="caption-batch"), label="caption.batch")
        with gr.Row():
            run = B(gr.Button(t("caption.run", lang0), variant="primary", elem_id="caption-run"), value="caption.run")
            cancel = B(gr.Button(t("caption.cancel", lang0), variant="stop", elem_id="caption-cancel"),
                       value="caption.cancel")
        bar = gr.HTML("", elem_id="caption-progress")
        status = i18n.follow(gr.Markdown("", elem_id="caption-status"), ctx.lang)  # its text in both languages

    def on_run(request: gr.Request, *args):
        yield from run_captioner(*args, session_key(request))

    def on_cancel(request: gr.Request):
        ev = _CANCELS.get(session_key(request))
        if ev:
            ev.set()

    def relabel(lang: str):
        return (gr.update(choices=_choices("style", STYLES, lang)),
                gr.update(choices=_choices("combine", COMBINE, lang)))

    run.click(on_run, [folder, model, style, combine, prefix, max_length, policy, batch, trigger, ext, tagger_model,
                       general, character, ctx.lang], [bar, status])
    cancel.click(on_cancel, None, None, queue=False)
    ctx.lang.change(relabel, ctx.lang, [style, combine], show_progress="hidden")


def _choices(kind: str, values: tuple[str, ...], lang: str) -> list[tuple[str, str]]:
    return [(t(f"caption.{kind}_{v}", lang), v) for v in values]

