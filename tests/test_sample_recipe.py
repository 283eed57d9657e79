"""One sample recipe: training samples and grid cells are built by models.recipe.build."""

from __future__ import annotations

from pathlib import Path

from core import config as cfgmod
from models import recipe
from models.grid.plan import GridPlan
from models.grid.render import cell_sample


def test_grid_cell_and_training_sample_share_the_recipe(monkeypatch):
    cfg = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": {"prompts": ["a cat"], "steps": 7, "cfg": 5.5,
                                                                   "negative_prompt": "blurry", "sampler": "ddim"}})
    monkeypatch.setattr("models.grid.render._lora_hash", lambda path: "abc")
    plan = GridPlan(bases=["base.safetensors"], loras=[Path("run-000002.safetensors")], weights=[1.0],
                    prompts=["a cat"], sampling=cfg.sampling, clip_skip=2)
    grid = cell_sample(plan, "base.safetensors", "a cat", Path("run-000002.safetensors"), 1.0)
    train = recipe.build(cfg.sampling, prompt="a cat", clip_skip=2, model="base", model_hash="",
                         loras=[{"name": "run-000002", "weight": 1.0, "hash": "abc"}])
    assert grid == train
    assert train.args == {"prompt": "a cat", "negative_prompt": "blurry", "steps": 7, "cfg": 5.5, "seed": 1234,
                          "width": 512, "height": 512, "sampler": "ddim", "clip_skip": 2}
    assert recipe.batch_args(train, ["a", "b"])["prompts"] == ["a", "b"]


def test_family_hook_adapts_recipe_and_arguments(monkeypatch):
    from models.families import sd15

    def hook(rec: dict, args: dict) -> tuple[dict, dict]:
        return rec | {"cfg": rec["cfg"] + 1}, args | {"steps": 8}

    monkeypatch.setattr(sd15, "sample_recipe", hook, raising=False)
    s = cfgmod.default_config().sampling
    sample = recipe.build(s, prompt="x", family="sd15")
    assert sample.recipe["cfg"] == s.cfg + 1 and sample.args["steps"] == 8
    assert recipe.build(s, prompt="x", family="auto").args["steps"] == s.steps
    assert recipe.build(s, prompt="x", family="unknown").recipe["cfg"] == s.cfg
