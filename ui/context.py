"""What every tab module receives: the shared states, the translator and the app's folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ui.i18n import Translator


@dataclass
class AppContext:
    """Shared by the tab modules.

    lang:   gr.State holding 'zh' or 'en'; pass it as an input to handlers that write messages.
    config: gr.State holding the run config as nested plain data (core.config.to_dict); tabs that
            change settings return a new dict for it, tabs that show settings listen to config.change.
    tabs:   the gr.Tabs, so a handler can return gr.Tabs(selected="grid") to move the user on.
    selected_run: gr.State holding a run folder path (str, '' for none); the Train tab sets it when
            the user opens a finished run in the XYZ grid, and the grid tab reads it.
    demo:   gr.State holding the run.toml path (str) of the demo the start panel just made; the tabs that list
            models or taggers listen to its change to add the demo's ones (ui/start.py).
    form:   the Parameters tab's run form (ui.form.Form), set when that tab is built; a handler that reads the
            config for a button goes through ui.form.reads_form, so it uses what the form shows.
    form_seen: gr.State of the values the server put in each form field (ui.form.Form.seen).
    """

    lang: Any
    config: Any
    tr: Translator
    tabs: Any
    root: Path          # the project folder
    outputs_dir: Path   # runs live in outputs_dir/<name>/
    models_dir: Path    # the checkpoints folder the Model tab lists
    selected_run: Any = None
    demo: Any = None
    form: Any = None
    form_seen: Any = None
