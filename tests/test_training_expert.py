"""Expert network and noise options: each one changes training the way its help says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import config


def _cfg(**sections):
    return config.from_dict(sections)


def _text_encoder_with_lora():
    from transformers import CLIPTextConfig, CLIPTextModel

    from training import lora

    te = CLIPTextModel(CLIPTextConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=8))
    lora.inject(te, rank=4, alpha=4, component="text_encoder")
    return te


def test_loraplus_trains_the_up_matrices_at_lr_times_ratio():
    from training import lora, optim

    te = _text_encoder_with_lora()
    cfg = _cfg(network={"loraplus_lr_ratio": 16.0}, optimizer={"lr": 1e-4, "text_encoder_lr": 5e-5})
    opt = optim.make_optimizer(cfg, [], lora.lora_parameters(te), lora.loraplus_ids(te))
    names = {id(p): n for n, p in te.named_parameters()}
    groups = [({names[id(p)].split(".")[-3] for p in g["params"]}, g["lr"]) for g in opt.param_groups]
    assert [g[0] for g in groups] == [{"lora_A"}, {"lora_B"}]
    assert groups[0][1] == 5e-5 and groups[1][1] == pytest.approx(5e-5 * 16)
    # the schedule scales both groups alike, so the ratio holds at every step
    sched = optim.make_scheduler(cfg, opt, 10)
    opt.step()
    sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[1] == pytest.approx(16 * lrs[0]) and lrs[0] < 5e-5


def test_loraplus_off_keeps_one_group_per_part():
    from training import lora, optim

    te = _text_encoder_with_lora()
    opt = optim.make_optimizer(_cfg(), [], lora.lora_parameters(te), lora.loraplus_ids(te))
    assert [g["lr"] for g in opt.param_groups] == [5e-5]


def test_loraplus_is_recorded_in_network_args_and_imported():
    from core import importers
    from training.export import metadata

    cfg = _cfg(network={"loraplus_lr_ratio": 16.0})
    info = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
            "bucket_info": {}, "base_sha256": "", "started_at": 0}
    meta = metadata(cfg, info, family="sd15", prediction_type="epsilon", epoch=1, step=10)
    assert meta["ss_network_args"]["loraplus_lr_ratio"] == "16.0"
    assert "loraplus_lr_ratio" not in (metadata(_cfg(), info, family="sd15", prediction_type="epsilon", epoch=1,
                                                step=10).get("ss_network_args") or {})
    rows = {r.peer_key: r for r in importers.convert("sd-scripts", {
        "loraplus_lr_ratio": 8, "network_args": ["loraplus_lr_ratio=16", "algo=loha", "train_norm=True"],
    }).rows}
    assert (rows["loraplus_lr_ratio"].status, rows["loraplus_lr_ratio"].value) == ("mapped", 8.0)
    assert (rows["network_args loraplus_lr_ratio"].status, rows["network_args loraplus_lr_ratio"].value) == \
        ("mapped", 16.0)
    assert rows["network_args train_norm"].status == "unsupported"


def _low_frequency_share(noise):
    """Std of 8×8 block means: about 1/8 for white Gaussian noise, much more with coarse layers in it."""
    import torch.nn.functional as F

    return F.avg_pool2d(noise, 8).std().item()


def test_multires_noise_adds_low_frequencies_at_unit_std():
    import torch

    from training.noise import pyramid

    torch.manual_seed(0)
    plain = torch.randn(4, 4, 64, 64)
    noise = pyramid(plain.clone(), 8, 0.8)
    assert noise.shape == plain.shape and noise.std().item() == pytest.approx(1.0, abs=1e-4)
    assert _low_frequency_share(plain) == pytest.approx(1 / 8, rel=0.15)
    assert _low_frequency_share(noise) > 3 * _low_frequency_share(plain)
    # a smaller discount keeps it closer to white noise
    weak = _low_frequency_share(pyramid(plain.clone(), 8, 0.3))
    assert _low_frequency_share(plain) < weak < _low_frequency_share(noise)
    assert torch.equal(pyramid(plain.clone(), 0, 0.3), plain / plain.std())


@pytest.mark.parametrize("iterations", [0, 6])
def test_the_sd_loss_draws_multires_noise_when_asked(iterations, monkeypatch):
    import types

    import torch
    from diffusers import DDPMScheduler

    from training import noise
    from training.families import sd as model

    calls = []
    real = noise.pyramid
    monkeypatch.setattr(noise, "pyramid", lambda n, it, d: calls.append((it, d)) or real(n, it, d))

    class Unet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, steps, encoder_hidden_states=None):
            return types.SimpleNamespace(sample=x * self.w)

    parts = types.SimpleNamespace(is_flow=False, noise_scheduler=DDPMScheduler(), prediction_type="epsilon")
    cfg = _cfg(training={"multires_noise_iterations": iterations, "multires_noise_discount": 0.5})
    loss = model.loss(parts, Unet(), torch.zeros(1, 4, 16, 16), (torch.zeros(1, 2, 8), None), [], cfg)
    assert torch.isfinite(loss)
    assert calls == ([(6, 0.5)] if iterations else [])


def test_multires_noise_metadata_import_and_zimage_warning():
    from core import checks, importers
    from training.export import metadata

    cfg = _cfg(training={"multires_noise_iterations": 6, "multires_noise_discount": 0.3})
    info = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
            "bucket_info": {}, "base_sha256": "", "started_at": 0}
    meta = metadata(cfg, info, family="sd15", prediction_type="epsilon", epoch=1, step=10)
    assert (meta["ss_multires_noise_iterations"], meta["ss_multires_noise_discount"]) == (6, 0.3)
    rows = {r.peer_key: r for r in importers.convert("sd-scripts", {"multires_noise_iterations": 8,
                                                                    "multires_noise_discount": 0.4}).rows}
    assert [(r.status, r.key, r.value) for r in rows.values()] == [
        ("mapped", "training.multires_noise_iterations", 8), ("mapped", "training.multires_noise_discount", 0.4)]
    zimage = config.merge_dict(cfg, {"model": {"family": "zimage"}})
    key = "training.multires_noise_iterations"
    assert [i.level for i in checks.check(zimage, checks.Env(device="cuda")) if i.key == key] == ["warning"]
    sd15 = config.merge_dict(cfg, {"model": {"family": "sd15"}})
    assert not [i for i in checks.check(sd15, checks.Env(device="cuda")) if i.key == key]


@pytest.mark.parametrize("shuffle", [False, True])
def test_caption_tag_dropout_drops_tags_at_the_rate_and_keeps_the_first(shuffle):
    import random

    from training.data import process_caption

    tags = [f"tag{i}" for i in range(20)]
    cfg = _cfg(dataset={"caption_tag_dropout_rate": 0.25, "keep_tokens": 2, "shuffle_caption": shuffle})
    rng = random.Random(0)
    kept = 0
    runs = 2000
    for _ in range(runs):
        out = process_caption(", ".join(tags), cfg, rng).split(", ")
        assert out[:2] == ["tag0", "tag1"]
        rest = out[2:]
        assert set(rest) <= set(tags[2:]) and len(set(rest)) == len(rest)
        if not shuffle:
            assert rest == [t for t in tags[2:] if t in rest]  # order kept
        kept += len(rest)
    assert kept / (runs * 18) == pytest.approx(0.75, abs=0.01)
    # off: the caption comes back as it was
    assert process_caption("b, a,  c", _cfg(), random.Random(0)) == "b, a,  c"


def test_caption_tag_dropout_metadata_import_and_cache_rule():
    from core import checks, importers
    from training.export import metadata

    cfg = _cfg(dataset={"caption_tag_dropout_rate": 0.1})
    info = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
            "bucket_info": {}, "base_sha256": "", "started_at": 0}
    assert metadata(cfg, info, family="sd15", prediction_type="epsilon", epoch=1,
                    step=10)["ss_caption_tag_dropout_rate"] == 0.1
    row, = importers.convert("sd-scripts", {"caption_tag_dropout_rate": 0.1}).rows
    assert (row.status, row.key, row.value) == ("mapped", "dataset.caption_tag_dropout_rate", 0.1)
    cached = config.merge_dict(cfg, {"model": {"family": "sd15"}, "network": {"train_text_encoder": False},
                                     "dataset": {"cache_text_encoder_outputs": True}})
    assert [i.level for i in checks.check(cached, checks.Env(device="cuda"))
            if i.key == "dataset.cache_text_encoder_outputs"] == ["warning"]


def _lora_layer_inputs(te, rank_dropout=0.0, module_dropout=0.0):
    """A text encoder with LoRA (random up matrices, so the LoRA shows) and the first LoRA layer."""
    import torch
    from peft.tuners.lora import LoraLayer
    from transformers import CLIPTextConfig, CLIPTextModel

    from training import lora

    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=8))
    lora.inject(te, rank=8, alpha=8, component="text_encoder", rank_dropout=rank_dropout,
                module_dropout=module_dropout)
    layer = next(m for m in te.modules() if isinstance(m, LoraLayer))
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    return te, layer


def test_rank_dropout_zeroes_ranks_per_sample_in_training_only():
    import torch

    _, layer = _lora_layer_inputs(None, rank_dropout=0.5)
    seen = []
    layer.lora_B["default"].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    x = torch.randn(64, 5, 16)
    layer.train()
    layer(x)
    layer.eval()
    layer(x)
    trained, plain = seen
    assert (plain != 0).all()
    dropped = (trained == 0).all(dim=1)  # (batch, rank): a rank is dropped at every token of a sample
    assert ((trained == 0) == dropped[:, None, :]).all()
    assert 0.35 < dropped.float().mean().item() < 0.65
    kept = ~dropped[:, None, :].expand_as(trained)
    assert torch.allclose(trained[kept], 2 * plain[kept])  # the rest scaled by 1 / (1 - p)
    # saving reads the weights, which the dropout never touches
    assert layer.lora_A["default"].weight.requires_grad


def test_module_dropout_skips_whole_layers_in_training_only():
    import torch

    _, layer = _lora_layer_inputs(None, module_dropout=1.0)
    x = torch.randn(2, 5, 16)
    base = layer.get_base_layer()(x)
    layer.train()
    assert torch.equal(layer(x), base)
    layer.eval()
    assert not torch.allclose(layer(x), base)
    _, half = _lora_layer_inputs(None, module_dropout=0.5)
    half.train()
    skipped = sum(torch.equal(half(x), half.get_base_layer()(x)) for _ in range(200))
    assert 70 < skipped < 130


def test_rank_and_module_dropout_metadata_import_and_rules():
    from core import checks, importers
    from training.export import metadata

    cfg = _cfg(network={"rank_dropout": 0.1, "module_dropout": 0.2})
    info = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
            "bucket_info": {}, "base_sha256": "", "started_at": 0}
    args = metadata(cfg, info, family="sd15", prediction_type="epsilon", epoch=1, step=10)["ss_network_args"]
    assert (args["rank_dropout"], args["module_dropout"]) == ("0.1", "0.2")
    rows = importers.convert("sd-scripts", {"network_args": ["rank_dropout=0.1", "module_dropout=0.2"]}).rows
    assert [(r.status, r.key, r.value) for r in rows] == [("mapped", "network.rank_dropout", 0.1),
                                                          ("mapped", "network.module_dropout", 0.2)]
    gpu = checks.Env(device="cuda")
    dora = config.merge_dict(cfg, {"network": {"use_dora": True}})
    assert [i.level for i in checks.check(dora, gpu) if i.key == "network.rank_dropout"] == ["warning"]
    loha = config.merge_dict(cfg, {"network": {"type": "loha"}})
    assert [i.level for i in checks.check(loha, gpu) if i.key == "network.rank_dropout"] == ["error"]
    assert not [i for i in checks.check(cfg, gpu) if i.key.endswith("_dropout")]


def test_a_tiny_run_with_every_option(tmp_path, one_torch_thread):
    """All five options through the real loop: it trains, and the file records them as sd-scripts does."""
    from models.lora_file import read_metadata
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    base = save_tiny("sd15", tmp_path / "base")
    cfg = tiny_config(base.folder, flat_dataset(tmp_path / "flat"), tmp_path / "runs", "expert",
                      training__epochs=1, saving__every_n_epochs=0, sampling__prompts=[],
                      network__loraplus_lr_ratio=4.0, network__rank_dropout=0.1, network__module_dropout=0.1,
                      network__conv_dim=4, training__multires_noise_iterations=4,
                      dataset__caption_tag_dropout_rate=0.2, dataset__keep_tokens=1)
    result = train(cfg, command="pytest")
    assert result.losses and all(np.isfinite(result.losses))
    meta = read_metadata(next(cfg.run_dir.glob("*.safetensors")))
    args = json.loads(meta["ss_network_args"])
    assert (args["loraplus_lr_ratio"], args["rank_dropout"], args["module_dropout"]) == ("4.0", "0.1", "0.1")
    assert (meta["ss_multires_noise_iterations"], meta["ss_caption_tag_dropout_rate"]) == ("4", "0.2")


def test_the_options_are_expert_fields_that_round_trip_through_the_run_toml():
    keys = {"network.loraplus_lr_ratio": 16.0, "network.rank_dropout": 0.1, "network.module_dropout": 0.2,
            "training.multires_noise_iterations": 6, "training.multires_noise_discount": 0.4,
            "dataset.caption_tag_dropout_rate": 0.1}
    for key in keys:
        spec = config.field_spec(key)
        assert not spec.basic and spec.en and spec.zh
    cfg = config.with_values(config.default_config(), keys)
    text = config.dumps(cfg)
    back = config.loads(text)
    for key, value in keys.items():
        section, name = key.split(".")
        assert f"{name} = {value}" in text and getattr(getattr(back, section), name) == value
