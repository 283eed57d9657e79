"""The FLUX / Chroma LoRA file in both layouts: on the full-size key set (the real configs' 19 double / 38 single
blocks at width 3072, built without weights, rank-2 LoRA tensors) every key is mapped by ComfyUI's rules and
converted by diffusers' loader, with the ΔW it gives equal to ours; on a tiny model the file loaded through
diffusers' load_lora_weights and fused gives the weights of our own merge."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch

from tests.loader_rules import comfy_flux_key_map, comfy_load, flux_model_keys

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RANK = 2
ALL = ("attention", "mlp", "modulation")


@functools.cache
def full_size(family: str):
    """The real transformer's module tree, no weights (diffusers' default config is FLUX.1's / Chroma's)."""
    from accelerate import init_empty_weights
    from diffusers import ChromaTransformer2DModel, FluxTransformer2DModel

    with init_empty_weights():
        return ChromaTransformer2DModel() if family == "chroma" else FluxTransformer2DModel(guidance_embeds=True)


def random_deltas(transformer, targets, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module: (down, up)} of rank RANK for every target, as a trained LoRA's (scaling folded in)."""
    from models.families.flux import lora

    g = torch.Generator().manual_seed(seed)
    modules = dict(transformer.named_modules())
    return {name: (torch.randn(RANK, modules[name].in_features, generator=g),
                   torch.randn(modules[name].out_features, RANK, generator=g) * 0.01)
            for name in lora.lora_target_modules(transformer, targets)}


@pytest.fixture(scope="module", params=["flux", "chroma"])
def full(request, tmp_path_factory):
    """(family, deltas, {layout: saved file}) of a full-size LoRA on every block linear."""
    from safetensors.torch import save_file

    from models.families.flux import lora

    transformer = full_size(request.param)
    deltas = random_deltas(transformer, ALL)
    folder = tmp_path_factory.mktemp(request.param)
    files = {}
    for layout in lora.LAYOUTS:
        files[layout] = folder / f"{layout}.safetensors"
        save_file(lora.layout_state(deltas, lora.out_features(transformer), layout), files[layout])
    return request.param, deltas, files


def test_targets_are_the_block_linears():
    from models.families.flux import lora

    flux, chroma = full_size("flux"), full_size("chroma")
    assert len(lora.lora_target_modules(flux, ALL)) == 19 * 14 + 38 * 6
    assert len(lora.lora_target_modules(chroma, ALL)) == 19 * 12 + 38 * 5  # no modulation linears
    assert not [n for n in lora.lora_target_modules(chroma, ALL) if "distilled_guidance" in n]
    assert len(lora.lora_target_modules(flux, ("attention",))) == 19 * 8 + 38 * 4
    assert "single_transformer_blocks.3.proj_mlp" in lora.lora_target_modules(flux, ("mlp",))


def test_kohya_names_and_alpha(full):
    from safetensors.torch import load_file

    family, _, files = full
    state = load_file(files["kohya"])
    assert state["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"].shape == (3 * RANK, 3072)
    assert state["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"].shape == (3 * 3072, 3 * RANK)
    assert state["lora_unet_single_blocks_37_linear1.lora_up.weight"].shape == (21504, 4 * RANK)
    # alpha = the module's file rank: every loader's alpha / rank is 1 and the folded delta is applied as is
    assert float(state["lora_unet_double_blocks_0_img_attn_qkv.alpha"]) == 3 * RANK
    assert float(state["lora_unet_single_blocks_0_linear1.alpha"]) == 4 * RANK
    assert float(state["lora_unet_double_blocks_18_img_attn_proj.alpha"]) == RANK
    assert not [k for k in state if k.startswith("diffusion_model.")]
    assert ("lora_unet_double_blocks_0_img_mod_lin.alpha" in state) == (family == "flux")


def comfy_delta(state: dict, x: str) -> torch.Tensor:
    """The ΔW ComfyUI's LoRAAdapter adds for mapped name `x`: up @ down · alpha / rank (alpha = rank if absent)."""
    up = state.get(f"{x}.lora_up.weight", state.get(f"{x}.lora_B.weight"))
    down = state.get(f"{x}.lora_down.weight", state.get(f"{x}.lora_A.weight"))
    alpha = float(state[f"{x}.alpha"]) if f"{x}.alpha" in state else down.shape[0]
    return up @ down * (alpha / down.shape[0])


