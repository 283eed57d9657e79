"""The XYZ grid renderer: planning from a run, version checks, cell recipes, weight switching, cancel, CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from core import config as cfgmod
from core.errors import DanluError
from models.grid.cli import main
from models.grid.plan import check_versions, parse_weights, plan_from_loras, plan_from_run
from models.grid.render import cell_at, run_grid

PROMPTS = ["demo, a red square", "demo, 蓝色 circle"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> SimpleNamespace:
    """A tiny SD1.5 base and a run folder with three LoRA files (random, visible effect) and its config.toml."""
    from bench.grid_speed import make_lora_files
    from models.hashes import sha256_file
    from models.tiny import TINY_RESOLUTION, build_tiny, save_tiny

    root = tmp_path_factory.mktemp("gridrun")
    tiny = save_tiny("sd15", root / "base")
    base = tiny.single_file or tiny.folder
    run = root / "runs" / "g"
    files = make_lora_files(build_tiny("sd15"), run, ["g-000001", "g-000002", "g"], strength=30.0,
                            metadata={"ss_sd_model_name": base.name, "ss_new_sd_model_hash": sha256_file(base)})
    cfg = cfgmod.default_config()
    cfg.model.base = str(base)
    cfg.saving.output_dir, cfg.saving.name = str(root / "runs"), "g"
    cfg.sampling.prompts = list(PROMPTS)
    cfg.sampling.steps, cfg.sampling.width, cfg.sampling.height = 4, TINY_RESOLUTION, TINY_RESOLUTION
    cfg.training.device, cfg.training.mixed_precision = "cpu", "no"
    cfgmod.save(cfg, run / "config.toml")
    return SimpleNamespace(root=root, base=base, run=run, files=files)


def pixels(img) -> np.ndarray:
    if isinstance(img, (str, Path)):
        with Image.open(img) as im:
            return np.asarray(im.convert("RGB")).astype(int)
    return np.asarray(img.convert("RGB")).astype(int)


def test_plan_from_run_reads_the_run(lora_run):
    plan = plan_from_run(lora_run.run)
    assert [p.name for p in plan.loras] == ["g-000001.safetensors", "g-000002.safetensors", "g.safetensors"]
    assert plan.weights == [0.3, 0.6, 0.8, 1.0] and plan.z_axis is None
    s = plan.sampling
    assert plan.prompts == PROMPTS[:1] and s.steps == 4 and s.width == 64 and s.sampler == "euler"
    assert plan.bases == [str(lora_run.base)] and plan.out_dir == lora_run.run / "grids"
    assert len(plan.cells()) == 12
    assert plan.x_labels() == ["g-000001", "g-000002", "g"] and plan.y_labels()[0] == "Weight: 0.3"
    assert plan.y_labels("zh")[-1] == "权重: 1"
    # the run TOML the user trained from resolves to the same run folder
    chosen = plan_from_run(lora_run.run / "config.toml", epochs="2, final", include_base=True)
    assert [p.stem for p in chosen.loras] == ["g-000002", "g"] and chosen.x_labels()[0] == "base (no LoRA)"
    prompts = plan_from_run(lora_run.run, all_prompts=True, weights=[1.0])
    assert prompts.z_axis == "prompt" and prompts.z_labels() == PROMPTS and len(prompts.cells()) == 6
    bases = plan_from_run(lora_run.run, bases=["other.safetensors"], weights=[1.0])
    assert bases.z_axis == "base" and bases.z_labels() == [lora_run.base.stem, "other"]
    assert [c.base for c in bases.cells()][:3] == [str(lora_run.base)] * 3  # each base rendered in one stretch


def test_bad_inputs_say_what_to_fix(lora_run):
    with pytest.raises(DanluError, match="epoch '7'.*have: 1, 2, final"):
        plan_from_run(lora_run.run, epochs="7")
    with pytest.raises(DanluError, match="not a number"):
        parse_weights("0.3, heavy")
    assert parse_weights("0.3，0.6 1") == [0.3, 0.6, 1.0]  # Chinese comma and spaces work too
    with pytest.raises(DanluError, match="No run config"):
        plan_from_run(lora_run.root)
    empty = lora_run.root / "runs" / "empty"
    empty.mkdir()
    (empty / "config.toml").write_text((lora_run.run / "config.toml").read_text().replace('"g"', '"empty"'))
    with pytest.raises(DanluError, match="No LoRA files"):
        plan_from_run(empty)


def test_family_mismatch_is_refused(lora_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from models.lora_file import read_metadata

    xl = tmp_path / "xl-style.safetensors"
    meta = read_metadata(lora_run.files[0]) | {"ss_base_model_version": "sdxl_base_v1-0"}
    save_file(load_file(lora_run.files[0]), xl, metadata=meta)
    plan = plan_from_loras([lora_run.files[0], xl], str(lora_run.base), out_dir=tmp_path / "grids")
    with pytest.raises(DanluError) as err:
        run_grid(plan)
    assert "SDXL" in err.value.en and "SD 1" in err.value.en and "xl-style" in err.value.en
    assert not (tmp_path / "grids").exists()  # refused before anything was rendered


def test_hash_warning_names_both(lora_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from models.lora_file import read_metadata

    plan = plan_from_run(lora_run.run)
    assert check_versions(plan) == []  # trained on this very base
    other = tmp_path / "g-other.safetensors"
    meta = read_metadata(lora_run.files[0]) | {"ss_sd_model_name": "anything-v5.safetensors",
                                               "ss_new_sd_model_hash": "ab" * 32}
    save_file(load_file(lora_run.files[0]), other, metadata=meta)
    plan.loras = [other]
    (en, zh), = check_versions(plan)
    assert "anything-v5.safetensors" in en and "abababab" in en and lora_run.base.stem in en
    assert "anything-v5.safetensors" in zh and "哈希" in zh


def test_grid_cells_recipes_and_parity(lora_run):
    """Base + 2 epochs × weights 0 and 1: PNG text chunks, weight 0 = base, cell = a fresh sample render."""
    from models.generate import load_lora, open_pipeline, render

    plan = plan_from_run(lora_run.run, epochs="1,final", weights=[0.0, 1.0], include_base=True)
    seen = []
    result = run_grid(plan, progress=lambda d, n, eta, note: seen.append((d, n, eta)))
    assert result.status == "finished" and result.done == result.total == 6
    assert seen[0] == (0, 6, None) and seen[-1][:2] == (6, 6) and seen[-1][2] == 0
    assert len(result.timings["base_load_s"]) == 1 and len(result.timings["lora_load_s"]) == 2  # loaded once
    with Image.open(result.grid_png) as im:
        text = im.text["parameters"]
        assert im.size == result.grid.image.size
    assert "Script: X/Y/Z plot" in text and 'X Values: "base (no LoRA), g-000001, g"' in text
    assert 'Y Values: "0, 1"' in text and "Steps: 4" in text and "RNG: CPU" in text
    cells = {k: (result.out_dir / v["png"]) for k, v in result.cells.items()}
    with Image.open(cells[(0, 1, 2)]) as im:
        recipe = im.text["parameters"]
    assert recipe.startswith("demo, a red square <lora:g:1>\n") and "Lora hashes: \"g: " in recipe
    with Image.open(cells[(0, 0, 0)]) as im:
        assert "<lora:" not in im.text["parameters"]  # the base column has no LoRA
    base = pixels(cells[(0, 0, 0)])
    assert (pixels(cells[(0, 0, 1)]) == base).all() and (pixels(cells[(0, 1, 0)]) == base).all()
    assert np.abs(pixels(cells[(0, 1, 1)]) - base).max() > 10  # the LoRA changes the picture
    assert np.abs(pixels(cells[(0, 1, 2)]) - pixels(cells[(0, 1, 1)])).max() > 10  # and each epoch differs
    # What the trainer does for a sample: a fresh pipeline, the saved file loaded alone, the same render.
    pipe = open_pipeline(str(lora_run.base), device="cpu")
    load_lora(pipe, lora_run.files[2], "sample")
    sample = render(pipe, prompt=PROMPTS[0], steps=4, cfg=7.0, seed=1234, width=64, height=64, sampler="euler")
    assert (pixels(sample) == pixels(cells[(0, 1, 2)])).all()
    # grid.json maps a click in the picture to the cell and its recipe
    box = json.loads((result.out_dir / "grid.json").read_text(encoding="utf-8"))["cells"][5]["box"]
    hit = cell_at(result.out_dir / "grid.json", (box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    assert hit["parameters"] == recipe and cell_at(result.out_dir / "grid.json", 1, 1) is None


def test_prompt_axis_and_cancel_keeps_done_cells(lora_run):
    plan = plan_from_run(lora_run.run, epochs="final", weights=[0.5, 1.0], all_prompts=True)
    cancel = threading.Event()

    def progress(done, total, eta, note):
        if done == 3:
            cancel.set()

    result = run_grid(plan, progress=progress, cancel=cancel, lang="zh")
    assert result.status == "cancelled" and result.done == 3 and result.total == 4
    assert len(list((result.out_dir / "cells").glob("*.png"))) == 3
    with Image.open(result.grid_png) as im:
        assert "Cells done: 3/4" in im.text["parameters"] and 'Z Type: Prompt' in im.text["parameters"]
        grid = np.asarray(im.convert("RGB"))
    missing = [k for k in result.grid.layout.boxes if k not in result.cells]
    assert len(missing) == 1 and {k[0] for k in result.grid.layout.boxes} == {0, 1}  # two Z sub-grids
    left, top, right, bottom = result.grid.layout.boxes[missing[0]]
    assert tuple(grid[(top + bottom) // 2, (left + right) // 2]) == (225, 225, 225)
    data = json.loads((result.out_dir / "grid.json").read_text(encoding="utf-8"))
    assert data["status"] == "cancelled" and data["y_labels"] == ["权重: 0.5", "权重: 1"]


def test_cli(lora_run, tmp_path, capsys):
    rc = main([str(lora_run.run / "config.toml"), "--weights", "1", "--epochs", "final", "--out",
                   str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "1 columns x 1 weights = 1 cells" in out and "[1/1" in out
    assert len(list(tmp_path.glob("grid-*/grid.png"))) == 1
    assert main([str(lora_run.run), "--weights", "0.5,lots"]) == 2
    assert "lots" in capsys.readouterr().err


def test_tab_handlers(lora_run, tmp_path):
    """The tab's logic without a browser: run list, epoch boxes, form errors, streamed progress, cancel, clicks."""
    import shutil

    from ui import grid_jobs

    outputs = tmp_path / "outputs"
    shutil.copytree(lora_run.run, outputs / "g", ignore=shutil.ignore_patterns("grids"))
    (outputs / "not-a-run").mkdir()
    assert grid_jobs.list_runs(outputs) == [("g  (3 LoRA)", str(outputs / "g"))]
    assert grid_jobs.epoch_stems(str(outputs / "g")) == ["g-000001", "g-000002", "g"]
    assert grid_jobs.epoch_stems(str(outputs / "not-a-run")) == []

    form = {"source": "run", "run": str(outputs / "g"), "epochs": ["g"], "weights": "0.5, 1", "base_column": False,
            "z_kind": "none", "z_text": "", "margin": 4, "lora_text": "", "base": "", "config": None}
    bad = list(grid_jobs.render_grid(**(form | {"weights": "half"}), lang="zh", outputs_dir=outputs))
    assert len(bad) == 1 and bad[0][3].startswith("出错：") and "half" in bad[0][3]
    updates = list(grid_jobs.render_grid(**form, lang="en", outputs_dir=outputs))
    assert updates[0][1].startswith("2 cells: 1 columns × 2 weights")
    assert [u[1] for u in updates[1:-1]][-1] == "Cells 2/2"
    token, progress, image, message, grid_json = updates[-1][:5]
    assert token == "" and message.startswith("Grid saved: ") and image.size[0] > 64
    assert grid_jobs.cancel_grid("", "en") == "No grid is rendering."
    stream = grid_jobs.render_grid(**(form | {"epochs": ["g-000001", "g"]}), lang="en", outputs_dir=outputs)
    token = next(stream)[0]
    assert grid_jobs.cancel_grid(token, "en") == "Cancelling after the current cell…"
    last = list(stream)[-1]
    assert last[3].startswith("Cancelled; the ") and "/4 cells done are kept" in last[3] and last[2] is not None

    class Click:
        def __init__(self, x, y):
            self.index = [x, y]

    data = json.loads(Path(grid_json).read_text(encoding="utf-8"))
    left, top, right, bottom = data["cells"][1]["box"]
    cell, recipe = grid_jobs.show_cell(grid_json, "en", Click((left + right) // 2, (top + bottom) // 2))
    assert "<lora:g:1>" in recipe and cell.size == (256, 256)  # a 64 px cell is shown enlarged
    assert grid_jobs.show_cell(grid_json, "en", Click(0, 0))[1] == "That is a label or margin, not a cell."

    # LoRA files on the form's base: the form's sample settings, the grid's own prompt
    files = form | {"source": "files", "lora_text": f"{lora_run.files[0]}\n\"{lora_run.files[2]}\"\n",
                    "base": str(lora_run.base), "prompt": "a red square",
                    "config": {"model": {"base": str(lora_run.base)},
                               "sampling": {"prompts": ["x"], "steps": 2, "width": 128, "height": 128}}}
    plan = grid_jobs.make_plan(**files, outputs_dir=outputs)
    assert [p.stem for p in plan.loras] == ["g-000001", "g"] and plan.sampling.steps == 2
    assert plan.prompts == ["a red square"] and plan.sampling.width == 128
    assert plan.out_dir == outputs / "grids"
    assert grid_jobs.files_recipe(files["config"], str(lora_run.base), "en") == \
        "Rendered at 128×128 px, 2 steps, CFG 7, euler (the form's sample settings: same base model)."
    # on another base than the form's (the default form: 512 px, 20 steps): the base's native 64 px, the family's
    # steps/CFG/sampler, the form's seed
    other = files | {"config": {"model": {"base": "elsewhere.safetensors"},
                                "sampling": {"steps": 3, "width": 512, "height": 512, "seed": 7}}}
    plan = grid_jobs.make_plan(**other, outputs_dir=outputs)
    assert (plan.sampling.width, plan.sampling.height, plan.sampling.steps, plan.sampling.seed) == (64, 64, 20, 7)
    assert "64×64 px, 20 steps" in grid_jobs.files_recipe(other["config"], str(lora_run.base), "en")
    with pytest.raises(DanluError, match="No prompt"):
        grid_jobs.make_plan(**(files | {"prompt": " "}), outputs_dir=outputs)
    plan = grid_jobs.make_plan(**(files | {"prompt": "", "z_kind": "prompts", "z_text": "a\nb"}), outputs_dir=outputs)
    assert plan.prompts == ["a", "b"] and plan.z_axis == "prompt"
    with pytest.raises(DanluError, match="No base model"):
        grid_jobs.make_plan(**(files | {"base": ""}), outputs_dir=outputs)


def test_prompts_render_in_batches(lora_run):
    """Batch 2 over the prompt axis: one weight switch for both prompts, the same pictures as batch 1.

    The test LoRAs are 30× stronger than trained ones (so their effect shows at 64 px); at full weight the
    tiny model turns chaotic and amplifies the rounding of batched kernels, so a trained-like weight is used."""
    plan = plan_from_run(lora_run.run, epochs="final", weights=[0.0, 0.03], all_prompts=True)
    plan.batch = 2
    batched = run_grid(plan)
    assert len(batched.timings["switch_s"]) == 2 and batched.done == 4
    plan.batch = 1
    single = run_grid(plan)
    assert len(single.timings["switch_s"]) == 4
    for key in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)):
        a = pixels(batched.out_dir / batched.cells[key]["png"])
        b = pixels(single.out_dir / single.cells[key]["png"])
        assert np.abs(a - b).max() <= 2  # batched kernels round differently, by a level at most here
    lora_cell = pixels(batched.out_dir / batched.cells[(0, 1, 0)]["png"])
    assert np.abs(lora_cell - pixels(batched.out_dir / batched.cells[(0, 0, 0)]["png"])).max() > 2  # LoRA shows


