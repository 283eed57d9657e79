"""Z-Image training on the tiny model, from the shell path: Turbo + training adapter and De-Turbo runs, per-step
files, samples from the saved file on the plain base, the adapter kept out of the file, stop and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import config as cfgmod
from core.errors import ConfigError
from core.events import read_events

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DANLU_LANG": "en"}
ADAPTER_RANK, RANK = 2, 4


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("zimage", tmp_path_factory.mktemp("zbase"), single_file=False).folder


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    from diffusers import ZImageTransformer2DModel

    from models.families.zimage.tiny import save_training_adapter

    transformer = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    return save_training_adapter(tmp_path_factory.mktemp("zadapter") / "adapter.safetensors", transformer,
                                 rank=ADAPTER_RANK)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("zdata")
    folder = root / "2_cat"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a photo of the cat", encoding="utf-8")
    return root


def _config(base, data_dir, out: Path, name: str, **over) -> cfgmod.RunConfig:
    """The preset scaled down to the tiny model: 64 px, a few steps, float files, AdamW on the CPU."""
    preset = "zimage_deturbo" if over.get("model", {}).get("variant") == "deturbo" else "zimage_turbo_adapter"
    data = {
        "model": {"base": str(base)},
        "dataset": {"dir": str(data_dir), "resolution": 256, "resolutions": [], "bucket_no_upscale": True,
                    "min_bucket_reso": 64, "max_bucket_reso": 128, "caption_dropout_rate": 0.0,
                    "cache_latents": "memory"},
        "network": {"rank": RANK, "alpha": 2.0},
        "optimizer": {"name": "AdamW", "lr": 1e-3, "scheduler": "constant"},
        "training": {"max_train_steps": 6, "mixed_precision": "no", "device": "cpu", "gradient_checkpointing": False},
        "saving": {"output_dir": str(out), "name": name, "every_n_steps": 2, "keep_last": 1, "precision": "float"},
        "sampling": {"prompts": ["a photo of the cat"], "steps": 2, "width": 64, "height": 64},
    }
    for section, values in over.items():
        data.setdefault(section, {}).update(values)
    return cfgmod.merge_dict(cfgmod.load(preset=preset), data)


def _run(toml: Path, *extra: str, launcher: bool = False, stop_early: bool = False) -> tuple[int, str]:
    args = [sys.executable, "launcher.py", "train"] if launcher else [sys.executable, "-m", "training"]
    out = toml.with_suffix(".out")
    with open(out, "w+", encoding="utf-8") as f:
        proc = subprocess.Popen([*args, str(toml), *extra], cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)
        run_dir = cfgmod.load(toml).run_dir
        deadline = time.time() + 300
        while stop_early and proc.poll() is None and time.time() < deadline:
            # "start" comes after the trainer cleared old stop requests and before the model loads: stops at step 1
            if any(e["type"] == "start" for e in read_events(run_dir / "events.jsonl")[0]):
                (run_dir / "STOP").touch()
                break
            time.sleep(0.1)
        proc.wait(timeout=600)
    return proc.returncode, out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def turbo(base, adapter, dataset, tmp_path_factory):
    """A Turbo + adapter run of 6 steps through `python -m training`, a file every 2 steps, the last one kept."""
    tmp = tmp_path_factory.mktemp("zturbo")
    cfg = _config(base, dataset, tmp / "runs", "zt", model={"training_adapter": str(adapter)})
    toml = tmp / "run.toml"
    cfgmod.save(cfg, toml)
    code, out = _run(toml)
    assert code == 0, out
    return cfg


def test_turbo_run_files_events_and_pruned_step_files(turbo):
    run = turbo.run_dir
    events = read_events(run / "events.jsonl")[0]
    kinds = [e["type"] for e in events]
    assert "start" in kinds and kinds[-1] == "done" and events[-1]["status"] == "finished"
    saved = [e for e in events if e["type"] == "saved"]
    assert [e["step"] for e in saved] == [2, 4, 6]
    assert sorted(p.name for p in run.glob("*.safetensors")) == ["zt-step00000004.safetensors", "zt.safetensors"]
    assert len([e for e in events if e["type"] == "sample"]) == 3
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "adapter.safetensors merged into" in log and "LoRA on 16 transformer layers" in log


def test_adapter_is_not_in_the_file(turbo, adapter):
    from safetensors.torch import load_file

    from models.lora_file import read_metadata

    trained, extra = load_file(str(turbo.run_dir / "zt.safetensors")), load_file(str(adapter))
    assert all(k.startswith("diffusion_model.layers.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
               for k in trained)
    assert len(trained) == 2 * 16
    assert {v.shape[0] for k, v in trained.items() if k.endswith("lora_A.weight")} == {RANK}  # ours, not rank 2
    for v in extra.values():
        assert not any(t.shape == v.shape and bool((t == v).all()) for t in trained.values())
    meta = read_metadata(turbo.run_dir / "zt.safetensors")
    assert meta["ss_base_model_version"] == "zimage" and "adapter.safetensors" in meta["danlu_config"]
    assert not any("adapter" in k for k in meta)


def test_samples_come_from_the_file_on_the_plain_base(turbo, base, adapter):
    """The base the samples use is bitwise the plain Turbo (not the merged one), and the sample PNG is exactly what
    a fresh ZImagePipeline with the saved file renders."""
    import numpy as np
    import torch
    from diffusers import ZImagePipeline, ZImageTransformer2DModel
    from PIL import Image

    from models.families.zimage import sample
    from training.families import zimage as dit

    plain = ZImageTransformer2DModel.from_pretrained(base / "transformer").state_dict()
    pipe = dit.open_base(turbo)
    assert all(torch.equal(v, plain[k]) for k, v in pipe.transformer.state_dict().items())
    merged = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    assert dit.merge_adapter(merged, adapter) == 16
    assert not torch.equal(merged.layers[0].attention.to_q.weight, pipe.transformer.layers[0].attention.to_q.weight)

    fresh = ZImagePipeline.from_pretrained(base)
    fresh.load_lora_weights(str(turbo.run_dir / "zt.safetensors"), adapter_name="check")
    s = turbo.sampling
    image = sample.render(fresh, prompt=s.prompts[0], steps=s.steps, cfg=s.cfg, seed=s.seed, width=s.width,
                          height=s.height)
    png = sorted((turbo.run_dir / "samples").glob("zt-e*.png"))[-1]
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(image.convert("RGB")))
    # The PNG also carries ComfyUI's graph of the same recipe, so dropping it on ComfyUI rebuilds the sample.
    graph = json.loads(Image.open(png).text["prompt"])
    assert any(node["class_type"] == "KSampler" and node["inputs"]["cfg"] == s.cfg for node in graph.values())


def test_stop_then_resume_gives_the_uninterrupted_weights(turbo, base, adapter, dataset, tmp_path):
    from safetensors.torch import load_file

    cfg = _config(base, dataset, tmp_path / "runs", "zt", model={"training_adapter": str(adapter)},
                  sampling={"prompts": []}, saving={"every_n_steps": 0})
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    code, out = _run(toml, stop_early=True)
    assert code == 0, out
    events = read_events(cfg.run_dir / "events.jsonl")[0]
    assert events[-1]["status"] == "stopped", out
    stopped_at = next(e["step"] for e in events if e["type"] == "saved")
    assert stopped_at == 1
    code, out = _run(toml, "--resume")
    assert code == 0, out
    assert "Resumed from" in (cfg.run_dir / "train.log").read_text(encoding="utf-8")
    a, b = load_file(str(cfg.run_dir / "zt.safetensors")), load_file(str(turbo.run_dir / "zt.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_deturbo_run_through_the_launcher(base, dataset, tmp_path):
    cfg = _config(base, dataset, tmp_path / "runs", "zd", model={"variant": "deturbo"},
                  training={"max_train_steps": 3, "timestep_type": "shift", "timestep_bias": "high_noise",
                            "differential_guidance": 3.0, "gradient_checkpointing": True, "dop_multiplier": 1.0,
                            "dop_class_word": "dog"},
                  dataset={"cache_text_encoder_outputs": True, "cache_latents": "disk", "trigger_word": "sks"},
                  saving={"every_n_steps": 0})
    assert cfg.sampling.cfg == 3.0 and cfg.model.training_adapter == "none"
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    code, out = _run(toml, launcher=True)
    assert code == 0, out
    events = read_events(cfg.run_dir / "events.jsonl")[0]
    assert events[-1]["status"] == "finished"
    assert "merged into" not in (cfg.run_dir / "train.log").read_text(encoding="utf-8")
    sample = next(e for e in events if e["type"] == "sample")
    assert "CFG scale: 3" in sample["parameters"] and "Guidance scale: 2" in sample["parameters"]
    assert (cfg.run_dir / "zd.safetensors").is_file()


def test_refusals_name_the_field(adapter):
    from core import checks
    from training.families import zimage as dit

    deturbo = cfgmod.load(preset="zimage_deturbo", overrides=[f"model.training_adapter='{adapter}'"])
    assert "model.training_adapter" in [i.key for i in checks.errors(checks.check(deturbo, checks.Env("cuda")))]
    low = cfgmod.load(preset="zimage_turbo_adapter", overrides=["model.quantize=int8", "optimizer.name=AdamW"])
    found = checks.errors(checks.check(low, checks.Env(device="cpu")))
    assert [i.en for i in found if i.key == "model.quantize"][0].count("CUDA") == 1
    assert "model.quantize" not in [i.key for i in checks.errors(checks.check(low, checks.Env(device="cuda")))]
    with pytest.raises(ConfigError):
        dit.adapter_path("/no/such/adapter.safetensors")


def test_merge_adds_the_adapter_delta_at_scale_one(base, adapter):
    import torch
    from diffusers import ZImageTransformer2DModel
    from safetensors.torch import load_file

    t = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    before = t.layers[1].feed_forward.w2.weight.detach().clone()
    from training.families import zimage as dit

    dit.merge_adapter(t, adapter)
    state = load_file(str(adapter))
    a = state["diffusion_model.layers.1.feed_forward.w2.lora_A.weight"].double()
    b = state["diffusion_model.layers.1.feed_forward.w2.lora_B.weight"].double()
    assert torch.allclose(t.layers[1].feed_forward.w2.weight.double(), before.double() + b @ a, atol=1e-6)


@pytest.mark.parametrize("kinds,refiners,count", [(["attention", "feed_forward", "adaLN"], False, 16),
                                                  (["attention"], False, 8), (["adaLN"], True, 3)])
def test_lora_targets_follow_the_settings(base, kinds, refiners, count):
    from diffusers import ZImageTransformer2DModel

    from training import lora

    t = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    assert lora.inject(t, rank=2, alpha=2, family="zimage", dit_targets=kinds, dit_refiners=refiners) == count


def test_dop_captions_replace_the_whole_trigger_word():
    from training.dop import dop_captions

    assert dop_captions(["sks, a sks dog", "sksx sks"], "sks", "dog") == ["dog, a dog dog", "sksx dog"]


def test_dop_keeps_the_class_prompt_close_to_the_base(base):
    """After the same training steps, the LoRA moves the class prompt's prediction much less with DOP on."""
    import copy
    from types import SimpleNamespace

    import torch
    from diffusers import ZImageTransformer2DModel

    from training import lora
    from training.dop import lora_off
    from training.families import zimage as dit

    plain = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, 8, 8, generator=g)
    embeds, class_embeds = [torch.randn(6, 32, generator=g)], [torch.randn(6, 32, generator=g)]

    def drift(multiplier: float) -> float:
        t = copy.deepcopy(plain)
        lora.inject(t, rank=4, alpha=4, family="zimage", dit_targets=["attention", "feed_forward", "adaLN"])
        parts = SimpleNamespace(flow=dit.FLOW, unet=t)
        cfg = cfgmod.load(overrides=[f"training.dop_multiplier={multiplier}", "training.dop_class_word=dog",
                                     "training.timestep_type=uniform"])
        trainable = lora.lora_parameters(t)
        opt = torch.optim.AdamW(trainable, lr=1e-2)
        torch.manual_seed(1)
        for _ in range(8):
            dit.loss(parts, t, latents, (embeds, None), [], cfg, (class_embeds, None)).backward()
            opt.step()
            opt.zero_grad()
        frames, time = [latents.unsqueeze(2)[0]], torch.tensor([0.5])
        with torch.no_grad():
            on = t(frames, time, class_embeds, return_dict=False)[0][0]
            with lora_off(t):
                off = t(frames, time, class_embeds, return_dict=False)[0][0]
        assert len(lora.lora_parameters(t)) == len(trainable)  # lora_off gave the trainable flags back
        return float((on - off).pow(2).mean())

    without, with_dop = drift(0.0), drift(10.0)
    assert without > 0 and with_dop < 0.5 * without


