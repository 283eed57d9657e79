"""LoRA resize: the same rank reproduces ΔW, a lower rank is the truncated SVD, dynamic rules pick the ranks their
definitions give, alpha semantics and metadata, and the input is never overwritten."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from core.errors import DanluError
from models.toolbox.common import Job, open_lora
from models.toolbox.resize import pick_rank, resize_lora
from tests.toolbox_files import KOHYA_MODULES, PEFT_MODULES, delta, lora_tensors, write_lora_file


@pytest.fixture
def kohya(tmp_path):
    state = lora_tensors(KOHYA_MODULES, rank=8, alpha=4.0)
    return write_lora_file(tmp_path / "in.safetensors", state, {"ss_network_dim": "8"}), state


def test_same_rank_reproduces_delta(kohya, tmp_path):
    path, state = kohya
    report = resize_lora(path, tmp_path / "same.safetensors", rank=8, precision="float")
    out = load_file(str(report.out))
    for name in KOHYA_MODULES:
        ref = delta(state, name)
        assert torch.allclose(delta(out, name), ref, atol=1e-5 * float(ref.abs().max()))
        assert float(out[f"{name}.alpha"]) / out[f"{name}.lora_down.weight"].shape[0] == pytest.approx(0.5)
    assert all(m.new_rank == m.old_rank and m.fro_retained == pytest.approx(1.0) for m in report.modules)


def test_lower_rank_is_truncated_svd(kohya, tmp_path):
    path, state = kohya
    report = resize_lora(path, tmp_path / "r3.safetensors", rank=3, precision="float")
    out = load_file(str(report.out))
    for name, shape in KOHYA_MODULES.items():
        ref = delta(state, name)
        u, s, vh = torch.linalg.svd(ref, full_matrices=False)
        best = (u[:, :3] * s[:3]) @ vh[:3]
        got = delta(out, name)
        assert out[f"{name}.lora_down.weight"].shape == (3, *shape[1:])
        assert torch.allclose(got, best, atol=1e-5 * float(ref.abs().max()))
        line = next(m for m in report.modules if m.name == name)
        assert line.fro_retained == pytest.approx(float(s[:3].norm() / s.norm()), rel=1e-6)
    meta = open_lora(report.out).metadata
    assert meta["ss_network_dim"] == "3" and "resized from 8 to 3" in meta["ss_training_comment"]


def test_peft_layout_without_alpha(tmp_path):
    state = lora_tensors(PEFT_MODULES, rank=6, alpha=None, peft=True)
    path = write_lora_file(tmp_path / "z.safetensors", state)
    out = load_file(str(resize_lora(path, tmp_path / "z4.safetensors", rank=4, precision="float").out))
    assert not any(k.endswith(".alpha") for k in out)
    for name in PEFT_MODULES:
        u, s, vh = torch.linalg.svd(delta(state, name), full_matrices=False)
        assert torch.allclose(delta(out, name), (u[:, :4] * s[:4]) @ vh[:4], atol=1e-4)


def test_dynamic_rules_pick_the_defined_rank():
    s = torch.tensor([10.0, 6.0, 4.0, 2.0, 1.0])
    assert pick_rank(s, "sv_ratio", 2.0, 8) == 2          # values above 10/2: 10, 6
    assert pick_rank(s, "sv_cumulative", 0.8, 8) == 3     # 16/23 < 0.8 <= 20/23
    fro = (s ** 2).cumsum(0) / (s ** 2).sum()             # 100, 136, 152, 156, 157 of 157
    assert pick_rank(s, "sv_fro", float(fro[1]) ** 0.5 + 1e-4, 8) == 3
    assert pick_rank(s, "sv_ratio", 2.0, 8, compat=True) == 3  # sd-scripts keeps one more
    assert pick_rank(s, "sv_ratio", 100.0, 2) == 2        # capped by the maximum rank
    assert pick_rank(torch.zeros(4), "sv_fro", 0.9, 8) == 1


def test_dynamic_resize_metadata_and_cap(kohya, tmp_path):
    path, _ = kohya
    report = resize_lora(path, tmp_path / "dyn.safetensors", rank=5, method="sv_fro", param=0.9)
    assert all(1 <= m.new_rank <= 5 and m.fro_retained >= 0.9 - 1e-6 or m.new_rank == 5 for m in report.modules)
    meta = open_lora(report.out).metadata
    assert meta["ss_network_dim"] == "Dynamic" and "sv_fro" in meta["ss_training_comment"]


def test_never_overwrites_input_and_cancel_leaves_nothing(kohya, tmp_path):
    path, _ = kohya
    before = path.read_bytes()
    with pytest.raises(DanluError, match="input"):
        resize_lora(path, path, rank=4)
    assert path.read_bytes() == before
    target = tmp_path / "cancelled.safetensors"
    calls = []
    job = Job(progress=lambda d, t, w: calls.append(d), cancel=lambda: len(calls) >= 2)
    with pytest.raises(DanluError, match="Cancelled"):
        resize_lora(path, target, rank=4, job=job)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.safetensors"]