def test_every_key_mapped_by_comfyui(full):
    """Both layouts: no "lora key not loaded", every patch lands on a weight the model has, and the BFL weight
    sees the same ΔW from either file (q/k/v and proj_mlp on their rows of the fused linears)."""
    from safetensors.torch import load_file

    from tests.loader_rules import flux_to_diffusers

    family, deltas, files = full
    unet = flux_model_keys(19, 38, chroma=family == "chroma")
    key_map = comfy_flux_key_map(unet, 19, 38, 3072)
    patched_by = {}
    for layout, path in files.items():
        state = load_file(path)
        not_loaded, patched = comfy_load(list(state), key_map)
        assert not not_loaded, f"{layout}: ComfyUI would not load {sorted(not_loaded)[:5]}"
        targets = {t if isinstance(t, str) else t[0] for t in patched.values()}
        assert targets <= unet, f"{layout}: patches for weights the model lacks: {sorted(targets - unet)[:5]}"
        patched_by[layout] = (state, patched)
    table = flux_to_diffusers(19, 38, 3072)
    kohya_state, kohya = patched_by["kohya"]
    kohya_by_target = {t: x for x, t in kohya.items()}
    diff_state, _ = patched_by["diffusers"]
    for name in random.Random(1).sample(sorted(deltas), 6):
        target = table[f"{name}.weight"]
        key, rows = (target, None) if isinstance(target, str) else (target[0], target[1])
        ours = deltas[name][1] @ deltas[name][0]
        from_diffusers_layout = comfy_delta(diff_state, f"transformer.{name}")
        from_kohya_layout = comfy_delta(kohya_state, kohya_by_target[key])
        if rows is not None:
            from_kohya_layout = from_kohya_layout[rows[1]:rows[1] + rows[2]]
        assert torch.equal(from_diffusers_layout, ours), name
        assert torch.allclose(from_kohya_layout, ours, rtol=0, atol=1e-7), name  # zero blocks add exact zeros


def test_diffusers_converts_every_key(full):
    """diffusers' FluxLoraLoaderMixin.lora_state_dict (ChromaPipeline's too) keeps every module of both layouts,
    and its lora_B @ lora_A is our ΔW exactly."""
    from diffusers import ChromaPipeline, FluxPipeline

    family, deltas, files = full
    pipeline = ChromaPipeline if family == "chroma" else FluxPipeline
    for layout, path in files.items():
        converted = pipeline.lora_state_dict(str(path))
        modules = {k.removeprefix("transformer.").rsplit(".lora_", 1)[0] for k in converted}
        assert modules == set(deltas), f"{layout}: dropped {sorted(set(deltas) - modules)[:5]}"
        for name in random.Random(2).sample(sorted(deltas), 6):
            a, b = converted[f"transformer.{name}.lora_A.weight"], converted[f"transformer.{name}.lora_B.weight"]
            assert torch.equal(b @ a, deltas[name][1] @ deltas[name][0]), (layout, name)


def test_attention_only_kohya_keeps_linear1_whole():
    """Only attention targeted: linear1's MLP slot is a zero block, so diffusers still splits it (rank ×4)."""
    from safetensors.torch import save_file

    from models.families.flux import lora

    transformer = full_size("flux")
    deltas = {k: v for k, v in random_deltas(transformer, ("attention",)).items() if k.startswith("single_")}
    state = lora.layout_state(deltas, lora.out_features(transformer), "kohya")
    up = state["lora_unet_single_blocks_5_linear1.lora_up.weight"]
    assert up.shape == (21504, 4 * RANK) and not up[3 * 3072:].any()


def tiny_pipeline(family: str):
    """A tiny FLUX / Chroma pipeline holding only its transformer (what load_lora_weights touches)."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    kw = dict(num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
              joint_attention_dim=32, axes_dims_rope=(4, 6, 6))
    if family == "chroma":
        transformer = ChromaTransformer2DModel(**kw, approximator_hidden_dim=32, approximator_num_channels=16)
        return ChromaPipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=None, transformer=transformer)
    transformer = FluxTransformer2DModel(**kw, pooled_projection_dim=32, guidance_embeds=True)
    return FluxPipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=transformer)


@pytest.mark.parametrize("family", ["flux", "chroma"])
def test_tiny_file_fused_by_diffusers_is_our_merge(family, tmp_path):
    """A peft LoRA (alpha ≠ rank) saved in the default layout, loaded with load_lora_weights and fused, gives
    W + scaling · B @ A: the trained adapter's own merge."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from models.families.flux import lora

    trained = tiny_pipeline(family).transformer
    targets = lora.lora_target_modules(trained, ALL)
    trained.add_adapter(LoraConfig(r=RANK, lora_alpha=3 * RANK, target_modules=targets, init_lora_weights=False))
    path = tmp_path / "lora.safetensors"
    save_file(lora.lora_state({"transformer": trained}), path)
    ours = {}
    for name, module in trained.named_modules():
        if name in targets:
            scaling = module.scaling["default"]
            delta = (module.lora_B["default"].weight * scaling) @ module.lora_A["default"].weight
            ours[name] = (module.base_layer.weight + delta).detach()
    pipe = tiny_pipeline(family)
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora()
    fused = dict(pipe.transformer.named_modules())
    for name, weight in ours.items():
        assert torch.equal(fused[name].base_layer.weight if hasattr(fused[name], "base_layer")
                           else fused[name].weight, weight), name


