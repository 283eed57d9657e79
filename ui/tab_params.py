"""Step 5 调参: the parameter form (generated from the schema), presets, hints, TOML preview and import/export."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.config import hints as hintmod
from core.config.presets import PRESETS
from core.errors import ConfigError, DanluError
from core.fsutil import atomic_write_text
from core.state_files import Notice, report, set_aside
from ui import i18n, params_sweep
from ui.context import AppContext
from ui.form import COMMIT_GROUP, build_form, commit_events, committed, field_to_config, label_key, reads_form
from ui.form import changes as form_changes
from ui.i18n import t

TAB_ID = "params"
TAB_KEY = "params.tab"

PRESET_NAMES: dict[str, tuple[str, str]] = {
    "anime_sd15": ("二次元 / 插画 SD1.5", "Anime / illustration SD1.5"),
    "realistic_sd15": ("写实 / 3D SD1.5", "Realistic / 3D SD1.5"),
    "product_sd15": ("产品（20–40 张图）", "Product (20–40 images)"),
    "sdxl_1024": ("SDXL 1024", "SDXL at 1024"),
    "lowvram_8gb": ("低显存 8 GB", "Low VRAM 8 GB"),
    "sdxl_8gb_fp8": ("SDXL 8 GB（fp8 底模）", "SDXL on 8 GB (fp8 base)"),
    "lowvram_12gb": ("低显存 12 GB", "Low VRAM 12 GB"),
    "vram_16gb": ("显存 16 GB", "VRAM 16 GB"),
    "vram_24gb": ("显存 24 GB", "VRAM 24 GB"),
    "zimage_turbo_adapter": ("Z-Image Turbo + 训练适配器", "Z-Image Turbo + training adapter"),
    "zimage_deturbo": ("Z-Image De-Turbo", "Z-Image De-Turbo"),
    "flux_dev_24gb": ("FLUX.1 dev 24 GB（fp8 底模）", "FLUX.1 dev 24 GB (fp8 base)"),
    "flux_dev_16gb": ("FLUX.1 dev 16 GB（fp8 底模 + 缓存文本）", "FLUX.1 dev 16 GB (fp8 base + cached text)"),
    "flux_dev_12gb": ("FLUX.1 dev 12 GB（块交换）", "FLUX.1 dev 12 GB (block swap)"),
    "flux_schnell": ("FLUX.1 schnell", "FLUX.1 schnell"),
    "chroma": ("Chroma", "Chroma"),
    "qwen_image_24gb": ("Qwen-Image 24 GB（fp8 底模 + 块交换）", "Qwen-Image 24 GB (fp8 base + block swap)"),
}

i18n.add({f"params.preset.{k}": v for k, v in PRESET_NAMES.items()})
i18n.add({
    "params.tab": ("5 调参", "5 Parameters"),
    "params.intro": ("设置训练参数。新手视图只显示关键参数，专家视图显示全部；右侧是提示、步数、显存估计和实时 TOML。",
                     ("Set the training parameters. The beginner view shows the settings that matter, the expert view "
                     "shows everything; hints, the step count, a memory estimate "
                     "and the live TOML are on the right.")),
    "params.preset": ("预设", "Preset"),
    "params.preset_load": ("载入预设", "Load preset"),
    "params.preset_changed": ("已载入预设「{name}」，改动了 {n} 项：",
                              "Loaded preset '{name}', {n} settings changed:"),
    "params.preset_same": ("预设「{name}」与当前设置相同，没有改动。",
                           "Preset '{name}' matches the current settings; nothing changed."),
    "params.view": ("视图", "View"),
    "params.view_basic": ("新手", "Beginner"),
    "params.view_expert": ("专家", "Expert"),
    "params.hints": ("### 提示", "### Hints"),
    "params.steps": ("### 步数", "### Steps"),
    "params.steps_none": ("选好训练集文件夹后这里显示步数。", "Choose the dataset folder to see the step count."),
    "params.memory": ("### 显存估计", "### GPU memory estimate"),
    "params.memory_for": ("按 {family} 估计", "for {family}"),
    "params.apply_lr": ("按批大小缩放学习率", "Scale LR with batch size"),
    "params.lr_applied": ("✔ 学习率已改为 {lr}。", "✔ Learning rate set to {lr}."),
    "params.no_conflicts": ("✔ 没有发现冲突。", "✔ No conflicts found."),
    "params.toml": ("实时 TOML 预览", "Live TOML preview"),
    "params.import": ("导入 TOML", "Import TOML"),
    "params.imported": ("✔ 已导入 {n} 项设置。", "✔ Imported {n} settings."),
    "params.unknown": ("⚠ 以下键未知，已忽略（其余设置均已导入）：",
                       "⚠ Unknown keys, ignored (everything else was imported):"),
    "params.rejected": ("⚠ 以下值无效，保留原值：", "⚠ Invalid values, old values kept:"),
    "params.export": ("导出 TOML", "Export TOML"),
    "params.download": ("下载", "Download"),
    "params.exported": ("✔ 已导出：{path}", "✔ Exported: {path}"),
    "params.field_error": ("✖ 「{label}」：{msg}", "✖ '{label}': {msg}"),
    "params.restored": ("已恢复上次的设置。", "Last settings restored."),
})

LAST_SETTINGS = Path(".danlu") / "last_settings.toml"


def preset_summary(before: dict, after: dict, name: str, lang: str) -> str:
    """What loading a preset changed, field by field, in the user's language."""
    changes = form_changes(before, after, lang)
    title = t(f"params.preset.{name}", lang)
    if not changes:
        return t("params.preset_same", lang, name=title)
    return t("params.preset_changed", lang, name=title, n=len(changes)) + "\n" + "\n".join(changes)


