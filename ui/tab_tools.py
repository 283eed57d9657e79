"""The Tools tab (工具): the LoRA toolbox (models/toolbox) on the page: Inspect (drop a file), Resize, Merge,
Extract and Convert, the same functions as `python launcher.py lora ...`.

Each section runs its tool in a worker (ui/tools_jobs.py) with progress, ETA and Cancel, and says the result in a
status line (ok green, warn orange, error red). Results are written under outputs/tools/ and offered for download;
an input is never overwritten. Base checkpoints are given as paths (they can be many GB: no upload copy).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from ui import i18n
from ui.context import AppContext
from ui.i18n import t
from ui.tools_jobs import cancel_tool, need_file, output_path, parse_weights, refused, run_on_file, run_tool

TAB_ID = "tools"
TAB_KEY = "tools.tab"
METHODS = ("fixed", "sv_ratio", "sv_fro", "sv_cumulative")
PRECISIONS = ("same", "fp16", "bf16", "float")

i18n.add({
    "tools.tab": ("工具", "Tools"),
    "tools.intro": ("训练之后常用的 LoRA 工具：查看、缩小秩、合并、提取、转换格式。"
                    "结果写入 outputs/tools/，不会覆盖输入文件；"
                    "在命令行中，launcher.py 的 LoRA 子命令（lora）做同样的事。",
                    "The LoRA tools used after training: inspect, resize, merge, extract, convert. Results go to "
                    "outputs/tools/ and never overwrite an input; `python launcher.py lora …` does the same from a "
                    "shell."),
    "tools.start": ("开始", "Start"),
    "tools.cancel": ("取消", "Cancel"),
    "tools.result": ("结果文件", "Result file"),
    "tools.out_name": ("输出文件名（可留空）", "Output name (may be empty)"),
    "tools.lora_file": ("LoRA 文件", "LoRA file"),
    "tools.precision": ("保存精度", "Save precision"),
    "tools.precision.same": ("与输入相同", "as the input"),
    "tools.precision.float": ("32 位浮点（float）", "float (fp32)"),
    "tools.rank": ("秩", "Rank"),
    "tools.method": ("方法", "Method"),
    "tools.method.fixed": ("固定秩（fixed）", "fixed rank"),
    "tools.method.sv_ratio": ("奇异值比例（sv_ratio）", "sv_ratio"),
    "tools.method.sv_fro": ("保留范数比例（sv_fro）", "sv_fro"),
    "tools.method.sv_cumulative": ("累计奇异值比例（sv_cumulative）", "sv_cumulative"),
    "tools.param": ("动态方法的阈值（sv_ratio 如 2；sv_fro / sv_cumulative 如 0.9）",
                    "Threshold of a dynamic method (sv_ratio e.g. 2; sv_fro / sv_cumulative e.g. 0.9)"),
    "tools.inspect": ("查看 LoRA", "Inspect a LoRA"),
    "tools.inspect_hint": ("把 LoRA 文件拖到这里：显示底模系列、秩与 alpha、训练设置、触发词，"
                           "以及 WebUI、ComfyUI、diffusers 是否读取全部键。",
                           "Drop a LoRA file here: its family, ranks and alphas, training settings, "
                           "trigger words, and whether WebUI, ComfyUI and diffusers take every key."),
    "tools.inspecting": ("读取文件", "Reading the file"),
    "tools.meta": ("编辑元数据（写入新文件，张量不变）",
                   "Edit the metadata (written to a new file, tensors unchanged)"),
    "tools.meta.title": ("标题", "Title"),
    "tools.meta.triggers": ("触发词（逗号分隔）", "Trigger words (comma separated)"),
    "tools.meta.description": ("说明", "Description"),
    "tools.meta.cover": ("封面图片（留空 = 不要封面）", "Cover image (empty = no cover)"),
    "tools.meta.save": ("保存为新文件", "Save as a new file"),
    "tools.meta.saving": ("写入元数据", "Writing the metadata"),
    "tools.meta.saved": ("已写入新文件，张量逐字节未变。\n\n"
                         "标题：{title} · 触发词：{words} · 说明：{description} · 封面：{cover}",
                         "Written to a new file; the tensors are unchanged byte for byte.\n\ntitle: {title} · "
                         "trigger words: {words} · description: {description} · cover: {cover}"),
    "tools.meta.none": ("无", "none"),
    "tools.meta.has_cover": ("有", "yes"),
    "tools.resize": ("缩小秩（resize）", "Resize"),
    "tools.resizing": ("缩小秩", "Resizing"),
    "tools.merge": ("合并", "Merge"),
    "tools.merging": ("合并", "Merging"),
    "tools.merge_files": ("要合并的 LoRA 文件（可多选）", "LoRA files to merge (several)"),
    "tools.weights": ("各文件的权重（按顺序，逗号分隔）", "Weight of each file (in order, comma separated)"),
    "tools.merge_into": ("合并为", "Merge into"),
    "tools.merge_into.lora": ("一个 LoRA", "one LoRA"),
    "tools.merge_into.base": ("底模（单文件大模型）", "the base model (a single-file checkpoint)"),
    "tools.merge_rank": ("合并后的秩（0 = 直接拼接，精确）", "Rank of the result (0 = concatenate, exact)"),
    "tools.base_path": ("底模文件路径（.safetensors）", "Base checkpoint path (.safetensors)"),
    "tools.extract": ("从大模型提取 LoRA", "Extract a LoRA from a checkpoint"),
    "tools.extracting": ("提取", "Extracting"),
    "tools.tuned_path": ("微调后的模型路径（.safetensors）", "Fine-tuned checkpoint path (.safetensors)"),
    "tools.conv_rank": ("卷积层的秩（0 = 不提取卷积层）", "Conv rank (0 = no conv layers)"),
    "tools.convert": ("转换格式", "Convert the layout"),
    "tools.converting": ("转换", "Converting"),
    "tools.target": ("目标格式", "Target layout"),
    "tools.layout.kohya": ("kohya 格式，WebUI / ComfyUI / diffusers 通用（kohya）",
                           "kohya (WebUI, ComfyUI and diffusers)"),
    "tools.layout.peft": ("diffusers 自有格式（peft）", "peft (diffusers' own)"),
    "tools.layout.diffusers": ("diffusers 层名（diffusers）", "diffusers layer names"),
    "tools.layout.comfyui": ("ComfyUI 原生层名，q/k/v 合一（comfyui）", "ComfyUI native names, fused qkv"),
})


def _method_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"tools.method.{m}", lang), m) for m in METHODS]


def _precision_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"tools.precision.{p}", lang) if p in ("same", "float") else p, p) for p in PRECISIONS]


def _into_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"tools.merge_into.{k}", lang), k) for k in ("lora", "base")]


def layout_choices(names: list[str] | tuple[str, ...], lang: str) -> list[tuple[str, str]]:
    """A family's layouts as choices; a layout without a text here shows its own name."""
    return [(t(f"tools.layout.{n}", lang) if f"tools.layout.{n}" in i18n.STRINGS else n, n) for n in names]


