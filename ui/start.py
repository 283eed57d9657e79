"""Step 1 炼丹炉, the app itself: a start panel above the tabs that says the seven steps and makes the demo.

The demo (models/demo.py: a tiny base model, 12 images and a run.toml, made on this machine, no download) is made
under <outputs>/demo with the tiny offline tagger beside it, as `launcher.py demo` makes it, and is then selected:
its run.toml becomes the form's settings (the Model, Dataset and Tagging tabs follow the config), and ctx.demo
tells the tabs that list models and taggers to list the demo's ones and pick them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from ui import i18n
from ui.context import AppContext
from ui.i18n import t

DEMO_FAMILIES = ("sd15", "zimage")
# Two clicks (two tabs of the page) must not write the same demo files at once.
_MAKING = threading.Lock()

STEP_LINES = [  # one line per step, in the order of the tabs
    ("**1 炼丹炉** — 就是这个页面：下面每个标签页是一步，从左到右依次完成。",
     "**1 The app** — this page: each tab below is one step, from left to right."),
    ("**2 底模** — 选择底模：模型文件、diffusers 文件夹或 hub id，先看清它是什么。",
     "**2 Model** — pick the base model (a file, a diffusers folder or a hub id) and see what it is."),
    ("**3 选图** — 选择训练图片：逐张检查，显示分桶与步数。",
     "**3 Dataset** — pick the images: each one is checked; buckets and steps are shown."),
    ("**4 打标** — 用 WD1.4 打标模型自动打标，再编辑标签。",
     "**4 Tagging** — auto-tag with a WD1.4 tagger, then edit the tags."),
    ("**5 调参** — 预设、参数与提示，实时预览 TOML。",
     "**5 Parameters** — presets, settings and hints, with a live TOML preview."),
    ("**6 炼丹** — 开始训练，查看日志、损失曲线和每轮样图。",
     "**6 Train** — start, and watch the log, the loss curve and each epoch's samples."),
    ("**7 验单** — XYZ 图：各轮 × LoRA 权重，一张带标注的对比图。",
     "**7 XYZ grid** — epochs × LoRA weights in one labelled grid."),
]

i18n.add({
    "start.title": ("从这里开始", "Where to start"),
    "start.steps": ("  \n".join(zh for zh, _ in STEP_LINES), "  \n".join(en for _, en in STEP_LINES)),
    "start.demo_intro": ("还没有模型和图片？先试试演示：一个很小的底模、12 张图、一个离线打标模型和一份运行配置，"
                         "全部在本机生成，无需下载，CPU 上几分钟就能走完七步。",
                         "No model or images yet? Try the demo first: a tiny base model, 12 images, an offline "
                         "tagger and a run config, all made on this machine with no download; the seven steps take "
                         "a few minutes on a CPU."),
    "start.demo_sd15": ("试用演示（SD1.5，无需下载）", "Try the demo (SD1.5, no download)"),
    "start.demo_zimage": ("试用 Z-Image 演示（无需下载）", "Try the Z-Image demo (no download)"),
    "start.making": ("正在生成演示（{family}）…", "Making the demo ({family})…"),
    "start.made": ("✔ 演示已就绪（{family}），已选中：底模、训练图片、打标模型和运行参数都来自 `{folder}`。\n\n"
                   "下一步：在 **2 底模** 查看这个底模；**3 选图** 中是它的 12 张图；**4 打标** 可以用演示打标模型"
                   "重新打标；然后到 **6 炼丹** 点“开始”。演示底模是随机的小模型，样图会是彩色噪点，"
                   "这是正常的。",
                   "✔ The demo ({family}) is ready and selected: the base model, the images, the tagger and the run "
                   "settings come from `{folder}`.\n\n"
                   "Next: **2 Model** shows the base model; **3 Dataset** its 12 images; **4 Tagging** can tag them "
                   "again with the demo tagger; then press Start in **6 Train**. The demo's base is a tiny random "
                   "model, so its samples are coloured noise: that is expected."),
    "start.failed": ("✖ 无法生成演示：{error}\n\n请确认 `{folder}` 可写、磁盘有空间，然后再试一次。",
                     "✖ The demo could not be made: {error}\n\nCheck that `{folder}` is writable and the disk has "
                     "room, then try again."),
})

FAMILY_NAMES = {"sd15": "SD1.5", "zimage": "Z-Image"}


def demo_folder(outputs_dir: Path) -> Path:
    """Where the page makes the demo: the folder `launcher.py demo` writes by default."""
    return Path(outputs_dir) / "demo"


def _in_demo(outputs_dir: Path | None, name: str) -> list[Path]:
    """`name` in the demo folder's top and one level down (one folder per family); none without an outputs folder."""
    root = demo_folder(outputs_dir) if outputs_dir is not None else None
    if root is None or not root.is_dir():
        return []
    return sorted([*root.glob(name), *root.glob(f"*/{name}")])


