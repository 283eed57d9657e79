"""The start panel (step 1, the app itself): the seven steps, the demo made and selected in one click, and the
demo's model and tagger in the Model and Tagging tabs' lists."""

from __future__ import annotations

import re

import pytest

from ui import start, tab_dataset, tab_grid, tab_model, tab_params, tab_train, tagging  # noqa: F401 - tab titles
from ui.i18n import t
from ui.tagging.auto import MODEL_CHOICES, model_choices


@pytest.fixture(scope="module")
def two_demos(tmp_path_factory):
    """An outputs folder holding the SD1.5 demo and the Z-Image demo, made as the page makes them."""
    outputs = tmp_path_factory.mktemp("outputs")
    return outputs, {family: start.make(outputs, family) for family in start.DEMO_FAMILIES}


def test_each_demo_has_its_run_and_both_are_listed(two_demos, tmp_path):
    outputs, runs = two_demos
    assert runs["sd15"] != runs["zimage"] and all(p.is_file() for p in runs.values())
    bases = start.demo_models(outputs)
    assert [start.base_of(runs[f]) for f in ("sd15", "zimage")] == bases
    # The Model tab's list: an empty checkpoints folder, and the two demo models with their families.
    labels = [label for label, _ in tab_model.scan([tmp_path / "checkpoints"], bases)]
    assert len(labels) == 2
    assert labels[0].startswith("tiny-sd15.safetensors") and labels[0].endswith("SD 1.x")
    assert labels[1].startswith("tiny-zimage") and labels[1].endswith("Z-Image")
    # A model already in the folders is listed once.
    in_folder = tab_model.scan([bases[0].parent])
    paths = [path for _, path in tab_model.scan([bases[0].parent], bases)]
    assert str(bases[0]) in [path for _, path in in_folder]
    assert len(paths) == len(set(paths)) == len(in_folder) + 1
    # The Tagging tab offers the catalog's taggers and then the demo's offline one.
    choices = model_choices(outputs)
    assert choices[:len(MODEL_CHOICES)] == MODEL_CHOICES
    assert choices[len(MODEL_CHOICES):] == [str(start.demo_folder(outputs) / "tagger")]


def test_nothing_listed_before_a_demo_is_made(tmp_path):
    assert start.demo_runs(tmp_path) == [] and start.demo_models(tmp_path) == []
    assert model_choices(tmp_path) == MODEL_CHOICES
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "run.toml").write_text("[model\n", encoding="utf-8")  # a broken run file is skipped
    assert start.demo_models(tmp_path) == []


def test_steps_name_the_tabs():
    """Each step line starts with its tab's number and name, in both languages, so the two never disagree."""
    tabs = {2: "model.tab", 3: "dataset.tab", 4: "tagging.tab", 5: "params.tab", 6: "train.tab", 7: "grid.tab"}
    for lang in ("zh", "en"):
        lines = t("start.steps", lang).split("  \n")
        assert len(lines) == 7
        for n, line in enumerate(lines, 1):
            number, name = re.match(r"\*\*(\d) ([^*]+)\*\*", line).groups()
            assert int(number) == n
            if n in tabs:
                assert t(tabs[n], lang).startswith(f"{n} {name.split()[0]}"), (line, t(tabs[n], lang))
