"""The time input reaches the transformer's time embedder in float32 in training, validation and samples, whatever
the compute dtype: bf16 keeps 8 significant bits, so a time of 0.411 would be embedded as 0.4102 in training while
the samplers users run (diffusers' pipeline, ComfyUI) embed 0.411."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from training import flow
from training.families.zimage import FLOW as ZFLOW

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe():
    from models.families.zimage.tiny import build_tiny

    return build_tiny(seed=0).to(dtype=torch.bfloat16)


def _record(transformer) -> tuple[list, object]:
    """Every input of the transformer's time embedder, as it is called (`t * t_scale`)."""
    seen: list = []
    handle = transformer.t_embedder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    return seen, handle


def _expected(sigma, t_scale: float):
    """The float32 time of noise level sigma as the embedder must get it: (1 - sigma) · t_scale, in float32."""
    return (1 - sigma.to(torch.float32)) * torch.tensor(t_scale, dtype=torch.float32)


def test_every_flow_spec_gives_float32_time_for_any_sigma_dtype():
    sigma = torch.tensor([0.589, 0.186], dtype=torch.bfloat16)
    for spec in (ZFLOW, replace(ZFLOW, reversed_time=False), replace(ZFLOW, output_sign=1.0)):
        assert flow.model_time(spec, sigma).dtype == torch.float32
        assert flow.model_time(spec, sigma.float()).dtype == torch.float32
    assert torch.equal(flow.model_time(ZFLOW, torch.tensor([0.25])), torch.tensor([0.75]))


def test_bf16_training_step_embeds_the_float32_time(pipe, monkeypatch):
    from core import config as cfgmod
    from training.families import zimage as dit

    transformer = pipe.transformer
    drawn = []

    def draw(*args, **kwargs):
        d = real_draw(*args, **kwargs)
        drawn.append(d)
        return d

    real_draw = flow.draw
    monkeypatch.setattr(flow, "draw", draw)
    cfg = cfgmod.load(preset="zimage_turbo_adapter")  # bf16 mixed precision, the "weighted" timestep type
    assert cfg.training.mixed_precision == "bf16"
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(4, 16, 8, 8, generator=g)
    embeds = [torch.randn(6, 32, generator=g) for _ in range(4)]
    seen, handle = _record(transformer)
    try:
        torch.manual_seed(123)
        loss = dit.loss(SimpleNamespace(flow=ZFLOW, unet=transformer), transformer, latents, (embeds, None), [], cfg)
    finally:
        handle.remove()
    assert torch.isfinite(loss)
    want = _expected(drawn[0].sigma, transformer.t_scale)
    assert seen[0].dtype == torch.float32 and torch.equal(seen[0], want)
    # The check can fail: these times are not bf16 numbers (the old cast turned 789 into 788 and 610 into 608).
    assert not torch.equal(want.to(torch.bfloat16).float(), want)


def test_bf16_validation_loss_embeds_the_float32_time(pipe):
    from training import validation
    from training.families import zimage

    transformer = pipe.transformer
    parts = SimpleNamespace(is_flow=True, flow=ZFLOW, setup=zimage)
    g = torch.Generator().manual_seed(1)
    latents, hidden = torch.randn(1, 16, 8, 8, generator=g), [torch.randn(5, 32, generator=g)]
    v = validation.Validator([SimpleNamespace(caption="a cat")], parts, lambda _items, _flips: latents,
                             lambda _captions: (hidden, None), "cpu")
    seen, handle = _record(transformer)
    try:
        v.score(transformer)
    finally:
        handle.remove()
    want = [_expected(torch.tensor([level]), transformer.t_scale) for level in validation.LEVELS]
    assert all(s.dtype == torch.float32 and torch.equal(s, w) for s, w in zip(seen, want)), (seen, want)
    assert any(not torch.equal(w.to(torch.bfloat16).float(), w) for w in want)


def test_bf16_sample_embeds_the_schedulers_float32_time(pipe):
    """The sample path (models/families/zimage/sample.py render, diffusers' pipeline) gives the embedder float32 times:
    (1000 - timestep) / 1000 of the scheduler's own float32 timesteps."""
    from models.families.zimage import sample

    transformer = pipe.transformer
    seen, handle = _record(transformer)
    try:
        sample.render(pipe, prompt="a cat", steps=3, cfg=1.0, seed=5, width=32, height=32)
    finally:
        handle.remove()
    ts = pipe.scheduler.timesteps
    assert ts.dtype == torch.float32 and len(seen) == 3
    for s, t in zip(seen, ts):
        want = ((1000 - t.expand(1)) / 1000) * transformer.t_scale
        assert s.dtype == torch.float32 and torch.equal(s, want)
