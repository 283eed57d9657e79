"""Qwen-Image's training seam (training/families/qwen_image.py) on the tiny model: the loss of one batch against a
hand computation from diffusers' own pieces, the latents' per-channel normalisation, the token-count shift against
the scheduler's, padding, block swap's gradients, and a run through the real trainer whose sample is rendered from
the saved file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_flux_training import _run_config, _train, _trained_file, images  # noqa: F401 (FLUX's run helpers)

from core import config as cfgmod
from training import flow
from training.families import qwen_image as seam

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LATENT = (2, 16, 8, 8)  # two 64 px images: 16 packed tokens each
CAPTIONS = ["a photo of the cat", "cat"]  # different lengths: the second is padded in a batch


def _cfg(**training):
    cfg = cfgmod.default_config()
    cfg.model.family = "qwen_image"
    cfg.training.timestep_type = "uniform"
    for k, v in training.items():
        setattr(cfg.training, k, v)
    return cfg


def _parts():
    import torch

    from models.families.qwen_image import tiny

    return seam.parts_from_pipe(tiny.build_tiny(0), _cfg(), "cpu", torch.float32, log=lambda s: None)


@pytest.fixture(scope="module")
def parts():
    return _parts()


def _text(parts, captions=CAPTIONS):
    return seam.collate_text(*seam.encode_text(parts, captions, _cfg(), "cpu"))


def _hand_loss(parts, latents, seed: int, timestep_type: str = "uniform"):
    """The loss as QwenImagePipeline's pieces give it: encode_prompt, _pack_latents, img_shapes, the transformer at
    sigma with the prompt mask, target ε − x0 packed; sigma from the uniform table, or for "flux_shift" the sigmoid
    table shifted as the scheduler's exponential time shift does with the pipeline's calculate_shift μ."""
    import torch
    from diffusers import QwenImagePipeline
    from diffusers.pipelines.qwenimage.pipeline_qwenimage import calculate_shift

    pipe, (b, c, h, w) = parts.pipe, latents.shape
    torch.manual_seed(seed)
    index = torch.randint(0, 1000, (b,))
    if timestep_type == "uniform":
        sigma = torch.linspace(1.0, 1 / 1000, 1000, dtype=torch.float64).float()[index]
    else:
        sc = pipe.scheduler.config
        mu = calculate_shift((h // 2) * (w // 2), sc.base_image_seq_len, sc.max_image_seq_len, sc.base_shift,
                             sc.max_shift)
        q = 1.0 - (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
        sigma = pipe.scheduler.time_shift(mu, 1.0, torch.sigmoid(torch.special.ndtri(q))).float()[index]
    noise = torch.randn_like(latents)
    s = sigma[:, None, None, None]
    x_t = (1 - s) * latents + s * noise
    embeds, mask = pipe.encode_prompt(CAPTIONS)
    out = parts.unet(hidden_states=QwenImagePipeline._pack_latents(x_t, b, c, h, w), timestep=sigma,
                     encoder_hidden_states=embeds, encoder_hidden_states_mask=mask,
                     img_shapes=[[(1, h // 2, w // 2)]] * b, return_dict=False)[0]
    target = QwenImagePipeline._pack_latents(noise - latents, b, c, h, w)
    return ((out.float() - target) ** 2).mean()


@pytest.mark.parametrize("timestep_type", ["uniform", "flux_shift"])
def test_loss_of_one_batch_is_the_hand_computation(parts, timestep_type):
    import torch

    cfg = _cfg(timestep_type=timestep_type)
    torch.manual_seed(1)
    latents = torch.randn(LATENT)
    with torch.no_grad():
        text = _text(parts)
        torch.manual_seed(7)
        got = seam.loss(parts, parts.unet, latents, text, [], cfg)
        want = _hand_loss(parts, latents, 7, timestep_type)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got, want)
    assert text[1] is not None and text[1].tolist()[1].count(0) > 0  # the short caption was padded and masked
    # the other sign or a reversed time would give another loss: the check can tell them apart
    assert parts.flow.output_sign == 1.0 and not parts.flow.reversed_time


def test_text_rows_are_the_pipelines_and_unpadded_batches_have_no_mask(parts):
    import torch

    rows, pooled = seam.encode_text(parts, CAPTIONS, _cfg(), "cpu")
    embeds, mask = parts.pipe.encode_prompt(CAPTIONS)
    assert pooled is None and [r.shape[0] for r in rows] == mask.sum(dim=1).tolist()
    hidden, got_mask = seam.collate_text(rows, [None, None])
    assert torch.equal(hidden, embeds) and torch.equal(got_mask, mask)
    alone, no_mask = seam.collate_text(rows[:1], [None])
    assert no_mask is None and torch.equal(alone, parts.pipe.encode_prompt(CAPTIONS[:1])[0])


def test_the_text_encoder_is_freed_once_captions_are_cached():
    import weakref

    parts = _parts()
    encoder = weakref.ref(parts.text_encoders[0])
    said = []
    seam.free_text_encoder(parts, said.append)
    assert encoder() is None and not parts.text_encoders and said  # nothing else holds its memory


def test_latents_are_normalised_per_channel_as_the_pipeline_decodes_them(parts):
    import torch

    from training.parts import encode_latents

    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 64, 64) * 2 - 1
    latents = encode_latents(parts, pixels)  # the loop's call: it asks the seam
    assert latents.shape == (1, 16, 8, 8)
    vae = parts.vae
    with torch.no_grad():
        mode = vae.encode(pixels[:, :, None]).latent_dist.mode()
    # QwenImagePipeline's decode: latents / (1 / std) + mean, then the VAE
    std = 1.0 / torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    assert torch.allclose(latents[:, :, None] / std + mean, mode, atol=1e-5)
    assert not torch.allclose(latents[:, :, None], mode, atol=1e-2)  # the normalisation is not the identity


def test_shift_follows_the_token_count_as_the_scheduler_config_says(parts):
    import torch
    from diffusers.pipelines.qwenimage.pipeline_qwenimage import calculate_shift

    spec = parts.flow
    sc = parts.pipe.scheduler.config
    for side, tokens in ((128, 4096), (166, 6889)):  # 1024² and 1328²: e^μ 2.00 and 2.30
        mu = calculate_shift(tokens, sc.base_image_seq_len, sc.max_image_seq_len, sc.base_shift, sc.max_shift)
        assert flow.shift_for(spec, torch.zeros(1, 16, side, side), "flux_shift") == pytest.approx(math.exp(mu))
    assert flow.shift_for(spec, torch.zeros(1, 16, 128, 128), "flux_shift") == pytest.approx(2.0, abs=0.005)
    assert flow.shift_for(spec, torch.zeros(1, 16, 128, 128), "shift") == 1.0  # the scheduler's static shift


def test_padding_has_no_effect_with_checkpointing(parts):
    """The padded text tokens of a batch change nothing, with gradient checkpointing (which passes the mask)."""
    import torch

    unet = parts.unet
    cfg = _cfg()
    unet.enable_gradient_checkpointing()
    try:
        hidden, mask = _text(parts)
        padded = torch.where(mask[..., None].bool(), hidden, torch.randn_like(hidden))  # only padding changes
        assert not torch.equal(padded, hidden)
        latents = torch.randn(LATENT, generator=torch.Generator().manual_seed(3))

        def seeded_loss(text):
            torch.manual_seed(5)  # the same noise levels and noise for both
            with torch.enable_grad():
                return seam.loss(parts, unet, latents, text, [], cfg)

        assert torch.equal(seeded_loss((hidden, mask)), seeded_loss((padded, mask)))
    finally:
        unet.disable_gradient_checkpointing()


def _lora_grads(swap: int, checkpointing: bool):
    """Gradients of the LoRA weights after one loss with `swap` blocks swapped (NaN while out, so a weight read
    while out would spoil them)."""
    import torch

    from training import block_swap, lora

    parts = _parts()
    unet = parts.unet
    lora.inject(unet, rank=2, alpha=2, component="unet", **seam.lora_plan(_cfg(), parts)[0])
    for name, p in unet.named_parameters():
        p.requires_grad_("lora_" in name)
        if "lora_B" in name:
            torch.nn.init.normal_(p, 0, 0.1)  # zero-initialised up factors would leave the down factors no gradient
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    swapper = block_swap.install(unet, seam.blocks_of(unet), swap, "cpu", park="nan") if swap else None
    cfg = _cfg()
    text = _text(parts)
    torch.manual_seed(1)
    latents = torch.randn(LATENT)
    torch.manual_seed(2)
    seam.loss(parts, unet, latents, text, [], cfg).backward()
    # the last block's text-stream output is never read (only image tokens leave the model): its LoRA gets none
    return {n: p.grad.clone() for n, p in unet.named_parameters() if p.grad is not None}, swapper


@pytest.mark.parametrize("checkpointing", [False, True])
def test_block_swap_gives_the_same_gradients(checkpointing):
    import torch

    plain, _ = _lora_grads(0, checkpointing)
    swapped, swapper = _lora_grads(1, checkpointing)
    assert plain.keys() == swapped.keys() and plain
    for name in plain:
        assert torch.equal(plain[name], swapped[name]), name
    assert swapper.moves_in == 2  # the swapped block: in for its forward, in again for its backward


# --- the real trainer: `python -m training` on a tiny Qwen-Image base ------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A diffusers folder of the tiny pipeline, built once."""
    from models.families.qwen_image import tiny

    root = tmp_path_factory.mktemp("qwenbase") / "qwen"
    tiny.build_tiny(0).save_pretrained(root)
    return root


