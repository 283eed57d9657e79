"""core/runs/sweep.py: one validated run per combination, names that say what differs, steps and time before anything
starts (the speed measured on an earlier run of the same base), and `train RUN.toml --sweep ...` from a shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from core import config as cfgmod
from core.errors import ConfigError
from core.runs.queue import Queue
from core.runs.sweep import expand, parse_sweep, plan


def base_cfg(tmp_path: Path) -> cfgmod.RunConfig:
    data = tmp_path / "data" / "5_cat"
    data.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (512, 512), (i * 40, 0, 0)).save(data / f"{i}.png")
        (data / f"{i}.txt").write_text("cat", encoding="utf-8")
    cfg = cfgmod.default_config()
    cfg.model.base = str(tmp_path / "base.safetensors")
    cfg.dataset.dir = str(tmp_path / "data")
    cfg.saving.output_dir = str(tmp_path / "outputs")
    cfg.saving.name = "mylora"
    cfg.training.epochs = 2
    return cfg


def test_one_run_per_combination_named_after_what_differs(tmp_path):
    runs = expand(base_cfg(tmp_path), ["network.rank=8,16", "optimizer.lr=1e-4,2e-4"])
    assert [r.cfg.saving.name for r in runs] == ["mylora-rank8-lr1e-4", "mylora-rank8-lr2e-4",
                                                 "mylora-rank16-lr1e-4", "mylora-rank16-lr2e-4"]
    assert [(r.cfg.network.rank, r.cfg.optimizer.lr) for r in runs] == [(8, 1e-4), (8, 2e-4), (16, 1e-4), (16, 2e-4)]
    assert runs[3].changes == {"network.rank": "16", "optimizer.lr": "2e-4"}
    names = [r.cfg.saving.name for r in expand(base_cfg(tmp_path / "b"), ["optimizer.name=AdamW,Lion"])]
    assert names == ["mylora-nameAdamW", "mylora-nameLion"]


@pytest.mark.parametrize("sweep, words", [("network.rnk=8,16", "network.rank"), ("network.rank=8,eight", "integer"),
                                          ("network.rank=8,8", "distinct"), ("network.rank", "section.key"),
                                          ("network.dit_targets=a,b", "list"), ("network.rank=0,8", "network.rank")])
def test_a_wrong_sweep_names_the_key_and_the_fix(tmp_path, sweep, words):
    with pytest.raises(ConfigError) as e:
        expand(base_cfg(tmp_path), [sweep])
    assert words in e.value.text("en")


def test_parse():
    assert parse_sweep(" optimizer.lr = 1e-4, 2e-4 ") == ("optimizer.lr", ["1e-4", "2e-4"])


def earlier_run(cfg: cfgmod.RunConfig, seconds_per_step: float) -> None:
    """A finished run of the same base in the outputs folder, with progress events s/step apart."""
    old = cfgmod.apply_overrides(cfg, ['saving.name="old"'])
    folder = Path(cfg.saving.output_dir) / "old"
    folder.mkdir(parents=True)
    cfgmod.save(old, folder / "config.toml")
    with open(folder / "events.jsonl", "w", encoding="utf-8") as f:
        for step in range(1, 11):
            f.write(json.dumps({"type": "progress", "time": 1000.0 + 30 * (step > 1) + step * seconds_per_step,
                                "step": step, "loss": 0.1}) + "\n")


def test_plan_counts_steps_and_time_before_anything_starts(tmp_path):
    cfg = base_cfg(tmp_path)
    p = plan(cfg, ["network.rank=8,16"], tmp_path / "outputs")
    assert [r.steps for r in p.runs] == [40, 40] and p.total_seconds is None  # 4 images × 5 repeats × 2 epochs
    assert "2 runs" in p.text("en") and "unknown" in p.text("en") and "未知" in p.text("zh")
    earlier_run(cfg, 0.5)
    p = plan(cfg, ["network.rank=8,16", "training.batch_size=1,2"], tmp_path / "outputs")
    assert p.basis == "old" and p.seconds_per_step == pytest.approx(0.5)
    # batch 2: half the steps, each twice the pixels
    assert [r.seconds for r in p.runs] == pytest.approx([20.0, 20.0, 20.0, 20.0])
    assert "0:01:20" in p.text("en") and "4 个运行" in p.text("zh")


def test_train_sweep_from_the_shell_prints_the_plan_and_queues(tmp_path, capsys, monkeypatch):
    from core.runs.cli import sweep_main
    from training.cli import main

    cfg = base_cfg(tmp_path)
    toml = tmp_path / "mylora.toml"
    cfgmod.save(cfg, toml)
    out = tmp_path / "outputs"
    assert main([str(toml), "--sweep", "network.rank=8,16", "--sweep", "optimizer.lr=1e-4,2e-4", "--dry-run",
                 "--outputs", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 runs" in text and "mylora-rank16-lr2e-4" in text and "40 steps" in text
    assert not Queue(out).items()  # a dry run queues nothing
    assert main([str(toml), "--sweep", "network.rnk=8", "--outputs", str(out)]) == 2
    capsys.readouterr()
    refused = ["--set", "optimizer.name=AdamW8bit", "--set", "training.device=cpu"]  # core.checks: needs CUDA
    assert main([str(toml), "--sweep", "network.rank=8,16", "--outputs", str(out), *refused]) == 2
    assert "ERROR mylora-rank8" in capsys.readouterr().out and not Queue(out).items()
    assert sweep_main(cfg, ["network.rank=8,16"], out, run=False) == 0
    items = Queue(out).items()
    assert [i.name for i in items] == ["mylora-rank8", "mylora-rank16"] and items[1].note == "network.rank=16"
    assert cfgmod.load(Queue(out).config_path(items[1])).network.rank == 16
