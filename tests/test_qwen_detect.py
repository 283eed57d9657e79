"""Qwen-Image: detection from single files (diffusers names, ComfyUI's prefix, fp8), folders and hub ids; the variants
(image, edit, edit_2509, edit_2511) from pipeline classes and names; loading a transformer file with its parts; the
tiny pipeline, whose tokenizer drops the template's 34 tokens as the real one, and encode_prompts; the demo."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from models import detect as det

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """models.tiny.TinyModel: the tiny diffusers folder with its transformer files beside it."""
    from models.tiny import save_tiny

    return save_tiny("qwen_image", tmp_path_factory.mktemp("qwen"))


def _same(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_single_files_and_folder(tiny):
    for path in (tiny.single_file, tiny.prefixed_file, tiny.folder):
        info = det.detect(str(path))
        assert (info.usable, info.family, info.variant) == (True, "qwen_image", "image"), info.report()
        assert info.prediction_type == "flow" and info.native_resolution == 1024
    report = det.detect(str(tiny.single_file)).report()
    assert "Qwen-Image (qwen_image), variant image" in report
    assert f"taken from {tiny.folder}" in report  # the parts found in the diffusers folder beside the file


@pytest.mark.parametrize(("name", "variant"), [
    ("qwen_image_bf16.safetensors", "image"), ("Qwen/Qwen-Image", "image"),
    ("qwen_image_edit_bf16.safetensors", "edit"), ("Qwen/Qwen-Image-Edit", "edit"),
    ("qwen_image_edit_2509_bf16.safetensors", "edit_2509"), ("Qwen/Qwen-Image-Edit-2509", "edit_2509"),
    ("qwen_image_edit_plus", "edit_2509"),  # ai-toolkit's arch name for 2509
    ("qwen_image_edit_2511_bf16.safetensors", "edit_2511"), ("qwen_image_edit_plus:2511", "edit_2511"),
    ("models--Qwen--Qwen-Image-Edit-2511", "edit_2511"), ("my_merge_v3.safetensors", None)])
def test_variant_from_names(name, variant):
    from models.families import qwen_image

    assert qwen_image.variant_from_name(name) == variant


def test_edit_folders_and_unnamed_files(tiny, tmp_path):
    """The pipeline class says edit / EditPlus; EditPlus is 2511 by the hub cache's repo name. A renamed file says
    nothing: the report asks for the variant. Edit models are recognised and said to be trained in a later version."""
    for repo, cls, variant in (("Qwen-Image-Edit", "QwenImageEditPipeline", "edit"),
                               ("Qwen-Image-Edit-2509", "QwenImageEditPlusPipeline", "edit_2509"),
                               ("Qwen-Image-Edit-2511", "QwenImageEditPlusPipeline", "edit_2511")):
        folder = tmp_path / f"models--Qwen--{repo}" / "snapshots" / "0123abc"
        shutil.copytree(tiny.folder, folder)
        index = json.loads((folder / "model_index.json").read_text())
        (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": cls}))
        info = det.detect(str(folder))
        assert (info.usable, info.family, info.variant) == (True, "qwen_image", variant), info.report()
        assert "later version" in info.report("en") and "后续版本" in info.report("zh")
    renamed = tmp_path / "renamed" / "my_merge_v3.safetensors"
    renamed.parent.mkdir()
    shutil.copy(tiny.single_file, renamed)
    info = det.detect(str(renamed))
    assert (info.usable, info.variant) == (True, ""), info.report()
    assert "model.variant" in info.report("en") and "请选择版本" in info.report("zh")
    assert "will be downloaded from Qwen/Qwen-Image" in info.report("en")  # no parts beside it


def test_file_round_trip_fp8_and_scaled_fp8(tiny, tmp_path):
    from safetensors.torch import save_file

    from models.loading import load_pipeline

    ref = load_pipeline(str(tiny.folder))
    assert type(ref).__name__ == "QwenImagePipeline"
    for path in (tiny.single_file, tiny.prefixed_file):
        pipe = load_pipeline(str(path))
        assert type(pipe) is type(ref) and _same(pipe.transformer, ref.transformer)
        assert _same(pipe.text_encoder, ref.text_encoder) and _same(pipe.vae, ref.vae)
        assert pipe.transformer.config.axes_dims_rope == ref.transformer.config.axes_dims_rope
    state = {k: v.contiguous() for k, v in ref.transformer.state_dict().items()}
    fp8 = tiny.single_file.parent / "qwen_image_fp8_e4m3fn.safetensors"
    save_file({k: v.to(torch.float8_e4m3fn) for k, v in state.items()}, str(fp8))
    info = det.detect(str(fp8))
    assert info.usable and info.precision.startswith("fp8") and info.variant == "image", info.report()
    loaded = load_pipeline(str(fp8)).transformer.state_dict()
    assert all(torch.equal(loaded[k], state[k].to(torch.float8_e4m3fn).float()) for k in state)
    scaled = tmp_path / "qwen_image_fp8_scaled.safetensors"
    save_file({**{k: v.to(torch.float8_e4m3fn) for k, v in state.items()}, "scaled_fp8": torch.zeros(1)}, str(scaled))
    info = det.detect(str(scaled))
    assert not info.usable and "scaled fp8" in info.problem_en and "scaled fp8" in info.problem_zh


def test_real_size_config_is_inferred_from_the_weights():
    from accelerate import init_empty_weights
    from diffusers import QwenImageTransformer2DModel

    from models.families.qwen_image.load import infer_config

    with init_empty_weights():
        state = QwenImageTransformer2DModel().state_dict()  # Qwen-Image's shapes (diffusers' defaults)
    config = infer_config(state)
    assert (config["num_layers"], config["num_attention_heads"], config["attention_head_dim"]) == (60, 24, 128)
    assert (config["in_channels"], config["out_channels"], config["joint_attention_dim"]) == (64, 16, 3584)
    assert config["axes_dims_rope"] == [16, 56, 56]


def test_parts_and_loras_given_as_base_are_refused(tiny, tmp_path):
    """Qwen2.5-VL and the causal VAE are named as Qwen-Image's (the VAE not as Z-Image's or FLUX's 2-D one); a
    LoRA by musubi-tuner (kohya names) or ai-toolkit (diffusion_model.) is a LoRA for Qwen-Image, not FLUX."""
    from safetensors.torch import save_file

    for sub, what, zh in (("text_encoder/model.safetensors", "Qwen2.5-VL text encoder", "Qwen2.5-VL 文本编码器"),
                          ("vae/diffusion_pytorch_model.safetensors", "Qwen-Image / Wan 2.1 VAE",
                           "Qwen-Image / Wan 2.1 的 VAE")):
        info = det.detect(str(tiny.folder / sub))
        assert not info.usable and what in info.problem_en and zh in info.problem_zh, info.report()
        assert "Qwen-Image transformer" in info.hint_en
    # ComfyUI's split files name them their own way: qwen_2.5_vl_7b (HF names, `model.` and `visual.`) and
    # qwen_image_vae (Wan's names: conv1, decoder.middle…).
    embed = {"model.embed_tokens.weight": [8, 4]}
    comfy = {"qwen_2.5_vl_7b.safetensors": ({**embed, "model.layers.0.self_attn.q_proj.bias": [4],
                                             "visual.blocks.0.attn.qkv.weight": [12, 4]}, "Qwen2.5-VL"),
             "qwen_image_vae.safetensors": ({"conv1.weight": [32, 32, 1, 1, 1],
                                             "decoder.conv1.weight": [8, 16, 3, 3, 3]}, "Wan 2.1 VAE"),
             "qwen_3_4b.safetensors": ({**embed, "model.layers.0.self_attn.q_norm.weight": [4]},
                                       "Qwen3")}  # Z-Image's text encoder stays Z-Image's
    for name, (shapes, what) in comfy.items():
        save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / name))
        info = det.detect(str(tmp_path / name))
        assert not info.usable and what in info.problem_en, info.report()
    for key in ("lora_unet_transformer_blocks_0_img_mlp_net_0_proj", "diffusion_model.transformer_blocks.0.txt_mod.1"):
        path = tmp_path / "lora.safetensors"
        save_file({f"{key}.lora_down.weight": torch.zeros(4, 8), f"{key}.lora_up.weight": torch.zeros(8, 4)},
                  str(path))
        info = det.detect(str(path))
        assert not info.usable and "LoRA for Qwen-Image" in info.problem_en, info.report()


def test_hub_id_fetches_the_repo_and_loads_it(tiny, monkeypatch):
    from models.loading import load_pipeline

    fetched = []
    monkeypatch.setattr("core.download.cached", lambda repo, rev=None: tiny.folder)
    monkeypatch.setattr("core.download.fetch", lambda repo, patterns=None, **kw: fetched.append(
        (repo, patterns)) or tiny.folder)
    info = det.detect("Qwen/Qwen-Image")
    assert (info.usable, info.family, info.variant) == (True, "qwen_image", "image"), info.report()
    pipe = load_pipeline("Qwen/Qwen-Image")
    assert type(pipe).__name__ == "QwenImagePipeline" and fetched[0][0] == "Qwen/Qwen-Image"
    assert {"transformer/*.safetensors", "text_encoder/*", "vae/*", "tokenizer/*"} <= set(fetched[0][1])


def test_check_cli_reports_family_and_variant(tiny, capsys):
    assert det.main([str(tiny.prefixed_file), "--no-hash", "--lang", "en"]) == 0
    assert "Family: Qwen-Image (qwen_image), variant image" in capsys.readouterr().out
    assert det.main([str(tiny.folder), "--no-hash", "--lang", "zh"]) == 0
    assert "系列: Qwen-Image (qwen_image)" in capsys.readouterr().out


def test_template_tokens_and_encode_prompts_are_the_pipelines(tiny):
    """The tiny tokenizer splits the template's system turn and user header into the 34 tokens the real Qwen2.5
    tokenizer gives, which the pipeline drops; encode_prompts keeps each prompt's tokens and the 5-token tail
    (<|im_end|>, \\n, <|im_start|>, assistant, \\n), taken from Qwen2.5-VL's last hidden state, right-padded."""
    from models.families import qwen_image
    from models.families.qwen_image.load import encode_prompts
    from models.loading import load_pipeline

    pipe = load_pipeline(str(tiny.folder))
    head = pipe.prompt_template_encode.split("{}")[0]
    assert len(pipe.tokenizer(head).input_ids) == pipe.prompt_template_encode_start_idx \
        == qwen_image.TEMPLATE_DROP_TOKENS == 34
    prompts = ["demo, a red square", "a photo of the demo cat on the grass outdoors"]
    embeds, mask = encode_prompts(pipe, prompts)
    for i, prompt in enumerate(prompts):
        ids = pipe.tokenizer(pipe.prompt_template_encode.format(prompt), return_tensors="pt").input_ids
        with torch.no_grad():
            hidden = pipe.text_encoder(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, 34:]
        n = len(pipe.tokenizer(prompt).input_ids) + 5
        assert hidden.shape[0] == n and int(mask[i].sum()) == n and not mask[i, n:].any()
        torch.testing.assert_close(embeds[i, :n], hidden)
        assert not embeds[i, n:].any()
    single, single_mask = encode_prompts(pipe, prompts[:1])
    assert single_mask is None and torch.equal(single, pipe.encode_prompt(prompts[:1], device="cpu")[0])


