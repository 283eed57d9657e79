"""LoRA toolbox, merge and convert: LoRAs into one (exact concatenation, SVD with the retained share), LoRAs into a
base checkpoint that renders what the base with the LoRA renders, and layout conversion that keeps every ΔW."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_parity import assert_images_within_rounding
from merged_files import render, tiny_with_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_factors(name, p, gen):
    p.data = torch.randn(p.shape, generator=gen) * 0.2


def _kohya_lora(family: str, path, seed: int = 1, **inject_kw):
    """A tiny kohya LoRA file (rank 4, alpha 2, LoCon convs) with every factor random."""
    from models.lora_file import base_model_version, peft_to_kohya, save_lora

    torch.manual_seed(seed)
    _, comps = tiny_with_adapter(family, _randomise_factors, conv_dim=4, **inject_kw)
    state = peft_to_kohya(comps, family)
    save_lora(path, state, {"ss_network_dim": 4, "ss_network_alpha": 2.0,
                            "ss_base_model_version": base_model_version(family)}, precision="float")
    return path


@pytest.fixture(scope="module")
def sd15_files(tmp_path_factory):
    from models.tiny import save_tiny

    folder = tmp_path_factory.mktemp("merge")
    tiny = save_tiny("sd15", folder)
    return tiny, _kohya_lora("sd15", folder / "a.safetensors", 1), _kohya_lora("sd15", folder / "b.safetensors", 2)


def _beside_configs(tiny, out):
    """The tiny model's configs beside the output (as models.loading finds them for a tiny single file)."""
    out.with_suffix("").symlink_to(tiny.folder, target_is_directory=True)
    return out


def _deltas(path):
    from models.toolbox.common import open_lora
    from models.toolbox.convert import module_deltas

    lora = open_lora(path)
    return module_deltas({k: lora.tensor(k) for parts in lora.modules.values() for k in parts.values()})


def test_merge_concatenates_exactly_then_cuts_by_svd(sd15_files, tmp_path):
    from models.toolbox.merge import merge_loras

    _, a, b = sd15_files
    da, db = _deltas(a), _deltas(b)
    report = merge_loras([(a, 0.7), (b, -0.4)], tmp_path / "ab.safetensors")
    assert report.exact and {m.rank for m in report.modules} == {8}
    merged = _deltas(report.out)
    for name, delta in merged.items():
        expect = 0.7 * da[name] - 0.4 * db[name]
        assert torch.allclose(delta, expect, atol=1e-6 * float(expect.abs().max())), name
    cut = merge_loras([(a, 0.7), (b, -0.4)], tmp_path / "ab4.safetensors", rank=4)
    assert not cut.exact and {m.rank for m in cut.modules if m.cut} == {4}
    for m, (name, delta) in zip(cut.modules, sorted(_deltas(cut.out).items())):
        assert m.name == name
        full = merged[name]
        s = torch.linalg.svdvals(full)
        best = s[:4].square().sum().sqrt() / s.square().sum().sqrt()
        assert m.fro_retained == pytest.approx(float(best), rel=1e-4)  # the truncated SVD, Eckart–Young
        assert float((full - delta).norm() / full.norm()) == pytest.approx(float((1 - best ** 2).sqrt()), abs=1e-4)
    assert "SVD" in cut.text("en") and "%" in cut.text("zh")


def test_merge_refuses_other_families_and_overwriting(sd15_files, tmp_path):
    from core.errors import DanluError
    from models.toolbox.merge import merge_loras

    _, a, _ = sd15_files
    xl = _kohya_lora("sdxl", tmp_path / "xl.safetensors")
    with pytest.raises(DanluError, match="SDXL"):
        merge_loras([(a, 1.0), (xl, 1.0)], tmp_path / "mix.safetensors")
    with pytest.raises(DanluError, match="overwritten"):
        merge_loras([(a, 1.0)], a)


