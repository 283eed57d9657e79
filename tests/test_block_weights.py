"""Block-wise learning rates and dims/alphas (network.down/mid/up_lr_weight, block_lr_zero_threshold, block_dims,
block_alphas, conv_block_dims, conv_block_alphas), as sd-scripts' networks/lora.py numbers and applies them.

The expected block numbers below are written by hand from sd-scripts' get_block_index:
SD1.5: down_blocks_i_{resnets|attentions}_j → 1 + 3i + j, down_blocks_i_downsamplers → 1 + 3i + 2, mid_block → 12,
up_blocks_… the same from 13. SDXL (SAI names): input_blocks_k → 1 + k, middle_block_k → 10 + k,
output_blocks_k → 13 + k.
"""

from __future__ import annotations

import json

import pytest

from core import config
from core.errors import ConfigError

SD15_NAMES = {
    "lora_unet_down_blocks_0_attentions_0_proj_in": 1,
    "lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn1_to_q": 2,
    "lora_unet_down_blocks_0_resnets_1_conv1": 2,
    "lora_unet_down_blocks_0_downsamplers_0_conv": 3,
    "lora_unet_down_blocks_1_attentions_0_proj_out": 4,
    "lora_unet_down_blocks_2_downsamplers_0_conv": 9,
    "lora_unet_down_blocks_3_resnets_0_time_emb_proj": 10,
    "lora_unet_down_blocks_3_resnets_1_conv2": 11,
    "lora_unet_mid_block_attentions_0_proj_in": 12,
    "lora_unet_mid_block_resnets_1_conv1": 12,
    "lora_unet_up_blocks_0_resnets_0_conv1": 13,
    "lora_unet_up_blocks_0_resnets_2_conv_shortcut": 15,
    "lora_unet_up_blocks_0_upsamplers_0_conv": 15,
    "lora_unet_up_blocks_1_attentions_0_proj_in": 16,
    "lora_unet_up_blocks_2_attentions_1_transformer_blocks_0_ff_net_2": 20,
    "lora_unet_up_blocks_3_attentions_2_proj_out": 24,
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": -1,
}
SDXL_NAMES = {
    "lora_unet_input_blocks_1_0_in_layers_2": 2,
    "lora_unet_input_blocks_3_0_op": 4,
    "lora_unet_input_blocks_4_1_proj_in": 5,
    "lora_unet_input_blocks_8_1_transformer_blocks_1_attn2_to_k": 9,
    "lora_unet_middle_block_0_emb_layers_1": 10,
    "lora_unet_middle_block_1_proj_out": 11,
    "lora_unet_middle_block_2_out_layers_3": 12,
    "lora_unet_output_blocks_0_1_proj_in": 13,
    "lora_unet_output_blocks_2_2_conv": 15,
    "lora_unet_output_blocks_5_1_transformer_blocks_0_ff_net_0_proj": 18,
    "lora_unet_output_blocks_8_0_skip_connection": 21,
    "lora_te1_text_model_encoder_layers_0_mlp_fc1": -1,
}
# diffusers module paths of the tiny UNets (the real architectures, fewer channels) → block
SD15_PATHS = {
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": 1,
    "down_blocks.0.resnets.1.conv1": 2,
    "down_blocks.0.downsamplers.0.conv": 3,
    "down_blocks.2.attentions.1.proj_out": 8,
    "down_blocks.3.resnets.1.time_emb_proj": 11,
    "mid_block.resnets.0.conv2": 12,
    "up_blocks.0.upsamplers.0.conv": 15,
    "up_blocks.1.resnets.2.conv_shortcut": 18,
    "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2": 24,
}
SDXL_PATHS = {
    "down_blocks.0.resnets.0.conv1": 2,
    "down_blocks.0.downsamplers.0.conv": 4,
    "down_blocks.1.attentions.0.proj_in": 5,
    "down_blocks.2.attentions.1.transformer_blocks.1.attn2.to_k": 9,
    "mid_block.resnets.0.time_emb_proj": 10,
    "mid_block.attentions.0.proj_out": 11,
    "mid_block.resnets.1.conv2": 12,
    "up_blocks.0.resnets.0.conv1": 13,
    "up_blocks.0.upsamplers.0.conv": 15,
    "up_blocks.1.attentions.2.proj_out": 18,
    "up_blocks.2.resnets.2.conv_shortcut": 21,
}


def _cfg(**network):
    return config.from_dict({"network": network})


def _n(**network):
    return _cfg(**network).network


@pytest.fixture(scope="module")
def unets():
    from models.tiny import build_tiny

    return {family: build_tiny(family, seed=0).unet for family in ("sd15", "sdxl")}