def _actions(ctx: AppContext, name: str, lang: str, with_output: bool = True, start_key: str = "tools.start",
             can_cancel: bool = True) -> SimpleNamespace:
    """Start / Cancel, the progress and status lines (in both languages) and the result file of one section."""
    B = ctx.tr.bind
    a = SimpleNamespace(token=gr.State(""))
    if with_output:
        a.out_name = B(gr.Textbox(label=t("tools.out_name", lang), elem_id=f"tools-{name}-out"),
                       label="tools.out_name")
    with gr.Row():
        a.start = B(gr.Button(t(start_key, lang), variant="primary", elem_id=f"tools-{name}-start"),
                    value=start_key)
        # A quick tool (the metadata copy) cannot be stopped half way: it shows no Cancel.
        a.cancel = B(gr.Button(t("tools.cancel", lang), variant="stop", interactive=False, visible=can_cancel,
                               elem_id=f"tools-{name}-cancel"), value="tools.cancel")
    a.progress = i18n.follow(gr.Markdown("", elem_id=f"tools-{name}-progress"), ctx.lang)
    a.status = i18n.follow(gr.Markdown("", elem_id=f"tools-{name}-status"), ctx.lang)
    # Shown once there is a file: an empty download box is a large blank area.
    a.file = B(gr.File(label=t("tools.result", lang), interactive=False, height=90, visible=False,
                       elem_id=f"tools-{name}-file"),
               label="tools.result")  # Inspect writes no file: its box stays hidden
    a.outputs = [a.token, a.progress, a.status, a.file, a.start, a.cancel]
    a.cancel.click(cancel_tool, [a.token, ctx.lang], a.status)
    return a