def apply_preset(config: dict, name: str) -> dict:
    return cfgmod.to_dict(cfgmod.merge_dict(cfgmod.from_dict(config), PRESETS[name]))


def import_toml(text: str, current: dict) -> tuple[dict, list[str], list[ConfigError], int]:
    """Merge TOML text key by key: unknown keys are reported, bad values keep the old value,
    everything else is imported. Returns (config, unknown keys, rejected, number imported)."""
    data = cfgmod.parse_toml(text, "config.toml")
    cfg, unknown, rejected, n = cfgmod.merge_lenient(cfgmod.from_dict(current), data)
    return cfgmod.to_dict(cfg), unknown, rejected, n


def hints_markdown(cfg: cfgmod.RunConfig, lang: str, ref: tuple[float, int] | None,
                   issues: list | None = None) -> tuple[str, bool]:
    """The hints panel (core.checks' verdicts, then explanations) and whether the LR-scaling button applies."""
    from models import preflight

    icon = {"error": "✖", "warning": "⚠", "info": "ℹ"}
    found = preflight.issues(cfg) if issues is None else issues
    lines = [f"{icon[i.level]} {i.text(lang)}" for i in found] or [t("params.no_conflicts", lang)]
    lines.append(f"ℹ {hintmod.alpha_hint(cfg).text(lang)}")
    lr_hint = hintmod.lr_batch_hint(cfg, *ref) if ref else None
    if lr_hint:
        lines.append(f"ℹ {lr_hint.text(lang)}")
    return "\n\n".join(lines), lr_hint is not None


def steps_markdown(cfg: cfgmod.RunConfig, lang: str) -> str:
    if not cfg.dataset.dir:
        return t("params.steps_none", lang)
    try:
        from core.runs.estimate import count_steps

        plan = count_steps(cfg)
        return plan.formula(lang) + plan.notes(lang)
    except DanluError as e:
        return f"⚠ {e.text(lang)}"


def memory_markdown(cfg: cfgmod.RunConfig, lang: str) -> str:
    from core.runs.estimate import estimate_memory
    from models.preflight import detected

    info = detected(cfg.model.base)
    est = estimate_memory(cfg, info.family if info is not None else None)
    return est.text(lang)


# The message line's colour: each text says whether it reports a success, a warning or an error.
OK, WARN, ERROR = ["danlu-ok"], ["danlu-warn"], ["danlu-error"]


def _failed(error: DanluError, lang: str) -> i18n.Text:
    """'✖' and the error, in both languages (for the message line)."""
    return i18n.both(lambda lg: f"✖ {error.text(lg)}", lang, classes=ERROR)


