"""The Config tab's TOML file on disk: Save writes only what this page read, and asks otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import config as cfgmod
from core.errors import DanluError
from core.filestamp import FileChanged, overwrite_keeping_theirs
from ui.config_file import file_path, read_toml, save_toml, settings_differ


def _config(rank: int) -> dict:
    return cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()), {"network.rank": rank})


def test_relative_paths_start_at_the_project_folder(tmp_path: Path) -> None:
    assert file_path("outputs/a/config.toml", tmp_path) == tmp_path / "outputs/a/config.toml"
    assert file_path(f' "{tmp_path}/b.toml" ', Path("/elsewhere")) == tmp_path / "b.toml"
    assert file_path("  ", tmp_path) is None


def test_open_save_and_a_second_page_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(cfgmod.dumps(cfgmod.from_dict(_config(8))), encoding="utf-8")
    _, page_a = read_toml(path)
    _, page_b = read_toml(path)
    stamp_a = save_toml(path, _config(16), (str(path), page_a))
    assert cfgmod.load(path).network.rank == 16
    save_toml(path, _config(24), (str(path), stamp_a))          # A again: its own last write, no question
    with pytest.raises(FileChanged) as caught:                   # B read before A's saves
        save_toml(path, _config(32), (str(path), page_b))
    assert b"rank = 24" in caught.value.theirs and cfgmod.load(path).network.rank == 24
    # What B read for another path does not count for this one; a file never opened is not replaced unseen.
    with pytest.raises(FileChanged):
        save_toml(path, _config(32), (str(tmp_path / "other.toml"), page_b))
    # Keep mine: B's settings written, A's file kept beside it.
    _, backup = overwrite_keeping_theirs(path, cfgmod.dumps(cfgmod.from_dict(_config(32))).encode())
    assert cfgmod.load(path).network.rank == 32 and cfgmod.load(backup).network.rank == 24


def test_a_new_file_is_written_and_bad_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "new" / "run.toml"
    save_toml(path, _config(8), None)
    assert cfgmod.load(path).network.rank == 8
    with pytest.raises(DanluError, match="No such file"):
        read_toml(tmp_path / "missing.toml")
    (tmp_path / "gbk.toml").write_bytes("名字 = '丹炉'".encode("gbk"))
    with pytest.raises(DanluError, match="not UTF-8"):
        read_toml(tmp_path / "gbk.toml")


def test_show_both_names_the_settings_that_differ() -> None:
    theirs = cfgmod.dumps(cfgmod.from_dict(_config(8)))
    said = settings_differ(theirs, _config(32), "en")
    assert "differs from the version on disk in 1 settings" in said and "(`network.rank`): 8 → **32**" in said
    assert "network.rank" in said.to("zh") and "不同" in said.to("zh")
    assert settings_differ(None, _config(32), "en") is None                 # deleted: the boxes say so
    assert settings_differ("not = [toml", _config(32), "en") is None         # not a run TOML: the boxes show it
