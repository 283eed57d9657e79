"""Z-Image's questions in the Model tab (the family UI seam: ui/families/__init__.py says the contract).

A Z-Image header cannot tell Turbo, De-Turbo and Base apart, so the page asks; for Turbo it asks which
training adapter to merge while training (v1, v2 or a local file), and proposes the matching preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core import config as cfgmod
from ui import i18n
from ui.i18n import t

ADAPTERS = ("v2", "v1", "file", "none")
PRESET_FOR = {"turbo": "zimage_turbo_adapter", "deturbo": "zimage_deturbo", "base": "zimage_deturbo"}

i18n.add({"model.family_name.zimage": ("Z-Image（通义造相）", "Z-Image (Tongyi-MAI)")})

i18n.add({
    "model.zimage_title": ("#### Z-Image：请选择版本（文件头无法区分）\n\n"
                           "训练出的 LoRA 需要 ComfyUI 0.3.76 或更新版本（旧版本会跳过注意力层且不报错）。",
                           "#### Z-Image: which one is it? (the file header cannot tell)\n\n"
                           "Its LoRA files need ComfyUI 0.3.76 or newer (older versions skip the attention layers "
                           "without an error)."),
    "model.zimage_variant": ("版本", "Variant"),
    "model.zimage_turbo": ("Turbo（8 步蒸馏版）", "Turbo (8-step distilled)"),
    "model.zimage_deturbo": ("De-Turbo（去蒸馏版）", "De-Turbo (de-distilled)"),
    "model.zimage_base": ("Base（基础版）", "Base"),
    "model.adapter": ("训练适配器（仅训练时合并，不会保存进 LoRA）",
                      "Training adapter (merged for training only, never saved in the LoRA)"),
    "model.adapter_v2": ("v2（推荐）", "v2 (recommended)"),
    "model.adapter_v1": ("v1", "v1"),
    "model.adapter_file": ("本地文件", "Local file"),
    "model.adapter_none": ("不用（直接训练 Turbo，会失去 8 步能力）",
                           "None (train Turbo directly: it loses its 8-step behaviour)"),
    "model.adapter_default": ("Turbo：已选用训练适配器 v2（推荐；下方可改为 v1、本地文件或不用）。",
                              "Turbo: training adapter v2 chosen (recommended; change it below to v1, a local file "
                              "or none)."),
    "model.te_off": ("Z-Image 的文本编码器不参与训练：已关闭 network.train_text_encoder。",
                     "Z-Image's text encoder is not trained: network.train_text_encoder is off."),
    "model.adapter_path": ("适配器文件（.safetensors）", "Adapter file (.safetensors)"),
    "model.adapter_path_info": ("训练适配器的路径；底模旁边找到的适配器会自动填入。",
                                "The training adapter's path; an adapter found beside the base is filled in."),
    "model.adapter_file_needed": ("已选“本地文件”：请在下方填入训练适配器文件（.safetensors）的路径；"
                                  "在此之前不使用适配器。",
                                  "Local file chosen: enter the training adapter file's path (.safetensors) below; "
                                  "until then no adapter is used."),
    "model.adapter_found": ("已填入底模旁边找到的训练适配器：{path}", "Filled in the training adapter found beside "
                            "the base: {path}"),
    "model.preset_proposal": ("建议预设：**{name}**（rank {rank}、学习率 {lr}、{opt}、{total} 步、"
                              "每 {every} 步保存并出样图，样图 {steps} 步、CFG {cfg}）。",
                              "Proposed preset: **{name}** (rank {rank}, LR {lr}, {opt}, {total} steps, a file and "
                              "samples every {every} steps; samples at {steps} steps, CFG {cfg})."),
    "model.preset_use": ("使用建议预设", "Use the proposed preset"),
    "model.preset_used": ("已载入预设「{name}」，改动了 {n} 项；可在“调参”页查看和修改。",
                          "Preset '{name}' loaded, {n} settings changed; see and edit them in the Parameters tab."),
    "model.zimage_set": ("已设置：Z-Image {variant}，训练适配器 {adapter}。",
                         "Set: Z-Image {variant}, training adapter {adapter}."),
})

def adapter_choice(value: str) -> tuple[str, str]:
    """The config's training_adapter as (radio value, file path)."""
    value = (value or "none").strip()
    return (value, "") if value in ("v1", "v2", "none") else ("file", value)


