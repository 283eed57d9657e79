"""The Params form follows the base's family: fields declared for other families (core.config F(families=...))
are hidden, keep their values and still go into the TOML."""

from __future__ import annotations

import pytest

from core import config as cfgmod
from models import families
from ui.form import Form, applies, family_traits

SPECS = cfgmod.schema()
ZIMAGE_ONLY = ("network.dit_targets", "network.dit_refiners", "model.quantize", "model.variant",
               "model.training_adapter", "training.timestep_type", "training.dop_multiplier")
SD_ONLY = ("model.prediction_type", "model.zero_terminal_snr", "training.multires_noise_iterations",
           "training.clip_skip", "network.train_text_encoder", "optimizer.text_encoder_lr", "network.conv_dim",
           "training.min_snr_gamma", "sampling.cfg_rescale")


def _config(family: str, **values) -> dict:
    return cfgmod.with_values(cfgmod.to_dict(cfgmod.default_config()), {"model.family": family, **values})


def test_every_family_name_in_the_schema_is_a_family_or_a_trait():
    known = set().union(*(families.traits(f) for f in cfgmod.FAMILIES))
    for spec in SPECS:
        assert spec.families is None or set(spec.families) <= known, spec.path


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_an_sd_base_hides_the_dit_fields_and_shows_its_own(family):
    shown = set(Form(SPECS, []).visible(_config(family)))
    assert not shown & set(ZIMAGE_ONLY)
    assert set(SD_ONLY) <= shown
    assert {"network.rank", "optimizer.lr", "network.use_dora", "sampling.prompts"} <= shown


def test_a_zimage_base_hides_the_sd_fields_and_shows_its_own():
    shown = set(Form(SPECS, []).visible(_config("zimage")))
    assert set(ZIMAGE_ONLY) <= shown
    assert not shown & set(SD_ONLY)
    assert {"network.rank", "optimizer.lr", "network.use_dora", "sampling.prompts"} <= shown


def test_an_unknown_base_and_undeclared_fields_show_everywhere():
    assert Form(SPECS, []).visible(_config("auto")) == [s.path for s in SPECS]  # no base chosen yet
    undeclared = [s for s in SPECS if s.families is None]
    assert len(undeclared) > len(SPECS) // 2
    for family in cfgmod.FAMILIES:
        assert all(applies(s, family_traits(family)) for s in undeclared)


def test_the_family_of_the_base_file_counts_when_family_is_auto(monkeypatch):
    from types import SimpleNamespace

    from models import preflight

    monkeypatch.setattr(preflight, "detected", lambda base: SimpleNamespace(family="zimage", usable=True))
    shown = Form(SPECS, []).visible(_config("auto", **{"model.base": "/models/z-image-turbo"}))
    assert "network.dit_targets" in shown and "training.clip_skip" not in shown


def test_hidden_fields_keep_their_values_and_round_trip_through_the_toml(tmp_path):
    config = _config("zimage", **{"training.clip_skip": 2, "network.conv_dim": 8})
    updates = Form(SPECS, []).updates(config)
    by_path = {s.path: u for s, u in zip(SPECS, updates)}
    assert by_path["training.clip_skip"] == {"__type__": "update", "visible": False, "value": 2}
    assert by_path["network.dit_targets"]["visible"] is True
    path = cfgmod.save(cfgmod.from_dict(config), tmp_path / "run.toml")
    back = cfgmod.to_dict(cfgmod.load(path))
    assert back["training"]["clip_skip"] == 2 and back["network"]["conv_dim"] == 8
    back["model"]["family"] = "sd15"  # the base changes: the same values are shown again
    assert {"training.clip_skip", "network.conv_dim"} <= set(Form(SPECS, []).visible(back))


def test_a_field_of_another_family_stays_in_view_while_a_check_names_it():
    from core import checks

    config = _config("zimage", **{"training.noise_offset": 0.1})
    issues = checks.check(cfgmod.from_dict(config), checks.Env())
    flagged = {i.key for i in issues if i.level != "info"}
    assert "training.noise_offset" in flagged  # "a Z-Image run ignores them": the user can set it back to 0
    shown = Form(SPECS, []).visible(config, flagged)
    assert "training.noise_offset" in shown and "training.clip_skip" not in shown
    assert "training.noise_offset" not in Form(SPECS, []).visible(_config("zimage"))


def test_the_model_tab_prediction_override_follows_the_same_declaration():
    from ui.tab_model import prediction_shown

    assert prediction_shown(_config("sdxl")) and prediction_shown(_config("auto"))
    assert not prediction_shown(_config("zimage"))


def test_flux_shows_the_text_encoder_lora_fields_and_chroma_hides_them():
    """FLUX.1 trains an optional CLIP-L LoRA (core.family_facts: text_encoder_trainable); Chroma has no CLIP."""
    te_fields = {"network.train_text_encoder", "optimizer.text_encoder_lr"}
    assert te_fields <= set(Form(SPECS, []).visible(_config("flux")))
    assert not te_fields & set(Form(SPECS, []).visible(_config("chroma")))