def test_merged_checkpoint_renders_the_base_with_the_lora(sd15_files, tmp_path):
    """The merged single file, loaded as a base, renders what the base renders with the LoRA at that weight
    (diffusers' load_lora_weights + set_adapters, the path a user's diffusers script takes)."""
    from models.generate import load_lora, open_pipeline, set_lora_weights
    from models.toolbox.merge import merge_into_base

    tiny, a, _ = sd15_files
    out = _beside_configs(tiny, tmp_path / "merged.safetensors")
    merge_into_base(tiny.single_file, [(a, 0.6)], out)
    from models.files import read_header

    assert {k: v for k, v in read_header(out)[0].items()}.keys() == read_header(tiny.single_file)[0].keys()
    with_lora = open_pipeline(str(tiny.single_file), family="sd15")
    with_lora.set_progress_bar_config(disable=True)
    base_img = render(with_lora)
    set_lora_weights(with_lora, {load_lora(with_lora, a, "a"): 0.6})
    merged = open_pipeline(str(out), family="sd15")
    merged.set_progress_bar_config(disable=True)
    from_file = render(merged)
    assert_images_within_rounding(from_file, render(with_lora), 255)
    assert np.abs(from_file - base_img).max() > 0


@pytest.mark.parametrize("kind", ["loha", "dora"])
def test_loha_and_dora_merge_as_the_loaders_apply_them(sd15_files, tmp_path, kind):
    """A LoHa / DoRA file merged into the checkpoint = the same file merged into a loaded base as WebUI and ComfyUI
    do (models.lycoris), at weight 0.8: the checkpoint's UNet and text-encoder weights match."""
    from models.generate import open_pipeline
    from models.lycoris import merge_file
    from models.toolbox.merge import merge_into_base

    tiny, _, _ = sd15_files
    lora = _kohya_lora("sd15", tmp_path / f"{kind}.safetensors", 3,
                       **({"algo": "loha"} if kind == "loha" else {"use_dora": True}))
    out = _beside_configs(tiny, tmp_path / f"merged-{kind}.safetensors")
    merge_into_base(tiny.single_file, [(lora, 0.8)], out)
    loaded = open_pipeline(str(tiny.single_file), family="sd15")
    merge_file(loaded, lora, "sd15", 0.8)
    merged = open_pipeline(str(out), family="sd15")
    for part in ("unet", "text_encoder"):
        a, b = getattr(loaded, part).state_dict(), getattr(merged, part).state_dict()
        moved = [k for k in a if not torch.equal(a[k], b[k])]
        assert not moved, moved[:3]


def test_convert_kohya_peft_round_trip_keeps_every_delta(sd15_files, tmp_path):
    from models.toolbox.common import open_lora
    from models.toolbox.convert import convert_lora, layout_of

    _, a, _ = sd15_files
    report = convert_lora(a, tmp_path / "a-peft.safetensors", target="peft")
    peft = open_lora(report.out)
    assert layout_of(peft) == "peft" and all(k.startswith(("unet.", "text_encoder.")) for k in peft.shapes)
    assert report.keys_before == 3 * report.modules and report.keys_after == 2 * report.modules
    assert report.max_rel_error < 1e-6
    back = convert_lora(report.out, tmp_path / "a-kohya.safetensors", target="kohya")
    assert set(open_lora(back.out).shapes) == set(open_lora(a).shapes)
    da, dback = _deltas(a), _deltas(back.out)
    assert all(torch.allclose(da[n], dback[n], atol=1e-6 * float(da[n].abs().max())) for n in da)
    # diffusers loads the peft file as it loads the kohya one: the same image at weight 0.8
    from models.generate import load_lora, set_lora_weights
    from models.tiny import build_tiny

    images = []
    for path in (a, report.out):
        pipe = build_tiny("sd15", seed=0)
        pipe.set_progress_bar_config(disable=True)
        set_lora_weights(pipe, {load_lora(pipe, path, "x"): 0.8})
        images.append(render(pipe))
    assert_images_within_rounding(images[0], images[1], 255)


