"""sd-scripts' two v-prediction loss options: scale_v_pred_loss_like_noise_pred multiplies the loss by
SNR/(SNR+1); v_pred_like_loss r adds r · loss · (SNR+1)/SNR (SNR at most 1000 in both). Weights are checked
against SNRs computed by hand from the SD betas, and in the loss a training step uses."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from core import checks
from core import config as cfgmod

SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
STEPS = [0, 10, 250, 500, 999]


def hand_snr(steps: list[int]) -> np.ndarray:
    """alpha_bar / (1 - alpha_bar) of the scaled-linear schedule, in float64."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)[steps]
    return ac / (1 - ac)


def opts(scale: bool = False, like: float = 0.0, gamma: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(min_snr_gamma=gamma, debiased_estimation=False, scale_v_pred_loss_like_noise_pred=scale,
                           v_pred_like_loss=like)


def test_fields_are_expert_options_for_the_sd_families_in_both_languages():
    specs = {s.path: s for s in cfgmod.schema()}
    for key in ("training.scale_v_pred_loss_like_noise_pred", "training.v_pred_like_loss"):
        spec = specs[key]
        assert not spec.basic and spec.families == ("unet",)
        assert "sd-scripts" in spec.en and "sd-scripts" in spec.zh
    cfg = cfgmod.with_values(cfgmod.default_config(), {"training.v_pred_like_loss": 0.2})
    assert cfg.training.v_pred_like_loss == 0.2
    assert "v_pred_like_loss = 0.2" in cfgmod.dumps(cfg)  # the exported TOML


def test_weights_follow_the_formulas_at_given_timesteps():
    from training.families.sd import loss_weight

    sched = DDPMScheduler(**SD_BETAS)
    steps = torch.tensor(STEPS)
    snr = np.minimum(hand_snr(STEPS), 1000.0)  # step 0: SNR ≈ 1170, clamped to 1000 as sd-scripts does
    assert hand_snr([0])[0] > 1000
    scale = snr / (snr + 1)

    assert torch.equal(loss_weight(sched, steps, opts(), "v_prediction"), torch.ones(5))
    scaled = loss_weight(sched, steps, opts(scale=True), "v_prediction").double().numpy()
    np.testing.assert_allclose(scaled, scale, rtol=1e-4)
    assert scaled[0] == pytest.approx(1000 / 1001, rel=1e-6) and scaled[-1] < 0.01  # noisy steps weigh little

    like = loss_weight(sched, steps, opts(like=0.1), "epsilon").double().numpy()
    np.testing.assert_allclose(like, 1 + 0.1 / scale, rtol=1e-4)  # loss + loss / scale · 0.1
    assert like[0] == pytest.approx(1 + 0.1 * 1001 / 1000, rel=1e-6) and like[-1] > 10  # noisy steps weigh more

    both = loss_weight(sched, steps, opts(like=0.5, gamma=5.0, scale=True), "v_prediction").double().numpy()
    raw = hand_snr(STEPS)  # Min-SNR reads the SNR unclamped, as sd-scripts' apply_snr_weight does
    np.testing.assert_allclose(both, np.minimum(raw, 5) / (raw + 1) * scale * (1 + 0.5 / scale), rtol=1e-4)


def test_zero_terminal_snr_keeps_the_weights_finite():
    from training.families.sd import loss_weight

    rescaled = DDPMScheduler(**SD_BETAS, rescale_betas_zero_snr=True)
    w = loss_weight(rescaled, torch.tensor([0, 999]), opts(scale=True, like=0.1), "v_prediction")
    assert torch.isfinite(w).all()


class Echo(torch.nn.Module):
    """A stand-in denoiser: predicts its input times one weight."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, steps, encoder_hidden_states=None):
        return SimpleNamespace(sample=x * self.w)


@pytest.mark.parametrize("prediction,key,value", [("v_prediction", "scale_v_pred_loss_like_noise_pred", True),
                                                  ("epsilon", "v_pred_like_loss", 0.3)])
def test_a_training_step_loss_is_weighted(prediction, key, value):
    from training.families.sd import loss

    sched = DDPMScheduler(**SD_BETAS, prediction_type=prediction)
    parts = SimpleNamespace(is_flow=False, noise_scheduler=sched, prediction_type=prediction)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    plain = cfgmod.default_config()
    on = cfgmod.with_values(plain, {f"training.{key}": value})

    def weighted(cfg):
        torch.manual_seed(7)
        return loss(parts, Echo(), latents, (torch.zeros(1, 2, 8), None), [], cfg).item()

    torch.manual_seed(7)
    torch.randn_like(latents)
    step = int(torch.randint(0, 1000, (1,)).item())  # the timestep the loss draws after the noise
    s = min(hand_snr([step])[0], 1000.0)
    factor = s / (s + 1) if key.startswith("scale") else 1 + value * (s + 1) / s
    assert weighted(on) == pytest.approx(weighted(plain) * factor, rel=1e-4)
    assert factor != pytest.approx(1.0, abs=1e-3)


def test_checks_warn_where_the_option_does_not_fit_the_prediction_type():
    def keys(values):
        cfg = cfgmod.with_values(cfgmod.default_config(), values)
        return {i.key: i for i in checks.check(cfg, checks.Env(device="cuda"))}

    eps = keys({"model.prediction_type": "epsilon", "training.scale_v_pred_loss_like_noise_pred": True})
    issue = eps["training.scale_v_pred_loss_like_noise_pred"]
    assert issue.level == "warning" and "v-prediction" in issue.en and "v-prediction" in issue.zh
    assert "training.scale_v_pred_loss_like_noise_pred" not in keys(
        {"model.prediction_type": "v_prediction", "training.scale_v_pred_loss_like_noise_pred": True})
    assert "training.v_pred_like_loss" in keys({"model.prediction_type": "v_prediction",
                                                "training.v_pred_like_loss": 0.1})
    assert "training.v_pred_like_loss" not in keys({"model.prediction_type": "epsilon",
                                                    "training.v_pred_like_loss": 0.1})


def test_sd_scripts_keys_are_imported():
    from core import importers

    cfg = importers.convert("sd-scripts", {"scale_v_pred_loss_like_noise_pred": True, "v_pred_like_loss": 0.2,
                                           "v_parameterization": True}).config
    assert cfg.training.scale_v_pred_loss_like_noise_pred and cfg.training.v_pred_like_loss == 0.2
