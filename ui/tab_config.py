"""The Config panel: load a run TOML (errors shown in the page), see it, export it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from core import config as cfgmod
from core import importers
from core.errors import ConfigError, DanluError
from ui import i18n
from ui.context import AppContext
from ui.i18n import t

TAB_ID = "config"
TAB_KEY = "config.tab"

i18n.add({
    "config.tab": ("配置文件", "Config"),
    "config.intro": ("运行配置（TOML）是唯一的真相来源：界面写它，训练读它，也可以在命令行用一条命令重跑。",
                     "The run's TOML is the single source of truth: the page writes it, the trainer reads it, "
                     "and a shell reruns it with one command."),
    "config.upload": ("上传 TOML 文件", "Upload a TOML file"),
    "config.text": ("TOML 内容（可粘贴）", "TOML text (paste here)"),
    "config.load": ("载入", "Load"),
    "config.export": ("导出 TOML", "Export TOML"),
    "config.download": ("下载", "Download"),
    "config.loaded": ("已载入配置。", "Config loaded."),
    "config.error": ("**配置有误：**", "**The config has an error:**"),
    "config.exported": ("已导出当前配置。", "Current config exported."),
    "config.import": ("导入其他训练器的配置（sd-scripts 的 TOML/参数文件、kohya_ss 的 JSON、lora-scripts 的 TOML）",
                      "Import another trainer's config (sd-scripts TOML or argument file, kohya_ss JSON, "
                      "lora-scripts TOML)"),
    "config.imported": ("已按 {kind} 格式导入：{mapped} 项已映射，{changed} 项已更改，{unsupported} 项无对应设置。"
                        "请检查下表，然后在各页确认。",
                        "Imported as {kind}: {mapped} mapped, {changed} changed, {unsupported} without a Danlu "
                        "setting. Check the table, then the tabs."),
})


def load_text(text: str, lang: str) -> tuple[dict | None, str]:
    """Validate TOML text; return (config dict, message for the page)."""
    try:
        cfg = cfgmod.loads(text or "", "config.toml")
    except ConfigError as e:
        return None, f"{t('config.error', lang)}\n\n{e.message(lang)}\n\n{e.hint(lang)}"
    return cfgmod.to_dict(cfg), t("config.loaded", lang)


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


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    ctx.tr.bind(gr.Markdown(t("config.intro", lang0)), value="config.intro")
    with gr.Row():
        upload = ctx.tr.bind(gr.File(label=t("config.upload", lang0), file_types=[".toml"], type="filepath",
                                     elem_id="config-upload"), label="config.upload")
        download = ctx.tr.bind(gr.File(label=t("config.download", lang0), interactive=False,
                                       elem_id="config-download"), label="config.download")
    peer = ctx.tr.bind(gr.File(label=t("config.import", lang0), file_types=[".toml", ".json", ".txt", ".sh", ".ps1",
                                                                            ".bat"],
                               type="filepath", elem_id="config-import"), label="config.import")
    text = ctx.tr.bind(gr.Code(cfgmod.dumps(cfgmod.default_config()), language=None, label=t("config.text", lang0),
                               interactive=True, elem_id="config-text", lines=18), label="config.text")
    with gr.Row():
        load_btn = ctx.tr.bind(gr.Button(t("config.load", lang0), variant="primary", elem_id="config-load"),
                               value="config.load")
        export_btn = ctx.tr.bind(gr.Button(t("config.export", lang0), elem_id="config-export"), value="config.export")
    message = i18n.follow(gr.Markdown("", elem_id="config-message"), ctx.lang)  # its text in both languages

    def on_load(text_value: str, lang: str, current: dict):
        data, _ = load_text(text_value, lang)
        return (data if data is not None else current), i18n.both(lambda lg: load_text(text_value, lg)[1], lang)

    def on_upload(path: str | None, lang: str, current: dict):
        if not path:
            return gr.update(), current, ""
        raw = Path(path).read_bytes()
        try:
            text_value = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            error = ConfigError("The file is not UTF-8 text.", "文件不是 UTF-8 文本。", "Save it as UTF-8.",
                                "请以 UTF-8 编码保存。")
            return gr.update(), current, i18n.with_error("config.error", error, lang)
        data, _ = load_text(text_value, lang)
        said = i18n.both(lambda lg: load_text(text_value, lg)[1], lang)
        return text_value, (data if data is not None else current), said

    def on_import(path: str | None, lang: str, current: dict):
        if not path:
            return gr.update(), current, ""
        said = {lg: import_peer(path, lg) for _, lg in i18n.LANG_CHOICES}  # a small file, read once per language
        text_value, data, _ = said[lang]
        msg = i18n.both(lambda lg: said[lg][2], lang)
        return (text_value if text_value is not None else gr.update()), (data if data is not None else current), msg

    def on_export(config: dict, lang: str):
        text_value, path = export(config)
        return text_value, path, i18n.text("config.exported", lang)

    load_btn.click(on_load, [text, ctx.lang, ctx.config], [ctx.config, message])
    upload.upload(on_upload, [upload, ctx.lang, ctx.config], [text, ctx.config, message])
    peer.upload(on_import, [peer, ctx.lang, ctx.config], [text, ctx.config, message])
    export_btn.click(on_export, [ctx.config, ctx.lang], [text, download, message])