def demo_runs(outputs_dir: Path | None) -> list[Path]:
    """The run.toml of every demo made under the demo folder."""
    return _in_demo(outputs_dir, "run.toml")


def base_of(run_toml: Path) -> Path | None:
    """The run's model.base, read from the TOML alone (a full load would validate every field)."""
    try:
        base = (cfgmod.parse_toml(run_toml.read_text(encoding="utf-8-sig"), str(run_toml)).get("model") or {}).get(
            "base", "")
    except (OSError, DanluError):
        return None
    return Path(base) if base else None


def demo_models(outputs_dir: Path | None) -> list[Path]:
    """The base models of the demos made so far that still exist, for the Model tab's list."""
    bases = (base_of(p) for p in demo_runs(outputs_dir))
    return list(dict.fromkeys(b for b in bases if b is not None and b.exists()))


def demo_taggers(outputs_dir: Path | None) -> list[Path]:
    """The demo's offline tagger folders (model.onnx beside selected_tags.csv), for the Tagging tab's list."""
    from taggers.wd14 import MODEL_FILE, TAGS_FILE

    return [p for p in _in_demo(outputs_dir, "tagger") if (p / MODEL_FILE).is_file() and (p / TAGS_FILE).is_file()]


def make(outputs_dir: Path, family: str) -> Path:
    """Make the demo of `family` and its offline tagger, as `launcher.py demo` does; return its run.toml."""
    from models.demo import family_folder, make_demo
    from taggers.tiny import make_tiny_tagger

    root = demo_folder(outputs_dir)
    with _MAKING:
        run_toml = make_demo(family_folder(root, family), family)
        make_tiny_tagger(root / "tagger")  # one tagger for every family's demo, where `launcher.py demo` puts it
    return run_toml


def build_panel(tr: i18n.Translator, lang: str) -> SimpleNamespace:
    """The panel's components (lay out inside an open Accordion above the tabs); `wire` connects them."""
    p = SimpleNamespace()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            tr.bind(gr.Markdown(t("start.steps", lang), elem_id="start-steps"), value="start.steps")
        with gr.Column(scale=2):
            tr.bind(gr.Markdown(t("start.demo_intro", lang), elem_id="start-demo-intro"), value="start.demo_intro")
            with gr.Row():
                p.buttons = {fam: tr.bind(gr.Button(t(f"start.demo_{fam}", lang), variant="primary" if i == 0
                                                    else "secondary", elem_id=f"start-demo-{fam}"),
                                          value=f"start.demo_{fam}")
                             for i, fam in enumerate(DEMO_FAMILIES)}
            p.message = gr.Markdown("", elem_id="start-message")
    return p


def wire(ctx: AppContext, panel: SimpleNamespace) -> None:
    """Each demo button makes its demo, then selects it: the run's settings, the demo State, the Model tab."""
    message = i18n.follow(panel.message, ctx.lang)

    def on_demo(family: str, lang: str):
        name = FAMILY_NAMES[family]
        yield gr.update(), gr.update(), i18n.text("start.making", lang, family=name), gr.update()
        folder = demo_folder(ctx.outputs_dir)
        try:
            run_toml = make(ctx.outputs_dir, family)
            config = cfgmod.to_dict(cfgmod.load(run_toml))
        except Exception as e:  # noqa: BLE001 - any failure is shown on the page with what to do
            err = e  # `e` is unbound once the except block ends; the message is redrawn on a language switch

            def failed(lg: str) -> str:
                error = err.text(lg) if isinstance(err, DanluError) else f"{type(err).__name__}: {err}"
                return t("start.failed", lg, error=error, folder=folder)

            yield gr.update(), gr.update(), i18n.both(failed, lang, classes=["danlu-error"]), gr.update()
            return
        made = i18n.both(lambda lg: t("start.made", lg, family=name, folder=run_toml.parent), lang,
                         classes=["danlu-ok"])
        yield config, str(run_toml), made, gr.Tabs(selected="model")

    def handler(family: str):
        def run(lang: str):
            yield from on_demo(family, lang)
        return run

    for family, button in panel.buttons.items():
        button.click(handler(family), ctx.lang, [ctx.config, ctx.demo, message, ctx.tabs])