# the 24 GB path (fp8 storage, block swap, gradient checkpointing, cached text) with the pipeline's dynamic shift
TRAINING = {"timestep_type": "flux_shift", "fp8_base": True, "blocks_to_swap": 1, "gradient_checkpointing": True}
SAMPLING = {"prompts": ["a photo of the cat"], "steps": 2, "width": 64, "height": 64, "cfg": 4.0,
            "negative_prompt": " ", "seed": 5}


def _toml(base: Path, images: Path, out: Path, **over) -> Path:
    return _run_config(base, images, out, "qi", "qwen_image", "image", training=TRAINING,
                       dataset={"cache_text_encoder_outputs": True}, **over)


@pytest.fixture(scope="module")
def run(base, images, tmp_path_factory):
    code, out, run_dir = _train(_toml(base, images, tmp_path_factory.mktemp("qirun"), sampling=SAMPLING))
    assert code == 0, out
    return run_dir


def _render(pipe):
    import torch

    return pipe(SAMPLING["prompts"][0], negative_prompt=" ", true_cfg_scale=4.0, num_inference_steps=2, width=64,
                height=64, generator=torch.Generator("cpu").manual_seed(5)).images[0]


def test_run_saves_a_trained_lora_and_renders_its_sample_from_the_file(base, run):
    """The trained file, and its sample rendered from the file: equal to a fresh pipeline's render of it."""
    import numpy as np
    import torch
    from diffusers import QwenImagePipeline
    from PIL import Image

    from core.events import read_events

    state = _trained_file(run, "qi")
    assert all(k.startswith("diffusion_model.transformer_blocks.") for k in state)
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "Block swap: 1 of 2 transformer blocks" in log and "stored in fp8" in log
    assert "Text encoder freed" in log
    sample = next(e for e in read_events(run / "events.jsonl")[0] if e["type"] == "sample")
    # what a diffusers user gets from the saved file: a fresh QwenImagePipeline, load_lora_weights, the recipe
    pipe = QwenImagePipeline.from_pretrained(str(base), torch_dtype=torch.float32)
    pipe.load_lora_weights(str(run / "qi.safetensors"))
    got = np.asarray(Image.open(sample["png"]).convert("RGB"))
    assert np.array_equal(got, np.asarray(_render(pipe)))
    pipe.unload_lora_weights()  # the file changes the image: the comparison above can fail
    assert not np.array_equal(got, np.asarray(_render(pipe)))


def test_stop_then_resume_gives_the_uninterrupted_weights(base, images, run, tmp_path):
    """Stopped after step 1 and resumed (text cached and its encoder freed again, blocks swapped again): the file
    equals the uninterrupted run's (samples do not change what is trained)."""
    from safetensors.torch import load_file

    toml = _toml(base, images, tmp_path)
    code, out, run_dir = _train(toml, stop_early=True)
    assert code == 0 and "Stopped at step 1" in out, out
    code, out, run_dir = _train(toml, "--resume")
    assert code == 0 and "at step 1 of 4" in out, out  # went on from the stopped state (a fresh run would match too)
    a, b = load_file(str(run_dir / "qi.safetensors")), load_file(str(run / "qi.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
