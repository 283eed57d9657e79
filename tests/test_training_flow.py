"""Flow-matching maths: directions, signs and timestep distributions, checked against diffusers' own
ZImagePipeline and FlowMatchEulerDiscreteScheduler (the sampler users run)."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from training import flow  # noqa: E402
from training.families.zimage import FLOW as ZFLOW  # noqa: E402

TURBO_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False}


def _scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(TURBO_SCHEDULER)


def test_noise_goes_from_image_at_zero_to_noise_at_one():
    x0, noise = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    assert torch.equal(flow.noisy(x0, noise, torch.tensor([0.0, 0.0])), x0)
    assert torch.equal(flow.noisy(x0, noise, torch.tensor([1.0, 1.0])), noise)
    mid = flow.noisy(x0, noise, torch.tensor([0.25, 0.75]))
    assert torch.allclose(mid[0], 0.75 * x0[0] + 0.25 * noise[0])
    assert torch.allclose(mid[1], 0.25 * x0[1] + 0.75 * noise[1])


def test_shift_table_is_the_schedulers_own_training_sigmas():
    sched = _scheduler()
    assert torch.allclose(flow.sigma_table("shift", 3.0), sched.sigmas[:1000].float(), atol=1e-6)
    uniform = flow.sigma_table("uniform")
    assert uniform[0] == 1.0 and abs(float(uniform[-1]) - 0.001) < 1e-7
    assert torch.all(uniform[1:] < uniform[:-1])
    assert torch.equal(flow.sigma_table("weighted"), uniform)


def test_target_is_the_velocity_the_scheduler_integrates():
    """One Euler step of the scheduler with velocity noise - x0 lands on x0 exactly: the straight path."""
    sched = _scheduler()
    x0, noise = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    sched.set_timesteps(sigmas=[0.8], mu=0.5)  # one step from sigma 0.8 (after shift) to 0
    sigma = sched.sigmas[0]
    x_t = flow.noisy(x0, noise, sigma.reshape(1))
    out = sched.step(flow.target(x0, noise), sched.timesteps[0], x_t, return_dict=False)[0]
    assert torch.allclose(out, x0, atol=1e-5)


class _Oracle(torch.nn.Module):
    """A stand-in transformer that knows the clean latent: it answers what a perfect Z-Image network would,
    with our reading of its conventions (time input 1 - sigma, output = -velocity)."""

    def __init__(self, x0, spec=ZFLOW):
        super().__init__()
        self.x0, self.spec = x0, spec
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.in_channels = x0.shape[0]
        self.seen: list[float] = []

    @property
    def device(self):
        return self.anchor.device

    @property
    def dtype(self):
        return self.anchor.dtype

    def forward(self, x, t, cap_feats, **_):
        outs = []
        for xi, ti in zip(x, t):
            sigma = 1 - ti if self.spec.reversed_time else ti
            self.seen.append(float(sigma))
            v = (xi - self.x0[:, None]) / sigma                     # noise - x0 on the straight path
            outs.append(v / self.spec.output_sign)
        return (outs,)


@pytest.mark.parametrize("steps", [1, 8])
def test_zimage_pipeline_reads_our_conventions(steps):
    """diffusers' ZImagePipeline driving the oracle ends on the clean latent; a wrong sign or a reversed time
    input would not."""
    from diffusers import ZImagePipeline

    torch.manual_seed(0)
    x0 = torch.randn(16, 4, 4)
    noise = torch.randn(1, 16, 4, 4)
    oracle = _Oracle(x0)
    pipe = ZImagePipeline(scheduler=_scheduler(), vae=None, text_encoder=None, tokenizer=None, transformer=oracle)
    pipe.vae_scale_factor = 8
    out = pipe(prompt_embeds=[torch.zeros(3, 8)], guidance_scale=0.0, num_inference_steps=steps, height=32, width=32,
               latents=noise.clone(), output_type="latent").images
    assert torch.allclose(out[0], x0, atol=1e-4)
    assert oracle.seen[0] == pytest.approx(1.0)  # the first step is pure noise
    for wrong in (replace(ZFLOW, output_sign=1.0), replace(ZFLOW, reversed_time=False)):
        pipe.transformer = _Oracle(x0, wrong)
        bad = pipe(prompt_embeds=[torch.zeros(3, 8)], guidance_scale=0.0, num_inference_steps=steps, height=32,
                   width=32, latents=noise.clone(), output_type="latent").images
        assert not torch.allclose(bad[0], x0, atol=1e-2)


def test_training_prediction_uses_the_same_conventions():
    """The loss of the oracle, run the way the trainer runs the transformer, is zero."""
    torch.manual_seed(1)
    x0, noise = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    d = flow.draw(2, "shift")
    x_t = flow.noisy(x0, noise, d.sigma)
    outs = []
    for i in range(2):
        oracle = _Oracle(x0[i])
        outs.append(oracle([x_t[i][:, None]], flow.model_time(ZFLOW, d.sigma[i:i + 1]), None)[0][0])
    pred = flow.velocity(ZFLOW, torch.stack(outs)[:, :, 0])
    assert float(flow.weighted_mse(pred, flow.target(x0, noise), d.weight)) < 1e-8


def test_sigmoid_table_is_sigmoid_of_a_normal():
    table = flow.sigma_table("sigmoid")
    assert torch.all(table[1:] < table[:-1])
    g = torch.Generator().manual_seed(0)
    samples = torch.sigmoid(torch.randn(200_000, generator=g)).sort(descending=True).values
    quantiles = samples[(torch.arange(1000) * 200 + 100)]
    assert torch.allclose(table, quantiles, atol=0.01)
    assert abs(float(table.mean()) - 0.5) < 1e-3


def test_bias_moves_draws_towards_noise_or_detail():
    g = torch.Generator().manual_seed(0)
    n = 40_000
    means = {b: float(flow.sigma_table("uniform")[flow.sample_indices(n, b, g)].mean()) for b in flow.TIMESTEP_BIASES}
    assert means["balanced"] == pytest.approx(0.5, abs=0.01)
    assert means["high_noise"] == pytest.approx(0.75, abs=0.01)   # E[1 - u³] = 3/4
    assert means["low_noise"] == pytest.approx(0.25, abs=0.01)
    idx = flow.sample_indices(n, "high_noise", g)
    assert float((idx < 250).float().mean()) == pytest.approx(0.25 ** (1 / 3), abs=0.01)
    assert int(idx.min()) >= 0 and int(idx.max()) <= 999


def test_shift_draws_more_noise_than_uniform():
    g = torch.Generator().manual_seed(0)
    shift = flow.draw(20_000, "shift", generator=g).sigma.mean()
    uniform = flow.draw(20_000, "uniform", generator=g).sigma.mean()
    assert float(shift) > float(uniform) + 0.1


def test_weighted_table_shape():
    w = flow.weight_table()
    assert w.shape == (1000,)
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-5)
    assert float(w[0]) == pytest.approx(0.91, abs=0.02)            # t = 1000
    assert 100 <= int(w.argmax()) <= 150 and float(w.max()) == pytest.approx(1.5, abs=0.05)   # t ≈ 876
    assert float(w[-1]) == pytest.approx(0.45, abs=0.02)           # t → 0
    # ai-toolkit's own figures (toolkit/timestep_weighing/default_weighing_scheme.py), exactly, as float32:
    # its first, peak (t = 876), lowest (t = 3) and last entries.
    for i, figure in ((0, 0.905706524848938), (124, 1.5226575136184692), (997, 0.4447800815105438),
                      (999, 0.4472601115703583)):
        assert w[i] == torch.tensor(figure, dtype=torch.float32)
    assert int(w.argmax()) == 124 and int(w.argmin()) == 997
    d = flow.draw(8, "weighted", generator=torch.Generator().manual_seed(0))
    assert torch.equal(d.weight, w[d.index])
    assert torch.equal(flow.draw(8, "uniform").weight, torch.ones(8))


def test_weights_scale_each_samples_loss():
    pred, tgt = torch.zeros(2, 3), torch.ones(2, 3)
    assert float(flow.weighted_mse(pred, tgt, torch.tensor([1.0, 3.0]))) == pytest.approx(2.0)


def test_differential_guidance_scales_the_gradient():
    torch.manual_seed(0)
    tgt = torch.randn(2, 4)
    grads = []
    for scale in (1.0, 3.0):
        pred = torch.randn(2, 4, generator=torch.Generator().manual_seed(5)).requires_grad_()
        t = flow.differential_target(pred, tgt, scale)
        assert not t.requires_grad
        flow.weighted_mse(pred, t, torch.ones(2)).backward()
        grads.append(pred.grad.clone())
    assert torch.allclose(grads[1], 3.0 * grads[0], atol=1e-6)
    plain = torch.randn(2, 4)
    assert torch.allclose(flow.differential_target(plain, tgt, 1.0), tgt, atol=1e-6)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="timestep type"):
        flow.sigma_table("linear")
    with pytest.raises(ValueError, match="timestep bias"):
        flow.sample_indices(1, "content")


def test_a_flow_spec_states_every_convention():
    """No defaults: a family that forgot its sign or time direction would train wrongly without an error."""
    with pytest.raises(TypeError):
        flow.FlowSpec(shift=3.0)  # type: ignore[call-arg]
    assert flow.shift_for(ZFLOW, torch.zeros(1, 16, 128, 128)) == ZFLOW.shift  # Z-Image: a static shift


@pytest.mark.parametrize("side", [32, 64, 128])
def test_a_token_count_shift_is_diffusers_calculate_shift(side):
    """FLUX's and Qwen-Image's schedulers shift by mu = calculate_shift(image tokens): shift = e^mu, tokens from the
    latents' 2x2 patches."""
    import math

    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    dynamic = flow.DynamicShift(base_shift=0.5, max_shift=1.15, base_tokens=256, max_tokens=4096, patch=2)
    spec = replace(ZFLOW, dynamic=dynamic)
    latents = torch.zeros(1, 16, side, side)
    tokens = (side // 2) ** 2
    mu = calculate_shift(tokens, 256, 4096, 0.5, 1.15)
    assert flow.shift_for(spec, latents) == pytest.approx(math.exp(mu), rel=1e-12)
    # and the shifted sigma is diffusers' time_shift(mu, 1, t) = e^mu / (e^mu + 1/t - 1)
    t = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)
    want = math.exp(mu) / (math.exp(mu) + 1 / t - 1)
    assert torch.allclose(flow.shifted(t, flow.shift_for(spec, latents)), want, rtol=1e-12)
