"""The run config: round trips, every error path, presets and --set overrides."""

from __future__ import annotations

import dataclasses

import pytest

from core import config as cfgmod
from core.config.presets import PRESETS
from core.errors import ConfigError


def _differs_everywhere() -> cfgmod.RunConfig:
    """A config in which every field differs from its default."""
    data: dict = {}
    for spec in cfgmod.schema():
        d = spec.default
        if spec.choices and spec.type is list:
            value = [c for c in spec.choices if c not in d][:1] or list(spec.choices[:1])
        elif spec.choices:
            value = next(c for c in spec.choices if c != d)
        elif spec.type is bool:
            value = not d
        elif spec.type is int:
            value = d + (spec.multiple_of or 1) if spec.max is None or d + (spec.multiple_of or 1) <= spec.max \
                else d - (spec.multiple_of or 1)
        elif spec.type is float:
            value = d + 0.125 if spec.max is None or d + 0.125 <= spec.max else d / 2
        elif spec.type is list and spec.item is int:
            value = [int(spec.min), int(spec.max)]
        elif spec.type is list:
            value = ["第一, a prompt", 'with "quotes" and \\ backslash']
        else:
            value = f"C:\\Users\\小明\\my data {spec.name}" if spec.name not in ("name", "caption_extension") \
                else ("我的 lora-v1" if spec.name == "name" else ".caption")
        data.setdefault(spec.section, {})[spec.name] = value
    return cfgmod.from_dict(data)


def test_every_field_has_help_in_both_languages():
    for spec in cfgmod.schema():
        assert spec.en and spec.zh, spec.path
        assert spec.type in (str, int, float, bool, list)


def test_fixed_user_facing_keys_exist():
    paths = {s.path for s in cfgmod.schema()}
    for key in ["model.base", "dataset.dir", "dataset.resolution", "network.rank", "network.alpha", "optimizer.name",
                "optimizer.lr", "training.epochs", "training.batch_size", "training.mixed_precision", "training.seed",
                "saving.output_dir", "saving.name", "saving.every_n_epochs", "saving.precision", "sampling.prompts",
                "sampling.negative_prompt", "sampling.steps", "sampling.cfg", "sampling.seed", "sampling.width",
                "sampling.height", "sampling.sampler"]:
        assert key in paths


@pytest.mark.parametrize("make", [cfgmod.default_config, _differs_everywhere] +
                         [lambda name=name: cfgmod.load(preset=name) for name in PRESETS])
def test_round_trip(tmp_path, make):
    cfg = make()
    path = cfgmod.save(cfg, tmp_path / "运行 run" / "config.toml")
    assert cfgmod.load(path) == cfg
    assert cfgmod.loads(cfgmod.dumps(cfg)) == cfg


def test_all_fields_differ_in_the_nasty_config():
    cfg, default = _differs_everywhere(), cfgmod.default_config()
    for spec in cfgmod.schema():
        assert cfg.get(spec.path) != default.get(spec.path), spec.path
    assert cfg.model.base == "C:\\Users\\小明\\my data base"


def test_misspelt_key_suggests_the_closest():
    with pytest.raises(ConfigError) as e:
        cfgmod.loads("[network]\nrnak = 8\n")
    assert e.value.key == "network.rnak"
    assert "network.rank" in e.value.message("en")
    assert "network.rank" in e.value.message("zh") and "未知" in e.value.message("zh")


def test_key_in_wrong_section_is_pointed_at():
    with pytest.raises(ConfigError) as e:
        cfgmod.loads("[training]\nrank = 8\n")
    assert "network.rank" in str(e.value)


def test_unknown_section_suggests():
    with pytest.raises(ConfigError) as e:
        cfgmod.loads("[netwrok]\nrank = 8\n")
    assert "[network]" in str(e.value)