def saved_settings(path: Path) -> tuple[dict | None, Notice | None]:
    """The settings of the last visit (None: there are none), and the notice when the file was damaged: then the
    defaults stay, and the file is kept aside rather than overwritten by them at the next refresh."""
    if not path.exists():
        return None, None
    try:
        return cfgmod.to_dict(cfgmod.load(path)), None
    except DanluError as e:
        why = (e.en.removeprefix(f"{path}: "), e.zh.removeprefix(f"{path}："))  # the notice names the file once
        return None, report(path, set_aside(path), ("The saved settings", "保存的设置"), why,
                            ("The defaults are shown; the Config tab can load the kept file.",
                             "现显示默认设置；可在配置页载入保留的文件。"))


def last_settings_path(ctx: AppContext) -> Path:
    return ctx.outputs_dir / LAST_SETTINGS


def _field_handler(form: Any, spec: Any):
    # One handler per field, changing only that field: a whole-form snapshot arriving late
    # would undo a change made meanwhile by a button or another tab.
    def on_field(raw: Any, config: dict, lang: str, shown_by_server: dict):
        new, error = field_to_config(spec, raw, config)
        if error is None:
            return new, "", committed(form, shown_by_server, spec, new)
        return config, i18n.both(lambda lg: t("params.field_error", lg, label=t(label_key(spec), lg),
                                              msg=error.text(lg)), lang, classes=ERROR), shown_by_server
    return on_field


# The LR the user types is the one chosen for the batch size shown now.
def on_lr(lr: Any, batch: Any, ref: tuple[float, int]):
    ok = all(isinstance(v, (int, float)) and v > 0 for v in (lr, batch))
    return (float(lr), int(batch)) if ok else ref


def relabel_choices(lang: str):
    # The translator relabels labels and values; the choices of these two carry text as well.
    return (gr.update(choices=[(t(f"params.preset.{k}", lang), k) for k in PRESETS]),
            gr.update(choices=[(t("params.view_basic", lang), "basic"),
                               (t("params.view_expert", lang), "expert")]))


def on_preset(name: str | None, config: dict, lang: str):
    if not name:
        return config, "", gr.update()
    new = apply_preset(config, name)
    summary = i18n.both(lambda lg: preset_summary(config, new, name, lg), lang)
    return new, summary, (new["optimizer"]["lr"], new["training"]["batch_size"])


def on_apply_lr(config: dict, ref: tuple[float, int], lang: str):
    lr = hintmod.lr_for_batch(ref[0], ref[1], config["training"]["batch_size"])
    new = cfgmod.with_values(config, {"optimizer.lr": lr})
    text = i18n.both(lambda lg: t("params.lr_applied", lg, lr=hintmod.fmt_lr(lr)), lang, classes=OK)
    return new, (lr, config["training"]["batch_size"]), text


def on_import(path: str | None, config: dict, lang: str):
    kept = (gr.update(), gr.update())  # a refused file changes nothing: the preset's summary and LR stay
    if not path:
        return config, "", *kept
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
        new, unknown, rejected, n = import_toml(text, config)
    except UnicodeDecodeError:
        return config, _failed(ConfigError("The file is not UTF-8 text.", "文件不是 UTF-8 文本。",
                                           "Save it as UTF-8.", "请以 UTF-8 编码保存。"), lang), *kept
    except ConfigError as e:
        return config, _failed(e, lang), *kept

    def said(lg: str) -> str:
        msg = [t("params.imported", lg, n=n)]
        if unknown:
            msg.append(t("params.unknown", lg) + " " + ", ".join(f"`{k}`" for k in unknown))
        if rejected:
            msg.append(t("params.rejected", lg) + "\n" + "\n".join(f"- {e.text(lg)}" for e in rejected))
        return "\n\n".join(msg)

    # The imported file replaces the last preset (its summary goes) and is the LR hints' new reference.
    ref = (new["optimizer"]["lr"], new["training"]["batch_size"])
    return new, i18n.both(said, lang, classes=WARN if unknown or rejected else OK), "", ref


