"""Optimizers, schedules and precision: CAME, schedule-free AdamW, DAdaptAdam; constant_with_warmup and
cosine_with_min_lr; full bf16 and the fp8-stored base. Each changes training the way its help says."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_training_expert import _text_encoder_with_lora  # a one-layer CLIP text encoder with LoRA

from core import config

INFO = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
        "bucket_info": {}, "base_sha256": "", "started_at": 0}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _cfg(**sections):
    return config.from_dict(sections)


def _steps(te, opt, sched, n: int) -> None:
    import torch

    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    for _ in range(n):
        loss = (te(ids).last_hidden_state - 1.0).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name,lr", [("CAME", 1e-3), ("AdamWScheduleFree", 1e-3), ("DAdaptAdam", 1.0)])
def test_each_new_optimizer_trains_the_lora(name, lr):
    from training import lora, optim

    te = _text_encoder_with_lora()
    cfg = _cfg(optimizer={"name": name, "lr": lr, "text_encoder_lr": lr})
    params = lora.lora_parameters(te)
    before = [p.detach().clone() for p in params]
    opt = optim.make_optimizer(cfg, [], params)
    # the class sd-scripts would name in ss_optimizer (module.Class)
    assert f"{type(opt).__module__}.{type(opt).__name__}" == optim.CLASS_NAMES[name]
    _steps(te, opt, optim.make_scheduler(cfg, opt, 10), 3)
    optim.averaged_weights(opt)  # schedule-free: the weights a file would hold
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(params, before)]
    assert max(moved) > 0 and all(np.isfinite(moved))


def test_one_lr_optimizers_train_the_text_encoder_at_the_unet_lr():
    from training import lora, optim

    te = _text_encoder_with_lora()
    cfg = _cfg(optimizer={"name": "DAdaptAdam", "lr": 1.0, "text_encoder_lr": 0.5})
    opt = optim.make_optimizer(cfg, lora.lora_parameters(te)[:2], lora.lora_parameters(te)[2:])
    assert [g["lr"] for g in opt.param_groups] == [1.0, 1.0]  # DAdaptAdam refuses different group LRs


def _lrs(cfg, total: int) -> list[float]:
    import torch

    from training import optim

    p = torch.nn.Parameter(torch.zeros(1))
    opt = optim.make_optimizer(cfg, [p], [])
    sched = optim.make_scheduler(cfg, opt, total)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    return out


def test_constant_with_warmup_rises_then_stays():
    lrs = _lrs(_cfg(optimizer={"scheduler": "constant_with_warmup", "warmup": 4, "lr": 1e-3}), 10)
    assert lrs == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4] + [1e-3] * 6)


def test_cosine_with_min_lr_ends_at_the_ratio_not_zero():
    lrs = _lrs(_cfg(optimizer={"scheduler": "cosine_with_min_lr", "min_lr_ratio": 0.1, "lr": 1e-3}), 10)
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[5] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down the cosine
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    full = _lrs(_cfg(optimizer={"scheduler": "cosine_with_min_lr", "min_lr_ratio": 0.1, "lr": 1e-3}), 1000)
    assert min(full) == pytest.approx(1e-4, rel=1e-3)  # never below lr × ratio
    plain = _lrs(_cfg(optimizer={"scheduler": "cosine", "lr": 1e-3}), 1000)
    assert min(plain) < 1e-6


def test_schedule_free_keeps_the_lr_constant_whatever_the_schedule():
    lrs = _lrs(_cfg(optimizer={"name": "AdamWScheduleFree", "scheduler": "cosine", "warmup": 2, "lr": 1e-3}), 8)
    assert lrs == pytest.approx([0.0, 5e-4] + [1e-3] * 6)


def test_fp8_base_stores_frozen_weights_in_fp8_and_upcasts_per_layer():
    import torch

    from training import precision

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 4))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 4))
    ref.load_state_dict(net.state_dict())
    net.requires_grad_(False)
    trainable = torch.nn.Linear(4, 4)  # stands for a LoRA layer: trainable, left alone
    net.append(trainable)
    ref.append(torch.nn.Linear(4, 4))
    ref[-1].load_state_dict(trainable.state_dict())
    assert precision.store_fp8(net) == 2
    assert net[0].weight.dtype == torch.float8_e4m3fn and net[2].weight.dtype == torch.float8_e4m3fn
    assert net[0].bias.dtype == torch.float32 and trainable.weight.dtype == torch.float32
    assert precision.compute_dtype(net) == torch.float32
    with torch.no_grad():  # the reference with its weights rounded to fp8: the same numbers exactly
        for i in (0, 2):
            ref[i].weight.copy_(ref[i].weight.to(torch.float8_e4m3fn).float())
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(net(x), ref(x))
    frozen_ref = torch.nn.Sequential(*ref[:3]).bfloat16()
    assert torch.equal(net[:3](x.bfloat16()), frozen_ref(x.bfloat16()))  # upcast to the input's precision
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: upcast to the autocast precision
        assert net[:3](x).dtype == torch.bfloat16
    assert net[0].weight.element_size() == 1


def test_estimate_goes_down_with_fp8_base_and_full_bf16_and_says_what_fits():
    from core.runs.estimate import estimate_memory

    cfg = config.load(preset="sdxl_1024", overrides=["network.rank=16", "training.gradient_checkpointing=true"])
    plain = estimate_memory(cfg, "sdxl")
    fp8 = estimate_memory(config.with_values(cfg, {"training.fp8_base": True}), "sdxl")
    both = estimate_memory(config.with_values(cfg, {"training.fp8_base": True, "training.full_bf16": True}), "sdxl")
    assert both.total_gb < fp8.total_gb < plain.total_gb
    assert plain.total_gb - fp8.total_gb == pytest.approx(2567.5e6 / 1024 ** 3, rel=0.01)  # 1 byte per UNet weight
    preset = estimate_memory(config.load(preset="sdxl_8gb_fp8"), "sdxl")
    assert preset.fits[0] == 8 and "Fits 8 GB cards" in preset.text("en") and "8 GB 及以上" in preset.text("zh")
    assert "fp8" in fp8.text("en") and plain.fits[0] > 8
    from ui.tab_params import memory_markdown  # where the Parameters tab shows it

    shown = memory_markdown(config.load(preset="sdxl_8gb_fp8", overrides=["model.family=sdxl"]), "en")
    assert shown == preset.text("en") and "UNet in fp8" in shown


def _issues(cfg, **env):
    from core import checks

    return {i.key: i for i in checks.check(cfg, checks.Env(**env))}


def test_checks_reject_bad_combinations_in_both_languages():
    gpu = {"device": "cuda", "family": "sdxl"}
    wrong = [
        (_cfg(training={"full_bf16": True, "mixed_precision": "fp16"}), gpu, "training.full_bf16", "error"),
        (_cfg(training={"fp8_base": True}, model={"quantize": "int8"}), {"device": "cuda", "family": "zimage"},
         "training.fp8_base", "error"),
        (_cfg(training={"fp8_base": True}, network={"use_dora": True}), gpu, "training.fp8_base", "error"),
        (_cfg(training={"fp8_base": True}, network={"type": "loha"}), gpu, "training.fp8_base", "error"),
        (_cfg(optimizer={"name": "DAdaptAdam", "lr": 1.0}, network={"loraplus_lr_ratio": 16.0}), gpu,
         "network.loraplus_lr_ratio", "error"),
        (_cfg(optimizer={"name": "AdamWScheduleFree", "scheduler": "cosine"}), gpu, "optimizer.scheduler", "warning"),
        (_cfg(optimizer={"name": "DAdaptAdam", "lr": 1e-4}), gpu, "optimizer.lr", "warning"),
        (_cfg(optimizer={"name": "DAdaptAdam", "lr": 1.0, "text_encoder_lr": 0.5}), gpu,
         "optimizer.text_encoder_lr", "warning"),
    ]
    for cfg, env, key, level in wrong:
        issue = _issues(cfg, **env).get(key)
        assert issue is not None and issue.level == level, (key, issue)
        assert issue.en and CJK.search(issue.zh), issue
        if level == "error":
            assert issue.hint_en and CJK.search(issue.hint_zh)
    fine = [(_cfg(training={"full_bf16": True, "mixed_precision": "bf16", "fp8_base": True,
                            "gradient_checkpointing": True}), gpu),
            (_cfg(optimizer={"name": "AdamWScheduleFree", "scheduler": "constant"}), gpu),
            (_cfg(optimizer={"name": "DAdaptAdam", "lr": 1.0, "text_encoder_lr": 1.0}), gpu)]
    for cfg, env in fine:
        assert not [i for i in _issues(cfg, **env).values() if i.level != "info" and not i.key.startswith(
            ("model.base", "dataset.dir"))]
    cpu = _issues(_cfg(training={"full_bf16": True, "mixed_precision": "fp16"}), device="cpu")
    assert cpu["training.full_bf16"].level == "info" and "training.mixed_precision" not in cpu


def test_options_are_expert_fields_recorded_as_sd_scripts_and_round_trip():
    from training.export import metadata

    keys = {"optimizer.name": "AdamWScheduleFree", "optimizer.scheduler": "cosine_with_min_lr",
            "optimizer.min_lr_ratio": 0.05, "training.full_bf16": True, "training.fp8_base": True}
    for key in keys:
        spec = config.field_spec(key)
        assert spec.en and CJK.search(spec.zh)
        assert key == "optimizer.name" or not spec.basic
    cfg = config.with_values(config.default_config(), keys)
    back = config.loads(config.dumps(cfg))
    assert all(back.get(k) == v for k, v in keys.items())
    meta = metadata(back, INFO, family="sdxl", prediction_type="epsilon", epoch=1, step=10)
    assert meta["ss_optimizer"] == "schedulefree.adamw_schedulefree.AdamWScheduleFree"
    assert (meta["ss_lr_scheduler"], meta["ss_fp8_base"]) == ("constant", "True")
    came = metadata(_cfg(optimizer={"name": "CAME"}), INFO, family="sd15", prediction_type="epsilon", epoch=1, step=1)
    assert came["ss_optimizer"] == "pytorch_optimizer.optimizer.came.CAME" and came["ss_fp8_base"] == "False"


def test_importer_maps_peer_optimizer_schedule_and_precision_names():
    from core import importers

    def mapped(peer: str, data: dict) -> dict:
        return {r.key: r.value for r in importers.convert(peer, data).rows if r.status in ("mapped", "changed")}

    got = mapped("sd-scripts", {"optimizer_type": "pytorch_optimizer.CAME", "lr_scheduler": "cosine_with_min_lr",
                                "lr_scheduler_min_lr_ratio": 0.05, "full_bf16": True, "fp8_base": True})
    assert got == {"optimizer.name": "CAME", "optimizer.scheduler": "cosine_with_min_lr",
                   "optimizer.min_lr_ratio": 0.05, "training.full_bf16": True, "training.fp8_base": True}
    assert mapped("sd-scripts", {"optimizer_type": "AdamWScheduleFree"}) == {"optimizer.name": "AdamWScheduleFree"}
    assert mapped("sd-scripts", {"optimizer_type": "DAdaptAdam"}) == {"optimizer.name": "DAdaptAdam"}
    assert mapped("sd-scripts", {"optimizer_type": "DAdaptation"}) == {"optimizer.name": "DAdaptAdam"}
    assert mapped("sd-scripts", {"lr_scheduler": "constant_with_warmup"}) == \
        {"optimizer.scheduler": "constant_with_warmup"}


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd15", tmp_path_factory.mktemp("base")).folder


def _capture_optimizer(monkeypatch) -> dict:
    from training import optim

    got: dict = {}
    real = optim.make_optimizer

    def make(*args, **kwargs):
        got["opt"] = real(*args, **kwargs)
        return got["opt"]

    monkeypatch.setattr(optim, "make_optimizer", make)
    return got


def test_schedule_free_files_and_samples_hold_the_averaged_weights(sd15, tmp_path, monkeypatch, one_torch_thread):
    """The file holds optimizer.eval()'s weights, not the train-mode ones, and so do the samples rendered from it;
    they are rendered after the state is saved, with the optimizer back in train mode (schedulefree refuses a step in
    eval mode), so a run killed while sampling resumes from that file."""
    import torch
    from safetensors.torch import load_file

    from models.lora_file import peft_to_kohya, read_metadata
    from training import export, state
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    got = _capture_optimizer(monkeypatch)
    modes = []
    real_render = export.render_samples

    def render(*args, **kwargs):
        modes.append(got["opt"].param_groups[0]["train_mode"])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(export, "render_samples", render)
    data = flat_dataset(tmp_path / "flat", count=2, repeats=1)
    cfg = tiny_config(sd15, data, tmp_path / "runs", "sf", optimizer__name="AdamWScheduleFree",
                      network__train_text_encoder=False, training__batch_size=1)
    result = train(cfg, command="pytest")
    assert result.status == "finished" and result.step == 4 and modes == [True, True]
    assert len(result.samples) == 2 and all(np.isfinite(result.losses))
    opt = got["opt"]
    assert opt.param_groups[0]["train_mode"]  # back in train mode after the last save
    saved = load_file(str(cfg.run_dir / "sf.safetensors"))
    train_mode = {k: v.detach().float().clone() for k, v in peft_to_kohya(result.models, "sd15").items()}
    lora_now = {f"unet.{n}": p.detach().float().clone() for n, p in result.models["unet"].named_parameters()
                if p.requires_grad}
    opt.eval()
    averaged = {k: v.detach().float().clone() for k, v in peft_to_kohya(result.models, "sd15").items()}
    ups = [k for k in saved if k.endswith("lora_up.weight")]

    def off(weights: dict) -> float:  # largest difference from the file
        return max(float((saved[k].float() - weights[k]).abs().max()) for k in ups)

    # the file is the averaged weights (up to the rounding of the train/eval switches), far from the train-mode ones
    assert ups and off(averaged) < 1e-7 and off(train_mode) > 1e-5
    assert read_metadata(cfg.run_dir / "sf.safetensors")["ss_optimizer"].startswith("schedulefree.")
    # the resumable state holds the train-mode weights, with its optimizer in train mode, as resuming needs
    folder = state.find_state(cfg.run_dir, "auto")
    kept = load_file(str(folder / "lora.safetensors"))
    assert kept.keys() == lora_now.keys() and all(torch.equal(kept[k], v) for k, v in lora_now.items())
    saved_opt = torch.load(folder / "train_state.pt", weights_only=True)["optimizer"]
    assert saved_opt["param_groups"][0]["train_mode"] is True


def test_full_bf16_with_fp8_base_trains_on_the_cpu_and_samples_from_the_file(sd15, tmp_path, monkeypatch,
                                                                            one_torch_thread):
    import torch

    from models.lora_file import read_metadata
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    got = _capture_optimizer(monkeypatch)
    data = flat_dataset(tmp_path / "flat", count=2, repeats=1)
    cfg = tiny_config(sd15, data, tmp_path / "runs", "lowmem", training__full_bf16=True, training__fp8_base=True,
                      training__gradient_checkpointing=True, training__epochs=1, training__batch_size=1,
                      network__train_text_encoder=False, saving__save_state=False)
    result = train(cfg, command="pytest")
    assert result.status == "finished" and result.step == 2 and all(np.isfinite(result.losses))
    unet = result.models["unet"]
    lora = {n: p for n, p in unet.named_parameters() if p.requires_grad}
    assert lora and all(p.dtype == torch.bfloat16 for p in lora.values())  # no fp32 copy
    assert any(float(p.detach().abs().max()) > 0 for n, p in lora.items() if "lora_B" in n)  # it trained from B = 0
    state = [s for s in got["opt"].state.values() if "exp_avg" in s]
    assert state and all(s["exp_avg"].dtype == torch.bfloat16 for s in state)
    frozen = [m.weight for m in unet.modules() if type(m) in (torch.nn.Linear, torch.nn.Conv2d)
              and not m.weight.requires_grad]
    assert frozen and all(w.dtype == torch.float8_e4m3fn for w in frozen)
    assert len(result.samples) == 1 and result.samples[0].is_file()  # rendered from the saved file
    assert read_metadata(cfg.run_dir / "lowmem.safetensors")["ss_fp8_base"] == "True"
