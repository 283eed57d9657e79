"""The Model tab's download source row: hub, mirror or ModelScope, for every download the page and the trainer make
(base models, training adapters, taggers)."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from core import config as cfgmod
from core import download
from ui import i18n
from ui.i18n import t

# The environment the page started with: 'auto' in the page goes back to it.
STARTUP_ENV = {k: os.environ.get(k) for k in (download.ENV_SOURCE, download.ENV_MIRROR)}

i18n.add({
    "model.source": ("下载源", "Download source"),
    "model.source_auto": ("自动（环境变量）", "Auto (environment)"),
    "model.source_huggingface": ("Hugging Face", "Hugging Face"),
    "model.source_mirror": ("Hugging Face 镜像", "Hugging Face mirror"),
    "model.source_modelscope": ("ModelScope 魔搭", "ModelScope"),
    "model.mirror": ("镜像地址", "Mirror address"),
    "model.source_set": ("下载源：{source}（底模、训练适配器和打标模型都从这里下载）。",
                         "Download source: {source} (base models, training adapters and taggers come from here)."),
})


def _has(config: dict, section: str, name: str) -> bool:
    return any(s.section == section and s.name == name for s in cfgmod.schema())


def source_text(config: dict, lang: str) -> str:
    model = config.get("model") or {}
    try:
        source = download.resolve(model.get("download_source", "auto"), model.get("hub_mirror") or None)
    except Exception:  # noqa: BLE001 - an unknown value is reported by the config check
        return ""
    return t("model.source_set", lang, source=source.label(lang))


def build_source(ctx: Any, lang0: str) -> tuple[Any, Any]:
    """The download source dropdown and mirror address, bound to model.download_source / model.hub_mirror."""
    choices = [(t(f"model.source_{k}", lang0), k) for k in download.SETTINGS]
    with gr.Row(equal_height=True):
        source = ctx.tr.bind(gr.Dropdown(choices, value="auto", label=t("model.source", lang0), scale=1,
                                         elem_id="model-source"), label="model.source")
        mirror = ctx.tr.bind(gr.Textbox(download.DEFAULT_MIRROR, label=t("model.mirror", lang0), visible=False,
                                        scale=2, elem_id="model-mirror", max_lines=1), label="model.mirror")
    return source, mirror


def on_source(value: str, mirror: str, config: dict, lang: str):
    """Remember the source in the run config (when the schema has the field) and use it in this process."""
    new = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    if _has(config, "model", "download_source"):
        new["model"]["download_source"] = value
    if _has(config, "model", "hub_mirror") and value == "mirror":
        new["model"]["hub_mirror"] = (mirror or "").strip()
    if value == "auto":
        for key, old in STARTUP_ENV.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    download.apply(value, (mirror or "").strip() or None)
    return new, gr.update(visible=value == "mirror"), i18n.both(lambda lg: source_text(new, lg), lang)
