"""training.fp8_base on Z-Image (tiny model): the transformer's frozen linears in float8_e4m3fn holding the merged
training adapter, the LoRA in full precision and trained, the file free of the adapter, samples from the file on the
plain base; and the rule that fp8_base and model.quantize are not both set."""

from __future__ import annotations

import pytest
import torch
from test_training_zimage import _config, _run, adapter, base, dataset  # noqa: F401 - fixtures

from core import checks
from core import config as cfgmod

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FP8 = torch.float8_e4m3fn


def _setup(cfg):
    """What the trainer does before its first step: parts (adapter merged), LoRA, then the fp8 storage."""
    from training import lora, precision
    from training.families import zimage as dit

    parts = dit.load_parts(cfg, "cpu", torch.float32, log=lambda _msg: None)
    n = cfg.network
    lora.inject(parts.unet, rank=n.rank, alpha=n.alpha, family="zimage", dit_targets=n.dit_targets,
                dit_refiners=n.dit_refiners)
    precision.keep_lora_dtype({"unet": parts.unet}, False)
    init = {k: v.detach().clone() for k, v in parts.unet.named_parameters() if v.requires_grad}
    return parts, dit.store_fp8(parts.unet), init


def test_frozen_weights_are_fp8_and_hold_the_merged_adapter(base, adapter, dataset, tmp_path):  # noqa: F811
    from diffusers import ZImageTransformer2DModel

    from training.families import zimage as dit

    cfg = _config(base, dataset, tmp_path, "f", model={"training_adapter": str(adapter)},
                  training={"fp8_base": True})
    parts, stored, _ = _setup(cfg)
    plain = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    merged = ZImageTransformer2DModel.from_pretrained(base / "transformer")
    dit.merge_adapter(merged, adapter)
    trained = dict(parts.unet.named_modules())
    linears = [(name, m) for name, m in merged.named_modules() if isinstance(m, torch.nn.Linear)]
    changed = 0
    for name, m in linears:
        w = trained[name].get_base_layer().weight if hasattr(trained[name], "get_base_layer") else trained[name].weight
        if name.startswith("t_embedder."):  # the transformer casts the timestep features to this weight's dtype
            assert w.dtype == torch.float32 and torch.equal(w, m.weight)
            continue
        assert w.dtype == FP8 and not w.requires_grad
        # bitwise the fp8 rounding of base + adapter delta: merged before the storage
        assert torch.equal(w.view(torch.uint8), m.weight.detach().to(FP8).view(torch.uint8)), name
        plain_w = dict(plain.named_modules())[name].weight.detach().to(FP8)
        changed += not torch.equal(w.view(torch.uint8), plain_w.view(torch.uint8))
    assert stored == len(linears) - 2 and changed >= 16  # the adapter's 16 layers differ from the plain base
    lora_params = [p for p in parts.unet.parameters() if p.requires_grad]
    assert lora_params and all(p.dtype == torch.float32 for p in lora_params)


