"""Single files with the original key names load offline and make the same images as the diffusers folders."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
from image_parity import assert_images_within_rounding

from core.errors import DanluError
from models.ldm import diffusers_to_ldm, ldm_to_diffusers
from models.loading import CONFIGS, _components, load_pipeline, resolve_family
from models.vae import load_vae

FAMILIES = ("sd15", "sd2v", "sdxl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import save_tiny

    root = tmp_path_factory.mktemp("tiny-load")
    return {fam: save_tiny(fam, root) for fam in FAMILIES}


def _image(pipe, seed=3):
    g = torch.Generator("cpu").manual_seed(seed)
    return pipe("demo, a red square", num_inference_steps=3, height=64, width=64, generator=g,
                output_type="np").images[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_gives_the_same_image_as_the_folder(tiny, family):
    folder = load_pipeline(str(tiny[family].folder))
    single = load_pipeline(f'"{tiny[family].single_file}"')  # pasted with quotes
    assert type(single) is type(folder)
    assert resolve_family(single) == {"sd2v": "sd2"}.get(family, family)
    expected = "v_prediction" if family == "sd2v" else "epsilon"
    assert single.scheduler.config.prediction_type == expected
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):  # the conversion is exact: every weight equal
        if getattr(folder, name, None) is None:
            continue
        fa, sa = getattr(folder, name).state_dict(), getattr(single, name).state_dict()
        assert fa.keys() == sa.keys(), name
        assert [k for k in fa if fa[k].dtype != sa[k].dtype or not torch.equal(fa[k], sa[k])] == [], name
    assert dict(folder.scheduler.config) == dict(single.scheduler.config)
    a, b = _image(folder), _image(single)
    assert a.std() > 0
    # equal weights, but the folder's tensors sit at 8-byte offsets of its file and the single file's are fresh
    # allocations: fp32 GEMM kernels may sum them in another order (seen: 1.4e-6 on SDXL), see image_parity
    assert_images_within_rounding(a, b)


@pytest.mark.parametrize("family", ["sd15", "sd2v"])
def test_our_key_names_load_in_diffusers_own_single_file_loader(tiny, family):
    """diffusers converts original-layout files with its own code: the weights must come out identical."""
    from diffusers import StableDiffusionPipeline

    ours = load_pipeline(str(tiny[family].folder))
    theirs = StableDiffusionPipeline.from_single_file(str(tiny[family].single_file), config=str(tiny[family].folder),
                                                      local_files_only=True, safety_checker=None)
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(ours, name).state_dict(), getattr(theirs, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_real_layouts_map_both_ways_and_match_diffusers(family):
    """The shipped real configs: every weight maps to an original name and back, as diffusers' converter maps it."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    comps = SimpleNamespace(**_components(CONFIGS / family, None))
    ldm = diffusers_to_ldm(comps, family)
    back = ldm_to_diffusers(ldm, comps, family)
    for name, state in back.items():
        ref = getattr(comps, name).state_dict()
        assert state.keys() == ref.keys()
        assert all(tuple(state[k].shape) == tuple(ref[k].shape) for k in ref), name
    unet = convert_ldm_unet_checkpoint(ldm, dict(comps.unet.config))
    assert {k: tuple(v.shape) for k, v in unet.items()} == {k: tuple(v.shape) for k, v in back["unet"].items()}
    vae = convert_ldm_vae_checkpoint(ldm, dict(comps.vae.config))
    assert {k: tuple(v.shape) for k, v in vae.items()} == {k: tuple(v.shape) for k, v in back["vae"].items()}


def test_file_without_its_config_folder_uses_shipped_configs_and_explains_a_mismatch(tiny, tmp_path):
    alone = tmp_path / "elsewhere" / "tiny model.safetensors"
    alone.parent.mkdir()
    shutil.copy(tiny["sd15"].single_file, alone)
    with pytest.raises(DanluError) as exc:
        load_pipeline(str(alone))
    assert "sd15" in exc.value.en and exc.value.zh


def test_pickles_and_hub_ids_offline(tmp_path):
    marker = tmp_path / "ran.txt"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("ran",))

    torch.save({"state_dict": {"x": Evil()}}, tmp_path / "bad.ckpt")
    with pytest.raises(DanluError) as exc:
        load_pipeline(str(tmp_path / "bad.ckpt"))
    assert "weights-only" in exc.value.en and not marker.exists()
    with pytest.raises(DanluError) as exc:
        load_pipeline("nobody/no-such-model@main")
    assert "hub" in exc.value.en
    with pytest.raises(DanluError):
        load_pipeline("")


def test_separate_vae_from_a_single_file(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    pipe = load_pipeline(str(tiny["sd15"].folder))
    sd = load_file(str(tiny["sd15"].single_file))
    vae_only = {k: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    save_file(vae_only, str(tmp_path / "vae.safetensors"))
    vae = load_vae(str(tmp_path / "vae.safetensors"), pipe.vae)
    a, b = pipe.vae.state_dict(), vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_old_text_encoder_names_without_text_model_level(tiny):
    """Early SD1 files store cond_stage_model.transformer.embeddings.* (no `text_model.`): still read."""
    pipe = load_pipeline(str(tiny["sd15"].folder))
    sd = diffusers_to_ldm(pipe, "sd15")
    old = {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
           for k, v in sd.items()}
    back = ldm_to_diffusers(old, pipe, "sd15")["text_encoder"]
    ref = pipe.text_encoder.state_dict()
    assert back.keys() == ref.keys() and all(torch.equal(back[k], ref[k]) for k in ref)


def test_hub_ids_go_through_the_hub_cache(tiny, monkeypatch):
    """org/name[@rev] is fetched with snapshot_download (stubbed here: no network in tests) and then detected."""
    import huggingface_hub

    from models.detect import detect

    calls = []

    def fake_snapshot(repo, revision=None, local_files_only=False, **kwargs):
        calls.append((repo, revision, local_files_only, kwargs.get("allow_patterns")))
        return str(tiny["sdxl"].folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    info = detect("someone/tiny-xl@v1.0")
    assert (info.kind, info.family, info.path, info.usable) == ("diffusers", "sdxl", "someone/tiny-xl@v1.0", True)
    pipe = load_pipeline("someone/tiny-xl@v1.0")
    assert resolve_family(pipe) == "sdxl"
    assert calls[0][:3] == ("someone/tiny-xl", "v1.0", True)  # detection only looks in the cache
    fetch = [c for c in calls if not c[2]]
    assert fetch and fetch[0][:2] == ("someone/tiny-xl", "v1.0")
    assert "unet/diffusion_pytorch_model.safetensors" in fetch[0][3]  # safetensors weights only, no pickles