def test_convert_sdxl_block_names_to_peft(tmp_path):
    """SDXL's kohya names are the SAI block names; peft names are the diffusers paths that diffusers loads."""
    from models.toolbox.common import open_lora
    from models.toolbox.convert import convert_lora

    xl = _kohya_lora("sdxl", tmp_path / "xl.safetensors")
    report = convert_lora(xl, tmp_path / "xl-peft.safetensors", target="peft")
    keys = set(open_lora(report.out).shapes)
    assert any(k.startswith("unet.down_blocks.1.attentions.0.") for k in keys)
    assert any(k.startswith("text_encoder_2.") for k in keys)
    assert report.max_rel_error < 1e-6


@pytest.fixture(scope="module")
def dit_files(tmp_path_factory):
    """The tiny DiT model's transformer file (single-file names, fused qkv) and a random LoRA on its diffusers
    names, as a trainer of that family writes it."""
    from models import families
    from models.lora_file import base_model_version, save_lora
    from models.tiny import FAMILIES, build_tiny, save_tiny

    family = next(f for f in FAMILIES if families.dit_module(f) is not None)
    dit = families.dit_module(family)
    folder = tmp_path_factory.mktemp("dit")
    tiny = save_tiny(family, folder)
    transformer = build_tiny(family, seed=0).transformer
    gen = torch.Generator().manual_seed(5)
    state = {}
    for name in families.part(dit, "lora").lora_target_modules(transformer):
        weight = dict(transformer.named_modules())[name].weight
        state[f"{dit.LORA_PREFIX}{name}.lora_A.weight"] = torch.randn(4, weight.shape[1], generator=gen) * 0.2
        state[f"{dit.LORA_PREFIX}{name}.lora_B.weight"] = torch.randn(weight.shape[0], 4, generator=gen) * 0.2
    lora = folder / "dit-lora.safetensors"
    save_lora(lora, state, {"ss_network_dim": 4, "ss_base_model_version": base_model_version(family)}, "float")
    return family, tiny, lora, state


def test_dit_convert_fuses_qkv_and_back(dit_files, tmp_path):
    from models.toolbox.common import open_lora
    from models.toolbox.convert import convert_lora, layout_of, layouts

    family, _, lora, state = dit_files
    diffusers_layout, file_layout = layouts(family)
    assert layout_of(open_lora(lora)) == diffusers_layout
    fused = convert_lora(lora, tmp_path / "fused.safetensors", target=file_layout)
    assert layout_of(open_lora(fused.out)) == file_layout
    assert fused.keys_after < fused.keys_before and fused.max_rel_error < 1e-6  # three layers became one
    assert any(".attention.qkv." in k for k in open_lora(fused.out).shapes)
    back = convert_lora(fused.out, tmp_path / "back.safetensors", target=diffusers_layout)
    restored = open_lora(back.out)
    assert set(restored.shapes) == set(state)
    for key, value in state.items():  # zero columns dropped: the same factors come back
        assert torch.allclose(restored.tensor(key), value, atol=1e-7), key


