"""XYZ grid of FLUX.1 / Chroma runs: epoch files × weights rendered through the family's sample module, each cell's
recipe in the family's terms, a cell equal to a render of the saved file, and an A/B of two runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import config as cfgmod
from core.events import read_events
from models.grid.plan import check_versions, plan_from_run
from models.grid.render import run_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = "flat, red"


def _train(root: Path, family: str, name: str, **sampling) -> Path:
    """The family's demo (its preset scaled to a CPU) trained for 2 epochs on 4 flat 64 px images, a file and a
    sample at each epoch; the run folder."""
    from models.demo import make_demo
    from training.loop import train
    from training.tiny_run import flat_dataset

    cfg = cfgmod.load(make_demo(root / "demo", family))
    cfg.dataset.dir = str(flat_dataset(root / "data"))
    cfg.dataset.bucket_no_upscale = True  # 64 px images stay 64 px: 16 packed tokens
    cfg.network.rank = 4
    cfg.training.epochs, cfg.saving.every_n_epochs, cfg.saving.save_state = 2, 1, False
    cfg.saving.output_dir, cfg.saving.name = str(root / "runs"), name
    cfg.sampling.prompts, cfg.sampling.steps, cfg.sampling.width, cfg.sampling.height = [PROMPT], 2, 64, 64
    for key, value in sampling.items():
        setattr(cfg.sampling, key, value)
    train(cfg)
    return cfg.run_dir


@pytest.fixture(scope="module")
def dev_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("fluxgrid"), "flux", "fdev")


def pixels(image) -> np.ndarray:
    """A PNG's (or a rendered image's) RGB values."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB")).astype(int)
    with Image.open(image) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_dev_grid_cells_are_the_saved_files_renders_in_flux_terms(dev_run):
    """Epoch 1 and final × weights 0 and 1: the recipe states dev's sampling as ComfyUI / Forge users type it (cfg 1,
    the distilled guidance 3.5, the run's steps, a multiple-of-16 size), weight 0 is the base, the cells at weight 1
    are the training samples pixel for pixel and a fresh pipeline given the saved file renders the same."""
    from models.generate import load_lora, open_pipeline, render

    plan = plan_from_run(dev_run, weights=[0.0, 1.0])
    assert plan.family == "flux" and [p.stem for p in plan.loras] == ["fdev-000001", "fdev"]
    assert check_versions(plan) == []  # the LoRA records this very base's hash
    result = run_grid(plan)
    assert result.status == "finished" and result.done == result.total == 4
    cells = {k: result.out_dir / v["png"] for k, v in result.cells.items()}
    with Image.open(cells[(0, 1, 1)]) as im:
        recipe, graph = im.text["parameters"], im.text["prompt"]
    assert recipe.startswith(f"{PROMPT} <lora:fdev:1>\n")
    for part in ("Steps: 2,", "CFG scale: 1,", "Distilled CFG Scale: 3.5", "Size: 64x64", "Sampler: Euler", "Shift: "):
        assert part in recipe, part
    assert "FluxGuidance" in graph and "ModelSamplingFlux" in graph  # ComfyUI's graph of the cell's recipe
    assert (pixels(cells[(0, 0, 0)]) == pixels(cells[(0, 0, 1)])).all()  # weight 0: the base alone
    assert not (pixels(cells[(0, 1, 1)]) == pixels(cells[(0, 0, 1)])).all()  # the LoRA changes the picture
    samples = [e for e in read_events(dev_run / "events.jsonl")[0] if e["type"] == "sample"]
    assert [s["epoch"] for s in samples] == [1, 2]
    for sample in samples:
        cell = cells[(0, 1, sample["epoch"] - 1)]
        assert (pixels(cell) == pixels(sample["png"])).all(), (cell, sample["png"])
        with Image.open(cell) as im:
            assert im.text["parameters"] == sample["parameters"]
    # What a user does with the file: a fresh pipeline, the saved file loaded alone, the recipe's values.
    cfg = cfgmod.load(dev_run / "config.toml")
    pipe = open_pipeline(cfg.model.base, family="flux", device="cpu")
    load_lora(pipe, dev_run / "fdev.safetensors", "fdev")
    image = render(pipe, prompt=PROMPT, steps=2, cfg=1.0, seed=cfg.sampling.seed, width=64, height=64)
    assert (pixels(image) == pixels(cells[(0, 1, 1)])).all()


def test_a_size_that_is_no_multiple_of_16_is_refused_as_the_samples_refuse_it(dev_run, tmp_path):
    """The grid renders at the run's sample size through the same family code as the samples: 72 px is refused with
    the field to change, before a cell is written."""
    from core.errors import DanluError

    run = tmp_path / "odd"
    shutil.copytree(dev_run, run, ignore=shutil.ignore_patterns("samples", "grids"))
    cfg = cfgmod.load(run / "config.toml")
    cfg.sampling.width = 72
    cfgmod.save(cfg, run / "config.toml")
    plan = plan_from_run(run, epochs="final", weights=[1.0], out_dir=tmp_path / "grids")
    with pytest.raises(DanluError) as e:
        run_grid(plan)
    assert e.value.key == "sampling.width" and "16" in e.value.en and "16" in e.value.zh
    assert not list((tmp_path / "grids").rglob("*.png"))


