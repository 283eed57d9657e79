"""The parameter form: every schema field round-trips through its component and the TOML, plus
presets, import, hints and estimates. Generated from the schema, so a new field is covered."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from core import config as cfgmod
from core.config import hints as hintmod
from core.runs.estimate import estimate_memory
from ui.form import build_form, from_component, label_key, to_component, values_to_config
from ui.i18n import STRINGS, Translator
from ui.tab_params import apply_preset, hints_markdown, import_toml, preset_summary

SPECS = cfgmod.schema()


def other_value(spec: cfgmod.FieldSpec):
    """A valid value different from the default, awkward where possible (unicode, quotes, spaces)."""
    if spec.choices is not None and spec.type is list:  # a multi-select: a smaller pick of its choices
        return list(spec.choices[:1])
    if spec.choices is not None:
        return next(c for c in reversed(spec.choices) if c != spec.default)
    if spec.type is bool:
        return not spec.default
    if spec.type is int:
        step = spec.multiple_of or 1
        v = spec.default + 3 * step
        return v if spec.max is None or v <= spec.max else spec.default - step
    if spec.type is float:
        v = spec.default + 0.25
        return v if spec.max is None or v <= spec.max else spec.default / 2
    if spec.type is list and spec.item is int:
        return [512, 768, 1024]
    if spec.type is list:
        return ["demo, a red square", "第二条 'prompt' with, commas"]
    return "名字 ü-'q' x" if spec.path == "saving.name" else "D:/训练 集/it's \\ here"


@pytest.fixture(scope="module")
def form():
    ctx = SimpleNamespace(tr=Translator())
    with gr.Blocks():
        f = build_form(ctx, "en")
    return f


def test_every_field_has_a_component_and_both_labels(form):
    assert [s.path for s in form.specs] == [s.path for s in SPECS]
    for spec, comp in zip(form.specs, form.components):
        zh, en = STRINGS[label_key(spec)]
        assert zh and en and comp.label == en
        assert comp.info == spec.en and comp.elem_id == f"params-{spec.section}-{spec.name}"
    assert len(form.expert_columns) == len({s.section for s in SPECS if not s.basic})
    assert all(not col.visible for col in form.expert_columns)  # the beginner view first


@pytest.mark.parametrize("spec", SPECS, ids=[s.path for s in SPECS])
def test_field_round_trips_through_component_and_toml(form, spec):
    comp = form.components[[s.path for s in form.specs].index(spec.path)]
    value = other_value(spec)
    assert value != spec.default
    # What the browser receives and sends back for this component.
    shown = comp.postprocess(to_component(spec, value))
    payload = shown.model_dump() if hasattr(shown, "model_dump") else shown
    back = from_component(spec, comp.preprocess(payload))
    assert back == value and type(back) is type(value)
    # The whole form with this one value changed, then through the TOML text.
    values = form.values(cfgmod.to_dict(cfgmod.default_config()))
    values[form.specs.index(spec)] = to_component(spec, value)
    config, errors = values_to_config(form.specs, values, cfgmod.to_dict(cfgmod.default_config()))
    assert not errors
    assert config[spec.section][spec.name] == value
    again = cfgmod.to_dict(cfgmod.loads(cfgmod.dumps(cfgmod.from_dict(config))))
    assert again == config


def test_all_fields_changed_at_once_round_trip(form):
    cfg = cfgmod.default_config()
    for spec in SPECS:
        setattr(getattr(cfg, spec.section), spec.name, other_value(spec))
    config = cfgmod.to_dict(cfg)
    values = form.values(config)
    back, errors = values_to_config(form.specs, values, cfgmod.to_dict(cfgmod.default_config()))
    assert not errors and back == config
    assert cfgmod.to_dict(cfgmod.loads(cfgmod.dumps(cfgmod.from_dict(back)))) == config


def test_bad_field_keeps_old_value_and_names_the_field(form):
    current = cfgmod.to_dict(cfgmod.default_config())
    values = form.values(current)
    paths = [s.path for s in form.specs]
    values[paths.index("network.rank")] = 0          # below the minimum
    values[paths.index("training.epochs")] = 3        # valid: must still apply
    values[paths.index("saving.name")] = "a/b"        # not a file name
    config, errors = values_to_config(form.specs, values, current)
    assert config["network"]["rank"] == 32 and config["training"]["epochs"] == 3
    assert config["saving"]["name"] == "lora"
    assert sorted(e.key for e in errors) == ["network.rank", "saving.name"]


def test_import_reports_unknown_keys_and_keeps_everything_else():
    text = ('[network]\nrank = 8\nnetwork_dim = 4\n[training]\nepochs = 3\nbatch_size = 0\n'
            '[extra]\nfoo = 1\n[saving]\nname = "mine"\n')
    current = cfgmod.to_dict(cfgmod.default_config())
    new, unknown, rejected, n = import_toml(text, current)
    assert unknown == ["network.network_dim", "[extra]"]
    assert [e.key for e in rejected] == ["training.batch_size"]
    assert n == 3 and new["network"]["rank"] == 8 and new["training"]["epochs"] == 3
    assert new["saving"]["name"] == "mine" and new["training"]["batch_size"] == 1


def test_preset_anime_and_summary_names_what_changed():
    current = cfgmod.to_dict(cfgmod.default_config())
    new = apply_preset(current, "anime_sd15")
    assert (new["network"]["rank"], new["network"]["alpha"], new["optimizer"]["lr"]) == (32, 16.0, 2e-4)
    assert (new["training"]["epochs"], new["training"]["batch_size"], new["saving"]["every_n_epochs"]) == (10, 2, 2)
    text = preset_summary(current, new, "anime_sd15", "en")
    assert "Learning rate" in text and "0.0002" in text and "Batch size" in text
    assert "Rank" not in text  # rank 32 is already the default: not reported as a change
    assert "学习率" in preset_summary(current, new, "anime_sd15", "zh")


def test_hints_panel_shows_the_checks_verdicts(monkeypatch):
    from core.checks import Env

    monkeypatch.setattr("models.preflight.environment", lambda cfg: Env(device="cpu"))
    cfg = cfgmod.default_config()
    cfg.model.base, cfg.dataset.dir = "base.safetensors", "data"
    cfg.training.mixed_precision = "no"
    assert hints_markdown(cfg, "en", None)[0].startswith("✔")
    cfg.optimizer.name = "AdamW8bit"
    assert hints_markdown(cfg, "en", None)[0].startswith("✖ AdamW8bit needs an NVIDIA GPU")


def test_alpha_and_lr_hints():
    cfg = cfgmod.default_config()
    cfg.network.rank, cfg.network.alpha = 32, 16.0
    assert "0.50" in hintmod.alpha_hint(cfg).en and hintmod.alpha_hint(cfg).level == "info"
    cfg.training.batch_size = 4
    h = hintmod.lr_batch_hint(cfg, 1e-4, 1)
    assert h is not None and "4e-4" in h.en
    assert hintmod.lr_for_batch(1e-4, 1, 4) == 4e-4
    cfg.optimizer.lr = 4e-4
    assert hintmod.lr_batch_hint(cfg, 1e-4, 1) is None


def test_memory_estimate_grows_with_batch_and_resolution_and_says_why():
    cfg = cfgmod.default_config()
    base = estimate_memory(cfg, "sd15")
    cfg.training.batch_size = 4
    bigger = estimate_memory(cfg, "sd15")
    cfg.training.gradient_checkpointing = True
    ckpt = estimate_memory(cfg, "sd15")
    assert base.total_gb < bigger.total_gb and ckpt.total_gb < bigger.total_gb
    assert 4 < base.total_gb < 9  # SD1.5 LoRA at 512, batch 1: about 6 GB in practice
    sdxl = cfgmod.default_config()
    sdxl.dataset.resolution, sdxl.training.gradient_checkpointing = 1024, True
    assert 9 < estimate_memory(sdxl, "sdxl").total_gb < 16
    assert "Based on" in base.text("en") and "依据" in base.text("zh")


def test_step_count_on_the_demo(demo_run):
    pytest.importorskip("core.dataset")
    pytest.importorskip("core.dataset.buckets")
    from core.runs.estimate import count_steps

    cfg = cfgmod.load(demo_run)
    steps = count_steps(cfg)
    assert sum(c.images for c in steps.concepts if not c.is_reg) == 12 and steps.images_per_epoch == 120
    # 120 samples in batches of 2 need at least 60 batches; partial buckets add more.
    assert steps.steps_per_epoch >= 60 and steps.total_steps == steps.steps_per_epoch * cfg.training.epochs
    assert f"**{steps.total_steps}**" in steps.formula("en") and f"**{steps.total_steps}**" in steps.formula("zh")
