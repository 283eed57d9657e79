"""`launcher.py demo --family zimage`: a tiny Turbo, a tiny training adapter, a dataset and a run.toml."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import config as cfgmod


@pytest.fixture(scope="module")
def zdemo(tmp_path_factory):
    from models.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("zdemo"), "zimage")


def test_demo_writes_a_zimage_turbo_run_with_its_adapter(zdemo):
    from safetensors import safe_open

    from models.detect import detect

    cfg = cfgmod.load(zdemo)
    assert (cfg.model.family, cfg.model.variant) == ("zimage", "turbo")
    assert detect(cfg.model.base).family == "zimage"
    with safe_open(cfg.model.training_adapter, "pt") as f:
        keys = list(f.keys())
        assert f.metadata()["ss_base_model_version"] == "zimage"
    assert keys and all(k.startswith("diffusion_model.layers.") for k in keys)
    # The Turbo + adapter preset's choices, scaled to a CPU: rank from the demo, 8 sampling steps, frozen Qwen3.
    assert cfg.sampling.steps == 8 and not cfg.network.train_text_encoder and cfg.optimizer.name == "AdamW"
    assert cfg.training.max_train_steps == 0 and cfg.saving.every_n_steps == 0
    assert len(list((zdemo.parent / "dataset" / "10_demo").glob("*.png"))) == 12


def test_demo_run_passes_the_trainers_dry_run(zdemo):
    out = subprocess.run([sys.executable, "launcher.py", "train", str(zdemo), "--dry-run"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "12 images" in out.stdout and "Learning rate" not in out.stdout
