"""The Config panel: the current run's TOML (what the form holds now), export, and loading a TOML or another
trainer's config, which first says what it will change and is applied only when the user confirms."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core import config as cfgmod
from core import importers
from core.errors import ConfigError, DanluError
from core.fsutil import read_user_text
from ui import config_file, i18n
from ui.config_file import applied
from ui.context import AppContext
from ui.form import COMMIT_GROUP, changes, reads_form
from ui.i18n import t

TAB_ID = "config"
TAB_KEY = "config.tab"

i18n.add({
    "config.tab": ("配置文件", "Config"),
    "config.intro": ("运行配置（TOML）是唯一的真相来源：界面写它，训练读它，也可以在命令行用一条命令重跑。",
                     "The run's TOML is the single source of truth: the page writes it, the trainer reads it, "
                     "and a shell reruns it with one command."),
    "config.current": ("当前运行的 TOML（表单现在的设置）", "The current run's TOML (what the form holds now)"),
    "config.upload": ("上传 TOML 文件", "Upload a TOML file"),
    "config.text": ("要载入的 TOML（可粘贴，或上传文件）", "TOML to load (paste it here, or upload a file)"),
    "config.load": ("载入", "Load"),
    "config.export": ("导出 TOML", "Export TOML"),
    "config.download": ("下载", "Download"),
    "config.error": ("**配置有误：**", "**The config has an error:**"),
    "config.exported": ("已导出当前配置。", "Current config exported."),
    "config.import": ("导入其他训练器的配置（sd-scripts 的 TOML/参数文件、kohya_ss 的 JSON、lora-scripts 的 TOML）",
                      "Import another trainer's config (sd-scripts TOML or argument file, kohya_ss JSON, "
                      "lora-scripts TOML)"),
    "config.imported": ("已按 {kind} 格式导入：{mapped} 项已映射，{changed} 项已更改，{unsupported} 项无对应设置。"
                        "请检查下表，然后在各页确认。",
                        "Imported as {kind}: {mapped} mapped, {changed} changed, {unsupported} without a Danlu "
                        "setting. Check the table, then the tabs."),
    "config.diff": ("载入后将改动 {n} 项设置（确认前不会改动任何设置）：",
                    "Loading this changes {n} settings (nothing changes until you apply them):"),
    "config.same": ("这份配置与当前设置相同，没有需要改动的。",
                    "This config matches the current settings: nothing to change."),
    "config.apply": ("应用这 {n} 项改动", "Apply these {n} changes"),
    "config.apply_one": ("应用这 1 项改动", "Apply this change"),
    "config.cancel": ("取消", "Cancel"),
    "config.applied": ("✔ 已应用 {n} 项改动。", "✔ Applied {n} changes."),
    "config.cancelled": ("已取消，设置没有改动。", "Cancelled: the settings are unchanged."),
})


def diff_text(current: dict, new: dict, lang: str) -> str:
    """What applying `new` changes, field by field, in lang; or that nothing would change."""
    lines = changes(current, new, lang)
    return t("config.diff", lang, n=len(lines)) + "\n\n" + "\n".join(lines) if lines else t("config.same", lang)


def apply_label(n: int, lang: str) -> str:
    return t("config.apply_one", lang) if n == 1 else t("config.apply", lang, n=n)


def import_peer(path: str, lang: str) -> tuple[str | None, dict | None, str]:
    """A peer's config file → (Danlu TOML text, config dict, message with the table of what became of each key)."""
    try:
        result = importers.import_file(path)
    except DanluError as e:
        return None, None, f"{t('config.error', lang)}\n\n{e.text(lang)}"
    counts = {s: sum(r.status == s for r in result.rows) for s in ("mapped", "changed", "unsupported")}
    head = t("config.imported", lang).format(kind=importers.FORMATS[result.kind], **counts)
    return cfgmod.dumps(result.config), cfgmod.to_dict(result.config), f"{head}\n\n{result.table(lang)}"


