"""Step 2 底模: pick the base model and see what it is before training on it.

Lists the checkpoints in the models folders (size and family, from the header only), takes a
pasted path or a hub id, shows the detection report, and writes the choice into the run config.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core import config as cfgmod
from core.download import SETTINGS as SOURCE_SETTINGS
from core.errors import DanluError
from ui import choices as choice_labels
from ui import families as family_ui
from ui import i18n, model_source, model_switch
from ui.context import AppContext
from ui.families import family_label
from ui.i18n import t
from ui.start import base_of, demo_models

TAB_ID = "model"
TAB_KEY = "model.tab"
SUFFIXES = (".safetensors", ".ckpt", ".pt")
# Gradio recognises a progress parameter by its default value.
FAMILY_CHOICES = next(s.choices for s in cfgmod.schema() if s.path == "model.family")
HASH_PROGRESS = gr.Progress()
# core.download reports the bytes; the libraries' own bars would show 0/0 while a connection is tried.
DOWNLOAD_PROGRESS = gr.Progress()

i18n.add({
    "model.tab": ("2 底模", "2 Model"),
    "model.intro": (("选择训练用的底模：模型文件夹中的文件、粘贴的路径（可带引号、空格、反斜杠或中文）、"
                    "diffusers 文件夹，"
                    "或 hub id（org/name 或 org/name@版本）。只读取文件头，几 GB 的模型也能瞬间识别。"),
                    ("Pick the base model: a file from the models folders, a pasted path (quotes, spaces, backslashes "
                    "and Chinese are fine), a diffusers folder, or a hub id (org/name or org/name@revision). Only the "
                    "file header is read, so even a multi-GB model is recognised at once.")),
    "model.folders": ("模型文件夹（每行一个）", "Models folders (one per line)"),
    "model.list": ("文件夹中的模型", "Models in the folders"),
    "model.refresh": ("刷新列表", "Refresh list"),
    "model.path": ("路径或 hub id", "Path or hub id"),
    "model.path_info": ("例如 D:\\models\\底模 v1.safetensors 或 stabilityai/stable-diffusion-xl-base-1.0",
                        "e.g. D:\\models\\my model.safetensors or stabilityai/stable-diffusion-xl-base-1.0"),
    "model.check": ("检查并使用", "Check and use"),
    "model.download": ("下载", "Download"),
    "model.family": ("模型系列（覆盖自动识别）", "Family (override detection)"),
    "model.prediction": ("预测类型（覆盖自动识别）", "Prediction type (override detection)"),
    "model.current": ("当前底模：{base}", "Current base model: {base}"),
    "model.none": ("尚未选择底模。", "No base model chosen yet."),
    "model.empty": ("文件夹中没有模型：把 .safetensors 文件放到 {folder}，或在下方粘贴路径；"
                    "也可以先点上方的“试用演示”。",
                    "No models in the folders: put .safetensors files in {folder}, or paste a path below; or try "
                    "the demo above first."),
    "model.found": ("找到 {n} 个模型。", "{n} models found."),
    "model.found_one": ("找到 1 个模型。", "1 model found."),
    "model.used": ("已选为底模。", "Chosen as the base model."),
    "model.res_set": ("训练分辨率已设为 {res}（该系列的原生分辨率）。",
                      "Training resolution set to {res} (the family's native one)."),
    "model.family_switched": ("系列由 {old} 改为 {new}：上一系列的 {n} 项设置"
                              "（系列覆盖、专用选项、预设留下的值）已恢复默认。",
                              "Family changed from {old} to {new}: {n} settings of the previous family (its override, "
                              "its own options, its preset's values) are back to their defaults."),
    "model.sample_set": ("样图尺寸已设为 {w}×{h}。", "Sample size set to {w}×{h}."),
    "model.override_set": ("已设置：系列 {family}，预测类型 {pred}。",
                           "Set: family {family}, prediction type {pred}."),
    "model.ztsnr_set": ("该模型带有零终端信噪比标记（ztsnr）：已开启零终端信噪比（训练与样图）。",
                        "The model carries a ztsnr marker: zero terminal SNR is on (training and samples)."),
    "model.downloading": ("正在连接下载源…（无法连接时几秒内会报错）",
                          "Connecting to the download source… (an unreachable source fails within seconds)"),
    "model.h_family": ("系列", "Family"),
    "model.h_variant": ("版本", "variant"),
    "model.h_prediction": ("预测类型", "Prediction"),
    "model.h_native": ("原生分辨率", "Native resolution"),
    "model.h_precision": ("存储精度", "Stored precision"),
    "model.h_size": ("大小", "Size"),
    "model.h_hash": ("哈希（AutoV2）", "Hash (AutoV2)"),
    "model.h_ema": ("EMA", "EMA"),
    "model.h_kind": ("类型", "Kind"),
    "model.not_usable": ("不能作为底模：", "Not usable as a base model:"),
    "model.warning": ("注意：", "Note:"),
    "model.check_error": ("训练前必须修正：", "Fix before training:"),
})


@functools.lru_cache(maxsize=512)
def _detect_cached(path: str, size: int, mtime: float):
    from models.detect import detect

    return detect(path)


def scan(folders: list[Path], extra: list[Path] | tuple = ()) -> list[tuple[str, str]]:
    """(label, path) of every checkpoint file and diffusers folder directly inside `folders`, then of the `extra`
    models (the demo's, ui/start.py) that are not listed yet."""
    out = []
    for folder in folders:
        if folder.is_dir():
            out += [_entry(p) for p in sorted(folder.iterdir(), key=lambda q: q.name.lower()) if _is_model(p)]
    listed = {path for _, path in out}
    return out + [_entry(p) for p in extra if str(p) not in listed and _is_model(p)]


def _is_model(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in SUFFIXES or p.is_dir() and (p / "model_index.json").is_file()


def _entry(p: Path) -> tuple[str, str]:
    """The list's (label, path) of one model: name, size and family, read from the header only."""
    from models.model_info import human_size

    st = p.stat()
    if p.is_file() and p.suffix.lower() != ".safetensors":
        # A pickle is only classified when picked: reading one can mean reading all of it.
        return f"{p.name} · {human_size(st.st_size)} · pickle", str(p)
    info = _detect_cached(str(p), st.st_size, st.st_mtime)
    family = info.label if info.usable else ("LoRA" if info.kind == "lora" else "?")
    return f"{p.name} · {human_size(info.size or st.st_size)} · {family}", str(p)


def folders_from_text(text: str, default: Path) -> list[Path]:
    from models.files import clean_path

    lines = [clean_path(line) for line in (text or "").splitlines() if line.strip()]
    return [Path(line) for line in lines] or [default]


def report_markdown(info, lang: str) -> str:
    """The detection report as a small table plus warnings or the reason it cannot be used."""
    from models.model_info import human_size, local

    rows = []
    if info.family:
        pred = {"v_prediction": "v-prediction", "flow": "flow matching"}.get(info.prediction_type, "epsilon")
        variant = f", {t('model.h_variant', lang)} `{info.variant}`" if getattr(info, "variant", "") else ""
        rows += [(t("model.h_family", lang), f"{family_label(info.family, info.label, lang)} (`{info.family}`)"
                  + variant),
                 (t("model.h_prediction", lang), f"{local(pred, lang)} ({local(info.prediction_source, lang)})"),
                 (t("model.h_native", lang), f"{info.native_resolution} px")]
    if info.precision:
        rows.append((t("model.h_precision", lang), info.precision))
    if info.size:
        rows.append((t("model.h_size", lang), human_size(info.size)))
    if info.sha256:
        rows.append((t("model.h_hash", lang), f"`{info.autov2}`"))
    if info.ema:
        rows.append((t("model.h_ema", lang), local(info.ema, lang)))
    rows.append((t("model.h_kind", lang), local(info.kind, lang)))
    lines = [f"### {Path(info.path).name or info.path}"]
    if info.usable or info.family:
        lines += ["  \n".join(f"**{k}:** {v}" for k, v in rows)]
    lines += [f"**{t('model.warning', lang)}** {zh if lang == 'zh' else en}" for en, zh in info.warnings]
    return "\n\n".join(lines)


def problem_text(info, lang: str) -> str:
    """Why the model cannot be used, and what to do (empty when it can)."""
    if info.usable:
        return ""
    problem = info.problem_zh if lang == "zh" else info.problem_en
    hint = info.hint_zh if lang == "zh" else info.hint_en
    return f"**{t('model.not_usable', lang)}** {problem}" + (f"\n\n{hint}" if hint else "")


def apply_choice(config: dict, info, lang: str) -> tuple[dict, list[str]]:
    """The config with this base chosen; resolution and sample size follow the family when still at defaults (or
    at the previous family's native size); a base of another family drops the previous family's settings."""
    old = model_switch.previous_family(config)
    dropped = model_switch.leftovers(config, old, info.family)
    config = cfgmod.with_values(config, dropped) if dropped else config
    defaults, cfg = cfgmod.default_config(), cfgmod.from_dict(config)
    values: dict = {"model.base": info.path}
    if getattr(info, "variant", ""):  # what the weights tell (FLUX.1 dev / schnell); the family's radio corrects
        values["model.variant"] = info.variant
    notes = [t("model.used", lang)]
    if dropped:
        notes.append(t("model.family_switched", lang, old=old, new=info.family, n=len(dropped)))
    old_side = model_switch.native_of(old) if old != info.family else None
    native = int(info.native_resolution)
    res = max(256, native // 64 * 64)
    if cfg.dataset.resolution in (defaults.dataset.resolution, old_side) and res != cfg.dataset.resolution:
        values["dataset.resolution"] = res
        notes.append(t("model.res_set", lang, res=res))
    size, side = (cfg.sampling.width, cfg.sampling.height), max(64, native // 8 * 8)
    if size in ((defaults.sampling.width, defaults.sampling.height), (old_side, old_side)) and size != (side, side):
        values["sampling.width"] = values["sampling.height"] = side
        notes.append(t("model.sample_set", lang, w=side, h=side))
    if getattr(info, "zero_terminal_snr", False) and not cfg.model.zero_terminal_snr:
        values["model.zero_terminal_snr"] = True
        if info.prediction_type == "v_prediction" and cfg.model.prediction_type == "epsilon":
            values["model.prediction_type"] = "auto"
        notes.append(t("model.ztsnr_set", lang))
    return cfgmod.with_values(config, values), notes


def check(text: str, config: dict, lang: str, progress=None) -> tuple[dict, str, str]:
    """Detect `text`; when usable, choose it. Returns (config, report markdown, message)."""
    return check_info(text, config, lang, progress)[:3]


def check_info(text: str, config: dict, lang: str, progress=None):
    """As check, plus the detection report (ModelInfo) the markdown was made from; the message is an i18n.Text."""
    from models.detect import detect
    from models.hashes import sha256_file

    info = detect(text)
    if info.kind == "single_file" and info.usable and not info.sha256:
        cb = (lambda done, total: progress(done / max(total, 1), desc="sha256")) if progress else None
        info.sha256 = sha256_file(info.path, cb)
    if not info.usable:
        return config, report_markdown(info, lang), _message(lambda lg: problem_text(info, lg), "error", lang), info

    def chosen(lg: str) -> tuple[dict, list[str]]:
        new, notes = apply_choice(config, info, lg)
        questions = family_ui.of(info.family)  # the family's own defaults, each said in a note
        if questions is not None:
            new, notes = questions.on_chosen(new, notes, lg)
        return new, notes + checks_text(info, new, lg)

    new = chosen(lang)[0]
    msg = _message(lambda lg: "  \n".join(chosen(lg)[1]), check_level(info, new), lang)
    return new, report_markdown(info, lang), msg, info


def checks_text(info, config: dict, lang: str) -> list[str]:
    """core.checks' verdicts that this base brings to the run settings (resolution, family, prediction type)."""
    from models.preflight import base_issues

    label = {"error": t("model.check_error", lang), "warning": t("model.warning", lang), "info": "ℹ"}
    return [f"**{label[i.level]}** {i.text(lang)}" for i in base_issues(cfgmod.from_dict(config), info)]


def check_level(info, config: dict) -> str:
    """The message line's level for a chosen base: its worst core.checks verdict ('ok' when none)."""
    from models.preflight import base_issues

    return i18n.level_of(i.level for i in base_issues(cfgmod.from_dict(config), info))


def _message(render, level: str, lang: str) -> i18n.Text:
    """The message line's value (see i18n.follow): render(lang) in both languages, coloured by level."""
    return i18n.both(render, lang, level=level)


def _refused(reason, lang: str) -> i18n.Text:
    """'Not usable as a base model:' and reason(lang), red."""
    return _message(lambda lg: f"**{t('model.not_usable', lg)}** {reason(lg)}", "error", lang)


def found_text(n: int, folder: Path, lang: str) -> i18n.Text:
    """'N models found' (or where to put them) in both languages."""
    def render(lg: str) -> str:
        if not n:
            return t("model.empty", lg, folder=folder)
        return t("model.found_one", lg) if n == 1 else t("model.found", lg, n=n)

    return i18n.both(render, lang)


def prediction_shown(config: dict) -> bool:
    """Whether model.prediction_type applies to the base's family (core.config F(families=...))."""
    from ui.form import applies, config_family, family_traits

    return applies(cfgmod.field_spec("model.prediction_type"), family_traits(config_family(config)))


def current_markdown(config: dict, lang: str) -> str:
    base = (config.get("model") or {}).get("base", "")
    return t("model.current", lang, base=f"`{base}`") if base else t("model.none", lang)


def on_check(text: str, config: dict, lang: str, progress=HASH_PROGRESS):
    new, rep, msg, info = check_info(text, config, lang, progress)
    return new, rep, msg, info.family or "", info


def on_pick(value: str | None, config: dict, lang: str, progress=HASH_PROGRESS):
    # The dropdown can report one pick twice; the second must not replace the first one's message.
    if not value or value == (config.get("model") or {}).get("base"):
        return gr.update(), config, gr.update(), gr.update(), gr.update(), gr.update()
    new, rep, msg, info = check_info(value, config, lang, progress)
    return value, new, rep, msg, info.family or "", info


def on_download(text: str, config: dict, lang: str, progress=DOWNLOAD_PROGRESS):
    from models.files import clean_path, is_hub_id
    from models.loading import download

    hub_id = clean_path(text)
    if not is_hub_id(hub_id):
        err = DanluError(f"{hub_id or '(empty)'} is not a hub id (org/name or org/name@revision).",
                         f"{hub_id or '（空）'} 不是 hub id（org/name 或 org/name@版本）。")
        return config, "", _refused(err.message, lang), "", None
    progress(0, desc=t("model.downloading", lang))
    try:
        download(hub_id, progress=lambda name, done, total: progress(done / max(total, 1), desc=name),
                 family=(config.get("model") or {}).get("family"))
    except DanluError as exc:
        return config, "", _refused(exc.text, lang), "", None
    new, rep, msg, info = check_info(hub_id, config, lang)
    return new, rep, msg, info.family or "", info


def on_override(fam: str, pred: str, config: dict, lang: str):
    from models.detect import detect

    new = cfgmod.with_values(config, {"model.family": fam, "model.prediction_type": pred})
    info = detect(new["model"]["base"]) if new["model"].get("base") else None

    def notes(lg: str) -> list[str]:
        return [t("model.override_set", lg, family=fam, pred=pred), *(checks_text(info, new, lg) if info else [])]

    return new, _message(lambda lg: "\n\n".join(notes(lg)), check_level(info, new) if info else "ok", lang)


def on_config(config: dict, lang: str):
    model = config.get("model") or {}
    src = model.get("download_source", "auto")
    # The prediction type is an SD UNet setting: shown as the Parameters form shows model.prediction_type.
    pred = gr.update(value=model.get("prediction_type", "auto"), visible=prediction_shown(config))
    return (current_markdown(config, lang), model.get("family", "auto"), pred,
            src, gr.update(visible=src == "mirror", **({"value": model["hub_mirror"]} if model.get("hub_mirror")
                                                      else {})))


def _layout(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tab's components, top to bottom."""
    try:  # the default checkpoints folder, so users see where to put their models
        ctx.models_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only or missing drive: the list just stays empty and says where to put files
    B = ctx.tr.bind
    B(gr.Markdown(t("model.intro", lang0)), value="model.intro")
    current = gr.Markdown(t("model.none", lang0), elem_id="model-current")
    with gr.Row():
        with gr.Column(scale=3):
            choices = scan([ctx.models_dir], demo_models(ctx.outputs_dir))
            listing = B(gr.Dropdown(choices=choices, value=None, label=t("model.list", lang0), elem_id="model-list",
                                    interactive=True), label="model.list")
        with gr.Column(scale=1, min_width=160):
            refresh = B(gr.Button(t("model.refresh", lang0), elem_id="model-refresh"), value="model.refresh")
    folders = B(gr.Textbox(str(ctx.models_dir), lines=2, label=t("model.folders", lang0), elem_id="model-folders"),
                label="model.folders")
    found0 = found_text(len(choices), ctx.models_dir, lang0)
    list_note = gr.Markdown(str(found0), elem_id="model-list-note")  # shown from the first render on
    list_text = i18n.follow(list_note, ctx.lang, found0)
    with gr.Row(equal_height=True):
        path = B(gr.Textbox("", label=t("model.path", lang0), info=t("model.path_info", lang0), scale=4,
                            elem_id="model-path"), label="model.path", info="model.path_info")
        check_btn = B(gr.Button(t("model.check", lang0), variant="primary", scale=1, elem_id="model-check"),
                      value="model.check")
        download_btn = B(gr.Button(t("model.download", lang0), scale=1, elem_id="model-download"),
                         value="model.download")
    with gr.Row():
        family = B(gr.Radio(choice_labels.pairs(FAMILY_CHOICES, lang0), value="auto", label=t("model.family", lang0),
                            elem_id="model-family"),
                   label="model.family", choices=choice_labels.labelled(FAMILY_CHOICES))
        predictions = ["auto", "epsilon", "v_prediction"]
        prediction = B(gr.Radio(choice_labels.pairs(predictions, lang0), value="auto",
                                label=t("model.prediction", lang0), elem_id="model-prediction"),
                       label="model.prediction", choices=choice_labels.labelled(predictions))
    source, mirror = model_source.build_source(ctx, lang0)
    report = gr.Markdown("", elem_id="model-report")
    questions = [(mod, mod.build(ctx, lang0)) for mod in family_ui.modules()]
    message = i18n.follow(gr.Markdown("", elem_id="model-message", elem_classes=["danlu-ok"]), ctx.lang)
    return SimpleNamespace(
        current=current, listing=listing, refresh=refresh, folders=folders, list_text=list_text, path=path,
        check_btn=check_btn, download_btn=download_btn, family=family, prediction=prediction, source=source,
        mirror=mirror, report=report, questions=questions, message=message,
        detected=gr.State(""),  # the family of the last model checked ('' for none)
        shown=gr.State(None))   # its ModelInfo, so the report follows the language switch


def _wire_listing(ctx: AppContext, c: SimpleNamespace) -> None:
    """The folders' list: Refresh, and a demo made on the page (or, on a page load, one made since it was built)."""
    def on_refresh(folder_text: str, lang: str, demo_run: str = ""):
        """The list again (the demo's models included); a demo just made (ctx.demo) is picked in it."""
        found = scan(folders_from_text(folder_text, ctx.models_dir), demo_models(ctx.outputs_dir))
        base = base_of(Path(demo_run)) if demo_run else None
        return gr.update(choices=found, value=str(base) if base else None), found_text(len(found), ctx.models_dir,
                                                                                       lang)

    c.refresh.click(on_refresh, [c.folders, ctx.lang], [c.listing, c.list_text])
    if ctx.demo is not None:
        ctx.demo.change(on_refresh, [c.folders, ctx.lang, ctx.demo], [c.listing, c.list_text], show_progress="hidden")
        if gr.context.Context.root_block is not None:
            gr.context.Context.root_block.load(on_refresh, [c.folders, ctx.lang], [c.listing, c.list_text],
                                               show_progress="hidden")


def build(ctx: AppContext) -> None:
    c = _layout(ctx, ctx.lang.value)
    _wire_listing(ctx, c)
    chosen = [ctx.config, c.report, c.message, c.detected, c.shown]  # what checking a base answers
    c.check_btn.click(on_check, [c.path, ctx.config, ctx.lang], chosen)
    c.path.submit(on_check, [c.path, ctx.config, ctx.lang], chosen)
    c.listing.input(on_pick, [c.listing, ctx.config, ctx.lang], [c.path, *chosen])
    c.download_btn.click(on_download, [c.path, ctx.config, ctx.lang], chosen)
    ctx.lang.change(lambda info, lang: report_markdown(info, lang) if info is not None else gr.update(),
                    [c.shown, ctx.lang], c.report, show_progress="hidden")
    source_in = [c.source, c.mirror, ctx.config, ctx.lang]
    c.source.input(model_source.on_source, source_in, [ctx.config, c.mirror, c.message])
    for event in (c.mirror.submit, c.mirror.blur):
        event(model_source.on_source, source_in, [ctx.config, c.mirror, c.message])
    ctx.lang.change(lambda lang: gr.update(choices=[(t(f"model.source_{k}", lang), k) for k in SOURCE_SETTINGS]),
                    ctx.lang, c.source, show_progress="hidden")
    for mod, parts in c.questions:
        mod.wire(ctx, parts, c.detected, c.message)
    c.family.input(on_override, [c.family, c.prediction, ctx.config, ctx.lang], [ctx.config, c.message])
    c.prediction.input(on_override, [c.family, c.prediction, ctx.config, ctx.lang], [ctx.config, c.message])
    ctx.config.change(on_config, [ctx.config, ctx.lang], [c.current, c.family, c.prediction, c.source, c.mirror],
                      show_progress="hidden")
    ctx.lang.change(lambda cf, lang: current_markdown(cf, lang), [ctx.config, ctx.lang], [c.current],
                    show_progress="hidden")
