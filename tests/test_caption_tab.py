"""Tagging tab, sentence-caption section without a browser: the run generator (progress, device, both
languages, sentence + tags, cancel, errors) on tiny models, and the section inside the built tab."""

from __future__ import annotations

import pytest
from PIL import Image

from taggers.tiny import make_tiny_tagger
from taggers.tiny_captioners import make_tiny_florence2
from ui.tagging import captions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return make_tiny_florence2(root / "florence2"), make_tiny_tagger(root / "tagger", size=32)


def _dataset(root, n=5):
    sub = root / "3_x"
    sub.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (24 + 3 * i, 20), (30 * i, 90, 200)).save(sub / f"{i}.png")
    return root


def _run(folder, models, lang="en", key="k", **kw):
    args = dict(style="short", combine="sentence", prefix=True, max_length=6, policy="overwrite", batch=2,
                trigger="sks", ext=".txt", general=0.5, character=0.85)
    args.update(kw)
    return captions.run_captioner(str(folder), str(models[0]), args["style"], args["combine"], args["prefix"],
                                  args["max_length"], args["policy"], args["batch"], args["trigger"],
                                  args["ext"], str(models[1]), args["general"], args["character"], lang, key)


def test_run_writes_sentences_with_trigger_and_reports(tmp_path, models):
    ds = _dataset(tmp_path / "ds")
    bar, status = list(_run(ds, models))[-1]
    assert "5/5 (100%)" in bar and "images/s" in bar
    assert "Captioning on CPU" in status and "5 written" in status
    assert (ds / "3_x" / "0.txt").read_text(encoding="utf-8").startswith("sks, ")
    bar, status = list(_run(ds, models, lang="zh", combine="sentence+tags", prefix=False))[-1]
    assert "在 CPU 上生成描述" in status and "在 CPU 上打标" in status and "写入 5" in status
    text = (ds / "3_x" / "1.txt").read_text(encoding="utf-8")
    assert not text.startswith("sks") and "simple background" in text


def test_cancel_keeps_what_is_done(tmp_path, models, monkeypatch):
    ds = _dataset(tmp_path / "ds", n=8)
    real = captions.get_captioner

    def cancelling(*a, **k):   # Cancel pressed while the first batch runs
        cap = real(*a, **k)

        class Once:
            device, on_gpu = cap.device, cap.on_gpu

            def caption(self, *args):
                captions._CANCELS["cancel-me"].set()
                return cap.caption(*args)
        return Once()

    monkeypatch.setattr(captions, "get_captioner", cancelling)
    bar, status = list(_run(ds, models, key="cancel-me", batch=2))[-1]
    assert sorted(p.name for p in (ds / "3_x").glob("*.txt")) == ["0.txt", "1.txt"]
    assert "Cancelled" in status and "2 written" in status


def test_errors_are_messages(tmp_path, models):
    bar, status = list(_run(tmp_path, (tmp_path / "missing", models[1])))[-1]
    assert status.startswith("✖") and "neither a folder" in status


def test_section_is_in_the_tagging_tab():
    import gradio as gr

    from ui.context import AppContext
    from ui.i18n import STRINGS, Translator

    with gr.Blocks() as demo:
        ctx = AppContext(lang=gr.State("en"), config=gr.State({}), tr=Translator(), tabs=None, root=__import__(
            "pathlib").Path("."), outputs_dir=None, models_dir=None)
        from ui.tagging import build

        build(ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"caption-section", "caption-model", "caption-run", "caption-cancel", "caption-combine"} <= ids
    assert all(len(STRINGS[k]) == 2 for k in STRINGS if k.startswith("caption."))
