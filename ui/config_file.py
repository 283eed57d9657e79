"""The Config tab's TOML file on disk: Open reads it (with its fingerprint) into the load box, Save writes the current
settings to it only if nobody changed it since this page read or wrote it; otherwise it asks keep mine / take theirs /
show both (ui/stale_ask.py; the check is core/filestamp.py). A file this page never opened counts as changed, so an
existing file is never replaced unseen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core import config as cfgmod
from core.errors import ConfigError, DanluError
from core.filestamp import FileChanged, Fingerprint, overwrite_keeping_theirs, read_stamped, save_if_unchanged
from ui import i18n, stale_ask
from ui.context import AppContext
from ui.form import COMMIT_GROUP, changes, reads_form
from ui.i18n import t

i18n.add({
    "config.file": ("磁盘上的 TOML 文件", "TOML file on disk"),
    "config.file_info": ("例如 outputs/<运行名>/config.toml（相对路径从项目文件夹算起）。“打开”把它放进上面的载入框；"
                         "“保存”把当前设置写入它。",
                         "e.g. outputs/<run>/config.toml (a relative path starts at the project folder). Open puts it "
                         "in the load box above; Save writes the current settings to it."),
    "config.open": ("打开", "Open"),
    "config.save": ("保存当前设置到此文件", "Save the current settings to this file"),
    "config.no_path": ("✖ 请先填写 TOML 文件的路径。", "✖ Enter the path of a TOML file first."),
    "config.no_such": ("✖ 没有这个文件：{path}。请检查路径。", "✖ No such file: {path}. Check the path."),
    "config.opened": ("已打开 {path}。", "Opened {path}."),
    "config.saved": ("✔ 已保存到 {path}", "✔ Saved to {path}"),
    "config.kept": ("✔ 已保存到 {path}；磁盘上原来的版本备份为 {backup}",
                    "✔ Saved to {path}; the version it replaced is backed up as {backup}"),
    "config.both_diff": ("与磁盘上的版本相比，我的有 {n} 项设置不同（对方的 → 我的）：",
                         "Mine differs from the version on disk in {n} settings (theirs → mine):"),
    "config.took": ("磁盘上的版本已放进载入框。", "The version on disk is in the load box."),
})


def file_path(text: str, root: Path) -> Path | None:
    """The path typed in the box; relative to the project folder. None when nothing is typed."""
    text = (text or "").strip().strip('"')
    if not text:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


def read_toml(path: Path) -> tuple[str, Fingerprint]:
    """The file's text and fingerprint. Raises DanluError for a missing or non-UTF-8 file (the page shows it)."""
    data, stamp = read_stamped(path)
    if data is None or path.is_dir():
        raise DanluError(f"No such file: {path}.", f"没有这个文件：{path}。", "Check the path.", "请检查路径。",
                         key=str(path))
    try:
        return data.decode("utf-8-sig"), stamp
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.", f"{path} 不是 UTF-8 文本。", "Save it as UTF-8.",
                          "请以 UTF-8 编码保存。", key=str(path)) from None


def save_toml(path: Path, config: dict, opened: tuple[str, Fingerprint] | None) -> Fingerprint:
    """Write the settings to path if it is still what this page read (`opened`: (path, fingerprint)).
    Raises FileChanged (the question), ConfigError (a setting not valid) or OSError."""
    text = cfgmod.dumps(cfgmod.from_dict(config))
    read = opened[1] if opened and opened[0] == str(path) else None
    return save_if_unchanged(path, text.encode("utf-8"), read)


def applied(current: dict, data: dict) -> dict:
    """The settings after loading `data` (nested, as read from TOML) onto the current ones: the keys it has replace
    theirs, the others are kept (a snippet such as `[network] rank = 32` changes the rank only; a whole run file
    replaces everything). Raises ConfigError naming the key."""
    return cfgmod.to_dict(cfgmod.merge_dict(cfgmod.from_dict(current), data))


def settings_differ(theirs: str | None, mine: dict, lang: str) -> i18n.Text | None:
    """The settings in which mine differ from the TOML text on disk, field by field (a whole TOML side by side
    hides a one-line change); None when theirs is gone or is not a valid run TOML."""
    if theirs is None:
        return None
    try:
        theirs_config = applied(cfgmod.to_dict(cfgmod.default_config()), cfgmod.parse_toml(theirs, "theirs"))
    except ConfigError:
        return None

    def render(lg: str) -> str:
        lines = changes(theirs_config, mine, lg)
        return t("config.both_diff", lg, n=len(lines)) + "\n\n" + "\n".join(lines)

    return i18n.both(render, lang, level="warn")