def _precision(value: str) -> str | None:
    return None if value in ("", "same", None) else value


def _report_text(report: Any, lang: str) -> str:
    return report.text(lang)


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    tools_dir = Path(ctx.outputs_dir) / "tools"
    B(gr.Markdown(t("tools.intro", lang0)), value="tools.intro")
    c = SimpleNamespace()

    with B(gr.Accordion(t("tools.inspect", lang0), open=True, elem_id="tools-inspect"), label="tools.inspect"):
        B(gr.Markdown(t("tools.inspect_hint", lang0)), value="tools.inspect_hint")
        c.inspect_file = B(gr.File(label=t("tools.lora_file", lang0), file_types=[".safetensors"], height=120,
                                 elem_id="tools-inspect-file"), label="tools.lora_file")
        c.ins = _actions(ctx, "inspect", lang0, with_output=False)
        with B(gr.Accordion(t("tools.meta", lang0), open=False, elem_id="tools-meta"), label="tools.meta"):
            with gr.Row():
                c.meta_title = B(gr.Textbox(label=t("tools.meta.title", lang0), elem_id="tools-meta-title"),
                                 label="tools.meta.title")
                c.meta_triggers = B(gr.Textbox(label=t("tools.meta.triggers", lang0), elem_id="tools-meta-triggers"),
                                    label="tools.meta.triggers")
            with gr.Row():
                c.meta_description = B(gr.Textbox(label=t("tools.meta.description", lang0), lines=4,
                                                   elem_id="tools-meta-description"), label="tools.meta.description")
                c.meta_cover = B(gr.Image(label=t("tools.meta.cover", lang0), type="filepath", height=200,
                                          sources=["upload", "clipboard"], elem_id="tools-meta-cover"),
                                 label="tools.meta.cover")
            c.meta = _actions(ctx, "meta", lang0, start_key="tools.meta.save", can_cancel=False)

    with B(gr.Accordion(t("tools.resize", lang0), open=False, elem_id="tools-resize"), label="tools.resize"):
        c.resize_file = B(gr.File(label=t("tools.lora_file", lang0), file_types=[".safetensors"], height=120,
                                elem_id="tools-resize-file"), label="tools.lora_file")
        with gr.Row():
            c.resize_method = B(gr.Radio(_method_choices(lang0), value="fixed", label=t("tools.method", lang0),
                                       elem_id="tools-resize-method"), label="tools.method", choices=_method_choices)
            c.resize_rank = B(gr.Number(8, precision=0, minimum=1, label=t("tools.rank", lang0),
                                      elem_id="tools-resize-rank"), label="tools.rank")
        with gr.Row():
            c.resize_param = B(gr.Number(None, label=t("tools.param", lang0), elem_id="tools-resize-param"),
                             label="tools.param")
            c.resize_precision = B(gr.Dropdown(_precision_choices(lang0), value="same",
                                               label=t("tools.precision", lang0),
                                             elem_id="tools-resize-precision"), label="tools.precision",
                                 choices=_precision_choices)
        c.rsz = _actions(ctx, "resize", lang0)

    with B(gr.Accordion(t("tools.merge", lang0), open=False, elem_id="tools-merge"), label="tools.merge"):
        c.merge_files = B(gr.File(label=t("tools.merge_files", lang0), file_count="multiple",
                                  file_types=[".safetensors"],
                                height=120, elem_id="tools-merge-files"), label="tools.merge_files")
        c.merge_weights = B(gr.Textbox("1.0", label=t("tools.weights", lang0), elem_id="tools-merge-weights"),
                          label="tools.weights")
        with gr.Row():
            c.merge_into = B(gr.Radio(_into_choices(lang0), value="lora", label=t("tools.merge_into", lang0),
                                    elem_id="tools-merge-into"), label="tools.merge_into", choices=_into_choices)
            c.merge_rank = B(gr.Number(0, precision=0, minimum=0, label=t("tools.merge_rank", lang0),
                                     elem_id="tools-merge-rank"), label="tools.merge_rank")
        c.merge_base = B(gr.Textbox(_config_base(ctx.config.value), label=t("tools.base_path", lang0),
                                  elem_id="tools-merge-base"), label="tools.base_path")
        c.mrg = _actions(ctx, "merge", lang0)

    with B(gr.Accordion(t("tools.extract", lang0), open=False, elem_id="tools-extract"), label="tools.extract"):
        c.extract_base = B(gr.Textbox(_config_base(ctx.config.value), label=t("tools.base_path", lang0),
                                    elem_id="tools-extract-base"), label="tools.base_path")
        c.extract_tuned = B(gr.Textbox(label=t("tools.tuned_path", lang0), elem_id="tools-extract-tuned"),
                          label="tools.tuned_path")
        with gr.Row():
            c.extract_method = B(gr.Radio(_method_choices(lang0), value="fixed", label=t("tools.method", lang0),
                                        elem_id="tools-extract-method"), label="tools.method", choices=_method_choices)
            c.extract_rank = B(gr.Number(16, precision=0, minimum=1, label=t("tools.rank", lang0),
                                       elem_id="tools-extract-rank"), label="tools.rank")
            c.extract_conv = B(gr.Number(0, precision=0, minimum=0, label=t("tools.conv_rank", lang0),
                                       elem_id="tools-extract-conv"), label="tools.conv_rank")
        c.extract_param = B(gr.Number(None, label=t("tools.param", lang0), elem_id="tools-extract-param"),
                          label="tools.param")
        c.ext = _actions(ctx, "extract", lang0)

    with B(gr.Accordion(t("tools.convert", lang0), open=False, elem_id="tools-convert"), label="tools.convert"):
        c.convert_file = B(gr.File(label=t("tools.lora_file", lang0), file_types=[".safetensors"], height=120,
                                 elem_id="tools-convert-file"), label="tools.lora_file")
        c.convert_target = gr.Radio([], label=t("tools.target", lang0), elem_id="tools-convert-target")
        c.convert_layouts = gr.State([])  # the file's target layouts, relabelled when the language changes
        B(c.convert_target, label="tools.target")
        c.cnv = _actions(ctx, "convert", lang0)

    _wire(ctx, tools_dir, c)