@pytest.mark.parametrize("text,key,needle", [
    ('[network]\nrank = "eight"', "network.rank", "integer"),
    ("[network]\nrank = 0", "network.rank", "range"),
    ("[network]\nrank = 8.5", "network.rank", "integer"),
    ("[training]\nmixed_precision = 'fp17'", "training.mixed_precision", "fp16"),
    ("[optimizer]\nname = 'adamw'", "optimizer.name", "AdamW"),
    ("[dataset]\nresolution = 500", "dataset.resolution", "multiple of 64"),
    ("[sampling]\nprompts = 'one prompt'", "sampling.prompts", "list"),
    ("[training]\ngradient_checkpointing = 1", "training.gradient_checkpointing", "true or false"),
    ("[saving]\nname = '../escape'", "saving.name", "file name"),
    ("schema_version = 99", "schema_version", "schema_version"),
])
def test_bad_values_name_the_key(text, key, needle):
    with pytest.raises(ConfigError) as e:
        cfgmod.loads(text)
    assert e.value.key == key
    assert needle in e.value.text("en")
    assert e.value.text("zh") != e.value.text("en")


def test_syntax_error_names_the_line():
    with pytest.raises(ConfigError) as e:
        cfgmod.loads("[model]\nbase = 'x'\n[network\nrank = 3\n")
    assert "line 3" in str(e.value)
    assert "第 3 行" in e.value.text("zh")


def test_load_order_defaults_preset_file_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[network]\nrank = 12\n[training]\nepochs = 3\n", encoding="utf-8")
    cfg = cfgmod.load(path, preset="anime_sd15", overrides=["training.epochs=5", "sampling.prompts=['a', 'b']",
                                                            "model.base=C:\\models\\模型.safetensors"])
    assert cfg.network.rank == 12            # the file beats the preset
    assert cfg.network.alpha == 16.0         # the preset beats the default
    assert cfg.training.epochs == 5          # --set beats the file
    assert cfg.sampling.prompts == ["a", "b"]
    assert cfg.model.base == "C:\\models\\模型.safetensors"  # not TOML: taken as a plain string
    assert cfg.optimizer.name == "AdamW"


def test_override_errors():
    with pytest.raises(ConfigError) as e:
        cfgmod.apply_overrides(cfgmod.default_config(), ["network.rnk=4"])
    assert "network.rank" in str(e.value)
    with pytest.raises(ConfigError):
        cfgmod.apply_overrides(cfgmod.default_config(), ["no-equals-sign"])
    with pytest.raises(ConfigError):
        cfgmod.apply_overrides(cfgmod.default_config(), ["network.rank=big"])


def test_unknown_preset():
    with pytest.raises(ConfigError) as e:
        cfgmod.load(preset="nope")
    assert "anime_sd15" in e.value.text("en")


def test_missing_file_message(tmp_path):
    with pytest.raises(ConfigError) as e:
        cfgmod.load(tmp_path / "none.toml")
    assert "not found" in str(e.value)


def test_float_fields_accept_integers_and_stay_float():
    cfg = cfgmod.loads("[network]\nalpha = 8\n")
    assert cfg.network.alpha == 8.0 and isinstance(cfg.network.alpha, float)


def test_merge_does_not_mutate_input():
    base = cfgmod.default_config()
    cfgmod.merge_dict(base, {"network": {"rank": 4}})
    assert base.network.rank == 32
    assert dataclasses.asdict(base) == dataclasses.asdict(cfgmod.default_config())


def test_describe_lists_every_key():
    text = cfgmod.describe()
    for spec in cfgmod.schema():
        assert f"  {spec.name} = " in text


def test_with_values_validates_and_keeps_the_form():
    cfg = cfgmod.default_config()
    new = cfgmod.with_values(cfg, {"model.base": "b.safetensors", "dataset.resolution": 768})
    assert (new.model.base, new.dataset.resolution) == ("b.safetensors", 768) and cfg.model.base == ""
    as_dict = cfgmod.with_values(cfgmod.to_dict(cfg), {"network.rank": 8})
    assert isinstance(as_dict, dict) and as_dict["network"]["rank"] == 8
    with pytest.raises(ConfigError, match="dataset.resolution"):
        cfgmod.with_values(cfg, {"dataset.resolution": 700})
