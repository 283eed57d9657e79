"""FLUX.1 (dev, schnell) and Chroma: detection from headers, folders and hub ids; the BFL key map against diffusers'
own converter; loading a transformer file (BFL or diffusers names, fp8) with its parts; the tiny pipelines."""

from __future__ import annotations

import shutil

import pytest
import torch

from models import detect as det

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{dev, schnell, chroma: models.tiny.TinyModel}: each a diffusers folder with its BFL single files beside it."""
    from models.families.flux.tiny import build_tiny, save_transformer_files
    from models.tiny import TinyModel, save_tiny

    root = tmp_path_factory.mktemp("flux")
    models = {"dev": save_tiny("flux", root / "dev"), "chroma": save_tiny("chroma", root / "chroma")}
    pipe = build_tiny(seed=1, variant="schnell")
    pipe.save_pretrained(root / "schnell" / "tiny-schnell")
    models["schnell"] = TinyModel("flux", root / "schnell" / "tiny-schnell",
                                  *save_transformer_files(pipe, root / "schnell", "tiny-schnell"))
    return models


def _same(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("which", "family", "variant"), [("dev", "flux", "dev"), ("schnell", "flux", "schnell"),
                                                         ("chroma", "chroma", "")])
def test_single_files_and_folders(tiny, which, family, variant):
    model = tiny[which]
    for path in (model.single_file, model.prefixed_file, model.folder):
        info = det.detect(str(path))
        assert (info.usable, info.family, info.variant) == (True, family, variant), info.report()
        assert info.prediction_type == "flow" and info.native_resolution == 1024
    report = det.detect(str(model.single_file)).report()
    assert f"({family})" + (f", variant {variant}" if variant else "") in report
    assert "taken from" in report  # the parts found in the diffusers folder beside the file


@pytest.mark.parametrize("which", ["dev", "schnell", "chroma"])
def test_single_file_round_trip_gives_the_same_transformer(tiny, which):
    """to_file_keys wrote the files; loading them gives the folder's transformer weight for weight."""
    from models.loading import load_pipeline

    ref = load_pipeline(str(tiny[which].folder))
    for path in (tiny[which].single_file, tiny[which].prefixed_file):
        pipe = load_pipeline(str(path))
        assert type(pipe) is type(ref) and _same(pipe.transformer, ref.transformer)
        assert pipe.transformer.config.axes_dims_rope == ref.transformer.config.axes_dims_rope


@pytest.mark.parametrize("family", ["flux", "chroma"])
def test_key_map_matches_diffusers_converter_at_full_width(family):
    """diffusers' own BFL converters hard-code the real width (3072), so the map is checked at that width: every
    tensor has the real model's rows (one block of each kind, a single column), converted both ways."""
    from accelerate import init_empty_weights
    from diffusers import ChromaTransformer2DModel, FluxTransformer2DModel
    from diffusers.loaders import single_file_utils as sfu

    from models.families.flux.keys import from_file_keys, to_file_keys

    gen = torch.Generator().manual_seed(0)
    with init_empty_weights():
        model = (FluxTransformer2DModel(num_layers=1, num_single_layers=1, guidance_embeds=True) if family == "flux"
                 else ChromaTransformer2DModel(num_layers=1, num_single_layers=1, approximator_layers=1))
    state = {k: torch.randn(v.shape[0], *([1] if v.dim() > 1 else []), generator=gen)
             for k, v in model.state_dict().items()}
    bfl = to_file_keys(state)
    convert = (sfu.convert_flux_transformer_checkpoint_to_diffusers if family == "flux"
               else sfu.convert_chroma_transformer_checkpoint_to_diffusers)
    theirs = convert({"model.diffusion_model." + k: v for k, v in bfl.items()})
    assert theirs.keys() == state.keys() and all(torch.equal(theirs[k], state[k]) for k in state)
    ours = from_file_keys(bfl)
    assert ours.keys() == state.keys() and all(torch.equal(ours[k], state[k]) for k in state)


def test_real_size_config_is_inferred_from_the_weights():
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel

    from models.families.flux.load import infer_config

    with init_empty_weights():
        state = FluxTransformer2DModel(guidance_embeds=True).state_dict()  # FLUX.1-dev's shapes
    config = infer_config(state, "flux")
    assert (config["num_layers"], config["num_single_layers"], config["num_attention_heads"]) == (19, 38, 24)
    assert config["axes_dims_rope"] == [16, 56, 56] and config["guidance_embeds"] is True
    assert (config["joint_attention_dim"], config["pooled_projection_dim"]) == (4096, 768)