@pytest.mark.parametrize("names,sdxl", [(SD15_NAMES, False), (SDXL_NAMES, True)])
def test_kohya_names_map_to_sd_scripts_blocks(names, sdxl):
    from core.config.blocks import block_index

    assert {n: block_index(n, sdxl) for n in names} == names


@pytest.mark.parametrize("family,paths,with_lora", [
    ("sd15", SD15_PATHS, set(range(1, 25))),   # block 0 is conv_in: no LoRA
    ("sdxl", SDXL_PATHS, set(range(2, 22))),   # 0 embedding, 1 conv_in, 22 out: no LoRA
])
def test_tiny_unet_modules_map_to_blocks(unets, family, paths, with_lora):
    from training import blocks, lora

    unet = unets[family]
    assert {p: blocks.block_index(blocks.lora_name(unet, p, family), family == "sdxl") for p in paths} == paths
    plain, convs = lora._unet_targets(unet, conv_dim=1)
    assert {blocks.block_index(blocks.lora_name(unet, p, family), family == "sdxl") for p in plain + convs} == \
        with_lora


def test_lr_weights_presets_padding_and_threshold():
    import math

    from core.config.blocks import from_config, lr_weights

    sine = lr_weights(_n(down_lr_weight="sine"), False)
    assert len(sine) == 25 and sine[:12] == pytest.approx([math.sin(math.pi * i / 11 / 2) for i in range(12)])
    assert sine[12:] == [1.0] * 13
    assert lr_weights(_n(up_lr_weight="cosine"), False)[13:] == pytest.approx(
        [math.sin(math.pi * i / 11 / 2) for i in reversed(range(12))])
    assert lr_weights(_n(down_lr_weight="linear+0.5"), False)[:12] == pytest.approx([i / 11 + 0.5 for i in range(12)])
    assert lr_weights(_n(up_lr_weight="reverse_linear"), True)[13:22] == pytest.approx(
        [i / 8 for i in reversed(range(9))])
    with pytest.raises(ConfigError):  # the mid block takes numbers only, as in sd-scripts
        lr_weights(_n(mid_lr_weight="zeros"), False)
    assert lr_weights(_n(down_lr_weight="zeros+0.25"), False)[:12] == [0.25] * 12
    # SDXL: 1 + 9 + 3 + 9 + 1, the embedding and out blocks at 1
    xl = lr_weights(_n(down_lr_weight="0,0.5", mid_lr_weight="1,,2"), True)
    assert xl == [1.0, 0.0, 0.5, *[1.0] * 7, 1.0, 0.0, 2.0, *[1.0] * 9, 1.0]
    # a weight not above the threshold is 0; blocks left unset stay 1
    cut = lr_weights(_n(down_lr_weight="0.1,0.2,0.3", block_lr_zero_threshold=0.2), False)
    assert cut[:4] == [0.0, 0.0, 0.3, 1.0] and cut[12] == 1.0
    assert lr_weights(_n(), False) is None
    # LR weight 0 → dim 0 (and conv dim 0); the alphas stay
    plan = from_config(_n(rank=8, alpha=4, conv_dim=2, conv_alpha=1, down_lr_weight="0,0,1",
                            mid_lr_weight="0"), "sd15")
    assert plan.dims == [0, 0, 8, *[8] * 9, 0, *[8] * 12] and plan.conv_dims == [0, 0, 2, *[2] * 9, 0, *[2] * 12]
    assert plan.alphas == [4.0] * 25 and plan.conv_alphas == [1.0] * 25
    assert from_config(_n(block_dims=",".join(["4"] * 25)), "sd15").conv_dims is None  # no conv_dim: no LoCon


def _inject(unet, family, cfg):
    from training import blocks, lora

    plan = blocks.from_config(cfg.network, family)
    n = cfg.network
    layers = lora.inject(unet, rank=n.rank, alpha=n.alpha, conv_dim=n.conv_dim, conv_alpha=n.conv_alpha,
                         family=family, blocks=plan)
    return plan, layers