def test_ab_of_two_flux_runs_renders_each_runs_own_files(dev_run, tmp_path):
    """Run B is run A with its final file replaced by A's epoch 1: B's final column is A's epoch-1 column, so each
    panel renders its own run's files; a Chroma run is refused as the other side (another family)."""
    from core.errors import DanluError
    from models.grid.compare import plan_compare, run_compare

    b = tmp_path / "fdev_b"
    shutil.copytree(dev_run, b, ignore=shutil.ignore_patterns("samples", "grids"))
    for f in b.glob("*.safetensors"):
        f.rename(f.with_name(f.name.replace("fdev", "fdevb")))
    shutil.copyfile(b / "fdevb-000001.safetensors", b / "fdevb.safetensors")
    cfg = cfgmod.load(b / "config.toml")
    cfg.saving.name, cfg.saving.output_dir = "fdevb", str(tmp_path)
    cfgmod.save(cfg, b / "config.toml")
    plan_a, plan_b, keys, warnings = plan_compare(dev_run, b, weights=[1.0], out_dir=tmp_path / "ab")
    assert keys == ["epoch 1", "final"] and not warnings and plan_b.family == "flux"
    result = run_compare(plan_a, plan_b, keys, ("fdev", "fdevb"), warnings=warnings)
    assert result.status == "finished" and (result.done, result.total) == (4, 4)
    data = json.loads((result.out_dir / "grid.json").read_text(encoding="utf-8"))
    cells = {(c["z"], c["y"], c["x"]): result.out_dir / c["png"] for c in data["cells"]}
    assert (pixels(cells[(1, 0, 1)]) == pixels(cells[(0, 0, 0)])).all()  # B's final is A's epoch 1
    assert not (pixels(cells[(1, 0, 1)]) == pixels(cells[(0, 0, 1)])).all()
    chroma = tmp_path / "chroma_run"
    shutil.copytree(b, chroma)
    cfg.model.family, cfg.saving.name = "chroma", "fdevb"
    cfgmod.save(cfg, chroma / "config.toml")
    with pytest.raises(DanluError) as e:
        plan_compare(dev_run, chroma)
    assert "same base family" in (e.value.hint_en or "") + e.value.en


def test_chroma_grid_guides_with_the_negative_prompt(tmp_path_factory):
    """A Chroma run sampled at real CFG 4 with a negative prompt: the grid's cells state both, and the final file at
    weight 1 is the run's last sample pixel for pixel."""
    run = _train(tmp_path_factory.mktemp("chromagrid"), "chroma", "chr", negative_prompt="blurry")
    plan = plan_from_run(run, epochs="final", weights=[1.0])
    assert plan.family == "chroma" and plan.sampling.cfg == 4.0
    result = run_grid(plan)
    cell = result.out_dir / result.cells[(0, 0, 0)]["png"]
    with Image.open(cell) as im:
        recipe = im.text["parameters"]
    assert "\nNegative prompt: blurry\n" in recipe and "CFG scale: 4," in recipe and "Distilled" not in recipe
    sample = [e for e in read_events(run / "events.jsonl")[0] if e["type"] == "sample"][-1]
    assert (pixels(cell) == pixels(sample["png"])).all() and recipe == sample["parameters"]


def test_lora_files_on_flux_bases_get_the_familys_recipe(dev_run, tmp_path):
    """The "LoRA files" source and the other-bases Z axis: the cells on the tiny dev's diffusers folder and on its
    single file both state FLUX's recipe (distilled guidance, shift; a base's own recipe was SD's before) and are the
    same picture, the run's final sample."""
    from models.grid.plan import plan_from_loras

    cfg = cfgmod.load(dev_run / "config.toml")
    folder = Path(cfg.model.base)
    single = folder.parent / f"{folder.name}.safetensors"
    plan = plan_from_loras([dev_run / "fdev.safetensors"], str(folder), bases=[str(single)], prompts=[PROMPT],
                           sampling={"steps": 2, "width": 64, "height": 64}, weights=[1.0], out_dir=tmp_path)
    assert plan.family == "flux" and plan.z_axis == "base"
    result = run_grid(plan)
    cells = [result.out_dir / result.cells[(z, 0, 0)]["png"] for z in (0, 1)]
    for cell in cells:
        with Image.open(cell) as im:
            recipe = im.text["parameters"]
        assert "Distilled CFG Scale: 3.5" in recipe and "Shift: " in recipe and "Schedule type: Simple" in recipe
    final = [e for e in read_events(dev_run / "events.jsonl")[0] if e["type"] == "sample"][-1]
    assert (pixels(cells[0]) == pixels(final["png"])).all() and (pixels(cells[1]) == pixels(cells[0])).all()
