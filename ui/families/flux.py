"""FLUX.1's questions in the Model tab (the family UI seam: ui/families/__init__.py says the contract).

Detection reads dev or schnell from the weights (schnell has no guidance embedder) and the Model tab sets it; the
radio lets the user correct it, and asks where nothing told (a config written by hand, a family set by hand).
Choosing a [dev] base says once, in the message line, that its licence is non-commercial.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core import config as cfgmod
from ui import i18n
from ui.i18n import t

i18n.add({"model.family_name.flux": ("FLUX.1（Black Forest Labs）", "FLUX.1 (Black Forest Labs)"),
          "model.family_name.chroma": ("Chroma（lodestones，FLUX 架构）", "Chroma (lodestones, FLUX layout)")})

i18n.add({
    "model.flux_title": ("#### FLUX.1：dev 还是 schnell？\n\n"
                         "两者结构相同；schnell 没有引导（guidance）输入，按 4 步出图。检测能从权重读出时已自动选好。",
                         "#### FLUX.1: dev or schnell?\n\n"
                         "They share the architecture; schnell has no guidance input and samples in 4 steps. Where "
                         "the weights tell, detection has chosen it already."),
    "model.flux_variant": ("版本", "Variant"),
    "model.flux_dev": ("dev（引导蒸馏，20–28 步）", "dev (guidance-distilled, 20–28 steps)"),
    "model.flux_schnell": ("schnell（4 步）", "schnell (4 steps)"),
    "model.flux_te_off": ("已关闭 network.train_text_encoder：FLUX.1 默认只训练 transformer（同 sd-scripts 的 "
                          "--network_train_unet_only）。需要 CLIP-L 的 LoRA 时可打开它（T5 的输出照常缓存，"
                          "CLIP-L 每步重新编码）；T5 从不训练。",
                          "network.train_text_encoder is off: FLUX.1 trains its transformer only by default (as "
                          "sd-scripts' --network_train_unet_only). Turn it on for a CLIP-L LoRA (T5's outputs "
                          "stay cached, CLIP-L is encoded each step); T5 is never trained."),
    "model.flux_set": ("已设置：FLUX.1 {variant}。", "Set: FLUX.1 {variant}."),
    "model.flux_licence": ("注意：FLUX.1 [dev] 采用非商业许可（FLUX.1 [dev] Non-Commercial License）：用它训练的 "
                           "LoRA 及其出图不得商用，除非另获 Black Forest Labs 的商业授权。schnell 为 Apache-2.0。",
                           "Note: FLUX.1 [dev] is under a non-commercial licence (FLUX.1 [dev] Non-Commercial "
                           "License): LoRAs trained on it and their images may not be used commercially without a "
                           "commercial licence from Black Forest Labs. schnell is Apache-2.0."),
})

VARIANTS = cfgmod.FLUX_VARIANTS


def is_flux(config: dict, detected: str) -> bool:
    return detected == "flux" or (config.get("model") or {}).get("family") == "flux"


def variant_of(config: dict) -> str:
    """The config's FLUX variant; a value of another family (Z-Image's "turbo") reads as not answered: dev."""
    value = (config.get("model") or {}).get("variant", "")
    return value if value in VARIANTS else "dev"


def on_chosen(config: dict, notes: list[str], lang: str) -> tuple[dict, list[str]]:
    """A FLUX.1 base was chosen: the variant detection read is kept (or dev where nothing told), and a dev base
    brings the licence note."""
    variant = variant_of(config)
    if (config.get("model") or {}).get("variant") != variant:
        config = cfgmod.with_values(config, {"model.variant": variant})
    if (config.get("network") or {}).get("train_text_encoder"):
        config = cfgmod.with_values(config, {"network.train_text_encoder": False})
        notes = [*notes, t("model.flux_te_off", lang)]
    if variant == "dev":
        notes = [*notes, t("model.flux_licence", lang)]
    return config, notes


def _choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"model.flux_{v}", lang), v) for v in VARIANTS]


def build(ctx: Any, lang0: str) -> dict[str, Any]:
    """The FLUX group (hidden until a FLUX base is chosen); returns its components by name."""
    with gr.Group(visible=False, elem_id="model-flux") as group:
        ctx.tr.bind(gr.Markdown(t("model.flux_title", lang0), padding=True), value="model.flux_title")
        variant = ctx.tr.bind(gr.Radio(_choices(lang0), value="dev", label=t("model.flux_variant", lang0),
                                       elem_id="model-flux-variant"), label="model.flux_variant")
    return {"group": group, "variant": variant}


def wire(ctx: Any, parts: dict[str, Any], detected: Any, message: Any) -> None:
    """Events of the FLUX group; `detected` is a gr.State with the family the last check found, `message` the
    State of the message line (i18n.follow)."""
    variant = parts["variant"]

    def on_answer(v: str, config: dict, lang: str):
        new = cfgmod.with_values(config, {"model.variant": v})

        def said_in(lg: str) -> str:
            text = t("model.flux_set", lg, variant=v)
            return text + (f"  \n{t('model.flux_licence', lg)}" if v == "dev" else "")
        return new, i18n.both(said_in, lang, level="ok")

    def show(config: dict, found: str):
        if not is_flux(config, found):
            return gr.update(visible=False), gr.update()
        return gr.update(visible=True), gr.update(value=variant_of(config))

    variant.input(on_answer, [variant, ctx.config, ctx.lang], [ctx.config, message])
    for event in (ctx.config.change, detected.change):
        event(show, [ctx.config, detected], [parts["group"], variant], show_progress="hidden")
    ctx.lang.change(lambda lang: gr.update(choices=_choices(lang)), ctx.lang, variant, show_progress="hidden")