def _wire(ctx: AppContext, tools_dir: Path, c: SimpleNamespace) -> None:
    """Each section's Start runs its tool (ui/tools_jobs.run_tool) into that section's lines."""
    from models.toolbox import convert, extract, inspect, merge, resize

    def on_inspect(path, lang):
        if not path:
            yield "", "", "", gr.update(), gr.update(interactive=True), gr.update(interactive=False)
            return
        yield from run_tool("tools.inspecting", lambda job: inspect.inspect_lora(path), lambda r, lg: r.report(lg),
                            lang, level=lambda r: "warn" if any(r.loaders.values()) else "ok")

    def on_resize(path, method, rank, param, precision, out_name, lang):
        yield from run_on_file("tools.resizing", path, tools_dir, out_name,
                               lambda src: f"{src.stem}-{method}-r{int(rank or 0)}",
                               lambda src, out, job: resize.resize_lora(
                                   src, out, rank=int(rank or 1), method=method, param=param or None,
                                   precision=_precision(precision), job=job), _report_text, lang)

    def on_merge(files, weights, into, rank, base, out_name, lang):
        try:
            paths = [need_file(f) for f in (files or [])] or [need_file(None)]
            inputs = list(zip(paths, parse_weights(weights, len(paths))))
            if into == "base":
                base_path = need_file(base)
                out = output_path(tools_dir, out_name, f"{base_path.stem}-{paths[0].stem}")
                work = lambda job: merge.merge_into_base(base_path, inputs, out, job=job)  # noqa: E731
            else:
                out = output_path(tools_dir, out_name, "-".join(p.stem for p in paths[:3]) + "-merged")
                work = lambda job: merge.merge_loras(inputs, out, rank=int(rank) or None, job=job)  # noqa: E731
        except Exception as exc:  # noqa: BLE001 - said on the page
            yield from refused(exc, lang)
            return
        yield from run_tool("tools.merging", work, _report_text, lang,
                            level=lambda r: "ok" if r.into_base or r.exact else "warn")

    def on_extract(base, tuned, method, rank, conv_rank, param, out_name, lang):
        try:
            base_path, tuned_path = need_file(base), need_file(tuned)
            out = output_path(tools_dir, out_name, f"{tuned_path.stem}-extracted-r{int(rank or 0)}")
        except Exception as exc:  # noqa: BLE001 - said on the page
            yield from refused(exc, lang)
            return
        yield from run_tool("tools.extracting", lambda job: extract.extract_lora(
            base_path, tuned_path, out, rank=int(rank or 1), conv_rank=int(conv_rank or 0), method=method,
            param=param or None, job=job), _report_text, lang, level=lambda r: "ok" if r.out else "warn")

    def on_convert_file(path, lang):
        """The target layouts the file's family offers, its own layout left out."""
        if not path:
            return gr.update(choices=[], value=None), "", []
        try:
            lora = convert.open_lora(path)
            names = [n for n in convert.layouts(lora.family) if n != convert.layout_of(lora)]
        except Exception as exc:  # noqa: BLE001 - said on the page
            return gr.update(choices=[], value=None), i18n.failed(exc, lang), []
        return gr.update(choices=layout_choices(names, lang), value=names[0] if names else None), "", names

    def on_convert(path, target, out_name, lang):
        yield from run_on_file("tools.converting", path, tools_dir, out_name, lambda src: f"{src.stem}-{target}",
                               lambda src, out, job: convert.convert_lora(src, out, target=target, job=job),
                               _report_text, lang)

    c.inspect_file.change(on_inspect, [c.inspect_file, ctx.lang], c.ins.outputs)
    c.ins.start.click(on_inspect, [c.inspect_file, ctx.lang], c.ins.outputs)
    c.rsz.start.click(on_resize, [c.resize_file, c.resize_method, c.resize_rank, c.resize_param, c.resize_precision,
                                  c.rsz.out_name, ctx.lang], c.rsz.outputs)
    c.mrg.start.click(on_merge, [c.merge_files, c.merge_weights, c.merge_into, c.merge_rank, c.merge_base,
                                 c.mrg.out_name, ctx.lang], c.mrg.outputs)
    c.ext.start.click(on_extract, [c.extract_base, c.extract_tuned, c.extract_method, c.extract_rank, c.extract_conv,
                                   c.extract_param, c.ext.out_name, ctx.lang], c.ext.outputs)
    c.convert_file.change(on_convert_file, [c.convert_file, ctx.lang],
                          [c.convert_target, c.cnv.status, c.convert_layouts])
    # The choices depend on the file, so the Translator's fixed bindings cannot relabel them: this listener does.
    ctx.lang.change(lambda names, value, lang: gr.update(choices=layout_choices(names, lang), value=value),
                    [c.convert_layouts, c.convert_target, ctx.lang], c.convert_target, show_progress="hidden")
    c.inspect_file.change(meta_fields, c.inspect_file,
                          [c.meta_title, c.meta_triggers, c.meta_description, c.meta_cover], show_progress="hidden")

    def on_save_meta(path, title, triggers, description, cover, out_name, lang):
        yield from save_metadata(tools_dir, path, title, triggers, description, cover, out_name, lang)

    c.meta.start.click(on_save_meta, [c.inspect_file, c.meta_title, c.meta_triggers, c.meta_description,
                                      c.meta_cover, c.meta.out_name, ctx.lang], c.meta.outputs)
    c.cnv.start.click(on_convert, [c.convert_file, c.convert_target, c.cnv.out_name, ctx.lang], c.cnv.outputs)
    ctx.config.change(lambda cfg, a, b: (a or _config_base(cfg), b or _config_base(cfg)),
                      [ctx.config, c.merge_base, c.extract_base], [c.merge_base, c.extract_base],
                      show_progress="hidden")


