"""Step 4 打标 Tagging: auto-tag with a WD ONNX tagger, then edit the tags (drop what the trigger should learn).

The tab composes its sections around one folder and trigger word: the auto-tagger (auto.py), sentence captions
(captions.py) and the editor (editor.py lays it out, edits.py holds its handlers, with tag help from help.py); the
session state they share (each session's editor, its lock, the loaded tagger) is in state.py.
"""

from __future__ import annotations

import gradio as gr

from core import config as cfgmod
from core.errors import DanluError
from taggers.options import TagRequest
from ui import i18n
from ui.context import AppContext
from ui.i18n import t
from ui.tagging import auto, captions, editor
from ui.tagging.state import unsaved

TAB_ID = "tagging"
TAB_KEY = "tagging.tab"

i18n.add({
    "tagging.tab": ("4 打标", "4 Tagging"),
    "tagging.intro": ("先用 WD 打标模型自动打标，再编辑标签。**越想学的越不标**：某个特征标得越少，"
                      "触发词就越会吸收它。想让触发词学会的脸、发色、画风等，请从标注中删掉；"
                      "想在提示词里还能改动的，请保留。",
                      "Auto-tag with a WD tagger, then edit the tags. **The less you tag a feature, the more the "
                      "trigger word absorbs it (越想学的越不标)**: remove the face, hair or style tags the trigger "
                      "should learn; keep the ones you want to change in prompts."),
    "tagging.dir": ("训练集文件夹", "Dataset folder"),
    "tagging.dir_info": ("10_name 等子文件夹的上级，或一个图片文件夹；默认取当前配置的 dataset.dir。",
                         "The parent of the 10_name folders, or one image folder; defaults to dataset.dir."),
    "tagging.trigger": ("触发词", "Trigger word"),
    "tagging.load": ("读取标注", "Load captions"),
})


def run_tagger(folder: str, req: TagRequest, lang: str, key: str):
    """The auto-tagger's run, refused while this session's editor holds unsaved edits."""
    return auto.run_tagger(folder, req, lang, key, refusal=unsaved)


def build(ctx: AppContext) -> None:
    lang0 = ctx.lang.value
    cfg0 = ctx.config.value.get("dataset", {}) if isinstance(ctx.config.value, dict) else {}
    B = ctx.tr.bind
    B(gr.Markdown(t("tagging.intro", lang0)), value="tagging.intro")
    with gr.Row():
        folder = B(gr.Textbox(cfg0.get("dir", ""), label=t("tagging.dir", lang0), info=t("tagging.dir_info", lang0),
                              elem_id="tagging-dir", scale=4), label="tagging.dir", info="tagging.dir_info")
        trigger = B(gr.Textbox(cfg0.get("trigger_word", ""), label=t("tagging.trigger", lang0),
                               elem_id="tagging-trigger", scale=2), label="tagging.trigger")
        load = B(gr.Button(t("tagging.load", lang0), elem_id="tagging-load", scale=1), value="tagging.load")
    ext = gr.State(cfg0.get("caption_extension", ".txt"))
    model, general, character, tagged = auto.build(ctx, folder, trigger, ext, refusal=unsaved)
    captions.build(ctx, folder, trigger, ext, model, general, character)

    editor.build(ctx, folder, trigger, ext, load, tagged, model)

    def on_config(config: dict, cur_dir: str, cur_trig: str):
        try:
            ds = cfgmod.from_dict(config).dataset if config else None
        except DanluError:  # a half-edited config elsewhere must not break this tab
            ds = None
        if ds is None:
            return gr.update(), gr.update(), gr.update()
        return (ds.dir or cur_dir), (ds.trigger_word or cur_trig), ds.caption_extension

    ctx.config.change(on_config, [ctx.config, folder, trigger], [folder, trigger, ext], show_progress="hidden")
