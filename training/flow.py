"""Flow-matching maths shared by the flow families (Z-Image now; FLUX and Qwen-Image follow).

Conventions (reference/zimage.md, checked against diffusers' ZImagePipeline and its scheduler):

- sigma in [0, 1] is the noise level: x_sigma = (1 - sigma)·x0 + sigma·noise, and the velocity the
  sampler integrates (from sigma = 1 down to 0) is d x / d sigma = noise - x0: the training target.
- The family says how its network sees this: Z-Image's transformer is given (1000 - 1000·sigma)/1000
  (0 = pure noise) and returns the *negative* velocity, as the pipeline's ``noise_pred = -model_out`` shows.
- Training draws sigma from a 1000-entry table that is sorted from most to least noise; the timestep
  type chooses the table (uniform, sigmoid, shift, weighted) and the bias chooses where in it to draw
  (balanced: anywhere; high_noise: near the top, for composition; low_noise: near the bottom, for style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

N_TIMESTEPS = 1000
TIMESTEP_TYPES = ("uniform", "sigmoid", "shift", "weighted", "flux_shift")
TIMESTEP_BIASES = ("balanced", "high_noise", "low_noise")


@dataclass(frozen=True)
class DynamicShift:
    """A shift that grows with the image's token count, as FLUX's and Qwen-Image's schedulers compute it
    (diffusers' ``calculate_shift``): mu runs linearly from base_shift at base_tokens to max_shift at max_tokens,
    and the static-shift formula is applied with shift = e^mu."""

    base_shift: float
    max_shift: float
    base_tokens: int
    max_tokens: int
    patch: int                  # latent pixels per token side (2 for 2x2 packed latents)

    def shift(self, tokens: int) -> float:
        import math

        slope = (self.max_shift - self.base_shift) / (self.max_tokens - self.base_tokens)
        return math.exp(self.base_shift + slope * (tokens - self.base_tokens))


@dataclass(frozen=True)
class FlowSpec:
    """How one family's network reads the noise level and what sign its output has. No defaults: a family that
    forgot one would train with the wrong sign or time direction and no error, so each family states all."""

    shift: float                # static shift of the family's sampler (FlowMatchEulerDiscreteScheduler)
    output_sign: float          # velocity = output_sign · network output
    reversed_time: bool         # the network gets 1 - sigma (0 = pure noise) instead of sigma
    time_dtype: str             # the time input's precision, whatever the compute dtype (see model_time)
    dynamic: DynamicShift | None  # a resolution-dependent shift, or None for the static one


def shift_for(spec: FlowSpec, latents: Any, timestep_type: str = "flux_shift") -> float:
    """The shift of a batch: the dynamic one of its latents' token count for "flux_shift" on a family that has one,
    else the static one ("shift" is the sampler's static shift, as sd-scripts' --discrete_flow_shift)."""
    if spec.dynamic is None or timestep_type != "flux_shift":
        return spec.shift
    h, w = latents.shape[-2], latents.shape[-1]
    return spec.dynamic.shift((h // spec.dynamic.patch) * (w // spec.dynamic.patch))


# Where Danlu and ai-toolkit (jobs/process/BaseSDTrainProcess.py, toolkit/samplers/custom_flowmatch_sampler.py)
# differ, and why Danlu keeps its way:
# - The balanced draw: ai-toolkit draws torch.randint(0, 999), so its last entry (t = 1, the least noise) is never
#   trained; Danlu draws all 1000 entries, as the table is the schedule the sampler runs.
# - The "shift" table: ai-toolkit spaces its 1000 sigmas between the scheduler's sigma_max and sigma_min, which
#   are already shifted, and then shifts them again, so its lowest level is shift(shift(0.001)) = 0.0089 (the rest
#   differ by 0.0007 at the median); Danlu's table is FlowMatchEulerDiscreteScheduler's own 1000 training sigmas,
#   shifted once (lowest 0.0030), the levels diffusers' and ComfyUI's samplers step through.


def shifted(sigma: Any, shift: float) -> Any:
    """The static shift of FlowMatchEulerDiscreteScheduler: more of the schedule at high noise when shift > 1."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sigma_table(timestep_type: str, shift: float = 3.0):
    """The 1000 noise levels of a timestep type, from most noise (entry 0) to least (entry 999).

    "flux_shift" is sd-scripts' FLUX option: the sigmoid levels shifted by the batch's shift (a family with a
    DynamicShift gives the one of its token count: shift_for)."""
    import torch

    if timestep_type not in TIMESTEP_TYPES:
        raise ValueError(f"unknown timestep type {timestep_type!r}; choose from {', '.join(TIMESTEP_TYPES)}")
    uniform = torch.linspace(1.0, 1.0 / N_TIMESTEPS, N_TIMESTEPS, dtype=torch.float64)
    if timestep_type in ("uniform", "weighted"):
        table = uniform
    elif timestep_type == "shift":  # the sampler's own 1000 training sigmas
        table = shifted(uniform, shift)
    else:  # sigmoid of a standard normal, as quantiles (sorted, so the bias can pick a side)
        q = 1.0 - (torch.arange(N_TIMESTEPS, dtype=torch.float64) + 0.5) / N_TIMESTEPS
        table = torch.sigmoid(torch.special.ndtri(q))
        if timestep_type == "flux_shift":
            table = shifted(table, shift)
    return table.float()


def weight_table():
    """Loss weight per table entry for the "weighted" type: ai-toolkit's own figures (training/flow_weights.py),
    entry 0 at t = 1000, mean 1."""
    import torch

    from training.flow_weights import WEIGHTS

    return torch.tensor(WEIGHTS, dtype=torch.float32)


def sample_indices(n: int, bias: str = "balanced", generator=None):
    """Table entries for a batch: uniform, or cubed towards high noise (entry 0) or low noise (entry 999)."""
    import torch

    if bias not in TIMESTEP_BIASES:
        raise ValueError(f"unknown timestep bias {bias!r}; choose from {', '.join(TIMESTEP_BIASES)}")
    if bias == "balanced":
        return torch.randint(0, N_TIMESTEPS, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    pos = u ** 3 if bias == "high_noise" else 1 - u ** 3
    return (pos * N_TIMESTEPS).long().clamp(0, N_TIMESTEPS - 1)


@dataclass
class Draw:
    """Noise levels for one batch: sigma (B,), the table entries, and the per-sample loss weight (B,)."""

    sigma: Any
    index: Any
    weight: Any


def draw(n: int, timestep_type: str = "uniform", bias: str = "balanced", shift: float = 3.0,
         generator=None) -> Draw:
    import torch

    index = sample_indices(n, bias, generator)
    sigma = sigma_table(timestep_type, shift)[index]
    weight = weight_table()[index] if timestep_type == "weighted" else torch.ones(n)
    return Draw(sigma, index, weight)


def _expand(v, like):
    return v.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def noisy(x0, noise, sigma):
    """x_sigma = (1 - sigma)·x0 + sigma·noise, sigma per sample."""
    s = _expand(sigma, x0)
    return (1 - s) * x0 + s * noise


def target(x0, noise):
    """The velocity d x / d sigma: what the loss compares the (sign-corrected) prediction with."""
    return noise - x0


def model_time(spec: FlowSpec, sigma, device=None):
    """The time value the network is given for noise level sigma, in the spec's time_dtype (float32) on `device`.

    Never in the compute dtype: the samplers users run (diffusers' pipelines, ComfyUI) give the time embedder a
    float32 time, while bf16 keeps 8 significant bits, so 0.411 would reach the sinusoid features as 0.4102 and
    times from the same schedule would be trained at other points than they are sampled at."""
    import torch

    sigma = sigma.to(device=device, dtype=getattr(torch, spec.time_dtype))
    return 1 - sigma if spec.reversed_time else sigma


def velocity(spec: FlowSpec, output):
    """The velocity from the network's raw output."""
    return output if spec.output_sign == 1 else spec.output_sign * output


def differential_target(pred, tgt, scale: float):
    """Differential guidance: aim past the target along (target - prediction), without gradients through it.

    The gradient becomes ``scale`` times the plain one for every sample; scale 1 is plain training.
    """
    import torch

    with torch.no_grad():
        return pred.detach() + scale * (tgt - pred.detach())


def weighted_mse(pred, tgt, weight):
    """Mean over each sample's elements, times the sample's weight, mean over the batch."""
    err = (pred.float() - tgt.float()) ** 2
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)
    return (per_sample * weight.to(per_sample.device, per_sample.dtype)).mean()


def loss(spec: FlowSpec, forward, latents, text, cfg: Any, class_text=None, lora_off=None):
    """Flow-matching loss of one batch: draw noise levels, noise the latents, compare velocities.

    ``forward(x_t, sigma, text)`` is the family's call of its network, returning the velocity (the sign and the
    time already applied through the spec). With DOP (class_text given), the LoRA's prediction for the class
    captions is also pulled towards the base model's at the same noisy latents (``lora_off()`` bypasses the
    LoRA), times training.dop_multiplier.
    """
    import torch

    t = cfg.training
    d = draw(latents.shape[0], t.timestep_type, t.timestep_bias, shift_for(spec, latents, t.timestep_type))
    noise = torch.randn_like(latents)
    x_t = noisy(latents, noise, d.sigma)
    pred = forward(x_t, d.sigma, text)
    tgt = target(latents, noise)
    if t.differential_guidance:
        tgt = differential_target(pred, tgt, t.differential_guidance)
    result = weighted_mse(pred, tgt, d.weight)
    if class_text is not None and t.dop_multiplier:
        with torch.no_grad(), lora_off():
            prior = forward(x_t, d.sigma, class_text)
        result = result + t.dop_multiplier * weighted_mse(forward(x_t, d.sigma, class_text), prior, d.weight)
    return result