def test_int8_weights_hold_the_merged_adapter_and_train_a_lora(base, adapter, dataset, tmp_path):
    """model.quantize = int8 (bitsandbytes; refused by core.checks without CUDA, but the layers also run on this
    CPU): the adapter is merged before quantising, and a LoRA on the int8 linears gets gradients."""
    import torch
    from diffusers import ZImageTransformer2DModel

    from training import lora
    from training.families import zimage as dit

    pytest.importorskip("bitsandbytes")
    cfg = _config(base, dataset, tmp_path, "q", model={"training_adapter": str(adapter), "quantize": "int8"})
    parts = dit.load_parts(cfg, "cpu", torch.float32, log=lambda _msg: None)
    q = parts.unet.layers[0].attention.to_q
    assert type(q).__name__ == "Linear8bitLt" and q.weight.dtype == torch.int8
    plain = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    merged = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    dit.merge_adapter(merged, adapter)
    deq = q.weight.float() * q.weight.SCB.float()[:, None] / 127
    to_merged = float((deq - merged.layers[0].attention.to_q.weight).abs().mean())
    to_plain = float((deq - plain.layers[0].attention.to_q.weight).abs().mean())
    assert to_merged < 0.5 * to_plain

    assert lora.inject(parts.unet, rank=2, alpha=2, family="zimage", dit_targets=["attention"]) == 8
    out = parts.unet([torch.randn(16, 1, 8, 8)], torch.tensor([0.5]), [torch.randn(6, 32)], return_dict=False)[0]
    out[0].float().pow(2).mean().backward()
    grads = [p.grad for n, p in parts.unet.named_parameters() if "lora_B" in n]  # lora_A's wait for lora_B ≠ 0
    assert len(grads) == 8 and all(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_text_features_are_the_pipelines_own(base, tmp_path):
    """What the trainer feeds the transformer is exactly ZImagePipeline.encode_prompt's output (cached or not)."""
    import torch
    from diffusers import ZImagePipeline

    from training.families import setup as family_setup

    cfg = _config(base, tmp_path, tmp_path, "t", model={"training_adapter": "none"})
    parts = family_setup(cfg).load_parts(cfg, "cpu", torch.float32, log=lambda _msg: None)
    captions = ["a photo of the cat", "sks, a dog"]
    feats, pooled = parts.setup.encode_text(parts, captions, cfg)
    assert captions == ["a photo of the cat", "sks, a dog"] and pooled is None  # the captions are not templated
    ref, _ = ZImagePipeline.from_pretrained(base).encode_prompt(list(captions), device="cpu",
                                                                 do_classifier_free_guidance=False)
    assert len(feats) == 2 and all(torch.equal(a, b) for a, b in zip(feats, ref))
    assert feats[0].shape[0] != feats[1].shape[0]  # padding removed: one length per caption


def test_gradient_checkpointing_gives_the_same_gradients(base):
    import copy

    import torch
    from diffusers import ZImageTransformer2DModel

    from training import lora

    plain = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(3)
        t = copy.deepcopy(plain)
        lora.inject(t, rank=2, alpha=2, family="zimage", dit_targets=["attention", "feed_forward", "adaLN"])
        for name, p in t.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
        if ckpt:
            t.enable_gradient_checkpointing()
        t.train()
        torch.manual_seed(0)
        out = t([torch.randn(16, 1, 4, 4)], torch.tensor([0.5]), [torch.randn(5, 32)], return_dict=False)[0][0]
        out.pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for n, p in t.named_parameters() if "lora_" in n]))
    assert grads[0].abs().max() > 0 and torch.equal(grads[0], grads[1])


