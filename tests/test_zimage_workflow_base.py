"""The base a Z-Image sample names (its ComfyUI graph and the A1111 text's Model / Model hash) is the one it was
rendered from: the published Turbo / De-Turbo / Base file for a release, the user's own file name for a single file,
and a plain note, never a wrong name, for a folder whose ComfyUI file cannot be known.

The `three_runs` fixture renders the samples of a Turbo, a De-Turbo and a local-file run (and of a folder of the
user's own) the way a run does
(training.export.render_samples, from a saved LoRA file) and writes their graphs (JSON) and a contact sheet (PNG)
under the test's tmp folder; it prints their paths (pytest -rP shows them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.families.zimage.workflow import RELEASE_FILES, comfy_base

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 64


@pytest.mark.parametrize("base, unet", [
    ("Tongyi-MAI/Z-Image-Turbo", "z_image_turbo_bf16.safetensors"),
    ("ostris/Z-Image-De-Turbo", "z_image_de_turbo_v1_bf16.safetensors"),
    ("Tongyi-MAI/Z-Image", "z_image_bf16.safetensors"),
    ("/home/u/.cache/huggingface/hub/models--ostris--Z-Image-De-Turbo/snapshots/0a1b2c",
     "z_image_de_turbo_v1_bf16.safetensors"),
    ("/home/u/.cache/modelscope/hub/models/Tongyi-MAI/Z-Image-Turbo", "z_image_turbo_bf16.safetensors"),
    ("D:\\models\\Z-Image", "z_image_bf16.safetensors"),
])
def test_releases_are_named_by_their_published_comfyui_file(base, unet):
    got = comfy_base(base)
    assert (got.unet, got.model) == (unet, unet.removesuffix(".safetensors"))


def test_own_files_keep_their_name_and_own_folders_get_no_name(tmp_path):
    own = tmp_path / "my_zit_finetune.safetensors"
    own.write_bytes(b"")
    assert comfy_base(str(own)) == comfy_base(str(own), "other", "0123456789")
    assert (comfy_base(str(own)).unet, comfy_base(str(own)).model) == ("my_zit_finetune.safetensors",
                                                                        "my_zit_finetune")
    for folder in (tmp_path / "tiny-zimage", "someone/zimage-finetune",
                   "/cache/hub/models--someone--Z-Image-Turbo-merge/snapshots/1"):
        assert comfy_base(str(folder), Path(folder).name).unet == ""
    assert set(RELEASE_FILES) == {"tongyi-mai/z-image-turbo", "tongyi-mai/z-image", "ostris/z-image-de-turbo"}


def test_a_folder_of_the_users_own_gets_a_plain_note_not_the_turbo_file(tmp_path):
    from core.config import SamplingConfig
    from models import generate, recipe

    folder = tmp_path / "my-zimage-finetune"
    folder.mkdir()
    sample = recipe.build(SamplingConfig(), prompt="a cat", family="zimage", model=folder.name, base=str(folder))
    loader = json.loads(sample.recipe["png_chunks"]["prompt"])["1"]
    assert loader["inputs"]["unet_name"] == "" and "choose" in loader["_meta"]["title"]
    text = generate.recipe_text(sample.recipe)
    assert "z_image_turbo" not in text and "Model hash" not in text and "Model: my-zimage-finetune" in text
    note = generate.parse_parameters(text)["params"]["ComfyUI base"]
    assert note.startswith("my-zimage-finetune is a folder with no published ComfyUI file")
    assert generate.parse_parameters(text)["params"]["ComfyUI"] == "0.3.76 or newer"


# --- three runs, rendered as a run renders its samples --------------------------------------------------------


def _render(cfg, lora, out_png_dir: Path) -> Path:
    import torch

    from training import export
    from training.families import setup

    info = {"base_hash10": export.base_hashes(cfg.model.base)[1]}
    pngs = export.render_samples(cfg, lora, info, epoch=1, step=2, device="cpu", dtype=torch.float32,
                                 emit=lambda *a, **k: None, setup=setup(cfg), family="zimage")
    return pngs[0]


def _contact_sheet(runs: dict[str, dict], path: Path) -> Path:
    """One column per run: its sample, then what its ComfyUI graph loads and what its A1111 text says."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    col, rows = 420, 330
    sheet = Image.new("RGB", (col * len(runs), rows), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, run) in enumerate(runs.items()):
        x = i * col + 10
        draw.text((x, 8), title, fill="black", font=ImageFont.load_default(size=16))
        sheet.paste(Image.open(run["png"]).convert("RGB").resize((96, 96), Image.NEAREST), (x, 32))
        nodes = {n["class_type"]: n["inputs"] for n in run["graph"].values()}
        params, lora = run["params"], nodes["LoraLoaderModelOnly"]
        lines = [f"UNETLoader: {nodes['UNETLoader']['unet_name'] or '(empty: user chooses)'}",
                 f"CLIPLoader: {nodes['CLIPLoader']['clip_name']}", f"VAELoader: {nodes['VAELoader']['vae_name']}",
                 f"LoRA: {lora['lora_name']} @ {lora['strength_model']}",
                 f"KSampler: {nodes['KSampler']['steps']} steps, cfg {nodes['KSampler']['cfg']}, "
                 f"{nodes['KSampler']['sampler_name']} / {nodes['KSampler']['scheduler']}",
                 f"A1111 Model: {params.get('Model', '-')}", f"A1111 Model hash: {params.get('Model hash', '-')}",
                 f"ComfyUI: {params.get('ComfyUI', '-')}"]
        if "ComfyUI base" in params:
            lines += textwrap.wrap(f"Note: {params['ComfyUI base']}", 52)
        for j, line in enumerate(lines):
            draw.text((x, 140 + 16 * j), line, fill="black", font=font)
        if i:
            draw.line([(i * col, 0), (i * col, rows)], fill="grey")
    sheet.save(path)
    return path


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    from core import config as cfgmod
    from models import generate
    from models.tiny import save_tiny
    from tests.test_zimage_lora_file import save, trained

    root = tmp_path_factory.mktemp("three_bases")
    tiny = save_tiny("zimage", root / "tiny")
    pipe, _ = trained(tiny.folder, alpha=4)
    lora = save(pipe, root / "zlora.safetensors", 4)
    bases = {"Turbo run": (root / "Z-Image-Turbo", "zimage_turbo_adapter", 2, 1.0),
             "De-Turbo run": (root / "Z-Image-De-Turbo", "zimage_deturbo", 3, 3.0),
             "Local-file run": (tiny.single_file, "zimage_turbo_adapter", 2, 1.0),
             "Own-folder run": (tiny.folder, "zimage_turbo_adapter", 2, 1.0)}
    runs = {}
    for title, (base, preset, steps, cfg_scale) in bases.items():
        if not Path(base).exists():  # a downloaded release, here the tiny model under the release's folder name
            shutil.copytree(tiny.folder, base)
        cfg = cfgmod.merge_dict(cfgmod.load(preset=preset), {
            "model": {"base": str(base)},
            "saving": {"output_dir": str(root / "runs"), "name": title.split()[0].lower()},
            "sampling": {"prompts": ["a photo of the cat"], "steps": steps, "cfg": cfg_scale, "width": SIZE,
                         "height": SIZE}})
        png = _render(cfg, lora, root)
        from PIL import Image

        chunks = Image.open(png).text
        runs[title] = {"png": png, "graph": json.loads(chunks["prompt"]),
                       "params": generate.parse_parameters(chunks["parameters"])["params"]}
        graph_file = root / f"{title.split()[0].lower()}-graph.json"
        graph_file.write_text(json.dumps(runs[title]["graph"], indent=2, ensure_ascii=False), encoding="utf-8")
        runs[title]["graph_file"] = graph_file
    sheet = _contact_sheet(runs, root / "three-bases-graphs.png")
    print("ComfyUI graphs of the runs:", *[r["graph_file"] for r in runs.values()], "contact sheet:", sheet,
          sep="\n  ")
    return runs, tiny


