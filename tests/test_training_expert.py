"""Expert network and noise options: each one changes training the way its help says."""

from __future__ import annotations

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
        "loraplus_lr_ratio": 8, "network_args": ["loraplus_lr_ratio=16", "algo=loha", "block_lr_zero_threshold=0.1"],
    }).rows}
    assert (rows["loraplus_lr_ratio"].status, rows["loraplus_lr_ratio"].value) == ("mapped", 8.0)
    assert (rows["network_args loraplus_lr_ratio"].status, rows["network_args loraplus_lr_ratio"].value) == \
        ("mapped", 16.0)
    assert rows["network_args block_lr_zero_threshold"].status == "unsupported"