def test_dit_lora_merges_into_the_transformer_file(dit_files, tmp_path):
    """The merged transformer file keeps the base's keys and dtypes; its weights are base + weight · ΔW for the
    LoRA's layers (q/k/v fused back into qkv) and bitwise the base elsewhere; a fused-layout LoRA merges the same."""
    from models import families
    from models.files import read_header
    from models.toolbox.convert import convert_lora, file_names, layouts
    from models.toolbox.merge import merge_into_base

    family, tiny, lora, state = dit_files
    dit = families.dit_module(family)
    base = tiny.prefixed_file
    out = merge_into_base(base, [(lora, 0.5)], tmp_path / "merged.safetensors").out
    assert read_header(out)[0] == read_header(base)[0]
    from safetensors.torch import load_file

    names = file_names(dit)
    before, after = names.from_file_keys(load_file(base)), names.from_file_keys(load_file(out))
    patched = {k[len(dit.LORA_PREFIX):-len(".lora_A.weight")] + ".weight" for k in state
               if k.endswith("lora_A.weight")}
    for key, weight in before.items():
        if key not in patched:
            assert torch.equal(after[key], weight), key
            continue
        name = dit.LORA_PREFIX + key.removesuffix(".weight")
        delta = state[f"{name}.lora_B.weight"] @ state[f"{name}.lora_A.weight"]
        assert torch.allclose(after[key].float(), (weight.float() + 0.5 * delta).to(weight.dtype).float(), atol=1e-6)
    fused = convert_lora(lora, tmp_path / "fused.safetensors", target=layouts(family)[1]).out
    again = merge_into_base(base, [(fused, 0.5)], tmp_path / "merged2.safetensors").out
    a, b = load_file(out), load_file(again)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_fp16_base_stays_fp16_and_merges_as_loaders_do(sd15_files, tmp_path):
    """An fp16 checkpoint is merged in fp32 and written back in fp16, key for key: what a loader computes from
    the fp16 weights (W16 → fp32, + ΔW, → fp16)."""
    from models.files import read_header
    from models.generate import open_pipeline
    from models.lycoris import merge_file
    from models.tiny import save_single_file
    from models.toolbox.merge import merge_into_base

    tiny, a, _ = sd15_files
    base = _beside_configs(tiny, tmp_path / "half.safetensors")
    save_single_file(open_pipeline(str(tiny.single_file), family="sd15"), base, "sd15", dtype=torch.float16)
    out = _beside_configs(tiny, tmp_path / "half-merged.safetensors")
    merge_into_base(base, [(a, 1.0)], out)
    assert read_header(out)[0] == read_header(base)[0]
    expect = open_pipeline(str(base), family="sd15")
    merge_file(expect, a, "sd15", 1.0)
    merged = open_pipeline(str(out), family="sd15")
    for part in ("unet", "text_encoder"):
        want, got = getattr(expect, part).state_dict(), getattr(merged, part).state_dict()
        differ = [k for k in want if not torch.equal(want[k].half().float(), got[k])]
        assert not differ, differ[:3]


def test_merge_into_base_cancelled_midway_leaves_no_file(sd15_files, tmp_path):
    """Cancel while the checkpoint is being written: Cancelled, and neither the output nor its temporary file is
    left in the folder; the base itself as output is refused before any work."""
    from core.errors import DanluError
    from models.toolbox.common import Cancelled, Job
    from models.toolbox.merge import merge_into_base

    tiny, a, _ = sd15_files
    folder = tmp_path / "out"
    folder.mkdir()
    seen: list[int] = []
    job = Job(progress=lambda done, total, what: seen.append(done), cancel=lambda: len(seen) >= 5)
    with pytest.raises(Cancelled):
        merge_into_base(tiny.single_file, [(a, 0.6)], folder / "merged.safetensors", job=job)
    assert seen == [0, 1, 2, 3, 4] and list(folder.iterdir()) == []
    with pytest.raises(DanluError, match="overwritten"):
        merge_into_base(tiny.single_file, [(a, 0.6)], tiny.single_file)


def test_a_lora_that_does_not_fit_the_base_is_refused_in_both_languages(sd15_files, tmp_path):
    from safetensors.torch import load_file, save_file

    from core.errors import DanluError
    from models.toolbox.merge import merge_into_base

    tiny, a, _ = sd15_files
    state = load_file(str(a))
    odd = tmp_path / "odd.safetensors"
    save_file({k.replace("lora_unet_", "lora_unet_nowhere_", 1): v for k, v in state.items()}, str(odd))
    with pytest.raises(DanluError) as err:
        merge_into_base(tiny.single_file, [(odd, 1.0)], tmp_path / "never.safetensors")
    assert "odd.safetensors" in err.value.en and "match no layer" in err.value.en
    assert "找不到对应的层" in err.value.zh and not (tmp_path / "never.safetensors").exists()
