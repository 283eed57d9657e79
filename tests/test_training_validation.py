"""Validation loss on the tiny SD1.5 and Z-Image models: a held-out share or a separate folder, scored at every save
with fixed noise and noise levels, so it compares between epochs and runs; written to events.jsonl."""

from __future__ import annotations

import math

import pytest

from core.events import read_events
from training.tiny_run import flat_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd15", tmp_path_factory.mktemp("base")).folder


def validation_events(cfg) -> list[dict]:
    events, _ = read_events(cfg.run_dir / "events.jsonl")
    return [e for e in events if e["type"] == "validation"]


def test_held_out_share_is_scored_at_every_save_and_never_trained(sd15, tmp_path):
    from training.loop import train

    data = flat_dataset(tmp_path / "data")
    cfg = tiny_config(sd15, data, tmp_path / "runs", "val", sampling__prompts=[], dataset__validation_split=0.25)
    result = train(cfg)
    assert result.total_steps == 6  # 3 trained images × 2 repeats / batch 2 × 2 epochs: one image held out
    val = validation_events(cfg)
    assert [(e["epoch"], e["step"], e["images"]) for e in val] == [(1, 3, 1), (2, 6, 1)]
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in val)
    warnings = [e["message"] for e in read_events(cfg.run_dir / "events.jsonl")[0] if e["type"] == "warning"]
    assert any("1 of 4 images are held out" in w for w in warnings)


def test_the_number_compares_between_epochs_and_runs(sd15, tmp_path):
    """With nothing learned (lr 0) every save scores the same, whatever the training seed: the noise, noise levels
    and images of the validation pass are fixed."""
    from training.loop import train

    data = flat_dataset(tmp_path / "data")
    val_dir = flat_dataset(tmp_path / "val", count=2, repeats=1)
    losses = []
    for seed in (1, 2):
        cfg = tiny_config(sd15, data, tmp_path / "runs", f"seed{seed}", sampling__prompts=[], training__seed=seed,
                          optimizer__lr=0.0, optimizer__text_encoder_lr=0.0, dataset__validation_dir=str(val_dir))
        train(cfg)
        losses += [e["loss"] for e in validation_events(cfg)]
    assert len(losses) == 4 and max(losses) - min(losses) < 1e-6 * losses[0]


def test_zimage_is_scored_with_flow_matching(tmp_path):
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import tiny_config

    base = save_tiny("zimage", tmp_path / "zbase", single_file=False).folder
    data = flat_dataset(tmp_path / "data", count=3, repeats=1)
    cfg = tiny_config(base, data, tmp_path / "runs", "zval", sampling__prompts=[], dataset__validation_split=0.3,
                      network__train_text_encoder=False, training__max_train_steps=2, saving__every_n_epochs=0,
                      model__variant="deturbo", dataset__cache_latents="memory")
    train(cfg)
    val = validation_events(cfg)
    assert len(val) == 1 and val[0]["images"] == 1 and math.isfinite(val[0]["loss"]) and val[0]["loss"] > 0


class FakeWriter:
    """torch.utils.tensorboard.SummaryWriter as the tensorboard package would give it."""

    scalars: list = []

    def __init__(self, log_dir: str):
        self.log_dir = log_dir

    def add_scalar(self, tag, value, step):
        FakeWriter.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        FakeWriter.scalars.append(("closed", 0, 0))


def test_tensorboard_scalars_when_asked_and_a_clear_message_without_the_package(sd15, tmp_path, monkeypatch):
    import sys
    import types

    from training.loop import train

    data = flat_dataset(tmp_path / "data")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    cfg = tiny_config(sd15, data, tmp_path / "runs", "tb", sampling__prompts=[], training__epochs=1,
                      dataset__validation_split=0.25, saving__tensorboard=True)
    train(cfg)
    tags = {tag for tag, _, _ in FakeWriter.scalars}
    assert {"loss/train", "lr", "loss/validation", "closed"} <= tags
    val = validation_events(cfg)[0]
    assert ("loss/validation", val["loss"], val["step"]) in FakeWriter.scalars

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    cfg = tiny_config(sd15, data, tmp_path / "runs", "notb", sampling__prompts=[], training__epochs=1,
                      saving__tensorboard=True)
    result = train(cfg)
    warnings = [e["message"] for e in read_events(cfg.run_dir / "events.jsonl")[0] if e["type"] == "warning"]
    assert result.status == "finished" and any("pip install tensorboard" in w for w in warnings)


def test_the_step_plan_holds_out_the_same_images_as_the_trainer(sd15, tmp_path):
    """The Parameters tab and the sweep plan count the steps the trainer runs (core.dataset.validation_set, one
    rule)."""
    from core.runs.estimate import count_steps
    from training import data as D
    from training import validation

    data = flat_dataset(tmp_path / "data", count=8, repeats=1)
    cfg = tiny_config(sd15, data, tmp_path / "runs", "plan", dataset__validation_split=0.25)
    assert count_steps(cfg).images_per_epoch == 6
    ds = D.build_dataset(cfg)
    held = validation.split(ds, cfg, lambda en, zh: None)
    assert len(held) == 2 and len(ds.items) == 6 and not {i.image for i in held} & {i.image for i in ds.items}
    cfg.dataset.validation_dir = str(tmp_path / "data")  # a separate folder: nothing is held out of the dataset
    assert count_steps(cfg).images_per_epoch == 8
