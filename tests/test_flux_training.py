"""FLUX.1 / Chroma training seam (training/families/flux.py) and block swap (training/block_swap.py) on the tiny
models: the loss of one batch against a hand computation from diffusers' own pieces, Chroma's padding with
gradient checkpointing, the token-count shift, and block swap's gradients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import config as cfgmod
from training import flow
from training.families import flux as seam

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LATENT = (2, 16, 8, 8)  # two 64 px images: 16 packed tokens each


def _pipe(family: str, variant: str = "dev"):
    from models.families.flux import tiny

    return tiny.build_chroma(0) if family == "chroma" else tiny.build_tiny(0, variant)


def _cfg(family: str, **training):
    cfg = cfgmod.default_config()
    cfg.model.family = family
    cfg.training.timestep_type = "uniform"
    for k, v in training.items():
        setattr(cfg.training, k, v)
    return cfg


def _parts(family: str, variant: str = "dev"):
    import torch

    return seam.parts_from_pipe(_pipe(family, variant), family, _cfg(family), "cpu", torch.float32, log=lambda s: None)


@pytest.fixture(scope="module")
def dev():
    return _parts("flux", "dev")


@pytest.fixture(scope="module")
def chroma():
    return _parts("chroma")


CAPTIONS = ["a photo of the cat", "cat"]


def _hand_loss(parts, latents, seed: int):
    """The loss as diffusers' pipeline pieces give it: encode_prompt, _pack_latents, the image ids, the transformer
    at sigma with guidance 1 (dev) or the bool mask of the real tokens + one pad (Chroma), target ε − x0 packed."""
    import torch
    from diffusers import FluxPipeline

    pipe, (b, c, h, w) = parts.pipe, latents.shape
    torch.manual_seed(seed)
    index = torch.randint(0, 1000, (b,))
    sigma = torch.linspace(1.0, 1 / 1000, 1000, dtype=torch.float64).float()[index]
    noise = torch.randn_like(latents)
    s = sigma[:, None, None, None]
    x_t = (1 - s) * latents + s * noise
    kwargs = {"hidden_states": FluxPipeline._pack_latents(x_t, b, c, h, w), "timestep": sigma,
              "img_ids": FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32)}
    if parts.family == "chroma":
        embeds, text_ids, mask, *_ = pipe.encode_prompt(CAPTIONS, do_classifier_free_guidance=False,
                                                        max_sequence_length=512)
        kwargs["attention_mask"] = pipe._prepare_attention_mask(b, (h // 2) * (w // 2), embeds.dtype, mask).bool()
    else:
        embeds, pooled, text_ids = pipe.encode_prompt(CAPTIONS, None, max_sequence_length=512)
        kwargs.update(pooled_projections=pooled, guidance=torch.full((b,), 1.0))
    out = parts.unet(encoder_hidden_states=embeds, txt_ids=text_ids, return_dict=False, **kwargs)[0]
    target = FluxPipeline._pack_latents(noise - latents, b, c, h, w)
    return ((out.float() - target) ** 2).mean()


@pytest.mark.parametrize("family", ["flux", "chroma"])
def test_loss_of_one_batch_is_the_hand_computation(family, dev, chroma):
    import torch

    parts = dev if family == "flux" else chroma
    cfg = _cfg(family)
    torch.manual_seed(1)
    latents = torch.randn(LATENT)
    with torch.no_grad():
        text = seam.collate_text(*seam.encode_text(parts, CAPTIONS, cfg, "cpu"))
        torch.manual_seed(7)
        got = seam.loss(parts, parts.unet, latents, text, [], cfg)
        want = _hand_loss(parts, latents, 7)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got, want)
    # the other sign or a reversed time would give another loss: the check can tell them apart
    assert parts.flow.output_sign == 1.0 and not parts.flow.reversed_time


def test_text_lengths_and_chroma_mask(dev, chroma):
    schnell = _parts("flux", "schnell")
    cfg = _cfg("flux")
    hidden, pooled = seam.encode_text(dev, CAPTIONS, cfg, "cpu")
    assert hidden[0].shape[0] == 512 and pooled[0].shape == (dev.unet.config.pooled_projection_dim,)
    assert seam.encode_text(schnell, CAPTIONS, cfg, "cpu")[0][0].shape[0] == 256
    assert schnell.flow.shift == 1.0 and dev.flow.shift == 3.0  # the bases' own static shifts
    hidden, mask = seam.encode_text(chroma, ["cat"], _cfg("chroma"), "cpu")
    real = int(chroma.pipe.tokenizer("cat", return_tensors="pt").attention_mask.sum())
    assert mask[0].dtype == __import__("torch").bool and int(mask[0].sum()) == real + 1 and bool(mask[0][real])


def test_chroma_padding_has_no_effect_with_checkpointing(chroma):
    """diffusers 0.42.1 drops the mask in the single blocks' checkpointed call; the seam puts it back."""
    import torch

    cfg = _cfg("chroma")
    unet = chroma.unet
    unet.enable_gradient_checkpointing()
    default_func = unet._gradient_checkpointing_func
    try:
        hidden, mask = seam.collate_text(*seam.encode_text(chroma, CAPTIONS, cfg, "cpu"))
        padded = hidden.clone()
        padded[~mask] = torch.randn(int((~mask).sum()), hidden.shape[-1])  # only the masked tokens change
        torch.manual_seed(3)
        latents = torch.randn(LATENT)
        losses = []
        for text in ((hidden, mask), (padded, mask)):
            torch.manual_seed(5)
            with torch.enable_grad():
                losses.append(seam.loss(chroma, unet, latents, text, [], cfg))
        assert torch.equal(losses[0], losses[1])
        # diffusers' own checkpointing call leaks the padding: the comparison above can fail
        x_t, sigma = torch.randn(LATENT), torch.tensor([0.5, 0.5])
        outs = []
        for text in ((hidden, mask), (padded, mask)):
            unet._gradient_checkpointing_func = default_func
            with torch.enable_grad():
                outs.append(unet(**seam.transformer_inputs(chroma, x_t, sigma, text))[0])
        assert not torch.allclose(outs[0], outs[1])
    finally:
        unet.disable_gradient_checkpointing()