def test_diffusers_named_and_fp8_files(tiny, tmp_path):
    from safetensors.torch import save_file

    from models.loading import load_pipeline

    ref = load_pipeline(str(tiny["dev"].folder))
    state = {k: v.contiguous() for k, v in ref.transformer.state_dict().items()}
    named = tmp_path / "dev" / "diffusers-named.safetensors"
    named.parent.mkdir()
    save_file(state, str(named))
    shutil.copytree(tiny["dev"].folder, tmp_path / "dev" / "parts")
    info = det.detect(str(named))
    assert (info.usable, info.family, info.variant) == (True, "flux", "dev"), info.report()
    assert _same(load_pipeline(str(named)).transformer, ref.transformer)
    # fp8 e4m3fn as published: detected as fp8, loaded upcast to fp32.
    fp8 = tmp_path / "dev" / "flux1-dev-fp8.safetensors"
    save_file({k: v.to(torch.float8_e4m3fn) for k, v in state.items()}, str(fp8))
    info = det.detect(str(fp8))
    assert info.usable and info.precision.startswith("fp8"), info.report()
    loaded = load_pipeline(str(fp8)).transformer.state_dict()
    assert all(torch.equal(loaded[k], state[k].to(torch.float8_e4m3fn).float()) for k in state)
    # ComfyUI's "scaled fp8": refused by name at detection and at loading.
    scaled = tmp_path / "dev" / "flux1-dev-fp8-scaled.safetensors"
    save_file({**{k: v.to(torch.float8_e4m3fn) for k, v in state.items()}, "scaled_fp8": torch.zeros(1)},
              str(scaled))
    info = det.detect(str(scaled))
    assert not info.usable and "scaled fp8" in info.problem_en and "scaled fp8" in info.problem_zh


def _parts_files(tiny, root):
    """ComfyUI's models/ folders made from the tiny dev model: T5, CLIP-L, the VAE (BFL/LDM names) as files."""
    from diffusers import FluxPipeline
    from safetensors.torch import save_file

    from models.ldm import _rename, vae_prefix_map

    pipe = FluxPipeline.from_pretrained(tiny["dev"].folder)
    for d in ("diffusion_models", "text_encoders", "clip", "vae"):
        (root / d).mkdir(parents=True)
    model = shutil.copy(tiny["dev"].prefixed_file, root / "diffusion_models" / "flux1-dev.safetensors")
    t5 = {k: v.contiguous() for k, v in pipe.text_encoder_2.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(t5, str(root / "text_encoders" / "t5xxl_fp16.safetensors"))
    save_file({"text_model." + k.removeprefix("text_model."): v.contiguous()  # ComfyUI's clip_l names
               for k, v in pipe.text_encoder.state_dict().items()}, str(root / "clip" / "clip_l.safetensors"))
    vmap = vae_prefix_map(dict(pipe.vae.config))
    save_file({_rename(k, vmap): v.contiguous() for k, v in pipe.vae.state_dict().items()},
              str(root / "vae" / "ae.safetensors"))
    return pipe, model


def test_comfyui_folders_give_t5_clip_and_vae(tiny, tmp_path, monkeypatch):
    from models.loading import load_pipeline

    ref, path = _parts_files(tiny, tmp_path / "models")
    configs = tmp_path / "flux-configs"  # the hub repo's configs and tokenizers, already downloaded
    shutil.copytree(tiny["dev"].folder, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr("core.download.cached", lambda repo, rev=None: configs)
    report = det.detect(str(path)).report()
    assert all(n in report for n in ("t5xxl_fp16.safetensors", "clip_l.safetensors", "ae.safetensors")), report
    pipe = load_pipeline(str(path))
    for part in ("transformer", "text_encoder", "text_encoder_2", "vae"):
        assert _same(getattr(pipe, part), getattr(ref, part)), part


def test_parts_and_other_files_given_as_base_are_refused(tiny, tmp_path):
    from safetensors.torch import save_file

    from models.families import flux

    _parts_files(tiny, tmp_path / "models")
    for path, what, zh in (("text_encoders/t5xxl_fp16.safetensors", "T5-XXL text encoder", "T5-XXL 文本编码器"),
                           ("clip/clip_l.safetensors", "CLIP-L text encoder", "CLIP-L 文本编码器"),
                           ("vae/ae.safetensors", "16-channel VAE", "16 通道 VAE")):
        info = det.detect(str(tmp_path / "models" / path))
        assert not info.usable and what in info.problem_en and zh in info.problem_zh, info.report()
    from models.files import read_header

    vae = read_header(tmp_path / "models" / "vae" / "ae.safetensors")[0]
    assert "FLUX.1 or Chroma transformer" in flux.other_part(vae)[2]  # FLUX's own words for the shared VAE
    flux2 = tmp_path / "flux2.safetensors"
    save_file({"double_blocks.0.img_attn.norm.key_norm.scale": torch.ones(2),
               "single_stream_modulation.lin.weight": torch.ones(2, 2)}, str(flux2))
    info = det.detect(str(flux2))
    assert not info.usable and "FLUX.2" in info.problem_en and "FLUX.2" in info.problem_zh


@pytest.mark.parametrize(("meta", "label"), [({"ss_base_model_version": "flux1"}, "FLUX.1"),
                                             ({"ss_base_model_version": "chroma"}, "Chroma"), ({}, "FLUX.1")])
def test_lora_given_as_base_names_its_family(tmp_path, meta, label):
    from safetensors.torch import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.zeros(24, 4)}, str(path), metadata=meta)
    info = det.detect(str(path))
    assert not info.usable and f"LoRA for {label}" in info.problem_en, info.report()