def build(ctx: AppContext, text: Any, message: Any, load_outputs: list[Any],
          ask_load: Callable[[str, str, dict], list[Any]]) -> None:
    """The path box, Open and Save, and the question. `ask_load(text, lang, config)` is the Load button's handler
    (what loading `text` changes, with Apply / Cancel), filling `load_outputs`; Open and Take theirs use it too."""
    lang0 = ctx.lang.value
    B = ctx.tr.bind
    with gr.Row(equal_height=True):
        path_box = B(gr.Textbox("", label=t("config.file", lang0), info=t("config.file_info", lang0),
                                elem_id="config-path", scale=4), label="config.file", info="config.file_info")
        open_btn = B(gr.Button(t("config.open", lang0), elem_id="config-open", scale=1), value="config.open")
        save_btn = B(gr.Button(t("config.save", lang0), variant="primary", elem_id="config-save", scale=2),
                     value="config.save")
    ask = stale_ask.build(ctx, "config")
    opened = gr.State(None)   # (path, Fingerprint) of the file as this page last read or wrote it

    def on_open(path_text: str, lang: str, config: dict):
        path = file_path(path_text, ctx.root)
        if path is None:
            return [gr.update(), gr.update(), *load_outputs_none(i18n.text("config.no_path", lang, level="error"))]
        try:
            toml, stamp = read_toml(path)
        except DanluError as e:
            return [gr.update(), gr.update(), *load_outputs_none(i18n.failed(e, lang))]
        return [toml, (str(path), stamp), *ask_load(toml, lang, config)]

    def load_outputs_none(msg: Any) -> list[Any]:
        # load_outputs are [pending, message, confirm row, apply button]: nothing to apply, only the message
        return [None, msg, gr.update(visible=False), gr.update()]

    def on_save(path_text: str, opened_now: Any, config: dict, lang: str):
        path = file_path(path_text, ctx.root)
        if path is None:
            return [opened_now, i18n.text("config.no_path", lang, level="error"), *stale_ask.asking()]
        try:
            stamp = save_toml(path, config, opened_now)
        except FileChanged as changed:
            # The question sits under the path box, just below the message line: said once, there.
            return [opened_now, "", *stale_ask.asking(i18n.both(changed.text, lang, level="warn"))]
        except (DanluError, OSError) as e:
            return [opened_now, i18n.failed(e, lang), *stale_ask.asking()]
        saved = i18n.text("config.saved", lang, level="ok", path=f"`{path}`")
        return [(str(path), stamp), saved, *stale_ask.asking()]

    def on_keep(path_text: str, opened_now: Any, config: dict, lang: str):
        path = file_path(path_text, ctx.root)
        try:
            text_now = cfgmod.dumps(cfgmod.from_dict(config))
            stamp, backup = overwrite_keeping_theirs(path, text_now.encode("utf-8"))
        except (DanluError, OSError, TypeError) as e:
            return [opened_now, i18n.failed(e, lang), *stale_ask.asking(gr.update())]   # the question stays open
        key = "config.kept" if backup else "config.saved"
        return [(str(path), stamp), i18n.text(key, lang, level="ok", path=f"`{path}`",
                                                backup=f"`{backup}`"),
                *stale_ask.asking()]

    def on_theirs(path_text: str, lang: str, config: dict):
        """Read the file on disk into the load box, with what loading it changes (Apply / Cancel as for Load)."""
        out = on_open(path_text, lang, config)
        if isinstance(out[1], tuple):   # read: the message says where the text came from before what it changes
            diff = out[3]
            out[3] = i18n.both(lambda lg: f"{t('config.took', lg)}\n\n{i18n.pick(diff, lg)}", lang,
                               classes=getattr(diff, "classes", None))
        return [*out, *stale_ask.asking()]

    def on_both(path_text: str, config: dict, lang: str):
        path = file_path(path_text, ctx.root)
        theirs, _ = read_stamped(path) if path else (None, None)
        try:
            mine = cfgmod.dumps(cfgmod.from_dict(config))
        except DanluError as e:
            return [i18n.failed(e, lang), *stale_ask.asking(gr.update())]   # the question stays open
        shown = theirs.decode("utf-8", errors="replace") if theirs is not None else None
        both = stale_ask.side_by_side([(str(path), mine, shown)], lang)
        differences = settings_differ(shown, config, lang)
        return [gr.update(), differences or both[0], *both[1:]]

    saves = [opened, message, *ask.outputs]
    open_btn.click(*reads_form(ctx, on_open, [path_box, ctx.lang, ctx.config]), [text, opened, *load_outputs])
    save_btn.click(*reads_form(ctx, on_save, [path_box, opened, ctx.config, ctx.lang]), saves,
                   concurrency_id=COMMIT_GROUP)
    ask.keep.click(*reads_form(ctx, on_keep, [path_box, opened, ctx.config, ctx.lang]), saves,
                   concurrency_id=COMMIT_GROUP)
    ask.theirs.click(*reads_form(ctx, on_theirs, [path_box, ctx.lang, ctx.config]),
                     [text, opened, *load_outputs, *ask.outputs])
    ask.both.click(*reads_form(ctx, on_both, [path_box, ctx.config, ctx.lang]), [message, *ask.outputs])
