"""Several LoRA files in one pipeline (the XYZ grid's case): each keeps its own weights, no alarming report."""

from __future__ import annotations

import io
import logging

import pytest
import torch


@pytest.fixture(scope="module")
def two_loras(tmp_path_factory):
    """Two kohya files for the tiny SD1.5 with UNet and text-encoder LoRA, different random up weights."""
    from safetensors.torch import save_file

    from models.tiny import build_tiny

    pipe = build_tiny("sd15")
    folder = tmp_path_factory.mktemp("loras")
    paths = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        state = {}
        for prefix, module in (("lora_unet", pipe.unet), ("lora_te", pipe.text_encoder)):
            for name, mod in module.named_modules():
                if isinstance(mod, torch.nn.Linear) and name.endswith(("to_q", "q_proj", "fc1")):
                    base = f"{prefix}_{name.replace('.', '_')}"
                    state[f"{base}.lora_down.weight"] = torch.randn(4, mod.in_features, generator=g)
                    state[f"{base}.lora_up.weight"] = torch.randn(mod.out_features, 4, generator=g)
                    state[f"{base}.alpha"] = torch.tensor(2.0)
        path = folder / f"l{seed}.safetensors"
        save_file(state, path, metadata={"ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora"})
        paths.append(path)
    return pipe, paths


def test_second_adapter_keeps_the_first_and_logs_no_missing_report(two_loras):
    from models.generate import load_lora

    pipe, (first, second) = two_loras
    load_lora(pipe, first, "a")

    def te_up(adapter):
        return {n: p.detach().clone() for n, p in pipe.text_encoder.named_parameters() if f"lora_B.{adapter}." in n}

    before = te_up("a")
    assert before and all(float(t.abs().sum()) > 0 for t in before.values())
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logging.getLogger("transformers").addHandler(handler)
    try:
        load_lora(pipe, second, "b")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert "MISSING" not in buf.getvalue()
    after = te_up("a")
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert te_up("b") and not all(torch.equal(a, b) for a, b in zip(te_up("a").values(), te_up("b").values()))