def test_dora_is_refused_in_both_languages():
    from peft import LoraConfig

    from core.errors import DanluError
    from models.families.flux import lora

    transformer = tiny_pipeline("flux").transformer
    transformer.add_adapter(LoraConfig(r=RANK, target_modules=lora.lora_target_modules(transformer), use_dora=True))
    with pytest.raises(DanluError) as e:
        lora.lora_state({"transformer": transformer})
    assert "DoRA" in str(e.value) and e.value.key == "network.use_dora"


def test_metadata_names_the_base_as_sd_scripts_does():
    from models.families.chroma import lora as chroma_lora
    from models.families.flux import lora
    from models.lora_file import CONFIG_KEY

    meta = {"ss_network_dim": "8", "ss_network_alpha": "4", "ss_v_parameterization": "False",
            CONFIG_KEY: "[model]\nvariant = 'schnell'\n"}
    assert lora.lora_metadata(meta)["modelspec.architecture"] == "flux-1-schnell/lora"
    assert lora.lora_metadata({})["modelspec.architecture"] == "flux-1-dev/lora"
    flux = lora.lora_metadata(meta)
    assert (flux["ss_base_model_version"], flux["ss_network_alpha"]) == ("flux1", "8")
    assert "ss_v_parameterization" not in flux
    chroma = chroma_lora.lora_metadata(meta)
    assert (chroma["ss_base_model_version"], chroma["modelspec.architecture"]) == ("chroma", "chroma/lora")


@pytest.mark.parametrize("targets", [ALL, ("attention",)])
def test_toolbox_converts_between_the_layouts(targets, tmp_path):
    """models.toolbox.convert: diffusers → kohya → diffusers keeps every module's ΔW (the convert's own check and
    ours), and an attention-only LoRA keeps its module set (linear1's zero MLP block is not read back as a module)."""
    from peft import LoraConfig
    from safetensors.torch import load_file, save_file

    from models.families.flux import lora
    from models.toolbox.common import open_lora
    from models.toolbox.convert import convert_lora, layout_of, layouts, module_deltas

    transformer = tiny_pipeline("flux").transformer
    transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=1, target_modules=lora.lora_target_modules(
        transformer, targets), init_lora_weights=False))
    original = tmp_path / "my_lora.safetensors"
    save_file(lora.lora_state({"transformer": transformer}), original, metadata={"ss_base_model_version": "flux1"})
    assert layouts("flux") == ("diffusers", "kohya") and layout_of(open_lora(original)) == "diffusers"
    to_kohya = convert_lora(original, tmp_path / "kohya.safetensors", target="kohya")
    assert to_kohya.max_rel_error < 1e-6 and layout_of(open_lora(to_kohya.out)) == "kohya"
    assert "lora_unet_single_blocks_1_linear1.lora_up.weight" in load_file(to_kohya.out)
    back = convert_lora(to_kohya.out, tmp_path / "back.safetensors", target="diffusers")
    before, after = module_deltas(load_file(original)), module_deltas(load_file(back.out))
    assert set(before) == set(after)
    for name, delta in before.items():
        assert torch.allclose(after[name], delta, rtol=0, atol=1e-7), name


# --- FLUX.1's CLIP-L LoRA (network.train_text_encoder) -----------------------------------------------------------

@functools.cache
def full_clip_l():
    """FLUX.1's CLIP-L (openai/clip-vit-large-patch14's text model: 12 layers of width 768), no weights."""
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            projection_dim=768)
    with init_empty_weights():
        return CLIPTextModel(config)


