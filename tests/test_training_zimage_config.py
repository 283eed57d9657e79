"""Z-Image settings: presets carry the guide's baselines; cross-field warnings; refusals name the field."""

from __future__ import annotations

import pytest

from core import config as cfgmod
from core.errors import ConfigError
from training.checks import config_warnings


@pytest.mark.parametrize("preset,variant,adapter,steps,cfg", [("zimage_turbo_adapter", "turbo", "v2", 8, 1.0),
                                                              ("zimage_deturbo", "deturbo", "none", 25, 3.0)])
def test_presets_carry_the_guides_baselines(preset, variant, adapter, steps, cfg):
    c = cfgmod.load(preset=preset)
    assert (c.model.family, c.model.variant, c.model.training_adapter) == ("zimage", variant, adapter)
    assert (c.network.rank, c.optimizer.lr, c.optimizer.name) == (16, 1e-4, "AdamW8bit")
    assert c.optimizer.weight_decay == 1e-4
    assert (c.training.batch_size, c.training.max_train_steps, c.training.mixed_precision) == (1, 3000, "bf16")
    assert (c.saving.every_n_steps, c.saving.precision, c.dataset.caption_dropout_rate) == (250, "bf16", 0.05)
    assert 4 <= c.saving.keep_last <= 12
    assert (c.sampling.steps, c.sampling.cfg, c.sampling.width, c.sampling.height) == (steps, cfg, 1024, 1024)
    assert not c.network.train_text_encoder and c.dataset.cache_latents != "none"
    assert config_warnings(c) == [w for w in config_warnings(c) if "bf16" in w[0]]  # nothing but the bf16 note


def test_learning_rate_above_2e4_warns():
    c = cfgmod.load(preset="zimage_turbo_adapter", overrides=["optimizer.lr=3e-4"])
    assert any("above 2e-4" in en and "2e-4" in zh for en, zh in config_warnings(c))
    sd = cfgmod.load(overrides=["optimizer.lr=3e-4"])
    assert not any("above 2e-4" in en for en, _ in config_warnings(sd))


def test_turbo_without_adapter_warns_and_cached_captions_cannot_drop():
    c = cfgmod.load(preset="zimage_turbo_adapter", overrides=["model.training_adapter=none",
                                                              "dataset.cache_text_encoder_outputs=true"])
    text = " ".join(en for en, _ in config_warnings(c))
    assert "without a training adapter" in text and "Text features are not cached" in text


def test_new_fields_are_validated():
    with pytest.raises(ConfigError, match="network.dit_targets"):
        cfgmod.load(overrides=['network.dit_targets=["attention", "mlp"]'])
    with pytest.raises(ConfigError, match="training.timestep_type"):
        cfgmod.load(overrides=["training.timestep_type=linear"])
    with pytest.raises(ConfigError, match="model.variant"):
        cfgmod.load(overrides=["model.variant=distilled"])
    c = cfgmod.load(overrides=['network.dit_targets=["attention"]', "training.timestep_bias=high_noise"])
    assert c.network.dit_targets == ["attention"] and c.training.timestep_bias == "high_noise"
