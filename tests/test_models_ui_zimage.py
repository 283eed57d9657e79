"""The Model tab's Z-Image questions (variant, training adapter, proposed preset) and the download source row."""

from __future__ import annotations

from types import SimpleNamespace

from core import config as cfgmod
from core import download
from ui import model_source, tab_model
from ui.families import zimage as zui


def _config(**model) -> dict:
    cfg = cfgmod.to_dict(cfgmod.default_config())
    cfg["model"].update(model)
    return cfg


def test_answers_become_the_run_config():
    cfg = _config(base="/m/z.safetensors", family="zimage")
    new = zui.zimage_update(cfg, "turbo", "v1", "")
    assert (new["model"]["variant"], new["model"]["training_adapter"]) == ("turbo", "v1")
    assert cfg["model"]["training_adapter"] == "none"  # the old dict is left alone
    new = zui.zimage_update(cfg, "turbo", "file", "  /a/adapter.safetensors ")
    assert new["model"]["training_adapter"] == "/a/adapter.safetensors"
    assert zui.adapter_choice(new["model"]["training_adapter"]) == ("file", "/a/adapter.safetensors")
    assert zui.adapter_choice("v2") == ("v2", "")
    new = zui.zimage_update(new, "deturbo", "v2", "")  # the adapter is Turbo's only
    assert new["model"]["training_adapter"] == "none"
    cfgmod.from_dict(new)  # still a valid run config


def test_choosing_a_turbo_base_picks_the_recommended_adapter():
    new, notes = zui.on_chosen(_config(base="/m/z"), ["chosen"], "en")
    assert new["model"]["training_adapter"] == "v2" and "v2 chosen" in notes[-1]
    assert new["network"]["train_text_encoder"] is False and "text encoder is not trained" in notes[1]
    kept, notes = zui.on_chosen(zui.zimage_update(_config(), "turbo", "v1", ""), [], "en")
    assert kept["model"]["training_adapter"] == "v1" and len(notes) == 1  # only the text-encoder note
    assert zui.on_chosen(kept, [], "en")[1] == []  # nothing left to change
    deturbo, _ = zui.on_chosen(zui.zimage_update(_config(), "deturbo", "none", ""), [], "en")
    assert deturbo["model"]["training_adapter"] == "none"


def test_the_variant_proposes_its_preset_and_loading_it_keeps_the_answers():
    assert "Turbo" in zui.proposal("turbo", "en") and "8 steps" in zui.proposal("turbo", "en")
    assert "De-Turbo" in zui.proposal("deturbo", "zh") and "25 步" in zui.proposal("deturbo", "zh")
    cfg = zui.zimage_update(_config(base="/m/z", family="zimage"), "turbo", "v1", "")
    new, text = zui.use_preset(cfg, "turbo", "en")
    assert new["model"]["training_adapter"] == "v1" and new["model"]["base"] == "/m/z"
    assert new["network"]["rank"] == 16 and new["sampling"]["steps"] == 8 and new["optimizer"]["lr"] == 1e-4
    assert "settings changed" in text and "Parameters" in text
    new, _ = zui.use_preset(zui.zimage_update(cfg, "base", "none", ""), "base", "zh")
    assert new["model"]["variant"] == "base" and new["sampling"]["steps"] == 25
    cfgmod.from_dict(new)


def test_zimage_is_named_in_both_languages_and_offered_as_a_family():
    info = SimpleNamespace(family="zimage", label="Z-Image", prediction_type="flow", prediction_source="family rule",
                           native_resolution=1024, precision="bf16", size=0, sha256="", ema=None, kind="single_file",
                           path="/m/z.safetensors", usable=True, warnings=[])
    assert "Z-Image（通义造相）" in tab_model.report_markdown(info, "zh")
    assert "Z-Image (Tongyi-MAI)" in tab_model.report_markdown(info, "en")
    assert "zimage" in tab_model.FAMILY_CHOICES
    assert zui.is_zimage(_config(), "zimage") and zui.is_zimage(_config(family="zimage"), "")
    assert not zui.is_zimage(_config(), "sdxl")


def test_download_source_goes_to_the_config_and_the_environment(monkeypatch):
    monkeypatch.setenv(download.ENV_SOURCE, "")
    monkeypatch.setenv(download.ENV_MIRROR, "")
    new, mirror_update, text = model_source.on_source("mirror", "https://mirror.example", _config(), "en")
    assert mirror_update["visible"] is True and "https://mirror.example" in text
    assert download.resolve() == download.Source("mirror", "https://mirror.example")
    if "download_source" in new["model"]:
        assert new["model"]["download_source"] == "mirror"
        assert new["model"]["hub_mirror"] == "https://mirror.example"
    new, mirror_update, text = model_source.on_source("modelscope", "", new, "zh")
    assert mirror_update["visible"] is False and "ModelScope" in text and download.resolve().kind == "modelscope"
    monkeypatch.setattr(model_source, "STARTUP_ENV", {download.ENV_SOURCE: None, download.ENV_MIRROR: None})
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    model_source.on_source("auto", "", new, "en")  # back to what the page started with
    assert download.resolve() == download.Source("huggingface")
