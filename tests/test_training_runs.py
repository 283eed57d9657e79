"""Two-epoch runs on the tiny SD1.5 and SDXL models: files, keys, parity of samples, metadata, recipes, loss."""

from __future__ import annotations

import numpy as np
import pytest
from image_parity import assert_images_within_rounding, assert_same_lora_weights
from lora_logs import load_lora_capturing_logs

from core.events import read_events
from training.tiny_run import flat_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from models.tiny import save_tiny

    root = tmp_path_factory.mktemp("bases")
    return {fam: save_tiny(fam, root / fam) for fam in ("sd15", "sdxl")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return flat_dataset(tmp_path_factory.mktemp("flat"))


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def run(request, bases, dataset, tmp_path_factory):
    """(family, config, result) of one finished two-epoch run."""
    from training.loop import train

    fam = request.param
    base = bases[fam].single_file or bases[fam].folder
    cfg = tiny_config(base, dataset, tmp_path_factory.mktemp("runs"), f"t{fam}")
    return fam, cfg, train(cfg, command="pytest")


def _fresh(cfg):
    from models.generate import open_pipeline

    pipe = open_pipeline(cfg.model.base)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _render(pipe, cfg):
    from models.generate import render

    s = cfg.sampling
    img = render(pipe, prompt=s.prompts[0], negative_prompt=s.negative_prompt, steps=s.steps, cfg=s.cfg, seed=s.seed,
                 width=s.width, height=s.height, sampler=s.sampler, clip_skip=cfg.training.clip_skip)
    return np.asarray(img, dtype=np.int16)


def test_files_with_epoch_naming_and_events(run):
    fam, cfg, result = run
    names = sorted(p.name for p in cfg.run_dir.glob("*.safetensors"))
    # kohya naming: a numbered file per saved epoch, the last epoch as the plain name
    assert names == [f"t{fam}-000001.safetensors", f"t{fam}.safetensors"]
    assert result.status == "finished" and result.step == result.total_steps == 8  # 4 images × 2 repeats / 2 × 2
    events, _ = read_events(cfg.run_dir / "events.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "done" and events[-1]["status"] == "finished"
    assert events[0]["total_steps"] == 8 and events[0]["steps_per_epoch"] == 4 and events[0]["images"] == 8
    assert {"progress", "saved", "sample"} <= set(types)
    assert (cfg.run_dir / "config.toml").is_file() and (cfg.run_dir / "state" / "progress.json").is_file()


def test_every_key_consumed_by_diffusers(run):
    from safetensors.torch import load_file

    from models.lora_names import lora_layers

    fam, cfg, _ = run
    path = cfg.run_dir / f"t{fam}.safetensors"
    state = load_file(str(path))
    bases = {k[: -len(".lora_down.weight")] for k in state if k.endswith(".lora_down.weight")}
    prefixes = {b.split("_")[1] for b in bases}
    assert prefixes == ({"unet", "te1", "te2"} if fam == "sdxl" else {"unet", "te"})
    if fam == "sdxl":
        assert any(b.startswith("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1") for b in bases)
        assert any(b.startswith("lora_unet_middle_block_1_") for b in bases)
    # the real alpha, not rank
    assert all(float(state[f"{b}.alpha"]) == 2.0 for b in bases)
    assert all(state[f"{b}.lora_down.weight"].shape[0] == 4 for b in bases)

    pipe = _fresh(cfg)
    text = load_lora_capturing_logs(pipe, path, "t")
    assert "unexpected" not in text and "missing" not in text and "no lora keys" not in text, text
    comps = [pipe.unet, pipe.text_encoder] + ([pipe.text_encoder_2] if fam == "sdxl" else [])
    injected = sum(1 for m in comps for _ in lora_layers(m, "t"))
    assert injected == len(bases)


def test_sample_from_file_equals_in_memory_model(run):
    """The PNG rendered from the saved file = the trained modules' own image, and ≠ the base image."""
    from PIL import Image

    from models.generate import parse_parameters

    fam, cfg, result = run
    final_png = [p for p in result.samples if p.name.startswith(f"t{fam}-e")][-1]
    from_file = np.asarray(Image.open(final_png).convert("RGB"), dtype=np.int16)

    pipe = _fresh(cfg)
    base_img = _render(pipe, cfg)
    trained = {name: result.models[name].eval() for name in ("unet", "text_encoder", "text_encoder_2")
               if name in result.models}
    loaded = _fresh(cfg)
    load_lora_capturing_logs(loaded, cfg.run_dir / f"t{fam}.safetensors", "t")
    assert_same_lora_weights(trained, "default", {name: getattr(loaded, name) for name in trained}, "t")
    for name, model in trained.items():
        setattr(pipe, name, model)
    in_memory = _render(pipe, cfg)
    # the trained modules' adapter vs the saved file loaded by diffusers: same weights (above), two code paths
    assert_images_within_rounding(from_file, in_memory, 255)
    assert np.abs(from_file - base_img).max() > 0

    recipe = parse_parameters(Image.open(final_png).info["parameters"])
    s = cfg.sampling
    assert (recipe["prompt"], recipe["steps"], recipe["sampler"], recipe["cfg"], recipe["seed"]) == \
        (s.prompts[0], s.steps, s.sampler, s.cfg, s.seed)
    assert (recipe["width"], recipe["height"]) == (64, 64)
    assert recipe["loras"][0]["name"] == f"t{fam}" and recipe["loras"][0]["weight"] == 1.0
    assert len(recipe["loras"][0]["hash"]) == 12 and len(recipe["model_hash"]) == 10
    assert recipe["params"]["RNG"] == "CPU"


def test_metadata(run):
    import tomllib

    from models.lora_file import lora_family, read_metadata

    fam, cfg, _ = run
    for path in cfg.run_dir.glob("*.safetensors"):
        meta = read_metadata(path)
        assert all(isinstance(v, str) for v in meta.values())
        assert meta["ss_output_name"] == path.stem
        assert meta["ss_base_model_version"] == ("sdxl_base_v1-0" if fam == "sdxl" else "sd_v1")
        assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
        assert meta["ss_network_module"] == "networks.lora"
        assert len(meta["sshs_model_hash"]) == 64 and len(meta["sshs_legacy_hash"]) == 8
        assert len(meta["ss_sd_model_hash"]) == 64
        assert meta["ss_num_epochs"] == "2"
        assert "2_flat" in meta["ss_tag_frequency"] and "2_flat" in meta["ss_dataset_dirs"]
        assert tomllib.loads(meta["danlu_config"])["network"]["rank"] == 4
        assert lora_family(path) == fam
    assert read_metadata(cfg.run_dir / f"t{fam}-000001.safetensors")["ss_epoch"] == "1"
    assert read_metadata(cfg.run_dir / f"t{fam}.safetensors")["ss_steps"] == "8"


def test_loss_falls_on_flat_colour(bases, dataset, tmp_path):
    from training.loop import train

    # LoCon (conv layers) and a high LR: enough capacity to learn a flat colour in 24 steps
    cfg = tiny_config(bases["sd15"].folder, dataset, tmp_path, "loss", training__epochs=6, saving__every_n_epochs=0,
                      sampling__prompts=[], network__train_text_encoder=False, training__seed=7, optimizer__lr=1e-2,
                      dataset__cache_text_encoder_outputs=True,
                      network__conv_dim=4, network__conv_alpha=2.0)
    result = train(cfg)
    losses = result.losses
    assert len(losses) == 24
    first, last = np.mean(losses[:6]), np.mean(losses[-6:])  # diffusion loss is noisy: compare quarter means
    assert last < 0.8 * first, (first, last)