def adapter_candidates(base: str, folders: list[Path]) -> list[str]:
    """Training adapter files (*adapter*.safetensors) beside the base (in its folder or the one above, where
    `launcher.py demo` writes its tiny adapter) and in the models folders, nearest first."""
    places: list[Path] = []
    if base and Path(base).exists():
        p = Path(base)
        places += ([p] if p.is_dir() else []) + [p.parent]
    places += folders
    found: list[str] = []
    for folder in places:
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir(), key=lambda q: q.name.lower()):
            if f.is_file() and f.suffix.lower() == ".safetensors" and "adapter" in f.name.lower() \
                    and str(f) not in found:
                found.append(str(f))
    return found


def zimage_update(config: dict, variant: str, adapter: str, adapter_file: str) -> dict:
    """The config with the user's Z-Image answers; the adapter is Turbo's only."""
    new = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    new["model"]["variant"] = variant
    value = adapter_file.strip() if adapter == "file" else adapter
    new["model"]["training_adapter"] = (value or "none") if variant == "turbo" else "none"
    return new


def preset_title(name: str, lang: str) -> str:
    """The preset's name as the Parameters tab shows it."""
    from ui.tab_params import PRESET_NAMES

    zh, en = PRESET_NAMES.get(name, (name, name))
    return zh if lang == "zh" else en


def proposal(variant: str, lang: str) -> str:
    from core.config.presets import PRESETS

    name = PRESET_FOR.get(variant, "")
    if name not in PRESETS:
        return ""
    # The preset's own values, over the defaults it leaves alone.
    cfg = cfgmod.merge_dict(cfgmod.default_config(), PRESETS[name])
    return t("model.preset_proposal", lang, name=preset_title(name, lang), rank=cfg.network.rank,
             lr=f"{cfg.optimizer.lr:.0e}".replace("e-0", "e-") if cfg.optimizer.lr < 1e-3 else f"{cfg.optimizer.lr:g}",
             opt=cfg.optimizer.name, total=cfg.training.max_train_steps,
             every=cfg.saving.every_n_steps, steps=cfg.sampling.steps, cfg=f"{cfg.sampling.cfg:g}")


def use_preset(config: dict, variant: str, lang: str) -> tuple[dict, str]:
    """Load the variant's preset, keeping the user's base, variant and adapter answers."""
    from core.config.presets import PRESETS

    name = PRESET_FOR[variant]
    new = cfgmod.to_dict(cfgmod.merge_dict(cfgmod.from_dict(config), PRESETS[name]))
    for key in ("base", "variant", "training_adapter", "vae"):
        new["model"][key] = config["model"][key]
    n = sum(new[s][k] != config[s][k] for s in new if isinstance(new[s], dict) for k in new[s])
    return new, t("model.preset_used", lang, name=preset_title(name, lang), n=n)


def on_chosen(config: dict, notes: list[str], lang: str) -> tuple[dict, list[str]]:
    """A Z-Image base was chosen: its text encoder is not trained, and a Turbo without an adapter gets the
    recommended one (v2); each change is said in a note."""
    if (config.get("network") or {}).get("train_text_encoder"):
        config = cfgmod.with_values(config, {"network.train_text_encoder": False})
        notes = [*notes, t("model.te_off", lang)]
    model = config["model"]
    if model.get("variant", "turbo") == "turbo" and model.get("training_adapter", "none") == "none":
        config = zimage_update(config, "turbo", "v2", "")
        notes = [*notes, t("model.adapter_default", lang)]
    return config, notes


def is_zimage(config: dict, detected: str) -> bool:
    return detected == "zimage" or (config.get("model") or {}).get("family") == "zimage"


def build(ctx: Any, lang0: str) -> dict[str, Any]:
    """The Z-Image group (hidden until a Z-Image base is chosen); returns its components by name."""
    variants = [(t(f"model.zimage_{v}", lang0), v) for v in cfgmod.ZIMAGE_VARIANTS]
    adapters = [(t(f"model.adapter_{a}", lang0), a) for a in ADAPTERS]
    with gr.Group(visible=False, elem_id="model-zimage") as group:
        ctx.tr.bind(gr.Markdown(t("model.zimage_title", lang0), padding=True), value="model.zimage_title")
        variant = ctx.tr.bind(gr.Radio(variants, value="turbo", label=t("model.zimage_variant", lang0),
                                       elem_id="model-zimage-variant"), label="model.zimage_variant")
        adapter = ctx.tr.bind(gr.Radio(adapters, value="v2", label=t("model.adapter", lang0),
                                       elem_id="model-zimage-adapter"), label="model.adapter")
        adapter_file = ctx.tr.bind(gr.Textbox("", label=t("model.adapter_path", lang0), visible=False, max_lines=1,
                                              info=t("model.adapter_path_info", lang0),
                                              elem_id="model-zimage-adapter-file"),
                                   label="model.adapter_path", info="model.adapter_path_info")
        with gr.Row(equal_height=True):
            proposed = gr.Markdown(proposal("turbo", lang0), elem_id="model-zimage-proposal", padding=True)
            use = ctx.tr.bind(gr.Button(t("model.preset_use", lang0), variant="primary", scale=0, min_width=200,
                                        elem_id="model-zimage-preset"), value="model.preset_use")
    return {"group": group, "variant": variant, "adapter": adapter, "adapter_file": adapter_file,
            "proposal": proposed, "use": use}