def test_turbo_run_loads_the_turbo_file(three_runs):
    runs, _ = three_runs
    run = runs["Turbo run"]
    assert run["graph"]["1"]["inputs"]["unet_name"] == "z_image_turbo_bf16.safetensors"
    assert run["params"]["Model"] == "z_image_turbo_bf16" and "Model hash" not in run["params"]
    assert run["graph"]["8"]["inputs"]["steps"] == 2 and run["graph"]["8"]["inputs"]["cfg"] == 1.0


def test_deturbo_run_loads_the_deturbo_file_at_its_own_steps_and_cfg(three_runs):
    runs, _ = three_runs
    run = runs["De-Turbo run"]
    assert run["graph"]["1"]["inputs"]["unet_name"] == "z_image_de_turbo_v1_bf16.safetensors"
    assert run["params"]["Model"] == "z_image_de_turbo_v1_bf16" and "Model hash" not in run["params"]
    k = run["graph"]["8"]["inputs"]
    assert (k["steps"], k["cfg"]) == (3, 3.0) and run["params"]["CFG scale"] == "3"


def test_local_file_run_loads_the_users_file_with_its_hash(three_runs):
    from models import hashes

    runs, tiny = three_runs
    run = runs["Local-file run"]
    assert run["graph"]["1"]["inputs"]["unet_name"] == tiny.single_file.name
    assert run["params"]["Model"] == tiny.single_file.stem
    assert run["params"]["Model hash"] == hashes.autov2(tiny.single_file)
    for title, r in runs.items():
        assert ("ComfyUI base" in r["params"]) == (title == "Own-folder run")
        assert r["params"]["ComfyUI"] == "0.3.76 or newer"
        assert r["graph"]["10"]["inputs"]["lora_name"] == "zlora.safetensors"


def test_own_folder_run_has_a_note_and_an_empty_loader(three_runs):
    runs, tiny = three_runs
    run = runs["Own-folder run"]
    assert run["graph"]["1"]["inputs"]["unet_name"] == "" and "Model hash" not in run["params"]
    assert run["params"]["Model"] == tiny.folder.name
    assert run["params"]["ComfyUI base"].startswith(f"{tiny.folder.name} is a folder with no published ComfyUI file")