def on_export(config: dict, lang: str):
    try:
        cfg = cfgmod.from_dict(config)  # a value typed in the form and not valid is named here
    except ConfigError as e:
        return gr.update(), _failed(e, lang)
    folder = Path(tempfile.mkdtemp(prefix="danlu-params-"))
    path = cfgmod.save(cfg, folder / f"{cfg.saving.name}.toml")
    return str(path), i18n.both(lambda lg: t("params.exported", lg, path=path), lang, classes=OK)


def _layout(ctx: AppContext, lang0: str) -> SimpleNamespace:
    """The tab's components, top to bottom; the form and what it shows are ctx.form and ctx.form_seen as well."""
    B = ctx.tr.bind
    default = cfgmod.to_dict(cfgmod.default_config())
    B(gr.Markdown(t("params.intro", lang0)), value="params.intro")
    with gr.Row(equal_height=True):
        preset = B(gr.Dropdown([(t(f"params.preset.{k}", lang0), k) for k in PRESETS], value=None,
                               label=t("params.preset", lang0), elem_id="params-preset", scale=3),
                   label="params.preset")
        preset_btn = B(gr.Button(t("params.preset_load", lang0), elem_id="params-preset-load", scale=1),
                       value="params.preset_load")
        view = B(gr.Radio([(t("params.view_basic", lang0), "basic"), (t("params.view_expert", lang0), "expert")],
                          value="basic", label=t("params.view", lang0), elem_id="params-view", scale=2),
                 label="params.view")
    # Both lines keep their text in both languages (i18n.follow), so the language switch re-renders them.
    preset_summary_md = i18n.follow(gr.Markdown("", elem_id="params-preset-summary"), ctx.lang)
    message = i18n.follow(gr.Markdown("", elem_id="params-message", elem_classes=["danlu-warn"]), ctx.lang)
    lr_ref = gr.State((default["optimizer"]["lr"], default["training"]["batch_size"]))
    with gr.Row():
        with gr.Column(scale=3):
            form = build_form(ctx, lang0)
            seen = gr.State(form.seen(default))
            ctx.form, ctx.form_seen = form, seen
        with gr.Column(scale=2):
            B(gr.Markdown(t("params.hints", lang0)), value="params.hints")
            hints_md = gr.Markdown("", elem_id="params-hints")
            apply_lr = B(gr.Button(t("params.apply_lr", lang0), visible=False, size="sm", elem_id="params-apply-lr"),
                         value="params.apply_lr")
            B(gr.Markdown(t("params.steps", lang0)), value="params.steps")
            steps_md = gr.Markdown("", elem_id="params-steps")
            B(gr.Markdown(t("params.memory", lang0)), value="params.memory")
            memory_md = gr.Markdown("", elem_id="params-memory")
            toml = B(gr.Textbox(cfgmod.dumps(cfgmod.default_config()), interactive=False, lines=16, max_lines=24,
                                buttons=["copy"], label=t("params.toml", lang0), elem_id="params-toml"),
                     label="params.toml")
            upload = B(gr.File(label=t("params.import", lang0), file_types=[".toml"], type="filepath",
                               elem_id="params-import", height=90), label="params.import")
            with gr.Row():
                export_btn = B(gr.Button(t("params.export", lang0), elem_id="params-export"), value="params.export")
            download = B(gr.File(label=t("params.download", lang0), interactive=False, elem_id="params-download",
                                 height=90), label="params.download")
            params_sweep.build(ctx)
    return SimpleNamespace(preset=preset, preset_btn=preset_btn, view=view, preset_summary_md=preset_summary_md,
                           message=message, lr_ref=lr_ref, form=form, seen=seen, hints_md=hints_md, apply_lr=apply_lr,
                           steps_md=steps_md, memory_md=memory_md, toml=toml, upload=upload, export_btn=export_btn,
                           download=download)