def test_hub_id_fetches_the_repo_and_loads_it(tiny, monkeypatch):
    from models.loading import load_pipeline

    fetched = []
    monkeypatch.setattr("core.download.cached", lambda repo, rev=None: tiny["schnell"].folder)
    monkeypatch.setattr("core.download.fetch", lambda repo, patterns=None, **kw: fetched.append(
        (repo, patterns)) or tiny["schnell"].folder)
    info = det.detect("black-forest-labs/FLUX.1-schnell")
    assert (info.usable, info.family, info.variant) == (True, "flux", "schnell"), info.report()
    pipe = load_pipeline("black-forest-labs/FLUX.1-schnell")
    assert type(pipe).__name__ == "FluxPipeline" and "transformer/*.safetensors" in fetched[0][1]
    assert "text_encoder_2/*" in fetched[0][1] and "tokenizer_2/*" in fetched[0][1]


def test_check_cli_reports_family_and_variant(tiny, capsys):
    assert det.main([str(tiny["schnell"].single_file), "--no-hash", "--lang", "en"]) == 0
    assert "Family: FLUX.1 (flux), variant schnell" in capsys.readouterr().out
    assert det.main([str(tiny["chroma"].prefixed_file), "--no-hash", "--lang", "zh"]) == 0
    assert "系列: Chroma (chroma)" in capsys.readouterr().out


@pytest.mark.parametrize("which", ["dev", "schnell", "chroma"])
def test_tiny_pipelines_render_32px_and_encode_prompts(tiny, which):
    from models.families.flux.load import encode_prompts
    from models.loading import load_pipeline

    pipe = load_pipeline(str(tiny[which].folder))
    kw = {"dev": dict(guidance_scale=3.5), "schnell": dict(guidance_scale=0.0),
          "chroma": dict(guidance_scale=4.0, negative_prompt="blurry")}[which]
    image = pipe("demo, a red square", height=32, width=32, num_inference_steps=2, output_type="np",
                 generator=torch.Generator().manual_seed(0), **kw).images
    assert image.shape == (1, 32, 32, 3) and bool((image.std() > 0.01) & (abs(image) < 2).all())
    embeds, pooled, mask = encode_prompts(pipe, ["demo, a red square", "demo"])
    assert embeds.shape[:2] == (2, 256 if which == "schnell" else 512)
    if which == "chroma":
        # the real tokens and one padding token, as a bool mask (diffusers' float mask does not mask: #13619)
        assert pooled is None and mask.dtype == torch.bool
        lengths = [sum(m) for m in pipe.tokenizer(["demo, a red square", "demo"]).attention_mask]
        assert mask.sum(1).tolist() == [n + 1 for n in lengths]
    else:
        assert pooled.shape == (2, 32) and mask is None


@pytest.mark.parametrize(("family", "variant", "preset"), [("flux", "dev", "flux_dev_24gb"), ("chroma", "", "chroma")])
def test_demo_writes_its_own_folder(tmp_path, family, variant, preset):
    from core import config as cfgmod
    from core.config.presets import PRESETS
    from models.demo import DEMO_DIR, family_folder, make_demo

    assert family_folder(DEMO_DIR, family) == DEMO_DIR / family
    run = make_demo(tmp_path / family, family)
    cfg = cfgmod.load(run)
    assert cfg.model.family == family and det.detect(cfg.model.base).family == family
    assert cfg.model.base == str(tmp_path / family / "base" / f"tiny-{family}")
    assert not variant or cfg.model.variant == variant
    assert cfg.training.timestep_type == PRESETS[preset]["training"]["timestep_type"]  # the preset, scaled down
    assert (cfg.training.device, cfg.training.fp8_base, cfg.sampling.width) == ("cpu", False, 64)


def test_model_tab_choice_sets_the_variant_and_says_the_licence(tiny):
    from core import config as cfgmod
    from ui.families import flux as flux_ui
    from ui.tab_model import check_info

    start = cfgmod.to_dict(cfgmod.default_config())  # model.variant is Z-Image's "turbo" until a FLUX base is chosen
    for which, note in (("schnell", False), ("dev", True)):
        config, _, message, info = check_info(str(tiny[which].single_file), start, "en")
        assert (config["model"]["variant"], config["network"]["train_text_encoder"]) == (which, False)
        assert ("non-commercial licence" in message.to("en")) is note
        assert ("非商业许可" in message.to("zh")) is note
    config, notes = flux_ui.on_chosen(start, [], "zh")  # nothing told: dev, and its licence
    assert config["model"]["variant"] == "dev" and any("非商业许可" in n for n in notes)
