"""The toolbox's file safety: an output written piece by piece appears whole or not at all, LoRAs of two families
are refused by name, the progress callback sees every module and an ETA."""

from __future__ import annotations

import pytest

from core.errors import DanluError
from models.toolbox.common import Job, atomic_output, iter_modules, open_lora, same_family
from tests.toolbox_files import KOHYA_MODULES, PEFT_MODULES, lora_tensors, write_lora_file


def test_atomic_output_whole_or_nothing(tmp_path):
    target = tmp_path / "merged.safetensors"
    with pytest.raises(RuntimeError):
        with atomic_output(target, []) as f:
            f.write(b"half a checkpoint")
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target, []) as f:
        f.write(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["merged.safetensors"]
    with pytest.raises(DanluError, match="input"):
        with atomic_output(target, [tmp_path / "." / "merged.safetensors"]):
            pass


def test_families_and_progress(tmp_path):
    sd = open_lora(write_lora_file(tmp_path / "sd.safetensors", lora_tensors(KOHYA_MODULES, 4, 4.0),
                                   {"ss_base_model_version": "sd_v1"}))
    z = open_lora(write_lora_file(tmp_path / "z.safetensors", lora_tensors(PEFT_MODULES, 4, None, peft=True)))
    assert same_family([sd, sd]) == sd.family
    with pytest.raises(DanluError) as err:
        same_family([sd, z])
    assert "sd.safetensors" in err.value.en and "z.safetensors" in err.value.en and "SD 1.x" in err.value.zh
    seen = []
    job = Job(progress=lambda done, total, what: seen.append((done, total)))
    names = [name for name, _ in iter_modules(sd, job)]
    assert names == sorted(KOHYA_MODULES) and seen[-1] == (4, 4) and len(seen) == 5
    assert job.eta(2, 4) is not None and job.eta(0, 4) is None