def test_other_base_as_z(lora_run, tmp_path):
    """Z = another checkpoint: each base loaded once, its own sub-grid, and a hash warning naming both bases."""
    from models.tiny import save_tiny

    other = save_tiny("sd15", tmp_path / "other", seed=1)
    other_base = str(other.single_file or other.folder)
    plan = plan_from_run(lora_run.run, epochs="final", weights=[1.0], bases=[other_base])
    result = run_grid(plan)
    assert len(result.timings["base_load_s"]) == 2 and result.done == 2
    (en, _zh), = result.warnings
    assert lora_run.base.name in en and Path(other_base).stem in en
    a, b = (pixels(result.out_dir / result.cells[(z, 0, 0)]["png"]) for z in (0, 1))
    assert np.abs(a - b).max() > 10  # another checkpoint, another picture
    with Image.open(result.out_dir / result.cells[(1, 0, 0)]["png"]) as im:
        assert f"Model: {Path(other_base).stem}" in im.text["parameters"]
    with Image.open(result.grid_png) as im:
        assert "Z Type: Checkpoint name" in im.text["parameters"]


def test_tab_shows_hash_warning_early(lora_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from models.lora_file import read_metadata
    from ui import grid_jobs

    other = tmp_path / "x.safetensors"
    meta = read_metadata(lora_run.files[0]) | {"ss_sd_model_name": "elsewhere.ckpt", "ss_new_sd_model_hash": "cd" * 32}
    save_file(load_file(lora_run.files[0]), other, metadata=meta)
    form = {"source": "files", "run": None, "epochs": None, "weights": "1", "base_column": False, "z_kind": "none",
            "z_text": "", "margin": 0, "lora_text": str(other), "base": str(lora_run.base), "prompt": "x",
            "config": {"sampling": {"prompts": ["x"], "steps": 1, "width": 64, "height": 64}}}
    updates = list(grid_jobs.render_grid(**form, lang="en", outputs_dir=tmp_path))
    first_warning = next(i for i, u in enumerate(updates) if isinstance(u[3], str) and "elsewhere.ckpt" in u[3])
    assert first_warning < len(updates) - 1 and updates[first_warning][3].startswith("Warning: ")
    assert "Grid saved" in updates[-1][3] and "elsewhere.ckpt" in updates[-1][3]


def test_launcher_dispatches_grid(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "launcher.py"), "grid", str(tmp_path / "nowhere"), "--weights",
                           "0.5"], check=False, capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "DANLU_LANG": "zh"})
    assert done.returncode == 2 and "找不到运行配置" in done.stderr and "config.toml" in done.stderr