def test_tiny_pipeline_renders_32px_with_true_cfg(tiny):
    from models.loading import load_pipeline

    pipe = load_pipeline(str(tiny.folder))
    assert pipe.scheduler.config.use_dynamic_shifting and pipe.scheduler.config.time_shift_type == "exponential"
    assert (pipe.vae_scale_factor, pipe.vae.config.z_dim) == (8, 16)
    image = pipe("demo, a red square", negative_prompt=" ", true_cfg_scale=4.0, height=32, width=32,
                 num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 32, 32, 3) and bool((image.std() > 0.01) & (abs(image) < 2).all())


def test_demo_writes_its_own_folder(tmp_path):
    from core import config as cfgmod
    from core.config.presets import PRESETS
    from models.demo import make_demo

    run = make_demo(tmp_path / "qwen_image", "qwen_image")
    cfg = cfgmod.load(run)
    assert (cfg.model.family, cfg.model.variant) == ("qwen_image", "image")
    assert det.detect(cfg.model.base).family == "qwen_image"
    assert cfg.training.timestep_type == PRESETS["qwen_image_24gb"]["training"]["timestep_type"]
    assert (cfg.training.device, cfg.training.fp8_base, cfg.training.blocks_to_swap) == ("cpu", False, 0)
    preset = PRESETS["qwen_image_24gb"]
    assert preset["training"]["fp8_base"] and preset["training"]["blocks_to_swap"] == 16
    assert preset["dataset"]["cache_text_encoder_outputs"] and preset["sampling"]["negative_prompt"] == " "


def test_grid_samples_a_base_with_the_variants_preset(tiny):
    """The XYZ grid's LoRA-files source renders a Qwen-Image base as the 24 GB preset samples (25 steps, true CFG
    4) at its native 1024; another family's variant in the form does not count."""
    from models.grid.plan import base_sampling

    want = {"width": 1024, "height": 1024, "steps": 25, "cfg": 4.0, "sampler": "euler"}
    assert base_sampling(str(tiny.single_file), "turbo") == want