def test_each_block_trains_at_lr_times_its_weight_and_zero_blocks_have_no_lora():
    from models.lora_names import tuner_layers
    from models.tiny import build_tiny
    from training import blocks, lora, optim

    pipe = build_tiny("sd15", seed=0)
    weights = "0,0,0,0.5,0.5,0.5,1,1,1,2,2,2"  # weight i is block i: down_blocks.0 (1, 2) off, down_blocks.1 half
    cfg = config.from_dict({"network": {"down_lr_weight": weights, "up_lr_weight": "zeros+1", "conv_dim": 2},
                            "optimizer": {"lr": 1e-4, "text_encoder_lr": 5e-5}})
    plan, layers = _inject(pipe.unet, "sd15", cfg)
    lora.inject(pipe.text_encoder, rank=4, alpha=2, component="text_encoder")
    paths = [p for p, _ in tuner_layers(pipe.unet)]
    assert layers == len(paths) and not [p for p in paths if p.startswith(("down_blocks.0.attentions",
                                                                            "down_blocks.0.resnets"))]
    assert [p for p in paths if p.startswith("down_blocks.1.")] and [p for p in paths if p.startswith("up_blocks.")]
    opt = optim.make_optimizer(cfg, lora.lora_parameters(pipe.unet), lora.lora_parameters(pipe.text_encoder),
                               unet_blocks=blocks.param_groups(pipe.unet, "sd15", plan))
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    expected = {3: 5e-5, 4: 5e-5, 5: 5e-5, 6: 1e-4, 7: 1e-4, 8: 1e-4, 9: 2e-4, 10: 2e-4, 11: 2e-4, 12: 1e-4,
                13: 1e-4, 15: 1e-4, 24: 1e-4}
    seen = {}
    for path, layer in tuner_layers(pipe.unet):
        index = blocks.block_index(blocks.lora_name(pipe.unet, path, "sd15"), False)
        for p in layer.parameters():
            if p.requires_grad:
                seen.setdefault(index, set()).add(lr_of[id(p)])
    assert {i: seen[i] for i in expected} == {i: {lr} for i, lr in expected.items()}
    assert 1 not in seen and 2 not in seen
    # the text encoder keeps its own LR: block weights are for the UNet
    assert {lr_of[id(p)] for p in lora.lora_parameters(pipe.text_encoder)} == {5e-5}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(lora.lora_parameters(pipe.unet)) + \
        len(lora.lora_parameters(pipe.text_encoder))


def test_sdxl_block_dims_give_each_block_its_rank(unets):
    """SDXL: 23 values; each adapted layer has its block's rank and alpha (conv ranks and alphas for 3×3 convs)."""
    import copy

    from models.lora_names import tuner_layers
    from training import blocks

    unet = copy.deepcopy(unets["sdxl"])
    dims = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 0, 3, 0]  # block 20: no Linear/1×1 LoRA
    alphas = [float(i) for i in range(23)]
    conv_dims = [2] * 21 + [0, 2]  # block 21: no 3×3 LoRA
    conv_alphas = [0.5 + i for i in range(23)]
    cfg = _cfg(rank=4, alpha=2, block_dims=",".join(map(str, dims)), block_alphas=",".join(map(str, alphas)),
               conv_block_dims=",".join(map(str, conv_dims)), conv_block_alphas=",".join(map(str, conv_alphas)))
    _inject(unet, "sdxl", cfg)
    found = {}
    for path, layer in tuner_layers(unet):
        i = blocks.block_index(blocks.lora_name(unet, path, "sdxl"), True)
        rank = layer.lora_A["default"].weight.shape[0]
        conv = getattr(layer.get_base_layer(), "kernel_size", (1, 1)) != (1, 1)
        found.setdefault(i, set()).add((conv, rank, round(layer.scaling["default"] * rank, 6)))
    expected = {}
    for i in range(2, 22):  # the blocks with layers kohya adapts
        if dims[i] and i not in (4, 7):  # 4 and 7 are the downsamplers: one 3×3 conv only
            expected.setdefault(i, set()).add((False, dims[i], alphas[i] or float(dims[i])))
        if conv_dims[i] and i != 11:  # block 11 is the middle attention: no 3×3 conv
            expected.setdefault(i, set()).add((True, conv_dims[i], conv_alphas[i]))
    assert found == expected


