"""The caches are full before step 1: their own events and log lines (latents read from disk when cached there),
for SD and Z-Image alike; the Train tab shows the caching line; save time and cache time apart in the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import config as cfgmod
from core.events import read_events

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fill_reports_start_progress_and_end_with_an_eta():
    from training import precache

    events, lines, done = [], [], []
    ticks = iter(range(0, 100, 1))
    seconds = precache.fill("latents", list(range(7)), done.extend, lambda t, **f: events.append((t, f)),
                            lines.append, batch=2, from_disk=lambda: 3, clock=lambda: float(next(ticks)))
    assert done == list(range(7)) and seconds > 0
    assert [f["done"] for _, f in events] == [0, 4, 7] and all(t == "caching" for t, _ in events)
    assert events[-1][1] == {"what": "latents", "done": 7, "total": 7, "from_disk": 3, "eta_s": 0.0}
    assert events[1][1]["eta_s"] == pytest.approx(2 / 4 * 3)  # 2 s for 4 jobs, 3 to go
    assert "7/7" in lines[-1] and "3 read from disk" in lines[-1]
    assert precache.fill("text", [], done.extend, lambda *a, **k: 1 / 0, lines.append) == 0.0


def test_jobs_are_unique_and_cover_flips_validation_and_dop():
    from training import precache

    assert precache.latent_jobs(["a", "b", "a"], True, ["c", "a"]) == [
        ("a", False), ("a", True), ("b", False), ("b", True), ("c", False)]
    assert precache.latent_jobs(["a"], False) == [("a", False)]
    assert precache.caption_jobs(["x cat", "y", "x cat"], lambda caps: [c.replace("x", "z") for c in caps]) == [
        "x cat", "y", "z cat"]


def _types(run_dir: Path) -> list[dict]:
    return read_events(run_dir / "events.jsonl")[0]


def _caches_full_before_the_first_step(events: list[dict], whats: tuple[str, ...]) -> None:
    types = [e["type"] for e in events]
    first_progress = types.index("progress")
    caching = [e for e in events if e["type"] == "caching"]
    assert caching and all(types.index("caching") < first_progress for _ in caching)
    assert max(i for i, t in enumerate(types) if t == "caching") < first_progress
    assert types.index("start") < types.index("caching")
    for what in whats:
        last = [e for e in caching if e["what"] == what][-1]
        assert last["done"] == last["total"] > 0 and last["eta_s"] == 0


def test_sd_run_fills_both_caches_before_step_one_and_reads_latents_from_disk_next_time(tmp_path):
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    base = save_tiny("sd15", tmp_path / "base", single_file=False).folder
    data = flat_dataset(tmp_path / "data", count=3, repeats=2)

    def run(name: str):
        cfg = tiny_config(base, data, tmp_path / "runs", name)
        cfg.network.train_text_encoder = False
        cfg.dataset.cache_latents, cfg.dataset.flip_aug = "disk", True
        cfg.dataset.cache_text_encoder_outputs = True
        cfg.training.epochs, cfg.sampling.prompts, cfg.saving.every_n_epochs = 1, [], 0
        return cfg, train(cfg)

    cfg, result = run("first")
    events = _types(cfg.run_dir)
    _caches_full_before_the_first_step(events, ("latents", "text"))
    latents = [e for e in events if e["type"] == "caching" and e["what"] == "latents"][-1]
    assert latents["total"] == 6 and latents["from_disk"] == 0  # 3 images × 2 flips
    assert result.cache_s > 0 and result.save_s > 0 and result.first_step_s > result.cache_s
    log = (cfg.run_dir / "train.log").read_text(encoding="utf-8")
    assert "Caching latents: 6/6" in log and log.index("Caching latents") < log.index("First step")

    cfg, _ = run("second")  # the same images and VAE: every latent comes from the disk cache
    latents = [e for e in _types(cfg.run_dir) if e["type"] == "caching" and e["what"] == "latents"][-1]
    assert latents["from_disk"] == latents["total"] == 6


def test_zimage_run_fills_its_caches_before_step_one(tmp_path):
    import numpy as np
    from PIL import Image

    from models.tiny import save_tiny
    from training.loop import train

    base = save_tiny("zimage", tmp_path / "zbase", single_file=False).folder
    folder = tmp_path / "zdata" / "2_cat"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a photo of the cat {i}", encoding="utf-8")
    data = {
        "model": {"base": str(base), "variant": "deturbo"},
        "dataset": {"dir": str(folder.parent), "resolution": 256, "resolutions": [], "bucket_no_upscale": True,
                    "min_bucket_reso": 64, "max_bucket_reso": 128, "caption_dropout_rate": 0.0,
                    "cache_latents": "memory", "cache_text_encoder_outputs": True},
        "network": {"rank": 4, "alpha": 2.0},
        "optimizer": {"name": "AdamW", "lr": 1e-3, "scheduler": "constant"},
        "training": {"max_train_steps": 2, "mixed_precision": "no", "device": "cpu", "gradient_checkpointing": False},
        "saving": {"output_dir": str(tmp_path / "runs"), "name": "z", "precision": "fp16"},
        "sampling": {"prompts": []},
    }
    cfg = cfgmod.merge_dict(cfgmod.load(preset="zimage_deturbo"), data)
    train(cfg)
    events = _types(cfg.run_dir)
    _caches_full_before_the_first_step(events, ("latents", "text"))
    text = [e for e in events if e["type"] == "caching" and e["what"] == "text"][-1]
    assert text["total"] == 2


def test_train_tab_shows_the_caching_line_until_the_first_step(tmp_path):
    from core.runs.supervisor import Run
    from ui.tab_train import render

    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    run = Run(run_dir, run_dir / "config.toml", ["python", "launcher.py", "train", "x"], tmp_path, False,
              status="running")
    run.events = [{"type": "start", "total_steps": 10, "epochs": 1},
                  {"type": "caching", "what": "latents", "done": 40, "total": 120, "from_disk": 12, "eta_s": 75.0}]
    en = render(run, "en", "")["status"]
    assert "Caching latents before the first step: 40/120" in en and "12 read from disk" in en and "0:01:15" in en
    assert "缓存潜变量" in render(run, "zh", "")["status"]
    run.events.append({"type": "progress", "step": 1, "total": 10, "epoch": 1, "epochs": 1, "loss": 0.1})
    assert "Caching" not in render(run, "en", "")["status"]