def _wire_fields(ctx: AppContext, c: SimpleNamespace) -> None:
    """Each field commits its own value to the config; a committed LR becomes the LR hints' reference."""
    form = c.form
    paths = [s.path for s in form.specs]
    lr_comp = form.components[paths.index("optimizer.lr")]
    batch_comp = form.components[paths.index("training.batch_size")]
    for spec, comp in zip(form.specs, form.components):
        for event in commit_events(comp):
            # always_last: a second commit of the same field waits for the first, so the newer value lands last.
            done = event(_field_handler(form, spec), [comp, ctx.config, ctx.lang, c.seen],
                         [ctx.config, c.message, c.seen], trigger_mode="always_last", show_progress="hidden",
                         concurrency_id=COMMIT_GROUP, concurrency_limit=1)
            if comp is lr_comp:  # after the commit, so the hints' refresh sees the new LR in the config
                done.then(on_lr, [lr_comp, batch_comp, c.lr_ref], c.lr_ref, show_progress="hidden")


def _refresher(ctx: AppContext, form: Any):
    """The handler that redraws the form, the hints, the estimates and the TOML from the config (and keeps the
    settings for the next visit), and the one that first restores the last visit's settings on a page load."""
    def refresh(config: dict, lang: str, ref: tuple[float, int], shown_by_server: dict, *shown: Any):
        from models import preflight

        cfg = cfgmod.from_dict(config)
        issues = preflight.issues(cfg)
        hints, lr_applies = hints_markdown(cfg, lang, tuple(ref) if ref else None, issues)
        # A field of another family stays in view while a check names it, so the message can be acted on.
        flagged = {i.key for i in issues if i.level != "info"}
        path = last_settings_path(ctx)
        text = cfgmod.dumps(cfg)
        try:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                atomic_write_text(path, text)
        except OSError:  # a read-only outputs folder only costs the restore on the next visit
            pass
        return [*form.updates(config, list(shown), flagged, shown_by_server), text, hints,
                gr.update(visible=lr_applies), steps_markdown(cfg, lang), memory_markdown(cfg, lang),
                form.seen(config, shown_by_server)]

    def restore(config: dict, lang: str, ref: tuple[float, int], shown_by_server: dict, *shown: Any):
        saved, notice = saved_settings(last_settings_path(ctx))
        said = i18n.both(lambda lg: f"⚠ {notice.text(lg)}", lang, level="warn") if notice else ""
        config = saved or config
        return [config, *refresh(config, lang, ref, shown_by_server, *shown), said]

    return refresh, restore


def build(ctx: AppContext) -> None:
    c = _layout(ctx, ctx.lang.value)
    _wire_fields(ctx, c)
    refresh, restore = _refresher(ctx, c.form)
    refresh_inputs = [ctx.config, ctx.lang, c.lr_ref, c.seen, *c.form.components]
    refresh_outputs = [*c.form.components, c.toml, c.hints_md, c.apply_lr, c.steps_md, c.memory_md, c.seen]
    for changed in (ctx.config, ctx.lang, c.lr_ref):
        changed.change(refresh, refresh_inputs, refresh_outputs, show_progress="hidden")
    ctx.lang.change(relabel_choices, ctx.lang, [c.preset, c.view], show_progress="hidden")
    c.view.change(lambda v: [gr.update(visible=v == "expert") for _ in c.form.expert_columns], c.view,
                  c.form.expert_columns)
    # The buttons that write the config queue behind the fields' commits (COMMIT_GROUP): a value typed and left by
    # this click is in the config before the button changes it.
    c.preset_btn.click(on_preset, [c.preset, ctx.config, ctx.lang], [ctx.config, c.preset_summary_md, c.lr_ref],
                       concurrency_id=COMMIT_GROUP)
    c.apply_lr.click(on_apply_lr, [ctx.config, c.lr_ref, ctx.lang], [ctx.config, c.lr_ref, c.message],
                     concurrency_id=COMMIT_GROUP)
    c.upload.upload(on_import, [c.upload, ctx.config, ctx.lang],
                    [ctx.config, c.message, c.preset_summary_md, c.lr_ref], concurrency_id=COMMIT_GROUP)
    c.export_btn.click(*reads_form(ctx, on_export, [ctx.config, ctx.lang]), [c.download, c.message])
    root = gr.context.Context.root_block
    if root is not None:
        root.load(restore, refresh_inputs, [ctx.config, *refresh_outputs, c.message], show_progress="hidden")
