"""core.checks: every cross-field rule gives the same verdict on the Parameters tab, the Start button,
`train --dry-run` and the trainer's first step."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from core import checks
from core import config as cfgmod
from core.errors import ConfigError

GPU = checks.Env(device="cuda")
CPU = checks.Env(device="cpu")

# rule name → (settings on top of a clean config, what is known about the machine and the base)
EXAMPLES: dict[str, tuple[dict, checks.Env]] = {
    "base_missing": ({"model": {"base": ""}}, GPU),
    "dataset_missing": ({"dataset": {"dir": ""}}, GPU),
    "base_unusable": ({}, checks.Env(device="cuda", base_problem=("Not a base.", "不是底模。", "Pick.", "请选。"))),
    "family_mismatch": ({"model": {"family": "sd15"}}, checks.Env(device="cuda", family="sdxl")),
    "prediction_mismatch": ({"model": {"prediction_type": "epsilon"}},
                            checks.Env(device="cuda", prediction="v_prediction", prediction_known=True)),
    "prediction_assumed": ({"model": {"prediction_type": "v_prediction"}},
                           checks.Env(device="cuda", prediction="epsilon", prediction_known=False)),
    "ztsnr_with_epsilon": ({"model": {"prediction_type": "epsilon", "zero_terminal_snr": True}}, GPU),
    "ztsnr_base_without_option": ({}, checks.Env(device="cuda", zero_terminal_snr=True)),
    "ztsnr_sampler": ({"model": {"prediction_type": "v_prediction", "zero_terminal_snr": True},
                       "sampling": {"sampler": "heun"}}, GPU),
    "cfg_rescale_without_vpred": ({"model": {"prediction_type": "epsilon"}, "sampling": {"cfg_rescale": 0.7}}, GPU),
    "scale_v_pred_loss_without_vpred": ({"model": {"prediction_type": "epsilon"},
                                         "training": {"scale_v_pred_loss_like_noise_pred": True}}, GPU),
    "v_pred_like_loss_with_vpred": ({"model": {"prediction_type": "v_prediction"},
                                     "training": {"v_pred_like_loss": 0.1}}, GPU),
    "resolution_far_from_native": ({"dataset": {"resolution": 512}},
                                   checks.Env(device="cuda", native_resolution=1024)),
    "sd2_clip_skip": ({"model": {"family": "sd2"}, "training": {"clip_skip": 2}}, GPU),
    "cuda_missing": ({"training": {"device": "cuda"}}, CPU),
    "8bit_without_cuda": ({"optimizer": {"name": "AdamW8bit"}, "training": {"device": "cpu"}}, CPU),
    "mixed_precision_on_cpu": ({"training": {"mixed_precision": "fp16"}}, CPU),
    "nothing_to_train": ({"network": {"train_unet": False, "train_text_encoder": False}}, GPU),
    "alpha_above_rank": ({"network": {"rank": 8, "alpha": 16.0}}, GPU),
    "dora_dropout": ({"network": {"use_dora": True, "dropout": 0.1}}, GPU),
    "dora_in_samples": ({"network": {"use_dora": True}}, GPU),
    "lycoris_with_dora_or_dropout": ({"network": {"type": "loha", "dropout": 0.1}}, GPU),
    "loraplus_lora_only": ({"network": {"type": "loha", "loraplus_lr_ratio": 16.0}}, GPU),
    "lycoris_on_dit": ({"model": {"family": "zimage"}, "network": {"type": "lokr"}}, GPU),
    "block_wise_where": ({"network": {"type": "loha", "down_lr_weight": "zeros"}}, GPU),
    "block_wise_values": ({"model": {"family": "sdxl"}, "network": {"block_dims": ",".join(["4"] * 25)}}, GPU),
    "block_lr_one_step_size": ({"model": {"family": "sd15"}, "network": {"down_lr_weight": "sine"},
                                "optimizer": {"name": "Prodigy", "lr": 1.0, "text_encoder_lr": 1.0}}, GPU),
    "block_lr_weight_count": ({"model": {"family": "sd15"}, "network": {"up_lr_weight": "1,1,0"}}, GPU),
    "block_wise_unet_off": ({"network": {"train_unet": False, "block_dims": ",".join(["4"] * 25)}}, GPU),
    "prodigy_lr": ({"optimizer": {"name": "Prodigy", "lr": 1e-4}}, GPU),
    "prodigy_text_encoder_lr": ({"optimizer": {"name": "Prodigy", "lr": 1.0, "text_encoder_lr": 5e-5}}, GPU),
    "dadapt_lr": ({"optimizer": {"name": "DAdaptAdam", "lr": 1e-4, "text_encoder_lr": 1e-4}}, GPU),
    "schedule_free_schedule": ({"optimizer": {"name": "AdamWScheduleFree", "scheduler": "cosine"}}, GPU),
    "full_bf16_mixed_precision": ({"training": {"full_bf16": True, "mixed_precision": "fp16"}}, GPU),
    "full_bf16_on_cpu": ({"training": {"full_bf16": True}}, CPU),
    "fp8_base_with_quantize": ({"model": {"family": "zimage", "quantize": "int8"},
                                "network": {"train_text_encoder": False}, "training": {"fp8_base": True}}, GPU),
    "fp8_base_network": ({"network": {"use_dora": True}, "training": {"fp8_base": True}}, GPU),
    "blocks_to_swap_with_quantize": ({"model": {"family": "flux", "quantize": "int8"},
                                      "network": {"train_text_encoder": False}, "training": {"blocks_to_swap": 8}},
                                     GPU),
    "fp8_base_on_mps": ({"training": {"fp8_base": True}}, checks.Env(device="mps")),
    "cache_text_encoder_while_trained": ({"dataset": {"cache_text_encoder_outputs": True}}, GPU),
    "cache_text_encoder_captions_change": ({"dataset": {"cache_text_encoder_outputs": True, "shuffle_caption": True},
                                            "network": {"train_text_encoder": False}}, GPU),
    "long_captions_in_samples": ({"training": {"max_token_length": 150}, "sampling": {"prompts": ["a cat"]}}, GPU),
    "bf16_files": ({"saving": {"precision": "bf16"}}, GPU),
    "sample_prompt_flags": ({"sampling": {"prompts": ["a cat --w 700"]}}, GPU),
    "sample_size_not_64": ({"sampling": {"prompts": ["a cat"], "width": 96}}, GPU),
    "family_high_lr": ({"model": {"family": "zimage"}, "optimizer": {"lr": 3e-4}}, GPU),
    "zimage_turbo_without_adapter": ({"model": {"family": "zimage", "variant": "turbo", "training_adapter": "none"}},
                                     GPU),
    "family_sample_limits": ({"model": {"family": "zimage"}, "sampling": {"prompts": ["a cat"], "cfg": 0.5}}, GPU),
    "zimage_adapter_not_turbo": ({"model": {"family": "zimage", "variant": "deturbo", "training_adapter": "v2"}},
                                 GPU),
    "zimage_adapter_unreachable": ({"model": {"family": "zimage", "variant": "turbo", "training_adapter": "v2"}},
                                   dataclasses.replace(GPU, adapter_unreachable=("Hugging Face hub", "Hugging Face"))),
    "qwen_image_edit_not_trainable": ({"model": {"family": "qwen_image", "variant": "edit_2509"}}, GPU),
    "int8_without_cuda": ({"model": {"family": "zimage", "quantize": "int8"}, "optimizer": {"name": "AdamW"}}, CPU),
    "dop_words": ({"model": {"family": "zimage"}, "training": {"dop_multiplier": 1.0}}, GPU),
    "flow_options_on_unet": ({"model": {"family": "sd15"}, "training": {"differential_guidance": 3.0}}, GPU),
    "vpred_options_on_flow": ({"model": {"family": "zimage"}, "sampling": {"cfg_rescale": 0.7}}, GPU),
    "unet_options_on_flow": ({"model": {"family": "zimage"}, "training": {"min_snr_gamma": 5.0}}, GPU),
    "text_encoder_not_trainable": ({"model": {"family": "zimage"}, "network": {"train_text_encoder": True}}, GPU),
    "flow_cached_caption_dropout": ({"model": {"family": "zimage"}, "network": {"train_text_encoder": False},
                                       "dataset": {"cache_text_encoder_outputs": True, "caption_dropout_rate": 0.1}},
                                      GPU),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    sub = root / "data" / "2_cat"
    sub.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 90, 40, 40)).save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text("cat", encoding="utf-8")
    return root


def _config(dataset, settings: dict) -> cfgmod.RunConfig:
    clean = {"model": {"base": str(dataset / "base.safetensors")},
             "dataset": {"dir": str(dataset / "data"), "resolution": 256, "min_bucket_reso": 256,
                         "max_bucket_reso": 512},
             "saving": {"output_dir": str(dataset / "outputs")}, "training": {"mixed_precision": "no"}}
    cfg = cfgmod.merge_dict(cfgmod.default_config(), clean)
    return cfgmod.merge_dict(cfg, settings)


def test_every_rule_has_an_example():
    assert set(EXAMPLES) == set(checks.RULES)


def test_a_clean_config_has_no_issues(dataset):
    assert checks.check(_config(dataset, {}), GPU) == []


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_same_verdict_from_every_entry_point(name, dataset, monkeypatch, capsys):
    from training import checks as trainer_checks
    from training.cli import main as train_cli
    from ui.tab_params import hints_markdown
    from ui.tab_train import start_checks

    level, rule = checks.RULES[name]
    settings, env = EXAMPLES[name]
    cfg = _config(dataset, settings)
    issue = rule(cfg, env)
    assert issue is not None and issue.level == level and issue.en and issue.zh and issue.key
    assert issue in checks.check(cfg, env)
    monkeypatch.setattr("models.preflight.environment", lambda _cfg: env)
    icon = {"error": "✖", "warning": "⚠", "info": "ℹ"}[level]

    # the Parameters tab shows it
    assert f"{icon} {issue.text('en')}" in hints_markdown(cfg, "en", None)[0]
    # the Start button refuses on errors only
    assert (issue.text("zh") in start_checks(cfg, "zh")) == (level == "error")
    # --dry-run prints it; errors give exit code 2
    toml = dataset / f"{name}.toml"
    cfgmod.save(cfg, toml)
    monkeypatch.setenv("DANLU_LANG", "en")
    code = train_cli([str(toml), "--dry-run"])
    assert f"{level.upper()}: {issue.text('en')}" in capsys.readouterr().out
    assert (code == 2) == (level == "error")
    # the trainer's first step raises on errors, and logs the rest
    if level == "error":
        with pytest.raises(ConfigError) as e:
            trainer_checks.preflight(cfg)
        assert issue.en in e.value.en and issue.zh in e.value.zh
    else:
        assert issue in trainer_checks.preflight(cfg)


def test_the_trainer_stops_before_loading_anything(dataset, monkeypatch):
    from training.loop import train

    monkeypatch.setattr("models.preflight.environment", lambda _cfg: GPU)
    cfg = _config(dataset, {"network": {"train_unet": False, "train_text_encoder": False}})
    with pytest.raises(ConfigError) as e:
        train(cfg)
    assert e.value.key == "network.train_unet"


def test_preflight_reads_the_base_model(tmp_path):
    """models.preflight: a file that is not a base is an error; a missing path or hub id is left to the loader."""
    from models import preflight

    bad = tmp_path / "notes.safetensors"
    bad.write_bytes(b"not a safetensors file")
    cfg = cfgmod.merge_dict(cfgmod.default_config(), {"model": {"base": str(bad)}})
    assert preflight.environment(cfg).base_problem
    cfg = cfgmod.merge_dict(cfg, {"model": {"base": str(tmp_path / "missing.safetensors")}})
    assert preflight.environment(cfg).base_problem is None


@pytest.mark.parametrize("sampling,key", [({"cfg": 0.5}, "sampling.cfg"),
                                          ({"sampler": "dpmpp_2m"}, "sampling.sampler"),
                                          ({"width": 520}, "sampling.width")])
def test_zimage_samples_rule(dataset, sampling, key):
    zimage = {"model": {"family": "zimage"}, "sampling": {"prompts": ["a cat"], "cfg": 1.0, "width": 1024,
                                                          "height": 1024, **sampling}}
    found = [i for i in checks.check(_config(dataset, zimage), GPU) if i.level == "error"]
    assert [i.key for i in found] == [key]
    ok = {"model": {"family": "zimage"}, "sampling": {"prompts": ["a cat"], "cfg": 1.0, "width": 528, "height": 1024}}
    assert not [i for i in checks.check(_config(dataset, ok), GPU) if i.key.startswith("sampling.")]