def wire(ctx: Any, parts: dict[str, Any], detected: Any, message: Any) -> None:
    """Events of the Z-Image group; `detected` is a gr.State with the family the last check found, `message` the
    State of the message line (i18n.follow)."""
    variant, adapter, adapter_file = parts["variant"], parts["adapter"], parts["adapter_file"]

    def relabel(lang: str):
        return (gr.update(choices=[(t(f"model.zimage_{v}", lang), v) for v in cfgmod.ZIMAGE_VARIANTS]),
                gr.update(choices=[(t(f"model.adapter_{a}", lang), a) for a in ADAPTERS]))

    def on_answer(v: str, a: str, path: str, config: dict, lang: str):
        found = ""
        if v == "turbo" and a == "file" and not (path or "").strip():
            # The demo's tiny adapter (or one in the models folders) is offered by filling it in.
            candidates = adapter_candidates((config.get("model") or {}).get("base", ""), [ctx.models_dir])
            path = found = candidates[0] if candidates else ""
        new = zimage_update(config, v, a, path)
        shown = new["model"]["training_adapter"]
        file_box = gr.update(visible=v == "turbo" and a == "file", **({"value": found} if found else {}))
        if v == "turbo" and a == "file" and not path.strip():
            said = i18n.text("model.adapter_file_needed", lang, level="warn")
        else:
            def said_in(lg: str) -> str:
                text = t("model.zimage_set", lg, variant=t(f"model.zimage_{v}", lg), adapter=shown)
                return text + (f"  \n{t('model.adapter_found', lg, path=found)}" if found else "")
            said = i18n.both(said_in, lang, level="ok")
        return new, gr.update(visible=v == "turbo"), file_box, proposal(v, lang), said

    def on_use(v: str, config: dict, lang: str):
        new, _ = use_preset(config, v, lang)
        return new, i18n.both(lambda lg: use_preset(config, v, lg)[1], lang, level="ok")

    def show(config: dict, found: str, radio: str, lang: str):
        model = config.get("model") or {}
        if not is_zimage(config, found):
            # Hidden, the radio goes back to the config's answer: a "Local file" left pending on another base must
            # not come back with it.
            a = adapter_choice(model.get("training_adapter", "none"))[0]
            return gr.update(visible=False), gr.update(), gr.update(value=a), gr.update(), gr.update()
        v = model.get("variant", "turbo")
        a, path = adapter_choice(model.get("training_adapter", "none"))
        if a == "none" and radio == "file":
            a = "file"  # "Local file" chosen and its path not given yet: the choice and its empty box stay
        return (gr.update(visible=True), gr.update(value=v), gr.update(value=a, visible=v == "turbo"),
                gr.update(value=path, visible=v == "turbo" and a == "file"), proposal(v, lang))

    answers = [variant, adapter, adapter_file, ctx.config, ctx.lang]
    outs = [ctx.config, adapter, adapter_file, parts["proposal"], message]
    variant.input(on_answer, answers, outs)
    adapter.input(on_answer, answers, outs)
    adapter_file.submit(on_answer, answers, outs)
    adapter_file.blur(on_answer, answers, outs)
    parts["use"].click(on_use, [variant, ctx.config, ctx.lang], [ctx.config, message])
    shown = [parts["group"], variant, adapter, adapter_file, parts["proposal"]]
    for event in (ctx.config.change, detected.change):
        event(show, [ctx.config, detected, adapter, ctx.lang], shown, show_progress="hidden")
    ctx.lang.change(relabel, ctx.lang, [variant, adapter], show_progress="hidden")
    ctx.lang.change(lambda v, lang: proposal(v, lang), [variant, ctx.lang], parts["proposal"], show_progress="hidden")
