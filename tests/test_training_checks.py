"""The trainer refuses what the Model tab flags as an error, before it loads anything."""

from __future__ import annotations

import json

import pytest

from core import config as cfgmod


@pytest.fixture(scope="module")
def sd2v(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("sd2v", tmp_path_factory.mktemp("sd2v"))


def test_v_prediction_model_trained_as_epsilon_is_refused(sd2v, demo_run, tmp_path):
    from models.detect import detect
    from training.cli import main

    assert detect(str(sd2v.single_file)).prediction_type == "v_prediction"
    cfg = cfgmod.load(demo_run)
    cfg.model.base = str(sd2v.single_file)
    cfg.model.prediction_type = "epsilon"
    cfg.saving.output_dir = str(tmp_path / "runs")
    path = cfgmod.save(cfg, tmp_path / "run.toml")
    assert main([str(path)]) == 2
    events = [json.loads(line) for line in (cfg.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    error = next(e for e in events if e["type"] == "error")
    assert "v-prediction" in error["message"] and "v_prediction" in error["message"]
    assert not list(cfg.run_dir.glob("*.safetensors"))


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch ran-code",))


def test_a_state_file_that_would_run_code_is_refused(tmp_path, monkeypatch):
    import pickle

    from core.errors import DanluError
    from training.state import load_state

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({}, str(folder / "lora.safetensors"))
    (folder / "train_state.pt").write_bytes(pickle.dumps({"optimizer": _Payload()}))
    (folder / "progress.json").write_text('{"step": 1, "epoch": 1, "total_steps": 2}', encoding="utf-8")
    with pytest.raises(DanluError) as e:
        load_state(folder, {}, None, None)
    assert "cannot be read safely" in e.value.message("en")
    assert not (tmp_path / "ran-code").exists()
