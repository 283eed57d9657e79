"""v-prediction, complete: zero terminal SNR in training and samples, CFG rescale in the PNG recipe, debiased
estimation and min-SNR weights for v-prediction, and the `v_pred`/`ztsnr` marker keys of NoobAI-style files."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from core import config as cfgmod
from core.errors import ConfigError
from models import generate, recipe

SDXL_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


def test_fields_are_declared_with_help_in_both_languages():
    specs = {s.path: s for s in cfgmod.schema()}
    for key in ("model.zero_terminal_snr", "training.debiased_estimation", "sampling.cfg_rescale"):
        assert key in specs
    cfg = cfgmod.with_values(cfgmod.default_config(), {"model.zero_terminal_snr": True, "sampling.cfg_rescale": 0.7})
    assert cfg.model.zero_terminal_snr and cfg.sampling.cfg_rescale == 0.7
    with pytest.raises(ConfigError):
        cfgmod.with_values(cfgmod.default_config(), {"sampling.cfg_rescale": 1.5})


def test_loss_weights_at_given_timesteps():
    from training.families.sd import loss_weight, snr

    sched = DDPMScheduler(**SDXL_BETAS)
    steps = torch.tensor([0, 100, 500, 999])
    s = snr(sched, steps)
    off = SimpleNamespace(min_snr_gamma=0.0, debiased_estimation=False)
    assert torch.equal(loss_weight(sched, steps, off, "v_prediction"), torch.ones(4))
    gamma = SimpleNamespace(min_snr_gamma=5.0, debiased_estimation=False)
    v = loss_weight(sched, steps, gamma, "v_prediction")
    assert torch.allclose(v, torch.clamp(s, max=5.0) / (s + 1))  # v: min(SNR, γ) / (SNR + 1)
    assert v[0].item() == pytest.approx(5.0 / (s[0].item() + 1))
    assert v[-1].item() == pytest.approx(s[-1].item() / (s[-1].item() + 1))
    eps = loss_weight(sched, steps, gamma, "epsilon")
    assert torch.allclose(eps, torch.clamp(s, max=5.0) / s)  # epsilon: min(SNR, γ) / SNR
    assert eps[-1].item() == pytest.approx(1.0) and v[-1].item() < 0.01
    debiased = loss_weight(sched, steps, SimpleNamespace(min_snr_gamma=0.0, debiased_estimation=True), "v_prediction")
    assert torch.allclose(debiased, 1 / (torch.clamp(s, max=1000.0) + 1))  # v: 1 / (SNR + 1), as sd-scripts
    assert debiased[0].item() == pytest.approx(1 / 1001)  # SNR(0) ≈ 1170, clamped to 1000 as sd-scripts does
    debiased = loss_weight(sched, steps, SimpleNamespace(min_snr_gamma=0.0, debiased_estimation=True), "epsilon")
    assert torch.allclose(debiased, 1 / torch.sqrt(torch.clamp(s, max=1000.0)))  # epsilon: 1 / sqrt(SNR)
    assert debiased[0].item() == pytest.approx(1 / 1000 ** 0.5)


def test_zero_terminal_snr_schedule_ends_at_zero_snr_and_weights_stay_finite():
    from training.families.sd import loss_weight, snr

    plain, rescaled = DDPMScheduler(**SDXL_BETAS), DDPMScheduler(**SDXL_BETAS, rescale_betas_zero_snr=True)
    last = torch.tensor([999])
    assert snr(plain, last).item() > 1e-3 and snr(rescaled, last).item() == 0.0
    assert rescaled.alphas_cumprod[0].item() == pytest.approx(plain.alphas_cumprod[0].item(), rel=1e-5)
    steps = torch.tensor([0, 500, 999])
    both = SimpleNamespace(min_snr_gamma=5.0, debiased_estimation=True)
    for pred in ("v_prediction", "epsilon"):
        assert torch.isfinite(loss_weight(rescaled, steps, both, pred)).all()


@pytest.fixture(scope="module")
def sd2v(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd2v", tmp_path_factory.mktemp("sd2v"))


def test_training_scheduler_follows_the_option(sd2v):
    from training.families.sd import load_parts

    cfg = cfgmod.with_values(cfgmod.default_config(), {"model.base": str(sd2v.single_file),
                                                       "model.zero_terminal_snr": True})
    parts = load_parts(cfg, "cpu", torch.float32, log=lambda *a: None)
    assert parts.prediction_type == "v_prediction"
    assert parts.noise_scheduler.config.rescale_betas_zero_snr
    assert parts.noise_scheduler.alphas_cumprod[-1].item() == 0.0


def test_sample_recipe_and_scheduler_state_zero_terminal_snr_and_cfg_rescale(sd2v):
    s = cfgmod.with_values(cfgmod.default_config(), {"sampling.cfg_rescale": 0.7, "sampling.steps": 2,
                                                     "sampling.width": 64, "sampling.height": 64}).sampling
    sample = recipe.build(s, prompt="a cat", zero_terminal_snr=True)
    assert sample.args["cfg_rescale"] == 0.7 and sample.args["zero_terminal_snr"] is True
    text = generate.recipe_text(sample.recipe)
    assert "Rescale CFG: 0.7" in text and "Noise Schedule: Zero Terminal SNR" in text
    dit = recipe.build(s, prompt="a cat", family="zimage", zero_terminal_snr=True)
    assert not {"cfg_rescale", "zero_terminal_snr"} & set(dit.args)  # Z-Image renders its own way
    plain = recipe.build(cfgmod.default_config().sampling, prompt="a cat")
    assert "cfg_rescale" not in plain.args and "Rescale CFG" not in generate.recipe_text(plain.recipe)

    pipe = generate.open_pipeline(str(sd2v.single_file), device="cpu", torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    rescaled = generate.render(pipe, **sample.args)
    assert pipe.scheduler.config.rescale_betas_zero_snr
    assert pipe.scheduler.alphas_cumprod[-1].item() < 1e-6  # diffusers keeps 2**-24 so Euler's sigma stays finite
    no_rescale = generate.render(pipe, **dict(sample.args, cfg_rescale=0.0))
    generate.render(pipe, **plain.args | {"width": 64, "height": 64, "steps": 2})
    assert not pipe.scheduler.config.rescale_betas_zero_snr
    assert list(rescaled.getdata()) != list(no_rescale.getdata())  # guidance_rescale reaches the pipeline


def test_noobai_marker_keys_are_detected_and_proposed(tmp_path):
    from safetensors.torch import load_file, save_file

    from models import detect
    from models.tiny import save_tiny
    from ui import tab_model

    tiny = save_tiny("sdxl", tmp_path / "tiny")
    tensors = load_file(str(tiny.single_file))
    path = tmp_path / "noob-tiny.safetensors"
    save_file({**tensors, "v_pred": torch.empty(0), "ztsnr": torch.empty(0)}, str(path))
    info = detect.detect(str(path))
    assert info.family == "sdxl" and info.prediction_type == "v_prediction" and info.zero_terminal_snr
    assert not detect.detect(str(tiny.single_file)).zero_terminal_snr
    config, notes = tab_model.apply_choice(cfgmod.to_dict(cfgmod.default_config()), info, "en")
    assert config["model"]["zero_terminal_snr"] is True and any("ztsnr" in n for n in notes)
    from models.preflight import base_issues

    names = [i.key for i in base_issues(cfgmod.default_config(), info)]
    assert "model.zero_terminal_snr" in names
    assert "model.zero_terminal_snr" not in [i.key for i in base_issues(cfgmod.from_dict(config), info)]


def test_sd_scripts_keys_are_imported():
    from core import importers

    result = importers.convert("sd-scripts", {"zero_terminal_snr": True, "debiased_estimation_loss": True,
                                              "v_parameterization": True})
    cfg = result.config
    assert cfg.model.zero_terminal_snr and cfg.training.debiased_estimation