def clip_deltas(clip, seed: int = 3) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{text_encoder.<module>: (down, up)} on the linears the trainer gives CLIP-L a LoRA (training.lora)."""
    from models.families.flux import lora
    from training.lora import _text_targets

    g = torch.Generator().manual_seed(seed)
    modules = dict(clip.named_modules())
    return {lora.clip_name(name): (torch.randn(RANK, modules[name].in_features, generator=g),
                                    torch.randn(modules[name].out_features, RANK, generator=g) * 0.01)
            for name in _text_targets(clip)}


def test_clip_l_part_is_read_by_comfyui_and_diffusers(tmp_path):
    """A full-size FLUX.1 file with CLIP-L's LoRA, in both layouts: ComfyUI maps every CLIP key onto clip_l (lora_te1_
    and text_encoder. names) and loads every key, diffusers' loader keeps every CLIP module under text_encoder. with
    our ΔW exactly; T5 has no key."""
    from diffusers import FluxPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from safetensors.torch import load_file, save_file

    from models.families.flux import lora
    from tests.loader_rules import comfy_clip_key_map

    transformer, clip = full_size("flux"), full_clip_l()
    blocks, te = random_deltas(transformer, ("attention",)), clip_deltas(clip)
    assert len(te) == 12 * 6  # q, k, v, out_proj, fc1, fc2 of each layer
    # ComfyUI's clip_l holds the text model as clip_l.transformer.text_model.<…>
    clip_keys = {"clip_l.transformer." + lora.clip_name(n).removeprefix(lora.TE_PREFIX) + ".weight"
                 for n, m in clip.named_modules() if isinstance(m, torch.nn.Linear)}
    key_map = {**comfy_flux_key_map(flux_model_keys(19, 38), 19, 38, 3072), **comfy_clip_key_map(clip_keys)}
    for layout, prefix in (("diffusers", "text_encoder.text_model"), ("kohya", "lora_te1_text_model")):
        path = tmp_path / f"{layout}.safetensors"
        save_file(lora.layout_state({**blocks, **te}, lora.out_features(transformer), layout), path)
        state = load_file(path)
        assert sum(k.startswith(prefix) for k in state) == len(te) * (3 if layout == "kohya" else 2)
        assert not [k for k in state if "t5" in k.lower() or "te2" in k or "te3" in k]
        not_loaded, patched = comfy_load(list(state), key_map)
        assert not not_loaded, f"{layout}: ComfyUI would not load {sorted(not_loaded)[:5]}"
        clip_patches = {x: t for x, t in patched.items() if isinstance(t, str) and t.startswith("clip_l.")}
        assert len(clip_patches) == len(te)
        for x, target in random.Random(4).sample(sorted(clip_patches.items()), 6):
            name = lora.clip_name(target.removeprefix("clip_l.transformer.").removesuffix(".weight"))
            assert torch.equal(comfy_delta(state, x), te[name][1] @ te[name][0]), (layout, x)
        # lora_state_dict, then the text-encoder step of load_lora_weights (_load_lora_into_text_encoder)
        converted = {k: v for k, v in FluxPipeline.lora_state_dict(str(path)).items() if k.startswith(lora.TE_PREFIX)}
        converted = convert_state_dict_to_peft(convert_state_dict_to_diffusers(converted))
        modules = {k.rsplit(".lora_", 1)[0] for k in converted}
        assert modules == set(te), f"{layout}: dropped {sorted(set(te) - modules)[:5]}"
        for name in random.Random(5).sample(sorted(te), 6):
            a, b = converted[f"{name}.lora_A.weight"], converted[f"{name}.lora_B.weight"]
            assert torch.equal(b @ a, te[name][1] @ te[name][0]), (layout, name)


def test_tiny_clip_lora_loads_whole_and_samples_as_a_fresh_pipeline(tmp_path):
    """The trainer's LoRA on the tiny dev's transformer and CLIP-L (training.lora.inject, as the run adds it) saved
    in the default layout: load_lora_weights puts a LoRA on every trained CLIP linear and, fused, gives our merge;
    the sample rendered from the file (models.generate) equals a fresh FluxPipeline + load_lora_weights render
    bitwise, and differs from the render of the transformer part alone (the CLIP part is applied)."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import save_file

    from models import generate
    from models.families.flux import lora, sample
    from models.families.flux.tiny import build_tiny
    from tests.test_flux_sampling import SIZE, inference, pixels
    from training import lora as training_lora

    def fresh():
        return inference(build_tiny(variant="dev"))

    trained = fresh()
    training_lora.inject(trained.transformer, rank=RANK, alpha=4.0, family="flux", dit_targets=["attention"])
    training_lora.inject(trained.text_encoder, rank=RANK, alpha=4.0, component="text_encoder")
    g = torch.Generator().manual_seed(7)
    for name, p in [*trained.transformer.named_parameters(), *trained.text_encoder.named_parameters()]:
        if "lora_B" in name:  # as if trained: the zero-initialised up factors moved
            p.data = torch.randn(p.shape, generator=g) * 0.3
    both, blocks_only = tmp_path / "both.safetensors", tmp_path / "blocks.safetensors"
    save_file(lora.lora_state({"transformer": trained.transformer, "text_encoder": trained.text_encoder}), both)
    save_file(lora.lora_state({"transformer": trained.transformer}), blocks_only)

    clip_layers = {n: m for n, m in trained.text_encoder.named_modules() if isinstance(m, BaseTunerLayer)}
    loaded = fresh()
    loaded.load_lora_weights(str(both))
    assert {n for n, m in loaded.text_encoder.named_modules() if isinstance(m, BaseTunerLayer)} == set(clip_layers)
    loaded.fuse_lora(components=["transformer", "text_encoder"])  # FluxPipeline fuses the transformer alone else
    fused = dict(loaded.text_encoder.named_modules())
    for name, m in clip_layers.items():
        ours = m.base_layer.weight + (m.lora_B["default"].weight * m.scaling["default"]) @ m.lora_A["default"].weight
        assert torch.equal(fused[name].base_layer.weight, ours.detach()), name

    def ours(path):
        pipe = fresh()
        generate.set_lora_weights(pipe, {generate.load_lora(pipe, path, "my_lora"): 1.0})
        return generate.render(pipe, prompt="a red cat", negative_prompt="blurry", cfg=4.0, **SIZE)

    theirs_pipe = fresh()
    theirs_pipe.load_lora_weights(str(both))
    latents, generator = sample.initial_latents(theirs_pipe, SIZE["seed"], 32, 32)
    with torch.no_grad():  # cfg 4 is true CFG; the distilled guidance input stays 3.5
        theirs = theirs_pipe(prompt="a red cat", negative_prompt="blurry", true_cfg_scale=4.0, guidance_scale=3.5,
                             num_inference_steps=2, width=32, height=32, generator=generator, latents=latents)
    with_clip = pixels(ours(both))
    assert np.array_equal(with_clip, pixels(theirs.images[0]))
    assert not np.array_equal(with_clip, pixels(ours(blocks_only)))


