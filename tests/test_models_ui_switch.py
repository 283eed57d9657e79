"""A new base model clears the previous family's state; the Model tab's message line says its level; the Z-Image
"Local file" adapter offers the one found beside the base."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core import config as cfgmod
from ui import model_switch, tab_model
from ui.families import zimage as zui


@pytest.fixture(scope="module")
def sd15_file(demo_run):
    return demo_run.parent / "base" / "tiny-sd15.safetensors"


def _zimage_preset_config() -> dict:
    """The run settings after the Z-Image Turbo preset, with the user's own rank."""
    from ui.tab_params import apply_preset

    config = apply_preset(cfgmod.to_dict(cfgmod.default_config()), "zimage_turbo_adapter")
    assert config["model"]["family"] == "zimage" and config["dataset"]["resolution"] == 1024
    return cfgmod.with_values(config, {"network.rank": 24})


def test_an_sd15_file_after_the_zimage_preset_trains_as_sd15(sd15_file, tmp_path, monkeypatch):
    from ui.form import config_family

    monkeypatch.setenv("DANLU_CACHE_DIR", str(tmp_path))
    config = _zimage_preset_config()
    new, _, message = tab_model.check(str(sd15_file), config, "en")
    assert config_family(new) == "sd15" and new["model"]["family"] == "auto"
    defaults = cfgmod.to_dict(cfgmod.default_config())
    assert new["model"]["variant"] == defaults["model"]["variant"]
    assert new["model"]["training_adapter"] == "none"
    assert new["network"]["dit_targets"] == defaults["network"]["dit_targets"]  # a DiT-only field
    # The preset's leftovers are back to the defaults; the tiny SD1.5's own size is set (64 px: 256 the smallest).
    assert new["dataset"]["resolution"] == 256 and new["sampling"]["width"] == 64
    assert new["sampling"]["steps"] == defaults["sampling"]["steps"] and new["sampling"]["cfg"] != 1.0
    assert new["optimizer"]["name"] == defaults["optimizer"]["name"]
    assert new["network"]["rank"] == 24  # changed by the user after the preset: kept
    assert "Family changed from zimage to sd15" in message and message.classes == ["danlu-ok"]
    from models.preflight import issues

    assert not [i for i in issues(cfgmod.from_dict(new)) if i.key.startswith("model.") and i.level == "error"]
    cfgmod.from_dict(new)  # a valid run config


def test_the_same_family_keeps_every_setting(sd15_file, tmp_path, monkeypatch):
    monkeypatch.setenv("DANLU_CACHE_DIR", str(tmp_path))
    config = cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()),
                                {"model.base": str(sd15_file), "sampling.steps": 8, "dataset.resolution": 768})
    assert model_switch.leftovers(config, "sd15", "sd15") == {}
    new, _, message = tab_model.check(str(sd15_file.parent / "tiny-sd15"), config, "en")
    assert new["sampling"]["steps"] == 8 and new["dataset"]["resolution"] == 768
    assert "Family changed" not in message


def test_sdxl_to_sd15_moves_the_native_resolution():
    config = cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()),
                                {"model.family": "sdxl", "dataset.resolution": 1024, "sampling.width": 1024,
                                 "sampling.height": 1024})
    info = SimpleNamespace(path="/m/sd15.safetensors", family="sd15", native_resolution=512, zero_terminal_snr=False)
    new, notes = tab_model.apply_choice(config, info, "en")
    assert new["model"]["family"] == "auto" and new["dataset"]["resolution"] == 512
    assert (new["sampling"]["width"], new["sampling"]["height"]) == (512, 512)
    assert any("Family changed from sdxl to sd15" in n for n in notes)


def test_a_blocking_check_is_red_and_a_warning_orange(sd15_file, tmp_path, monkeypatch):
    monkeypatch.setenv("DANLU_CACHE_DIR", str(tmp_path))
    info = tab_model.check_info(str(sd15_file), cfgmod.to_dict(cfgmod.default_config()), "en")[3]
    wrong = cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()),
                               {"model.base": str(sd15_file), "model.family": "zimage"})
    assert tab_model.check_level(info, wrong) == "error"
    assert tab_model.check_level(info, cfgmod.with_values(wrong, {"model.family": "auto"})) == "ok"
    from ui import i18n

    assert i18n.level_of(["info", "warning"]) == "warn" and i18n.level_of([]) == "ok"
    assert i18n.text("model.used", "en", level="warn").classes == ["danlu-warn"]


def test_local_file_adapter_offers_the_one_beside_the_base(tmp_path):
    base = tmp_path / "base" / "tiny-zimage"
    base.mkdir(parents=True)
    (tmp_path / "base" / "adapter.safetensors").write_bytes(b"x")
    (tmp_path / "base" / "other.safetensors").write_bytes(b"x")
    models = tmp_path / "models"
    models.mkdir()
    (models / "zimage_turbo_training_adapter_v2.safetensors").write_bytes(b"x")
    found = zui.adapter_candidates(str(base), [models, tmp_path / "missing"])
    assert found == [str(tmp_path / "base" / "adapter.safetensors"),
                     str(models / "zimage_turbo_training_adapter_v2.safetensors")]
    assert zui.adapter_candidates("", [tmp_path / "missing"]) == []
