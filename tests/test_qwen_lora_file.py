"""The Qwen-Image LoRA file: on the full-size key set (the real config's 60 blocks at width 3072, built without
weights, rank-2 LoRA tensors) every key is mapped by ComfyUI's rules and converted by diffusers' loader, with the
ΔW it gives equal to ours; on a tiny model the file loaded through diffusers' load_lora_weights and fused gives the
weights of our own merge; the file is recognised as Qwen-Image's and names the variant it was trained on."""

from __future__ import annotations

import functools
import random

import pytest
import torch

from tests.loader_rules import comfy_load, comfy_qwen_key_map, qwen_model_keys

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RANK = 2
ALL = ("attention", "mlp", "modulation")


@functools.cache
def full_size():
    """The real transformer's module tree, no weights (diffusers' default config is Qwen-Image's)."""
    from accelerate import init_empty_weights
    from diffusers import QwenImageTransformer2DModel

    with init_empty_weights():
        return QwenImageTransformer2DModel()


def linears(transformer) -> dict[str, torch.nn.Linear]:
    return {n: m for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """(deltas {module: (down, up)}, saved file) of a full-size LoRA on every block linear."""
    from safetensors.torch import save_file

    from models.families.qwen_image import LORA_PREFIX, lora

    modules = linears(full_size())
    g = torch.Generator().manual_seed(0)
    deltas = {name: (torch.randn(RANK, modules[name].in_features, generator=g),
                     torch.randn(modules[name].out_features, RANK, generator=g) * 0.01)
              for name in lora.lora_target_modules(full_size(), ALL)}
    state = {}
    for name, (down, up) in deltas.items():
        state[f"{LORA_PREFIX}{name}.lora_A.weight"], state[f"{LORA_PREFIX}{name}.lora_B.weight"] = down, up
    path = tmp_path_factory.mktemp("qwen") / "full.safetensors"
    save_file(state, path)
    return deltas, path


def test_targets_are_the_block_linears():
    from models.families.qwen_image import lora

    transformer = full_size()
    default = lora.lora_target_modules(transformer)
    assert len(default) == 60 * 12  # 8 attention + 4 MLP linears a block
    assert len(lora.lora_target_modules(transformer, ALL)) == 60 * 14 == len(
        [n for n in linears(transformer) if n.startswith("transformer_blocks.")])
    assert "transformer_blocks.59.attn.to_add_out" in default and "transformer_blocks.0.txt_mlp.net.2" in default
    assert not [n for n in default if "_mod." in n]  # modulation only when asked (musubi-tuner leaves it out)
    assert set(lora.lora_target_modules(transformer, ("modulation",))) == {
        f"transformer_blocks.{i}.{m}" for i in range(60) for m in ("img_mod.1", "txt_mod.1")}
    with pytest.raises(ValueError, match="feed_forward"):
        lora.lora_target_modules(transformer, ("feed_forward",))


def comfy_delta(state: dict, x: str) -> torch.Tensor:
    """The ΔW ComfyUI's LoRAAdapter adds for mapped name `x`: up @ down · alpha / rank (alpha = rank if absent)."""
    up, down = state[f"{x}.lora_B.weight"], state[f"{x}.lora_A.weight"]
    alpha = float(state[f"{x}.alpha"]) if f"{x}.alpha" in state else down.shape[0]
    return up @ down * (alpha / down.shape[0])


def test_every_key_mapped_by_comfyui(full):
    """No "lora key not loaded", every patch lands on a weight the model has, and the ΔW is ours."""
    from safetensors.torch import load_file

    deltas, path = full
    state = load_file(path)
    unet = qwen_model_keys(linears(full_size()))
    not_loaded, patched = comfy_load(list(state), comfy_qwen_key_map(unet))
    assert not not_loaded, f"ComfyUI would not load {sorted(not_loaded)[:5]}"
    assert set(patched.values()) <= unet and len(patched) == len(deltas)
    for name in random.Random(1).sample(sorted(deltas), 8):
        x = f"diffusion_model.{name}"
        assert patched[x] == f"diffusion_model.{name}.weight"
        assert torch.equal(comfy_delta(state, x), deltas[name][1] @ deltas[name][0]), name


def test_diffusers_converts_every_key(full):
    """diffusers' QwenImageLoraLoaderMixin.lora_state_dict keeps every module, and lora_B @ lora_A is our ΔW."""
    from diffusers import QwenImagePipeline

    deltas, path = full
    converted = QwenImagePipeline.lora_state_dict(str(path))
    modules = {k.removeprefix("transformer.").rsplit(".lora_", 1)[0] for k in converted}
    assert modules == set(deltas), f"dropped {sorted(set(deltas) - modules)[:5]}"
    for name in random.Random(2).sample(sorted(deltas), 8):
        a, b = converted[f"transformer.{name}.lora_A.weight"], converted[f"transformer.{name}.lora_B.weight"]
        assert torch.equal(b @ a, deltas[name][1] @ deltas[name][0]), name


def tiny_pipeline():
    """A tiny QwenImagePipeline holding only its transformer (what load_lora_weights touches)."""
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(num_layers=2, attention_head_dim=16, num_attention_heads=2,
                                              joint_attention_dim=32, axes_dims_rope=(4, 6, 6))
    return QwenImagePipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=None, transformer=transformer)