def test_flux_shift_follows_the_token_count():
    import math

    import torch

    spec = seam.FLOW
    small, large = torch.zeros(1, 16, 64, 64), torch.zeros(1, 16, 128, 128)  # 512² (1024 tokens), 1024² (4096)
    assert flow.shift_for(spec, large, "flux_shift") == pytest.approx(math.exp(1.15))
    assert flow.shift_for(spec, small, "flux_shift") == pytest.approx(math.exp(0.5 + 0.65 * 768 / 3840))
    assert flow.shift_for(spec, large, "shift") == 3.0  # "shift" is the static one (sd-scripts' discrete_flow_shift)
    table = flow.sigma_table("flux_shift", math.exp(1.15))
    assert torch.allclose(table, flow.shifted(flow.sigma_table("sigmoid"), math.exp(1.15)))
    assert bool((table[:-1] >= table[1:]).all())  # still sorted from most to least noise, for the bias


def _lora_grads(family: str, swap: int, checkpointing: bool):
    """Gradients of the LoRA weights after one loss with `swap` blocks swapped (NaN while out, so a weight read
    while out would spoil them)."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    from training import block_swap

    parts = _parts(family)
    unet = parts.unet
    targets = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)
               and ("transformer_blocks." in n) and n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "proj_out", "0")]
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=2, target_modules=targets, init_lora_weights=False), unet)
    unet.requires_grad_(False)
    for name, p in unet.named_parameters():
        p.requires_grad_("lora_" in name)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    swapper = block_swap.install(unet, seam.blocks_of(unet), swap, "cpu", park="nan") if swap else None
    cfg = _cfg(family)
    text = seam.collate_text(*seam.encode_text(parts, CAPTIONS, cfg, "cpu"))
    torch.manual_seed(1)
    latents = torch.randn(LATENT)
    torch.manual_seed(2)
    seam.loss(parts, unet, latents, text, [], cfg).backward()
    grads = {n: p.grad.clone() for n, p in unet.named_parameters() if p.requires_grad}
    return grads, swapper


@pytest.mark.parametrize("family,checkpointing", [("flux", False), ("flux", True), ("chroma", True)])
def test_block_swap_gives_the_same_gradients(family, checkpointing):
    import torch

    plain, _ = _lora_grads(family, 0, checkpointing)
    swapped, swapper = _lora_grads(family, 3, checkpointing)
    assert plain.keys() == swapped.keys() and plain
    for name in plain:
        assert torch.equal(plain[name], swapped[name]), name
    assert swapper.moves_in == 2 * 3  # each swapped block: in for its forward, in again for its backward


# --- the real trainer: `python -m training` on tiny FLUX.1 dev / schnell and Chroma bases ---------------------

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DANLU_LANG": "en"}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Diffusers folders of the tiny dev, schnell and Chroma pipelines, built once."""
    root = tmp_path_factory.mktemp("fluxbases")
    out = {}
    for name, family, variant in (("dev", "flux", "dev"), ("schnell", "flux", "schnell"), ("chroma", "chroma", "")):
        _pipe(family, variant or "dev").save_pretrained(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("fluxdata")
    (root / "2_cat").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "2_cat" / f"{i}.png")
        (root / "2_cat" / f"{i}.txt").write_text("a photo of the cat", encoding="utf-8")
    return root


