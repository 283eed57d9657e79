"""Per-prompt sample flags in kohya's syntax (core/config/sample_prompts.py), and saving/sampling by steps on an SD
run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import config as cfgmod
from core.config import sample_prompts
from core.errors import DanluError
from models import recipe


def test_flags_read_as_kohya_reads_them():
    line = sample_prompts.parse("a cat, sitting --n blurry, lowres --w 768 --h 512 --s 30 --d 42 --l 6.5 --ss ddim")
    assert line.prompt == "a cat, sitting"
    assert line.options == {"negative_prompt": "blurry, lowres", "width": 768, "height": 512, "steps": 30,
                            "seed": 42, "cfg": 6.5, "sampler": "ddim"}
    assert sample_prompts.parse("a cat").options == {}
    assert sample_prompts.parse("a cat --ss k_euler_a").options == {"sampler": "euler_a"}  # sd-scripts' name
    assert sample_prompts.parse("a cat --D 5").options == {"seed": 5}  # kohya matches flags ignoring case


@pytest.mark.parametrize("line, en, zh", [
    ("a dog --w 700", "not a multiple of 8", "不是 8 的倍数"),
    ("a dog --q 3", "unknown flag --q", "未知参数 --q"),
    ("a dog --s many", "not a whole number", "不是整数"),
    ("a dog --s 0", "outside 1–1000", "超出范围"),
    ("a dog --l", "needs a value", "缺少数值"),
    ("a dog --ss magic", "not one of", "不在"),
])
def test_a_bad_flag_names_the_prompt_in_both_languages(line, en, zh):
    with pytest.raises(DanluError) as e:
        sample_prompts.parse(line, cfgmod.SAMPLERS)
    assert repr(line) in e.value.en and en in e.value.en
    assert repr(line) in e.value.zh and zh in e.value.zh
    assert e.value.hint_en and e.value.hint_zh and e.value.key == "sampling.prompts"


def test_flags_replace_the_run_settings_in_recipe_and_render_arguments():
    s = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": {"steps": 20, "cfg": 7.0, "seed": 1}}).sampling
    sample = recipe.build(s, prompt="a cat --s 9 --d 77 --w 640 --h 384 --l 3 --n ugly --ss heun")
    expected = {"prompt": "a cat", "steps": 9, "seed": 77, "width": 640, "height": 384, "cfg": 3.0,
                "negative_prompt": "ugly", "sampler": "heun"}
    assert {k: sample.recipe[k] for k in expected} == expected
    assert {k: sample.args[k] for k in expected} == expected
    plain = recipe.build(s, prompt="a cat")
    assert (plain.recipe["steps"], plain.recipe["seed"]) == (20, 1)
    assert recipe.same_args(recipe.build(s, prompt="a --d 1"), recipe.build(s, prompt="b"))
    assert not recipe.same_args(recipe.build(s, prompt="a --d 2"), recipe.build(s, prompt="b"))
    assert recipe.batch_args(plain, ["x --d 1", "y"])["prompts"] == ["x", "y"]


def test_grid_cell_honours_the_flags(monkeypatch):
    from models.grid.plan import GridPlan
    from models.grid.render import cell_sample

    monkeypatch.setattr("models.grid.render._lora_hash", lambda path: "abc")
    s = cfgmod.default_config().sampling
    plan = GridPlan(bases=["base.safetensors"], loras=[Path("r-000001.safetensors")], weights=[1.0],
                    prompts=["a cat --w 96 --d 9"], sampling=s)
    cell = cell_sample(plan, "base.safetensors", "a cat --w 96 --d 9", Path("r-000001.safetensors"), 1.0)
    assert cell.args["prompt"] == "a cat" and cell.args["width"] == 96 and cell.args["seed"] == 9
    assert cell.recipe == recipe.build(s, prompt="a cat --w 96 --d 9", model="base",
                                       loras=[{"name": "r-000001", "weight": 1.0, "hash": "abc"}]).recipe


def _events(path: Path, files: list[Path]) -> None:
    import json

    path.write_text("".join(json.dumps({"type": "saved", "file": str(f)}) + "\n" for f in files), encoding="utf-8")


def test_keep_last_deletes_only_step_files_the_run_saved(tmp_path):
    from training.export import prune_step_files

    made = [tmp_path / f"r-step{n:08d}.safetensors" for n in (2, 4, 6)]
    kept_by_user = tmp_path / "r-step00000001.safetensors"  # a file put there by hand: no saved event
    renamed = tmp_path / "r-step4-good.safetensors"
    for f in [*made, kept_by_user, renamed]:
        f.write_bytes(b"x")
    _events(tmp_path / "events.jsonl", [*made, renamed])
    assert prune_step_files(tmp_path, "r", 1) == made[:2]
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == sorted(
        [made[2].name, kept_by_user.name, renamed.name])
    assert prune_step_files(tmp_path, "r", 0) == []
    epochs = [tmp_path / f"r-{n:06d}.safetensors" for n in (1, 2)]
    for f in epochs:
        f.write_bytes(b"x")
    _events(tmp_path / "events.jsonl", [*made, *epochs])
    assert prune_step_files(tmp_path, "r", 1, kind="epoch") == epochs[:1] and made[2].exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_sd_run_saves_and_samples_by_steps_with_prompt_flags(tmp_path):
    from core.events import read_events
    from models.generate import parse_parameters
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    tiny = save_tiny("sd15", tmp_path / "base")
    prompts = ["flat, red --d 7", "flat, red --d 8", "flat, red --w 96 --h 64 --s 2 --n blue --l 4.5 --ss k_euler_a"]
    cfg = tiny_config(tiny.single_file or tiny.folder, flat_dataset(tmp_path / "data"), tmp_path / "out", "tsd",
                      training__epochs=3, saving__every_n_epochs=1, saving__keep_last_epochs=1,
                      saving__every_n_steps=3, saving__keep_last=1, saving__save_state=False,
                      network__train_text_encoder=False, sampling__prompts=prompts)
    result = train(cfg, command="pytest")
    assert result.status == "finished" and result.step == 12  # 4 steps an epoch
    events, _ = read_events(cfg.run_dir / "events.jsonl")
    saved = [(Path(e["file"]).name, e["step"]) for e in events if e["type"] == "saved"]
    assert saved == [("tsd-step00000003.safetensors", 3), ("tsd-000001.safetensors", 4),
                     ("tsd-step00000006.safetensors", 6), ("tsd-000002.safetensors", 8),
                     ("tsd-step00000009.safetensors", 9), ("tsd.safetensors", 12)]
    # keep_last = 1 and keep_last_epochs = 1: the newest of each kind stays, the final file always
    names = sorted(p.name for p in cfg.run_dir.glob("*.safetensors"))
    assert names == ["tsd-000002.safetensors", "tsd-step00000009.safetensors", "tsd.safetensors"]
    samples = [e for e in events if e["type"] == "sample"]
    assert sorted({e["step"] for e in samples}) == [3, 4, 6, 8, 9, 12] and len(samples) == 18

    at6 = {e["prompt_index"]: Path(e["png"]) for e in samples if e["step"] == 6}
    assert at6[0].name == "tsd-step00000006-e000002-00.png"
    images = {i: Image.open(p) for i, p in at6.items()}
    recipes = {i: parse_parameters(im.info["parameters"]) for i, im in images.items()}
    # --d: another seed, another image, at the run's size
    assert recipes[0]["seed"] == 7 and recipes[1]["seed"] == 8 and images[0].size == images[1].size == (64, 64)
    assert np.abs(np.asarray(images[0], dtype=int) - np.asarray(images[1], dtype=int)).max() > 0
    # --w/--h: the image's size; --s/--l/--n/--ss: what the recipe says it was rendered with
    assert images[2].size == (96, 64)
    r = recipes[2]
    assert (r["prompt"], r["width"], r["height"], r["steps"], r["cfg"], r["negative_prompt"], r["sampler"]) == (
        "flat, red", 96, 64, 2, 4.5, "blue", "euler_a")
    assert r["loras"][0]["name"] == "tsd-step00000006"
    assert r["seed"] == cfg.sampling.seed and recipes[0]["steps"] == cfg.sampling.steps

    # the XYZ grid of this run: its step and epoch files as columns, rendered with the prompt's own flags
    from models.grid.plan import plan_from_run
    from models.grid.render import run_grid

    plan = plan_from_run(cfg.run_dir, weights=[1.0], prompts=["flat, red --w 96 --h 64 --d 3 --s 2"])
    assert [p.name for p in plan.loras] == ["tsd-000002.safetensors", "tsd-step00000009.safetensors",
                                            "tsd.safetensors"]
    grid = run_grid(plan)
    assert grid.done == 3 and grid.grid.image.width >= 3 * 96
    for cell in grid.cells.values():
        with Image.open(grid.out_dir / cell["png"]) as im:
            assert im.size == (96, 64)
        parsed = parse_parameters(cell["parameters"])
        assert (parsed["prompt"], parsed["seed"], parsed["steps"], parsed["width"]) == ("flat, red", 3, 2, 96)


def test_a_prompt_size_off_64_is_warned_about():
    from core import checks

    cfg = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": {"prompts": ["a cat", "a dog --w 200 --h 512"]}})
    issue = checks.RULES["sample_size_not_64"][1](cfg, checks.Env(device="cuda", family="sd15"))
    assert issue is not None and "200x512" in issue.en and "200x512" in issue.zh
    cfg.sampling.prompts = ["a dog --w 768"]
    assert checks.RULES["sample_size_not_64"][1](cfg, checks.Env(device="cuda", family="sd15")) is None