def test_tiny_file_fused_by_diffusers_is_our_merge(tmp_path):
    """A peft LoRA (alpha ≠ rank) saved by lora_state, loaded with load_lora_weights and fused, gives
    W + scaling · B @ A: the trained adapter's own merge."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from models.families.qwen_image import lora

    trained = tiny_pipeline().transformer
    targets = lora.lora_target_modules(trained, ALL)
    trained.add_adapter(LoraConfig(r=RANK, lora_alpha=3 * RANK, target_modules=targets, init_lora_weights=False))
    state = lora.lora_state({"transformer": trained})
    assert len(state) == 2 * len(targets) == 2 * 2 * 14 and all(k.startswith("diffusion_model.") for k in state)
    path = tmp_path / "lora.safetensors"
    save_file(state, path)
    ours = {}
    for name, module in trained.named_modules():
        if name in targets:
            delta = (module.lora_B["default"].weight * module.scaling["default"]) @ module.lora_A["default"].weight
            ours[name] = (module.base_layer.weight + delta).detach()
    pipe = tiny_pipeline()
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora()
    fused = dict(pipe.transformer.named_modules())
    for name, weight in ours.items():
        layer = fused[name].base_layer if hasattr(fused[name], "base_layer") else fused[name]
        assert torch.equal(layer.weight, weight), name


def test_metadata_names_the_variant_and_the_file_is_recognised(full):
    from safetensors import safe_open

    from models import families
    from models.families.qwen_image import lora
    from models.lora_file import CONFIG_KEY

    meta = {"ss_network_dim": "8", "ss_network_alpha": "4", "ss_v_parameterization": "False",
            CONFIG_KEY: "[model]\nvariant = 'edit_2509'\n"}
    edit = lora.lora_metadata(meta)
    assert edit["modelspec.architecture"] == "qwen-image-edit-2509/lora"
    assert (edit["ss_base_model_version"], edit["ss_network_alpha"]) == ("qwen_image", "8")
    assert "ss_v_parameterization" not in edit
    assert lora.lora_metadata({})["modelspec.architecture"] == "qwen-image/lora"
    _, path = full
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    assert families.lora_family(keys, lora.lora_metadata({})) == "qwen_image"
    assert families.lora_family(keys, {}) == "qwen_image"  # img_mlp / img_mod blocks: not FLUX's names


def test_toolbox_reads_the_file(tmp_path):
    """models.toolbox: the file is Qwen-Image's, in the diffusers layout; the single file has the same names, so its
    convert to ComfyUI's names keeps every module's ΔW exactly (through load.from_file_keys / to_file_keys)."""
    from peft import LoraConfig
    from safetensors.torch import load_file, save_file

    from models.families.qwen_image import lora
    from models.toolbox.common import open_lora
    from models.toolbox.convert import convert_lora, layout_of, module_deltas

    transformer = tiny_pipeline().transformer
    transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=1, target_modules=lora.lora_target_modules(transformer),
                                       init_lora_weights=False))
    original = tmp_path / "my_lora.safetensors"
    save_file(lora.lora_state({"transformer": transformer}), original, metadata=lora.lora_metadata({}))
    opened = open_lora(original)
    assert opened.family == "qwen_image" and layout_of(opened) == "diffusers"
    report = convert_lora(original, tmp_path / "comfy.safetensors", target="comfyui")
    assert report.max_rel_error == 0 and report.modules == 2 * 12
    before, after = module_deltas(load_file(original)), module_deltas(load_file(report.out))
    assert set(before) == set(after) and all(torch.equal(after[n], d) for n, d in before.items())