def export(config: dict) -> tuple[str, str]:
    """The current config as TOML text and a file to download."""
    text = cfgmod.dumps(cfgmod.from_dict(config))
    folder = Path(tempfile.mkdtemp(prefix="danlu-export-"))
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return text, str(path)


def current_toml(config: dict) -> str:
    try:
        return cfgmod.dumps(cfgmod.from_dict(config))
    except DanluError:  # the page only ever holds checked settings; a hand-made state must not break the tab
        return ""


def _asked(current: dict, data: dict, lang: str, head: Any = None) -> list[Any]:
    """The outputs of a load that asks first: [pending, message, confirm row, apply button]. The file's data is kept
    (not the settings it gives now), so Apply puts it onto the settings as they are then."""
    new = applied(current, data)
    n = len(changes(current, new, lang))
    said = i18n.both(lambda lg: (f"{head(lg)}\n\n" if head else "") + diff_text(current, new, lg), lang,
                     level="warn" if n else "ok")
    if not n:
        return [None, said, gr.update(visible=False), gr.update()]
    return [data, said, gr.update(visible=True), gr.update(value=apply_label(n, lang))]


def _hidden() -> list[Any]:
    """The confirm row's outputs when nothing is asked: [pending, confirm row, apply button] without the message."""
    return [None, gr.update(visible=False), gr.update()]


def on_load(text_value: str, lang: str, config: dict):
    try:
        return _asked(config, cfgmod.parse_toml(text_value or "", "config.toml"), lang)
    except ConfigError as e:
        return [None, i18n.with_error("config.error", e, lang), *_hidden()[1:]]


def on_upload(path: str | None, lang: str, config: dict):
    if not path:
        return [gr.update(), *_hidden()[:1], "", *_hidden()[1:]]
    try:  # binary, GBK, UTF-16, a gigabyte: named as what it is, never read whole
        text_value = read_user_text(Path(path), ("the config", "配置文件"), ("Give a run TOML saved as UTF-8.",
                                                                         "请提供以 UTF-8 保存的运行 TOML 文件。"))
    except DanluError as error:
        return [gr.update(), None, i18n.with_error("config.error", error, lang), *_hidden()[1:]]
    return [text_value, *on_load(text_value, lang, config)]


def on_import(path: str | None, lang: str, config: dict):
    if not path:
        return [gr.update(), None, "", *_hidden()[1:]]
    said = {lg: import_peer(path, lg) for _, lg in i18n.LANG_CHOICES}  # a small file, read once per language
    text_value, data, _ = said[lang]
    if data is None:
        return [gr.update(), None, i18n.both(lambda lg: said[lg][2], lang, level="error"), *_hidden()[1:]]
    return [text_value, *_asked(config, data, lang, head=lambda lg: said[lg][2])]


def on_apply(data: dict | None, config: dict, lang: str):
    if data is None:  # applied or cancelled already (a second click)
        return [config, None, "", *_hidden()[1:]]
    try:
        new = applied(config, data)
    except ConfigError as e:  # checked when loaded; kept here so a later rule cannot break the page
        return [config, None, i18n.with_error("config.error", e, lang), *_hidden()[1:]]
    n = len(changes(config, new, lang))
    return [new, None, i18n.text("config.applied", lang, level="ok", n=n), *_hidden()[1:]]


def on_cancel(lang: str):
    return [None, i18n.text("config.cancelled", lang), *_hidden()[1:]]


def on_export(config: dict, lang: str):
    try:
        text_value, path = export(config)
    except ConfigError as e:  # a value typed in the form that is not valid
        return gr.update(), gr.update(), i18n.with_error("config.error", e, lang)
    return text_value, gr.update(value=path, visible=True), i18n.text("config.exported", lang, level="ok")


def relabel(lang: str, data: dict | None, config: dict):
    try:
        n = len(changes(config, applied(config, data), lang)) if data else 0
    except ConfigError:
        n = 0
    return gr.update(value=apply_label(n, lang))


