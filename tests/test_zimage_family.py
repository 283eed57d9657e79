"""The Z-Image family: detection from headers, folders and LoRA files; loading a transformer file with its parts."""

from __future__ import annotations

import shutil

import pytest
import torch

from models import detect as det
from tests.test_models_detect import write_header_only

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny("zimage", tmp_path_factory.mktemp("zimage"))


@pytest.fixture(scope="module")
def real_shapes():
    """{original/ComfyUI key: shape} of the real 6B transformer, built on the meta device from its default config."""
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    from models.families.zimage import load

    with init_empty_weights():
        model = ZImageTransformer2DModel()
    return {k: tuple(v.shape) for k, v in load.to_file_keys(model.state_dict()).items()}


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_real_transformer_file_is_zimage_from_its_header(tmp_path, real_shapes, prefix):
    path = write_header_only(tmp_path / "z_image_turbo_bf16.safetensors",
                             {prefix + k: s for k, s in real_shapes.items()}, dtype="BF16")
    assert path.stat().st_size == pytest.approx(12.3e9, rel=0.05)  # 6.15 B parameters in bf16
    info = det.detect(str(path))
    assert (info.usable, info.family, info.prediction_type, info.native_resolution) == (True, "zimage", "flow", 1024)
    assert info.precision == "bf16" and not info.has_vae
    text = info.report("en")
    assert "Z-Image" in text and "Tongyi-MAI/Z-Image-Turbo" in text  # the parts will come from the Turbo repo
    assert "Turbo, De-Turbo and Base" in text and "Turbo、De-Turbo 与 Base" in info.report("zh")


def test_lumina2_width_is_refused(tmp_path, real_shapes):
    shapes = {k: tuple(2304 if d == 3840 else d for d in s) for k, s in real_shapes.items()}
    info = det.detect(str(write_header_only(tmp_path / "lumina.safetensors", shapes)))
    assert not info.usable and "Lumina 2" in info.problem_en and "Lumina 2" in info.problem_zh


def test_tiny_files_and_folder(tiny, tmp_path):
    for path in (tiny.folder, tiny.single_file, tiny.prefixed_file):
        info = det.detect(str(path))
        assert (info.usable, info.family) == (True, "zimage"), info.report()
    assert str(tiny.folder) in det.detect(str(tiny.single_file)).report()  # parts found beside the file
    alone = shutil.copy(tiny.single_file, tmp_path / "alone.safetensors")
    assert "will be downloaded" in det.detect(str(alone)).report()
    transformer_only = tmp_path / "de-turbo"
    shutil.copytree(tiny.folder / "transformer", transformer_only / "transformer")
    info = det.detect(str(transformer_only))
    assert (info.usable, info.family, info.kind) == (True, "zimage", "diffusers")


def test_lora_and_adapter_given_as_base_are_refused(tiny, tmp_path):
    from diffusers import ZImageTransformer2DModel

    from models.families.zimage.tiny import save_training_adapter

    transformer = ZImageTransformer2DModel.from_pretrained(tiny.folder, subfolder="transformer")
    adapter = save_training_adapter(tmp_path / "zimage_turbo_training_adapter_v2.safetensors", transformer)
    info = det.detect(str(adapter))
    assert (info.usable, info.kind, info.family) == (False, "lora", "zimage")
    assert "training adapter" in info.problem_en and "训练适配器" in info.problem_zh
    lora = save_training_adapter(tmp_path / "my_character.safetensors", transformer)
    info = det.detect(str(lora))
    assert not info.usable and info.problem_en == "This is a LoRA for Z-Image, not a base model."
    assert info.problem_zh == "这是 Z-Image 的 LoRA，不是底模。"