def test_a_step_trains_the_lora_on_the_fp8_transformer(base, dataset, tmp_path):  # noqa: F811
    from training.families import zimage as dit

    cfg = _config(base, dataset, tmp_path, "s", model={"variant": "deturbo", "training_adapter": "none"},
                  training={"fp8_base": True})
    parts, _, init = _setup(cfg)
    params = [p for p in parts.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    text = dit.encode_text(parts, ["a photo of the cat"], cfg, "cpu")
    torch.manual_seed(0)
    for _ in range(2):
        loss = dit.loss(parts, parts.unet, torch.randn(1, 16, 8, 8), text, [], cfg)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    now = dict(parts.unet.named_parameters())
    assert all(not torch.equal(now[k], v) for k, v in init.items() if "lora_B" in k)  # every LoRA up moved
    assert all(p.dtype == FP8 for n, p in now.items() if n.endswith("base_layer.weight"))


def test_a_run_saves_the_lora_alone_and_samples_it_on_the_plain_base(base, adapter, dataset, tmp_path):  # noqa: F811
    import numpy as np
    from diffusers import ZImagePipeline
    from PIL import Image
    from safetensors.torch import load_file

    from models.families.zimage import sample
    from models.lora_file import read_metadata

    cfg = _config(base, dataset, tmp_path / "runs", "zf", model={"training_adapter": str(adapter)},
                  training={"fp8_base": True, "max_train_steps": 2}, saving={"every_n_steps": 0})
    toml = tmp_path / "run.toml"
    cfgmod.save(cfg, toml)
    code, out = _run(toml)
    assert code == 0, out
    log = (cfg.run_dir / "train.log").read_text(encoding="utf-8")
    assert "adapter.safetensors merged into" in log and "frozen transformer layers stored in fp8" in log
    path = cfg.run_dir / "zf.safetensors"
    trained, extra = load_file(str(path)), load_file(str(adapter))
    assert len(trained) == 2 * 16 and all(k.startswith("diffusion_model.layers.") for k in trained)
    assert all(v.dtype == torch.float32 for v in trained.values())
    assert any(float(v.abs().sum()) > 0 for k, v in trained.items() if "lora_B" in k)  # trained from B = 0
    for v in extra.values():
        assert not any(t.shape == v.shape and bool((t == v).all()) for t in trained.values())
    assert read_metadata(path)["ss_fp8_base"] == "True"

    fresh = ZImagePipeline.from_pretrained(base)  # plain base: no adapter, no fp8
    fresh.load_lora_weights(str(path), adapter_name="check")
    s = cfg.sampling
    image = sample.render(fresh, prompt=s.prompts[0], steps=s.steps, cfg=s.cfg, seed=s.seed, width=s.width,
                          height=s.height)
    png = sorted((cfg.run_dir / "samples").glob("zf-*.png"))[-1]
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(image.convert("RGB")))


def test_fp8_base_and_quantize_are_not_both_set():
    low = cfgmod.load(preset="zimage_turbo_adapter", overrides=["training.fp8_base=true", "optimizer.name=AdamW"])
    assert not [i for i in checks.errors(checks.check(low, checks.Env(device="cuda"))) if i.key == "training.fp8_base"]
    both = cfgmod.with_values(low, {"model.quantize": "int8"})
    found = [i for i in checks.errors(checks.check(both, checks.Env(device="cuda"))) if i.key == "training.fp8_base"]
    assert len(found) == 1 and "model.quantize" in found[0].en and "model.quantize" in found[0].zh


def test_the_estimate_stores_the_transformer_at_one_byte_with_fp8_as_with_int8():
    from core.runs.estimate import estimate_memory

    cfg = cfgmod.load(preset="zimage_turbo_adapter", overrides=["training.gradient_checkpointing=true"])
    plain, fp8 = estimate_memory(cfg, "zimage"), estimate_memory(cfgmod.with_values(cfg, {"training.fp8_base": True}))
    int8 = estimate_memory(cfgmod.with_values(cfg, {"model.quantize": "int8"}), "zimage")
    assert plain.total_gb - fp8.total_gb == pytest.approx(6150e6 / 1024 ** 3, rel=1e-6)  # 2 bytes → 1 per weight
    assert fp8.total_gb == pytest.approx(int8.total_gb) and "transformer in fp8" in fp8.text("en")
    cached = estimate_memory(cfgmod.with_values(cfg, {"training.fp8_base": True,
                                                      "dataset.cache_text_encoder_outputs": True}), "zimage")
    assert fp8.total_gb - cached.total_gb == pytest.approx(4022e6 * 2 / 1024 ** 3, rel=1e-6)  # text encoder on CPU
    assert cached.fits[0] <= 16 < plain.fits[0] and "transformer 为 fp8" in cached.text("zh")


@pytest.mark.parametrize("kinds,refiners", [(["attention", "feed_forward", "adaLN"], False), (["attention"], True),
                                            (["feed_forward", "adaLN"], True)])
def test_the_estimate_counts_the_lora_of_the_real_transformer(kinds, refiners):
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    from core import family_facts
    from core.runs.estimate import dit_lora_params
    from training import lora

    with init_empty_weights():
        t = ZImageTransformer2DModel()  # diffusers' defaults are Turbo's config
    lora.inject(t, rank=4, alpha=4, family="zimage", dit_targets=kinds, dit_refiners=refiners)
    n = cfgmod.with_values(cfgmod.default_config(), {"network.rank": 4, "network.dit_targets": kinds,
                                                     "network.dit_refiners": refiners}).network
    assert dit_lora_params(n, family_facts.get("zimage").dit) == sum(p.numel() for p in lora.lora_parameters(t))