def _run_config(base: Path, data: Path, out: Path, name: str, family: str, variant: str, **over) -> Path:
    values = {
        "model": {"base": str(base), "family": family, **({"variant": variant} if variant else {})},
        "dataset": {"dir": str(data), "resolution": 256, "resolutions": [], "bucket_no_upscale": True,
                    "min_bucket_reso": 64, "max_bucket_reso": 128, "caption_dropout_rate": 0.0,
                    "cache_latents": "memory"},
        "network": {"rank": 4, "alpha": 2.0, "train_text_encoder": False},
        "optimizer": {"name": "AdamW", "lr": 1e-3, "scheduler": "constant"},
        "training": {"max_train_steps": 4, "mixed_precision": "no", "device": "cpu", "timestep_type": "sigmoid"},
        "saving": {"output_dir": str(out), "name": name, "every_n_steps": 0, "every_n_epochs": 0,
                   "precision": "float"},
        "sampling": {"prompts": []},
    }
    for section, more in over.items():
        values[section].update(more)
    toml = out / f"{name}.toml"
    out.mkdir(parents=True, exist_ok=True)
    cfgmod.save(cfgmod.merge_dict(cfgmod.default_config(), values), toml)
    return toml


def _train(toml: Path, *extra: str, stop_early: bool = False) -> tuple[int, str, Path]:
    from core.events import read_events

    run_dir = cfgmod.load(toml).run_dir
    log = toml.with_suffix(".out")
    with open(log, "w+", encoding="utf-8") as f:
        proc = subprocess.Popen([sys.executable, "-m", "training", str(toml), *extra], cwd=ROOT, env=ENV, stdout=f,
                                stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while stop_early and proc.poll() is None and time.time() < deadline:
            if any(e["type"] == "start" for e in read_events(run_dir / "events.jsonl")[0]):
                (run_dir / "STOP").touch()  # before the model loads: the run stops after step 1
                break
            time.sleep(0.1)
        proc.wait(timeout=600)
    return proc.returncode, log.read_text(encoding="utf-8"), run_dir


@pytest.fixture(scope="module")
def dev_run(bases, images, tmp_path_factory):
    toml = _run_config(bases["dev"], images, tmp_path_factory.mktemp("devrun"), "fd", "flux", "dev",
                       training={"timestep_type": "flux_shift"}, dataset={"cache_text_encoder_outputs": True},
                       sampling={"prompts": ["a photo of the cat"], "steps": 2, "width": 64, "height": 64})
    code, out, run_dir = _train(toml)
    assert code == 0, out
    return run_dir


def _trained_file(run_dir: Path, name: str) -> dict:
    from safetensors.torch import load_file

    from core.events import read_events

    events = read_events(run_dir / "events.jsonl")[0]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "finished"
    state = load_file(str(run_dir / f"{name}.safetensors"))
    ups = [v for k, v in state.items() if "lora_B" in k or "lora_up" in k]
    assert ups and any(float(v.abs().max()) > 0 for v in ups)  # the zero-initialised up factors were trained
    return state


def test_dev_run_saves_a_trained_lora(dev_run):
    from core.events import read_events

    state = _trained_file(dev_run, "fd")
    sample = next(e for e in read_events(dev_run / "events.jsonl")[0] if e["type"] == "sample")
    assert Path(sample["png"]).is_file()  # rendered from the saved file through the seam's sample_pipeline
    assert not any("distilled_guidance" in k for k in state)
    assert "LoRA on" in (dev_run / "train.log").read_text(encoding="utf-8")


@pytest.mark.parametrize("name,family,variant,training", [
    ("schnell", "flux", "schnell", {"timestep_type": "shift", "fp8_base": True, "blocks_to_swap": 1}),
    ("chroma", "chroma", "", {"gradient_checkpointing": True, "blocks_to_swap": 2}),
])
def test_schnell_and_chroma_runs(bases, images, tmp_path, name, family, variant, training):
    toml = _run_config(bases[name], images, tmp_path, "f" + name, family, variant, training=training)
    code, out, run_dir = _train(toml)
    assert code == 0, out
    state = _trained_file(run_dir, "f" + name)
    assert not any("distilled_guidance_layer" in k for k in state)
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert f"Block swap: {training['blocks_to_swap']} of 4 transformer blocks" in log


def test_stop_then_resume_gives_the_uninterrupted_weights(bases, images, dev_run, tmp_path):
    from safetensors.torch import load_file

    toml = _run_config(bases["dev"], images, tmp_path, "fd", "flux", "dev",
                       training={"timestep_type": "flux_shift"}, dataset={"cache_text_encoder_outputs": True})
    code, out, run_dir = _train(toml, stop_early=True)
    assert code == 0 and "Stopped at step 1" in out, out
    code, out, run_dir = _train(toml, "--resume")
    assert code == 0, out
    a, b = load_file(str(run_dir / "fd.safetensors")), load_file(str(dev_run / "fd.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_moving_a_swapped_model_leaves_its_swapped_blocks_out():
    """The loop parks the model in CPU memory while samples render (block_swap.move): the swapped blocks stay
    parked, the rest moves, and the next forward still brings them in."""
    import torch

    from training import block_swap

    parts = _parts("flux")
    unet = parts.unet
    swap = block_swap.install(unet, seam.blocks_of(unet), 2, "cpu", park="nan")
    cfg = _cfg("flux")
    text = seam.collate_text(*seam.encode_text(parts, CAPTIONS, cfg, "cpu"))
    with torch.no_grad():
        first = seam.predict_at(parts, unet, torch.ones(LATENT), torch.zeros(LATENT), 0.5, text, [])[0]
        block_swap.move(unet, "cpu")
        assert all(bool(p.isnan().all()) for b in swap.blocks for p in b.parameters() if p.is_floating_point())
        again = seam.predict_at(parts, unet, torch.ones(LATENT), torch.zeros(LATENT), 0.5, text, [])[0]
    assert torch.equal(first, again) and not bool(first.isnan().any())


# --- FLUX.1's CLIP-L LoRA (network.train_text_encoder) -----------------------------------------------------------

def test_clip_lora_trains_each_step_with_t5_cached():
    """With network.train_text_encoder, CLIP-L gets the SD seam's text-encoder LoRA (training.lora) and T5 none; a
    step re-encodes CLIP-L's pooled text with gradients into its LoRA (equal to the pipeline's encode_prompt while
    the LoRA is still zero), while T5's rows are encoded once and come from the seam's cache."""
    import torch

    from models.families.flux.load import encode_prompts
    from training import adapters

    parts, cfg = _parts("flux"), _cfg("flux")
    assert cfg.network.train_text_encoder and cfg.network.train_unet
    trained, _, _ = adapters.attach(cfg, parts, "cpu", log=lambda s: None)
    clip, t5 = parts.text_encoders
    assert set(trained) == {"unet", "text_encoder"}
    assert not [n for n, p in t5.named_parameters() if p.requires_grad or "lora_" in n]
    with torch.no_grad():
        want_hidden, want_pooled, _ = encode_prompts(parts.pipe, CAPTIONS)
    hidden, pooled = seam.encode_text(parts, CAPTIONS, cfg, "cpu")
    assert torch.equal(hidden, want_hidden) and torch.equal(pooled, want_pooled)
    assert pooled.requires_grad and not hidden.requires_grad
    assert set(parts.seam_cache["t5"]) == set(CAPTIONS)
    parts.seam_cache["t5"]["cat"] = torch.zeros_like(hidden[1])  # the next step reads the cache, not T5
    assert not seam.encode_text(parts, ["cat"], cfg, "cpu")[0].any()
    parts.seam_cache["t5"]["cat"] = hidden[1]
    torch.manual_seed(0)
    seam.loss(parts, parts.unet, torch.randn(LATENT), (hidden, pooled), [], cfg).backward()
    grads = [p.grad for n, p in clip.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads) and any(bool(g.any()) for g in grads)


def test_chroma_ignores_train_text_encoder_with_a_warning():
    """Chroma has no CLIP (its T5 is never trained): network.train_text_encoder is a warning that says so, and the
    run adds no text-encoder LoRA; FLUX.1 has no such warning. Cached text outputs stay allowed for both (FLUX.1:
    T5's), and are still refused for an SD run that trains its text encoder."""
    from core import checks
    from training import adapters

    def issues(family: str, key: str):
        cfg = _cfg(family)
        cfg.dataset.cache_text_encoder_outputs = True
        return [i for i in checks.check(cfg) if i.key == key]

    assert not issues("flux", "network.train_text_encoder")
    (issue,) = issues("chroma", "network.train_text_encoder")
    assert issue.level == "warning" and "Chroma" in issue.en and "Chroma" in issue.zh
    cache = "dataset.cache_text_encoder_outputs"
    assert not checks.errors(issues("flux", cache)) and not checks.errors(issues("chroma", cache))
    assert checks.errors(issues("sdxl", cache))
    parts = _parts("chroma")
    trained, _, _ = adapters.attach(_cfg("chroma"), parts, "cpu", log=lambda s: None)
    assert set(trained) == {"unet"}
    assert not [n for e in parts.text_encoders for n, _ in e.named_parameters() if "lora_" in n]


def test_dev_run_with_clip_lora(bases, images, tmp_path):
    """A trainer run with CLIP-L's LoRA, text outputs cached (T5's) and an fp8 base: the file holds CLIP-L's trained
    LoRA under text_encoder.text_model (no T5 key), next to the transformer's, and the sample renders from it."""
    from core.events import read_events

    toml = _run_config(bases["dev"], images, tmp_path, "fc", "flux", "dev",
                       network={"train_text_encoder": True}, dataset={"cache_text_encoder_outputs": True},
                       training={"fp8_base": True},
                       sampling={"prompts": ["a photo of the cat"], "steps": 2, "width": 64, "height": 64})
    code, out, run_dir = _train(toml)
    assert code == 0, out
    state = _trained_file(run_dir, "fc")
    clip_up = [v for k, v in state.items() if k.startswith("text_encoder.text_model.") and "lora_B" in k]
    assert clip_up and all(bool(v.any()) for v in clip_up)  # every CLIP-L up factor moved from its zero start
    assert all(k.startswith(("transformer.", "text_encoder.text_model.")) for k in state)
    assert any(e["type"] == "sample" for e in read_events(run_dir / "events.jsonl")[0])
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert "text_encoder layers" in log and "text_encoder_2" not in log
