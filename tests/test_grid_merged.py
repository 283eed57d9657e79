"""XYZ grid of LoHa, LoKr and DoRA runs: cells merged as the training samples are (one code path), at every weight."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from models.grid.plan import plan_from_loras, plan_from_run
from models.grid.render import run_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = {"loha": {"network__type": "loha"}, "lokr": {"network__type": "lokr"}, "dora": {"network__use_dora": True}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    """One tiny SD1.5 base; a two-epoch LoHa, LoKr and DoRA run on it (LoCon convs on), with their samples."""
    import torch

    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    root = tmp_path_factory.mktemp("merged")
    tiny = save_tiny("sd15", root / "base")
    base = tiny.single_file or tiny.folder
    data = flat_dataset(root / "flat", count=2, repeats=1)  # one step an epoch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the module fixture runs before the per-test one; the grid renders in the same setting
    try:
        out = {}
        for kind, options in KINDS.items():
            cfg = tiny_config(base, data, root / "runs", kind, network__conv_dim=4, optimizer__lr=3e-2,
                              **options)
            out[kind] = SimpleNamespace(cfg=cfg, result=train(cfg, command="pytest"))
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(base=base, root=root, **out)


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cell_at_weight_one_is_the_epoch_sample(runs, kind):
    run = getattr(runs, kind)
    plan = plan_from_run(run.cfg.run_dir, epochs="1", weights=[0.0, 0.5, 1.0])
    assert [p.name for p in plan.loras] == [f"{kind}-000001.safetensors"]
    result = run_grid(plan)
    assert result.status == "finished" and result.done == 3
    cells = [pixels(result.out_dir / result.cells[(0, y, 0)]["png"]) for y in range(3)]
    sample = next(p for p in run.result.samples if p.name.startswith(f"{kind}-000001-"))
    assert (cells[2] == pixels(sample)).all()  # bit for bit: the sample's merge and render
    assert np.abs(cells[1] - cells[0]).max() > 0 and np.abs(cells[1] - cells[2]).max() > 0
    with Image.open(result.out_dir / result.cells[(0, 2, 0)]["png"]) as im:
        text = im.text["parameters"]
    assert f"<lora:{kind}-000001:1>" in text and f"Lora applied: {kind} deltas merged" in text
    with Image.open(result.out_dir / result.cells[(0, 0, 0)]["png"]) as im:
        assert "Lora applied" in im.text["parameters"]  # weight 0 of the file: still that file's recipe


def test_half_weight_merges_half_the_delta(runs):
    """Weight 0.5 of a LoHa file is W + 0.5 · ΔW in the rendered pipeline (and the base comes back after)."""
    import torch
    from safetensors.torch import load_file

    from models.generate import open_pipeline
    from models.grid.loras import open_loras
    from models.lycoris import file_weights, group_modules, module_delta, pipe_components

    path = runs.loha.cfg.run_dir / "loha.safetensors"
    pipe = open_pipeline(str(runs.base), device="cpu")
    groups = group_modules(load_file(str(path)))
    weights = file_weights(pipe_components(pipe), groups, "sd15")
    before = {b: w.detach().clone() for b, w in weights.items()}
    loras, _ = open_loras(pipe, [path], "sd15")
    loras.select(path, 0.5)
    some = next(iter(groups))
    expected = before[some] + 0.5 * module_delta(groups[some], tuple(before[some].shape))
    assert torch.allclose(weights[some], expected, rtol=0, atol=1e-6)
    loras.select(None, 0.0)
    assert all(torch.equal(weights[b], before[b]) for b in weights)


def test_mixed_grid_of_plain_and_merged_files(runs, tmp_path):
    """A plain LoRA (diffusers adapter) and a DoRA file in one grid: each cell is that file alone."""
    from bench.grid_speed import make_lora_files
    from models.tiny import build_tiny

    plain, = make_lora_files(build_tiny("sd15"), tmp_path, ["plain"], strength=30.0)
    dora = runs.dora.cfg.run_dir / "dora-000001.safetensors"
    s = runs.dora.cfg.sampling
    plan = plan_from_loras([plain, dora], str(runs.base), weights=[1.0], include_base=True,
                               sampling={"prompts": list(s.prompts), "steps": s.steps, "width": s.width,
                                         "height": s.height, "seed": s.seed, "cfg": s.cfg, "sampler": s.sampler},
                               device="cpu", out_dir=tmp_path / "grids")
    result = run_grid(plan)
    base, with_plain, with_dora = (pixels(result.out_dir / result.cells[(0, 0, x)]["png"]) for x in range(3))
    sample = next(p for p in runs.dora.result.samples if p.name.startswith("dora-000001-"))
    assert (with_dora == pixels(sample)).all()
    assert np.abs(with_plain - base).max() > 0 and np.abs(with_plain - with_dora).max() > 0


def test_a_merged_file_that_does_not_fit_the_base_is_refused_clearly(runs, tmp_path):
    from safetensors.torch import load_file, save_file

    from core.errors import DanluError
    from models.generate import open_pipeline
    from models.grid.loras import open_loras

    state = load_file(str(runs.loha.cfg.run_dir / "loha.safetensors"))
    odd = tmp_path / "odd.safetensors"
    module = next(k.split(".", 1)[0] for k in state if k.startswith("lora_unet_"))
    save_file({**state, **{k.replace(module, module + "_nowhere"): v.clone() for k, v in state.items()
                           if k.startswith(module + ".")}}, str(odd))
    with pytest.raises(DanluError) as err:
        open_loras(open_pipeline(str(runs.base), device="cpu"), [odd], "sd15")
    assert "odd.safetensors" in err.value.en and "odd.safetensors" in err.value.zh and "match no layer" in err.value.en