def test_toolbox_converts_the_clip_l_part(tmp_path):
    """models.toolbox.convert on a file with CLIP-L's part: diffusers → kohya gives sd-scripts' lora_te1_ names with
    alpha = rank, and back to diffusers every module's ΔW is the original's exactly."""
    from safetensors.torch import load_file, save_file

    from models.families.flux import lora
    from models.families.flux.tiny import build_tiny
    from models.toolbox.convert import convert_lora, module_deltas
    from training import lora as training_lora

    pipe = build_tiny(variant="dev")
    training_lora.inject(pipe.transformer, rank=RANK, alpha=4.0, family="flux", dit_targets=["attention"])
    training_lora.inject(pipe.text_encoder, rank=RANK, alpha=4.0, component="text_encoder")
    g = torch.Generator().manual_seed(8)
    for name, p in [*pipe.transformer.named_parameters(), *pipe.text_encoder.named_parameters()]:
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=g)
    original = tmp_path / "my_lora.safetensors"
    save_file(lora.lora_state({"transformer": pipe.transformer, "text_encoder": pipe.text_encoder}), original,
              metadata={"ss_base_model_version": "flux1"})
    kohya = load_file(convert_lora(original, tmp_path / "kohya.safetensors", target="kohya").out)
    clip = [k.removesuffix(".alpha") for k in kohya if k.startswith("lora_te1_text_model_encoder_layers_")
            and k.endswith(".alpha")]
    assert len(clip) == 6 * pipe.text_encoder.config.num_hidden_layers
    assert all(float(kohya[f"{c}.alpha"]) == RANK for c in clip)
    back = convert_lora(tmp_path / "kohya.safetensors", tmp_path / "back.safetensors", target="diffusers")
    before, after = module_deltas(load_file(original)), module_deltas(load_file(back.out))
    assert set(before) == set(after) and any(n.startswith("text_encoder.text_model.") for n in before)
    for name, delta in before.items():
        assert torch.equal(after[name], delta), name