def _layout(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tab's components, top to bottom."""
    B = ctx.tr.bind
    B(gr.Markdown(t("config.intro", lang0)), value="config.intro")
    # A Textbox, not a Code view: its whole text is in the page (a code editor draws only the lines in view).
    current = B(gr.Textbox(current_toml(ctx.config.value), label=t("config.current", lang0), interactive=False,
                           lines=14, max_lines=24, buttons=["copy"], elem_id="config-current"), label="config.current")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=200):
            export_btn = B(gr.Button(t("config.export", lang0), elem_id="config-export"), value="config.export")
        # Shown once there is a file: an empty download box would push the load section out of view.
        download = B(gr.File(label=t("config.download", lang0), interactive=False, elem_id="config-download",
                             height=120, scale=3, visible=False), label="config.download")
    with gr.Row():
        upload = B(gr.File(label=t("config.upload", lang0), file_types=[".toml"], type="filepath",
                           elem_id="config-upload", height=150), label="config.upload")
        peer = B(gr.File(label=t("config.import", lang0), file_types=[".toml", ".json", ".txt", ".sh", ".ps1", ".bat"],
                         type="filepath", elem_id="config-import", height=150), label="config.import")
    text = B(gr.Code("", language=None, label=t("config.text", lang0), interactive=True, elem_id="config-text",
                     lines=8), label="config.text")
    load_btn = B(gr.Button(t("config.load", lang0), variant="primary", elem_id="config-load"), value="config.load")
    message = i18n.follow(gr.Markdown("", elem_id="config-message"), ctx.lang)  # its text in both languages
    # The settings a load would give, kept until the user applies or cancels them.
    pending = gr.State(None)
    with gr.Row(visible=False, elem_id="config-confirm") as confirm:
        apply_btn = gr.Button(apply_label(0, lang0), variant="primary", elem_id="config-apply")
        cancel_btn = B(gr.Button(t("config.cancel", lang0), elem_id="config-cancel"), value="config.cancel")
    return SimpleNamespace(current=current, export_btn=export_btn, download=download, upload=upload, peer=peer,
                           text=text, load_btn=load_btn, message=message, pending=pending, confirm=confirm,
                           apply_btn=apply_btn, cancel_btn=cancel_btn)


def build(ctx: AppContext) -> None:
    c = _layout(ctx, ctx.lang.value)
    asks = [c.pending, c.message, c.confirm, c.apply_btn]
    config_file.build(ctx, c.text, c.message, asks, on_load)   # a TOML file on disk: open, save, asked when changed
    # Loads read the settings as the form shows them, so the diff is against what the user sees.
    c.load_btn.click(*reads_form(ctx, on_load, [c.text, ctx.lang, ctx.config]), asks)
    c.upload.upload(*reads_form(ctx, on_upload, [c.upload, ctx.lang, ctx.config]), [c.text, *asks])
    c.peer.upload(*reads_form(ctx, on_import, [c.peer, ctx.lang, ctx.config]), [c.text, *asks])
    c.apply_btn.click(on_apply, [c.pending, ctx.config, ctx.lang], [ctx.config, *asks], concurrency_id=COMMIT_GROUP)
    c.cancel_btn.click(on_cancel, ctx.lang, asks)
    c.export_btn.click(*reads_form(ctx, on_export, [ctx.config, ctx.lang]), [c.current, c.download, c.message])

    # The current run's TOML follows the config, and is drawn again when the tab is opened.
    ctx.config.change(current_toml, ctx.config, c.current, show_progress="hidden")
    tab = gr.context.Context.block
    if isinstance(tab, gr.Tab):
        tab.select(current_toml, ctx.config, c.current, show_progress="hidden")
    ctx.lang.change(relabel, [ctx.lang, c.pending, ctx.config], c.apply_btn, show_progress="hidden")