def _deltas(unet, adapter):
    from models.lora_names import tuner_layers

    return {path: (layer.lora_B[adapter].weight.flatten(1) @ layer.lora_A[adapter].weight.flatten(1)).detach()
            * layer.scaling[adapter] for path, layer in tuner_layers(unet, adapter)}


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_the_sample_loader_gives_each_module_its_blocks_alpha(tmp_path, family):
    """A file with per-block dims and alphas, loaded as samples and the grid load it: every UNet module's delta is
    the trained one (diffusers alone gives the SD attention linears the file's common alpha)."""
    import torch

    from models.generate import load_lora
    from models.lora_file import peft_to_kohya, save_lora
    from models.tiny import build_tiny

    total = 23 if family == "sdxl" else 25
    dims = [1 + i % 4 for i in range(total)]
    alphas = [0.5 + i % 3 for i in range(total)]
    cfg = _cfg(rank=4, alpha=2, block_dims=",".join(map(str, dims)), block_alphas=",".join(map(str, alphas)))
    pipe = build_tiny(family, seed=0)
    _inject(pipe.unet, family, cfg)
    gen = torch.Generator().manual_seed(0)
    for p in pipe.unet.parameters():
        if p.requires_grad:
            p.data = torch.randn(p.shape, generator=gen) * 0.1
    path = tmp_path / "b.safetensors"
    save_lora(path, peft_to_kohya({"unet": pipe.unet}, family), {"ss_network_module": "networks.lora"}, "float")
    fresh = build_tiny(family, seed=0)
    load_lora(fresh, path, "f")
    trained, loaded = _deltas(pipe.unet, "default"), _deltas(fresh.unet, "f")
    assert set(trained) == set(loaded)
    worst = max(float((trained[k] - loaded[k]).abs().max() / trained[k].abs().max()) for k in trained)
    assert worst < 1e-6


def test_a_tiny_run_with_block_weights_and_dims(tmp_path, one_torch_thread):
    """Through the real loop: blocks at LR weight 0 have no LoRA in the file, the others trained at their block's
    rank and alpha (read back from the safetensors shapes), the options are in ss_network_args, and the sample
    rendered from the file is the trained model's image."""
    from merged_files import assert_sample_is_the_trained_model
    from safetensors.torch import load_file

    from core.config.blocks import block_index
    from models.lora_file import read_metadata
    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    dims = [0, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 1, 1, 1, 2, 2, 2, 3, 3, 3, 8, 8, 8]
    alphas = [1.0] * 12 + [3.0] + [0.5] * 12
    down = "1,0,0,0,1,1,1,1,1,1,1,1"  # blocks 1–3 (down_blocks.0) are not trained
    base = save_tiny("sd15", tmp_path / "base")
    cfg = tiny_config(base.folder, flat_dataset(tmp_path / "flat", count=2, repeats=1), tmp_path / "runs", "bw",
                      training__epochs=1, saving__every_n_epochs=0, network__down_lr_weight=down,
                      network__block_dims=",".join(map(str, dims)), network__block_alphas=",".join(map(str, alphas)))
    result = train(cfg, command="pytest")
    path = cfg.run_dir / "bw.safetensors"
    saved = load_file(str(path))
    unet_bases = {k.rsplit(".", 2)[0] for k in saved if k.startswith("lora_unet_") and k.endswith("lora_down.weight")}
    by_block = {}
    for b in unet_bases:
        rank = saved[f"{b}.lora_down.weight"].shape[0]
        assert saved[f"{b}.lora_up.weight"].shape[1] == rank
        by_block.setdefault(block_index(b, False), set()).add((rank, float(saved[f"{b}.alpha"])))
    with_lora = {4, 5, 7, 8, 12, *range(16, 25)}  # the attentions (no conv_dim: resnets and samplers have none)
    assert by_block == {i: {(dims[i], alphas[i])} for i in with_lora}
    assert not [b for b in unet_bases if "down_blocks_0_" in b]
    # trained: the up matrices start at 0 and moved, in every block that has LoRA
    moved = {block_index(b, False) for b in unet_bases if saved[f"{b}.lora_up.weight"].abs().max() > 0}
    assert moved == with_lora
    # the text encoder keeps rank / alpha
    te = {saved[k].shape[0] for k in saved if k.startswith("lora_te_") and k.endswith("lora_down.weight")}
    assert te == {4}
    meta = read_metadata(path)
    args = json.loads(meta["ss_network_args"])
    assert (args["down_lr_weight"], args["block_dims"], args["block_alphas"]) == \
        (down, ",".join(map(str, dims)), ",".join(map(str, alphas)))
    assert "mid_lr_weight" not in args and "conv_block_dims" not in args
    png = [p for p in result.samples if p.name.startswith("bw")][-1]
    assert_sample_is_the_trained_model(cfg, result, png)