def meta_fields(path: Any) -> tuple[str, str, str, Any]:
    """Title, trigger words, description and cover (a PIL image or None) of a LoRA, to fill the edit form; empty
    fields for no file or one that is not a LoRA (the Inspect line says why)."""
    if not path:
        return "", "", "", None
    from models.toolbox.inspect import EDITABLE, inspect_lora

    try:
        meta = inspect_lora(path).metadata
    except Exception:  # noqa: BLE001 - the Inspect status line reports the same file's error
        return "", "", "", None
    return (meta.get(EDITABLE["title"], ""), meta.get(EDITABLE["trigger_words"], ""),
            meta.get(EDITABLE["description"], ""), _cover_image(meta.get(EDITABLE["cover"], "")))


def _cover_image(uri: str) -> Any:
    """modelspec's thumbnail (a base64 data URI) as a PIL image; None when absent or unreadable."""
    import base64
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    if "base64," not in uri:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(uri.split("base64,", 1)[1])))
        image.load()
    except (binascii.Error, OSError, UnidentifiedImageError, ValueError):
        return None
    return image


def save_metadata(tools_dir: Path, path: Any, title: str, triggers: str, description: str, cover: Any,
                  out_name: str, lang: str):
    """The edit form written as a NEW file under tools_dir (models.toolbox.inspect.edit_metadata: header rewritten,
    tensor bytes copied); what the form shows is what the file gets, so an emptied field is removed."""
    import re

    from models.toolbox.inspect import edit_metadata

    words = [w.strip() for w in re.split(r"[,，]", str(triggers or "")) if w.strip()]
    title, description = str(title or "").strip(), str(description or "").strip()

    def said(report: Any, code: str) -> str:
        """What the new file holds, an emptied field said as removed ("none")."""
        none = t("tools.meta.none", code)
        brief = description if len(description) <= 40 else description[:39] + "…"
        return t("tools.meta.saved", code, title=title or none, words=", ".join(words) or none,
                 description=brief or none, cover=t("tools.meta.has_cover", code) if cover else none)

    def work(src: Path, out: Path, job: Any) -> SimpleNamespace:
        written = edit_metadata(src, out, title=title, trigger_words=words, description=description,
                                cover=cover or "")
        return SimpleNamespace(out=written)

    yield from run_on_file("tools.meta.saving", path, tools_dir, out_name, lambda src: f"{src.stem}-meta", work,
                           said, lang)


def _config_base(config: dict) -> str:
    """The current run's base model, the usual base to merge into or extract against."""
    return str((config or {}).get("model", {}).get("base", "") or "")
