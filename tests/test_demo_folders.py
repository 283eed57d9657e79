"""`launcher.py demo` and `demo --family zimage` each write their own folder: neither overwrites the other's
run.toml, base, dataset or runs."""

from __future__ import annotations

from core import config as cfgmod
from models.demo import family_folder, main


def test_each_familys_demo_keeps_its_own_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default --out is relative to the shell's folder
    assert main([]) == 0
    sd15_toml = tmp_path / "outputs" / "demo" / "run.toml"
    before = sd15_toml.read_bytes()
    assert main(["--family", "zimage"]) == 0
    z_toml = tmp_path / "outputs" / "demo" / "zimage" / "run.toml"
    assert "zimage" in capsys.readouterr().out and z_toml.is_file()
    assert sd15_toml.read_bytes() == before  # the SD1.5 demo is untouched
    sd15, z = cfgmod.load(sd15_toml), cfgmod.load(z_toml)
    assert sd15.model.family != "zimage" and sd15.model.training_adapter == "none"
    assert (z.model.family, z.model.variant) == ("zimage", "turbo")
    folders = [(c.model.base, c.dataset.dir, c.run_dir) for c in (sd15, z)]
    assert all(a != b for a, b in zip(*folders, strict=True))  # base, dataset and runs apart


def test_family_folder():
    assert family_folder("outputs/demo", "sd15").as_posix() == "outputs/demo"
    assert family_folder("outputs/demo", "zimage").as_posix() == "outputs/demo/zimage"