@pytest.mark.parametrize("keys", [
    ["diffusion_model.layers.0.attention.to_q.lora_A.weight"],
    ["transformer.layers.3.feed_forward.w1.lora_down.weight"],
    ["lora_unet_layers_0_attention_to_out_0.lora_down.weight"],
    ["diffusion_model.layers.0.attention.qkv.lora_A.weight"],
])
def test_lora_family_from_keys(keys):
    from models.families import lora_family

    assert lora_family(keys, {}) == "zimage"
    assert lora_family(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"], {"ss_v2": "False"}) == "sd15"


@pytest.mark.parametrize("which", ["single_file", "prefixed_file"])
def test_transformer_file_loads_with_the_parts_beside_it(tiny, which):
    from models.loading import load_pipeline, resolve_family

    pipe = load_pipeline(str(getattr(tiny, which)))
    ref = load_pipeline(str(tiny.folder))
    assert type(pipe).__name__ == "ZImagePipeline" and resolve_family(pipe) == "zimage"
    a, b = pipe.transformer.state_dict(), ref.transformer.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pipe.transformer.config.axes_dims == ref.transformer.config.axes_dims
    assert pipe.transformer.dtype == torch.float32


def test_config_inferred_without_a_config_beside_it(tiny):
    from safetensors.torch import load_file

    from models.families.zimage import load

    state = load.from_file_keys(load_file(str(tiny.prefixed_file)))
    inferred = load.infer_config(state)
    import json

    own = json.loads((tiny.folder / "transformer" / "config.json").read_text())
    assert all(own[k] == v for k, v in inferred.items()), inferred


def test_no_parts_offline_is_a_clear_error(tiny, tmp_path, monkeypatch):
    from core.errors import DanluError
    from models.loading import load_pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    alone = shutil.copy(tiny.single_file, tmp_path / "alone.safetensors")
    with pytest.raises(DanluError) as err:
        load_pipeline(str(alone))
    assert "holds only the Z-Image transformer" in err.value.en and "只含 Z-Image 的 transformer" in err.value.zh
    assert "Tongyi-MAI/Z-Image-Turbo" in err.value.hint_en and "text_encoders/" in err.value.hint_zh


def test_check_cli_reports_zimage(tiny, capsys):
    assert det.main([str(tiny.single_file), "--no-hash", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "Z-Image (zimage)" in out and "flow matching" in out


def test_diffusers_named_transformer_file_is_read_too(tiny, tmp_path):
    from safetensors.torch import save_file

    from models.loading import load_pipeline

    ref = load_pipeline(str(tiny.folder))
    state = {k: v.contiguous() for k, v in ref.transformer.state_dict().items()}
    path = tiny.folder.parent / "diffusers_names.safetensors"  # the parts are beside it
    save_file(state, str(path))
    info = det.detect(str(path))
    assert (info.usable, info.family) == (True, "zimage")
    pipe = load_pipeline(str(path), family="zimage")
    assert all(torch.equal(v, state[k]) for k, v in pipe.transformer.state_dict().items())


def test_lora_checked_against_the_base_family(tiny, tmp_path):
    from diffusers import ZImageTransformer2DModel

    from core.errors import DanluError
    from models.families.zimage.tiny import save_training_adapter

    transformer = ZImageTransformer2DModel.from_pretrained(tiny.folder, subfolder="transformer")
    lora = save_training_adapter(tmp_path / "style.safetensors", transformer)
    det.check_lora_against_base(lora, "zimage")
    with pytest.raises(DanluError) as err:
        det.check_lora_against_base(lora, "sdxl")
    assert "Z-Image" in err.value.en and "SDXL" in err.value.en


def _comfy_layout(tiny, root, monkeypatch):
    """ComfyUI's models/ folders made from the tiny model; the tiny folder's configs stand in for the Turbo repo's."""
    from diffusers import ZImagePipeline
    from safetensors.torch import save_file

    from models.ldm import _rename, vae_prefix_map

    pipe = ZImagePipeline.from_pretrained(tiny.folder)
    for d in ("diffusion_models", "text_encoders", "vae"):
        (root / d).mkdir(parents=True)
    shutil.copy(tiny.single_file, root / "diffusion_models" / "z_image_turbo_bf16.safetensors")
    te = {"model." + k: v.contiguous() for k, v in pipe.text_encoder.state_dict().items()}
    save_file(te, str(root / "text_encoders" / "qwen_3_4b.safetensors"))
    vmap = vae_prefix_map(dict(pipe.vae.config))
    save_file({_rename(k, vmap): v.contiguous() for k, v in pipe.vae.state_dict().items()},
              str(root / "vae" / "ae.safetensors"))
    turbo = root.parent / "turbo-configs"
    shutil.copytree(tiny.folder, turbo, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr("core.download.cached", lambda repo, rev=None: turbo)
    return pipe, root / "diffusion_models" / "z_image_turbo_bf16.safetensors"


def test_comfyui_model_folders_give_the_text_encoder_and_vae(tiny, tmp_path, monkeypatch):
    from models.loading import load_pipeline

    ref, path = _comfy_layout(tiny, tmp_path / "models", monkeypatch)
    info = det.detect(str(path))
    assert info.usable and "qwen_3_4b.safetensors" in info.report() and "ae.safetensors" in info.report()
    pipe = load_pipeline(str(path))
    for part in ("transformer", "text_encoder", "vae"):
        a, b = getattr(pipe, part).state_dict(), getattr(ref, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
        assert getattr(pipe, part).dtype == torch.float32
    assert pipe.tokenizer("a cat").input_ids == ref.tokenizer("a cat").input_ids


def test_text_encoder_or_vae_given_as_base_is_refused(tiny, tmp_path, monkeypatch):
    _comfy_layout(tiny, tmp_path / "models", monkeypatch)
    for path, what in (("text_encoders/qwen_3_4b.safetensors", "Qwen3 text encoder"),
                       ("vae/ae.safetensors", "16-channel VAE")):
        info = det.detect(str(tmp_path / "models" / path))
        assert not info.usable and what in info.problem_en and "text_encoders/" in info.hint_zh, info.report()


def test_hub_ids_detect_and_fetch_the_transformer_and_parts(tiny, monkeypatch):
    from models.loading import load_pipeline

    fetched = []

    def fake_fetch(repo, patterns=None, **kw):
        fetched.append((repo, list(patterns or [])))
        return tiny.folder

    monkeypatch.setattr("core.download.cached", lambda repo, rev=None: tiny.folder)
    monkeypatch.setattr("core.download.fetch", fake_fetch)
    info = det.detect("Tongyi-MAI/Z-Image-Turbo")
    assert (info.usable, info.family, info.path) == (True, "zimage", "Tongyi-MAI/Z-Image-Turbo")
    pipe = load_pipeline("ostris/Z-Image-De-Turbo")
    assert type(pipe).__name__ == "ZImagePipeline"
    repo, patterns = fetched[0]
    assert repo == "ostris/Z-Image-De-Turbo" and "transformer/*.safetensors" in patterns
    assert "text_encoder/*" in patterns and not any(p.startswith("unet/") for p in patterns)