def test_the_options_are_expert_fields_in_the_toml_and_network_args():
    from training.export import metadata

    values = {"network.down_lr_weight": "sine+0.5", "network.mid_lr_weight": "0", "network.up_lr_weight": "1,1,0.5",
              "network.block_lr_zero_threshold": 0.1, "network.block_dims": ",".join(["8"] * 25),
              "network.block_alphas": ",".join(["4"] * 25), "network.conv_block_dims": ",".join(["2"] * 25),
              "network.conv_block_alphas": ",".join(["1"] * 25)}
    for key in values:
        spec = config.field_spec(key)
        assert not spec.basic and spec.en and spec.zh
    cfg = config.with_values(config.default_config(), values)
    back = config.loads(config.dumps(cfg))
    for key, value in values.items():
        assert getattr(back.network, key.split(".")[1]) == value
    info = {"total_steps": 10, "mixed_precision": "no", "images": 1, "dataset_dirs": {}, "tag_frequency": {},
            "bucket_info": {}, "base_sha256": "", "started_at": 0}
    args = metadata(back, info, family="sd15", prediction_type="epsilon", epoch=1, step=10)["ss_network_args"]
    assert {k: args[k] for k in (key.split(".")[1] for key in values)} == {
        key.split(".")[1]: str(value) for key, value in values.items()}
    plain = metadata(config.default_config(), info, family="sd15", prediction_type="epsilon", epoch=1, step=10)
    assert "block_dims" not in (plain.get("ss_network_args") or {})


def test_peer_configs_map_the_block_options():
    from core import importers

    dims = ",".join(["4"] * 25)
    rows = {r.peer_key: r for r in importers.convert("sd-scripts", {"network_args": [
        "down_lr_weight=sine+.5", "mid_lr_weight=2", "up_lr_weight=1,1,1,0", "block_lr_zero_threshold=0.1",
        f"block_dims={dims}", f"block_alphas={dims}", f"conv_block_dims={dims}", f"conv_block_alphas={dims}"]}).rows}
    got = {k.split()[1]: (r.status, r.key, r.value) for k, r in rows.items()}
    assert got == {"down_lr_weight": ("mapped", "network.down_lr_weight", "sine+.5"),
                   "mid_lr_weight": ("mapped", "network.mid_lr_weight", "2"),
                   "up_lr_weight": ("mapped", "network.up_lr_weight", "1,1,1,0"),
                   "block_lr_zero_threshold": ("mapped", "network.block_lr_zero_threshold", 0.1),
                   **{k: ("mapped", f"network.{k}", dims) for k in ("block_dims", "block_alphas", "conv_block_dims",
                                                                    "conv_block_alphas")}}
    # kohya_ss GUI JSON: keys of their own, empty when unused
    gui = importers.convert("kohya_ss", {"down_lr_weight": "0,0,1", "mid_lr_weight": "", "block_dims": dims,
                                         "block_lr_zero_threshold": ""})
    assert (gui.config.network.down_lr_weight, gui.config.network.block_dims) == ("0,0,1", dims)
    # lora-scripts: the LR weights only with enable_block_weights
    on = importers.convert("lora-scripts", {"enable_block_weights": True, "up_lr_weight": "zeros+1"})
    assert on.config.network.up_lr_weight == "zeros+1"
    off = importers.convert("lora-scripts", {"enable_block_weights": False, "up_lr_weight": "zeros"})
    assert off.config.network.up_lr_weight == "" and [r.status for r in off.rows] == ["unsupported"]


def test_bad_block_options_are_refused_in_both_languages():
    from core import checks

    def found(family, optimizer="AdamW", **network):
        cfg = config.from_dict({"model": {"family": family}, "network": network, "optimizer": {"name": optimizer}})
        return [(i.level, i.key, i.en, i.zh) for i in checks.check(cfg, checks.Env(device="cuda"))
                if "block" in i.key or "lr_weight" in i.key]

    dims = ",".join(["4"] * 25)
    (level, key, en, zh), = found("sdxl", block_dims=dims)
    assert (level, key) == ("error", "network.block_dims") and "25 values" in en and "23" in en and "23" in zh
    assert not found("sd15", block_dims=dims) and not found("sd2", block_dims=dims)
    (level, key, en, _), = found("sd15", down_lr_weight="sinus")
    assert level == "error" and "preset" in en
    assert found("sd15", block_alphas=dims)[0][:2] == ("error", "network.block_alphas")  # needs block_dims
    assert found("sd15", type="loha", block_dims=dims)[0][0] == "error"
    assert found("zimage", down_lr_weight="zeros")[0][0] == "error"
    assert found("sd15", "Prodigy", down_lr_weight="0,0.5,1")[0][:2] == ("error", "network.down_lr_weight")
    assert not found("sd15", "Prodigy", down_lr_weight="0,0,1,1,1,1,1,1,1,1,1,1")
    # sd-scripts pads a short list with 1 and cuts a long one: said, not refused
    (level, key, en, _), = found("sdxl", down_lr_weight="1,1,1,1,1,1,1,1,1,1,1,1")
    assert (level, key) == ("warning", "network.down_lr_weight") and "12 values" in en and "9" in en
    # unknown family: a count right for one of them is not an error
    assert not found("auto", block_dims=dims)
