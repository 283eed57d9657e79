"""Editor help: suggestions from the dataset and the tagger's vocabulary with counts, one folder's common
tags, and "drop these" as one undoable edit that Save backs up."""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image

from core.dataset.tag_help import drop_from_folder, folders, frequent_tags, suggestions
from core.dataset.tags import TagEditor
from taggers.tiny import make_tiny_tagger
from taggers.vocab import vocabulary


def _ds(root):
    captions = {"10_a": ["sks, red hair, smile, solo", "sks, red hair, solo", "sks, red hair, solo, hat",
                         "sks, red hair, sitting"],
                "5_b": ["solo, hat", "blue sky, hat"]}
    for sub, caps in captions.items():
        (root / sub).mkdir(parents=True)
        for i, text in enumerate(caps):
            Image.new("RGB", (8, 8)).save(root / sub / f"{i}.png")
            (root / sub / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def test_vocabulary_reads_the_csv_and_needs_no_download(tmp_path):
    vocab = dict(vocabulary(str(make_tiny_tagger(tmp_path / "tagger"))))
    assert "simple background" in vocab and "^_^" in vocab and "general" not in vocab   # no ratings
    assert vocab["simple background"] > vocab["white background"] > 0
    assert vocabulary("wd-eva02-large-tagger-v3") == []          # not downloaded: nothing, and no download


def test_suggestions_dataset_first_then_vocabulary():
    rows = suggestions(Counter({"red hair": 4, "sks": 4, "hat": 2}), [("hat", 900), ("long hair", 5000),
                                                                      ("red_hair", 1)], limit=4)   # same key
    assert rows == [("red hair", 4, 1), ("sks", 4, 0), ("hat", 2, 900), ("long hair", 0, 5000)]


def test_frequent_tags_per_folder_and_drop_with_undo_and_backup(tmp_path):
    root = _ds(tmp_path / "ds")
    ed = TagEditor(root, trigger="sks")
    groups = folders(ed)
    assert list(groups) == ["10_a", "5_b"] and len(groups["10_a"]) == 4
    assert frequent_tags(ed, groups["10_a"]) == [("red hair", 4, 1.0)]            # the trigger is left out
    assert [r[0] for r in frequent_tags(ed, groups["10_a"], 0.5)] == ["red hair", "solo"]
    assert [r[0] for r in frequent_tags(ed, groups["5_b"])] == ["hat"]
    assert drop_from_folder(ed, "10_a", ["red hair", "solo"]) == 4
    assert ed.items[groups["5_b"][0]].tags == ["solo", "hat"]                    # other folders untouched
    assert ed.undo() == "remove" and not ed.pending
    drop_from_folder(ed, "10_a", ["red hair"])
    report = ed.save()
    assert len(report.written) == 4 and len(report.backups) == 4
    assert (root / "10_a" / "0.txt").read_text(encoding="utf-8") == "sks, smile, solo"
    assert drop_from_folder(ed, "nowhere", ["hat"]) == 0


def test_section_choices_and_layout(tmp_path):
    import gradio as gr

    from ui.context import AppContext
    from ui.i18n import Translator
    from ui.tagging.help import append_tag, frequent_choices, lookup_choices

    ed = TagEditor(_ds(tmp_path / "ds"), trigger="sks")
    tagger = str(make_tiny_tagger(tmp_path / "tagger"))
    choices = lookup_choices(ed, tagger, "en")
    assert choices[0] == ("red hair · 4 here", "red hair")
    assert any(label.startswith("simple background · ") and label.endswith(" posts") for label, _ in choices)
    assert lookup_choices(None, tagger, "zh")[0][0].endswith("作品")
    assert frequent_choices(ed, "10_a", 0.8) == ([("red hair · 4/4", "red hair")], ["red hair"])
    assert append_tag("a, b", "c") == "a, b, c" and append_tag("a", "a") == "a"
    with gr.Blocks() as demo:
        from ui.tagging import build

        build(AppContext(lang=gr.State("en"), config=gr.State({}), tr=Translator(), tabs=None,
                                     root=tmp_path, outputs_dir=tmp_path, models_dir=tmp_path))
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"taghelp-lookup", "taghelp-folder", "taghelp-frequent", "taghelp-drop"} <= ids


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_strings_in_both_languages(lang):
    from ui.i18n import STRINGS, t

    assert all(t(k, lang, n=1, tags="x", folder="f") for k in STRINGS if k.startswith("taghelp."))
