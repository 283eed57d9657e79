"""Names typed in the page stay in their folder: a run name, a preset name, a queue id and a dataset sub-folder
(concept) name given as '../x', an absolute path or with separators are refused with a message, and nothing is
written, moved or deleted outside the folder they belong to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from core import config as cfgmod
from core.errors import DanluError

CLIMBS = ["../x", "../../x", "..", "/tmp/x", "a/b", "a\\b", "C:\\x", "x/../../y"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("name", CLIMBS)
def test_run_name(name, tmp_path):
    """Every way the page sets it (the form's values, an imported file, --set) checks it."""
    with pytest.raises(cfgmod.ConfigError) as e:
        cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()), {"saving.name": name})
    assert e.value.key == "saving.name" and "file name" in e.value.text("en") and "文件名" in e.value.text("zh")
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.load(overrides=[f"saving.name={json.dumps(name)}"])
    cfg, _, rejected, _ = cfgmod.merge_lenient(cfgmod.default_config(), {"saving": {"name": name}})
    assert cfg.saving.name == "lora" and [r.key for r in rejected] == ["saving.name"]


@pytest.mark.parametrize("name", CLIMBS)
def test_preset_name(name):
    from core.config.presets import preset_dict

    with pytest.raises(DanluError) as e:  # presets are a table in the code: a name is looked up, never opened
        preset_dict(name)
    assert "preset" in e.value.text("en").lower() and "预设" in e.value.text("zh")


@pytest.mark.parametrize("item_id", CLIMBS + ["items/q0001", "q0001.toml"])
def test_queue_id(item_id, tmp_path):
    from core.runs.queue import Queue

    victim = tmp_path / "x"
    victim.write_text("the user's", encoding="utf-8")
    q = Queue(tmp_path / "outputs")
    q.add(cfgmod.default_config())
    before = _files(tmp_path)
    for act in (q.get, q.remove, lambda i: q.move(i, 1), q.cancel, q.requeue):
        with pytest.raises(DanluError, match="No queued run"):
            act(item_id)
    assert _files(tmp_path) == before and victim.read_text(encoding="utf-8") == "the user's"


def test_queue_file_naming_a_settings_file_outside_items_is_set_aside(tmp_path):
    """Removing an item deletes its settings file: a queue.json that names one elsewhere is damaged, not obeyed."""
    from core.runs.queue import Queue

    victim = tmp_path / "victim.toml"
    victim.write_text("the user's", encoding="utf-8")
    q = Queue(tmp_path / "outputs")
    item = q.add(cfgmod.default_config())
    data = json.loads(q.path.read_text(encoding="utf-8"))
    data["items"][0]["config"] = f"items/../../../../{victim.name}"
    q.path.write_text(json.dumps(data), encoding="utf-8")
    q.remove(item.id)  # the queue as rebuilt from items/: its own file goes, the user's stays
    assert victim.read_text(encoding="utf-8") == "the user's"
    assert not list(q.folder.glob("items/*.toml")) and list(q.folder.glob("queue.json.damaged*"))


@pytest.mark.parametrize("name", CLIMBS)
def test_dataset_subfolder_name(name, tmp_path):
    from core.dataset.build import build_dataset, import_files

    source = tmp_path / "pictures"
    source.mkdir()
    Image.new("RGB", (8, 8)).save(source / "a.png")
    before = _files(tmp_path)
    with pytest.raises(DanluError) as e:
        build_dataset(source, name=name, repeats=2)
    assert e.value.key == "dataset.trigger_word" and e.value.text("zh") != e.value.text("en")
    with pytest.raises(DanluError):
        import_files([source / "a.png"], tmp_path / "parent", name=name, repeats=2)
    assert _files(tmp_path) == before
