"""XYZ grid of Z-Image runs: step files × weights with the family's sampling, and an A/B of two runs side by side."""

from __future__ import annotations

import shutil

import pytest
from zimage_runs import two_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from models.demo import make_demo

    root = tmp_path_factory.mktemp("zgrid")
    return two_runs(root / "outputs", make_demo(root / "demo", "zimage"))


def test_step_files_are_columns_in_training_order(runs):
    from models.grid.plan import epoch_files, file_key, plan_from_run, select_epochs

    a, _ = runs
    files = epoch_files(a, "lora_v1")
    assert [f.stem for _, f in files] == ["lora_v1-step00000002", "lora_v1-step00000004", "lora_v1"]
    assert [file_key(f, "lora_v1") for _, f in files] == ["step 2", "step 4", "final"]
    assert [f.stem for f in select_epochs(files, "step4,final")] == ["lora_v1-step00000004", "lora_v1"]
    assert [f.stem for f in select_epochs(files, "lora_v1-step00000002")] == ["lora_v1-step00000002"]
    plan = plan_from_run(a, weights=[1.0])
    assert plan.family == "zimage" and plan.sampling.steps == 8


def test_ab_of_two_runs_side_by_side_with_each_runs_recipe(runs, tmp_path):
    import json

    from PIL import Image

    from models.generate import parse_parameters
    from models.grid.compare import plan_compare, run_compare

    a, b = runs
    plan_a, plan_b, keys, warnings = plan_compare(a, b, weights=[0.5, 1.0], out_dir=tmp_path)
    assert keys == ["step 2", "final"] and "step 4" in warnings[0][0]
    assert [f.name for f in plan_b.loras] == ["lora_v2-step00000002.safetensors", "lora_v2.safetensors"]
    seen = []
    result = run_compare(plan_a, plan_b, keys, ("lora_v1", "lora_v2"), warnings=warnings,
                         progress=lambda d, n, eta, note="": seen.append((d, n)))
    assert result.status == "finished" and (result.done, result.total) == (8, 8) and seen[-1] == (8, 8)
    data = json.loads((result.out_dir / "grid.json").read_text(encoding="utf-8"))
    assert result.out_dir.name.startswith("compare-")
    assert data["x_labels"] == ["step 2", "final"] and data["z_labels"] == ["lora_v1", "lora_v2"]
    assert 'Z Type: Run, Z Values: "lora_v1, lora_v2"' in data["parameters"]
    cells = {(c["z"], c["y"], c["x"]): c for c in data["cells"]}
    assert len(cells) == 8
    recipe_b = parse_parameters(cells[(1, 1, 1)]["parameters"])
    assert recipe_b["loras"][0]["name"] == "lora_v2" and recipe_b["loras"][0]["weight"] == 1.0
    # Z-Image's own sampling, stated as ComfyUI users type it: 8 steps, cfg 1, Euler / Simple.
    text = cells[(0, 0, 0)]["parameters"]
    assert "Steps: 8" in text and "CFG scale: 1," in text and "Schedule type: Simple" in text
    pixels = {}
    for key in ((0, 1, 1), (1, 1, 1)):
        with Image.open(result.out_dir / cells[key]["png"]) as im:
            pixels[key] = im.convert("RGB").tobytes()
            assert "KSampler" in im.text["prompt"]  # ComfyUI's graph of the cell's recipe
    assert pixels[(0, 1, 1)] != pixels[(1, 1, 1)]  # the panels are the two runs' LoRAs


def test_compare_from_the_command_line_and_its_refusals(runs, tmp_path, capsys):
    from core.errors import DanluError
    from models.grid.cli import main
    from models.grid.compare import plan_compare

    a, b = runs
    assert main([str(a), "--compare", str(b / "config.toml"), "--weights", "1", "--epochs", "final",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Compare: lora_v1 | lora_v2: 1 files x 1 weights" in out and "compare-" in out
    with pytest.raises(DanluError, match="Z axis"):
        plan_compare(a, b, bases=["/some/other.safetensors"])
    lonely = tmp_path / "lonely"
    shutil.copytree(b, lonely)
    for f in lonely.glob("*.safetensors"):
        f.rename(f.with_name(f.name.replace("lora_v2", "other")))
    with pytest.raises(DanluError) as e:
        plan_compare(a, lonely)
    assert "no saved file in common" in e.value.en or "No LoRA files" in e.value.en


def test_grid_tab_renders_the_ab_when_a_second_run_is_picked(runs, tmp_path):
    import json
    from pathlib import Path

    from ui import grid_jobs

    a, b = runs
    choices = grid_jobs.compare_choices(a.parent, "en")
    assert choices[0] == ("No comparison", "") and str(b) in [p for _, p in choices]
    steps = list(grid_jobs.render_grid("run", str(a), ["lora_v1"], "1", False, "none", "", 0, "", "", "en", {},
                                      outputs_dir=tmp_path, compare=str(b)))
    assert "2 cells: 1 columns × 1 weights × 2 Z" in steps[0][1]
    last = steps[-1]
    assert "Grid saved" in last[3] and "compare-" in last[3]
    data = json.loads(Path(last[4]).read_text(encoding="utf-8"))
    assert data["z_labels"] == ["lora_v1", "lora_v2"] and data["x_labels"] == ["final"]
    image, recipe = grid_jobs.show_cell(last[4], "en", type("Evt", (), {"index": data["cells"][1]["box"][:2]})())
    assert "<lora:lora_v2:1>" in recipe
