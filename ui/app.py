"""The Danlu page: a header with the language switch and one tab per step.

Tab modules expose TAB_ID, TAB_KEY (the i18n key of the tab title) and build(ctx). They are
listed in TABS in the order of the seven steps.
"""

from __future__ import annotations

import gc
import importlib
from pathlib import Path

import gradio as gr

from core import config as cfgmod
from core.errors import current_lang
from ui import frames, i18n, start, train_live
from ui.context import AppContext
from ui.i18n import Translator, t

ROOT = Path(__file__).resolve().parent.parent

TABS = ["ui.tab_model", "ui.tab_dataset", "ui.tagging", "ui.tab_params", "ui.tab_train", "ui.tab_grid",
        "ui.tab_tools", "ui.tab_config"]

CSS = """
.danlu-error, .danlu-ok, .danlu-warn { white-space: pre-wrap; }
/* The Markdown's own prose styles colour its paragraphs: the line's colour is set on them too. */
.danlu-error, .danlu-error * { color: #b42318 !important; }
.danlu-ok, .danlu-ok * { color: #067647 !important; }
.danlu-warn, .danlu-warn * { color: #b54708 !important; }
footer { display: none !important; }
.danlu-hidden { display: none !important; }
"""


def _tab_modules() -> list:
    return [importlib.import_module(name) for name in TABS]


def build_app(lang: str | None = None, outputs_dir: Path | None = None, models_dir: Path | None = None) -> gr.Blocks:
    lang = lang or current_lang()
    tr = Translator()
    with gr.Blocks(title="Danlu 丹炉") as demo:
        # The queue is set up while the page is still empty: queue() rebuilds the server app, which for the
        # finished page costs as much as building it again.
        demo.queue(default_concurrency_limit=4)
        lang_state = gr.State(lang)
        config_state = gr.State(cfgmod.to_dict(cfgmod.default_config()))
        selected_run = gr.State("")
        demo_run = gr.State("")
        with gr.Row(equal_height=True):
            with gr.Column(scale=5):
                title = tr.bind(gr.Markdown(f"## {t('app.title', lang)}\n{t('app.subtitle', lang)}"),
                                value="app.title")
            with gr.Column(scale=1, min_width=180):
                lang_radio = tr.bind(gr.Radio(i18n.LANG_CHOICES, value=lang, label=t("app.language", lang),
                                              elem_id="danlu-lang"), label="app.language")
        # Step 1 is the app itself: the panel above the tabs says the seven steps and offers the demo.
        with tr.bind(gr.Accordion(t("start.title", lang), open=True, elem_id="start-panel"), label="start.title"):
            start_panel = start.build_panel(tr, lang)
        with gr.Tabs(elem_id="danlu-tabs") as tabs:
            ctx = AppContext(lang=lang_state, config=config_state, tr=tr, tabs=tabs, root=ROOT,
                             outputs_dir=Path(outputs_dir or ROOT / "outputs"),
                             models_dir=Path(models_dir or ROOT / "models" / "checkpoints"), selected_run=selected_run,
                             demo=demo_run)
            for module in _tab_modules():
                with tr.bind(gr.Tab(t(module.TAB_KEY, lang), id=module.TAB_ID, elem_id=f"tab-{module.TAB_ID}"),
                             label=module.TAB_KEY):
                    module.build(ctx)
        start.wire(ctx, start_panel)

        # The title holds two keys in one Markdown, so it is relabelled here rather than by the table.
        tr.bindings = [(c, a) for c, a in tr.bindings if c is not title]

        # Lines made by handlers (i18n.follow) are shown again from the texts their States keep.
        followed = i18n.followed(lang_state)

        def switch(new_lang: str, *texts):
            return [new_lang, gr.update(value=f"## {t('app.title', new_lang)}\n{t('app.subtitle', new_lang)}"),
                    *tr.updates(new_lang), *i18n.rendered(lang_state, texts, new_lang)]

        lang_radio.change(switch, inputs=[lang_radio, *(s for s, _ in followed)],
                          outputs=[lang_state, title, *tr.components, *(c for _, c in followed)])
        demo.load(None, None, None, js=train_live.LOAD_JS)  # the Train tab's light look (ui/train_live.py)
    demo.danlu_ctx = ctx  # for tests
    return demo


def file_routes(outputs_dir: Path) -> dict:
    """What the page's file routes (/file=, /gradio_api/file=) may serve besides gradio's own upload and cache
    folders: the outputs folder (runs, samples, grids, the model previews under outputs/.danlu) and nothing else:
    not the project's source, the user's datasets and models, or the rest of the disk. gradio resolves '..' and
    links before it checks, so a link in outputs to a file elsewhere is refused too."""
    return {"allowed_paths": [str(Path(outputs_dir).resolve())]}


def page_scripts() -> dict:
    """The launch argument that writes the page's early script into its HTML: ui.frames' (idle pages draw no
    frames)."""
    return frames.app_kwargs()


def launch(host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           open_browser: bool = True, lang: str | None = None) -> None:
    """Serve the page until interrupted.

    ui.serve turns the garbage collector off before importing gradio; it comes back on once the page is served,
    with everything built so far frozen. Collections while starting would walk the same few hundred thousand
    long-lived objects (gradio, the page) again and again, and later ones need not walk them at all; the price is
    the little garbage the start leaves (about 3 MB), kept for the life of the server."""
    demo = build_app(lang=lang)
    demo.launch(server_name=host, server_port=port, auth=auth, inbrowser=open_browser, show_error=True,
                css=CSS, theme=gr.themes.Soft(), prevent_thread_lock=True, app_kwargs=page_scripts(),
                **file_routes(demo.danlu_ctx.outputs_dir))
    gc.freeze()
    gc.enable()
    demo.block_thread()
