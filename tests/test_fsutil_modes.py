"""Atomic writes keep the file's owner rights: an overwritten file keeps its mode, a new one follows the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core import fsutil

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_current_umask_reads_without_changing_it(umask_027):
    assert fsutil.current_umask() == 0o027
    assert fsutil.current_umask() == 0o027


def test_new_file_gets_the_umask_default_and_no_temp_is_left(tmp_path, umask_027):
    path = fsutil.atomic_write_text(tmp_path / "new.txt", "hello")
    assert _mode(path) == 0o640  # 0666 & ~0027, what open() would give
    assert [p.name for p in tmp_path.iterdir()] == ["new.txt"]


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600, 0o444])
def test_overwritten_file_keeps_its_mode(tmp_path, mode, umask_027):
    path = tmp_path / "x.txt"
    path.write_text("old")
    path.chmod(mode)
    fsutil.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == mode


def test_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    seen = []
    real = fsutil.fsync_folder
    monkeypatch.setattr(fsutil, "fsync_folder", lambda folder: (seen.append(Path(folder)), real(folder)))
    fsutil.atomic_write_bytes(tmp_path / "sub" / "f.bin", b"1")
    assert seen == [tmp_path / "sub"]


def test_caption_edit_keeps_the_users_mode(tmp_path, umask_027):
    from core.dataset.captions import write_caption

    cap = tmp_path / "10_cat" / "a.txt"
    cap.parent.mkdir()
    cap.write_text("cat, red")
    cap.chmod(0o664)
    write_caption(cap, "cat", backup=False)
    assert cap.read_text() == "cat"
    assert _mode(cap) == 0o664
    write_caption(tmp_path / "10_cat" / "b.txt", "dog", backup=False)
    assert _mode(tmp_path / "10_cat" / "b.txt") == 0o640


def test_config_save_keeps_mode_and_new_config_follows_umask(tmp_path, umask_027):
    from core import config

    cfg = config.default_config()
    new = config.save(cfg, tmp_path / "run.toml")
    assert _mode(new) == 0o640
    new.chmod(0o644)
    config.save(cfg, new)
    assert _mode(new) == 0o644


def test_lora_file_keeps_mode_and_new_file_follows_umask(tmp_path, umask_027):
    torch = pytest.importorskip("torch")
    from models.lora_file import save_lora

    state = {"lora_unet_a.lora_down.weight": torch.ones(2, 4), "lora_unet_a.lora_up.weight": torch.ones(4, 2),
             "lora_unet_a.alpha": torch.tensor(2.0)}
    path = tmp_path / "x.safetensors"
    save_lora(path, state, {"ss_network_dim": 2})
    assert _mode(path) == 0o640
    path.chmod(0o644)
    save_lora(path, state, {"ss_network_dim": 2})
    assert _mode(path) == 0o644