def test_full_size_targets_match_ai_toolkits_default():
    """The real transformer (no weights): 8 linears × 30 main blocks, rank 16 ≈ 42.5 M parameters (85 MB bf16)."""
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    from training import lora

    with init_empty_weights():
        t = ZImageTransformer2DModel()  # diffusers' defaults are Turbo's config
    assert lora.inject(t, rank=16, alpha=16, family="zimage", dit_targets=["attention", "feed_forward", "adaLN"]) \
        == 240
    assert sum(p.numel() for p in lora.lora_parameters(t)) == 42_516_480


def test_loss_falls_on_flat_colour(base, tmp_path):
    """40 steps on flat-colour images: the flow-matching loss (noisy: compare tenth means) goes down."""
    import numpy as np

    from training.loop import train
    from training.tiny_run import flat_dataset

    cfg = _config(base, flat_dataset(tmp_path / "flat"), tmp_path / "runs", "loss", model={"variant": "deturbo"},
                  network={"rank": 8, "alpha": 8.0}, optimizer={"lr": 1e-2, "weight_decay": 0.0},
                  dataset={"cache_text_encoder_outputs": True},
                  training={"max_train_steps": 40, "timestep_type": "uniform", "seed": 7},
                  saving={"every_n_steps": 0, "save_state": False}, sampling={"prompts": []})
    losses = train(cfg).losses
    assert len(losses) == 40
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.9 * first, (first, last)
