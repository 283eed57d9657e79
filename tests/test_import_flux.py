"""Importing FLUX.1 / Chroma runs (core/importers/flux.py): an sd-scripts flux_train_network.py command line, a
lora-scripts flux-lora TOML and an sd-scripts Chroma TOML, written as their docs and forms name the keys; a flag
left out reads as sd-scripts' default, and the report warns where the run left sd-scripts' own advice. The
imported runs, pointed at the tiny FLUX / Chroma files, pass the trainer's start checks (`train --dry-run`)."""

from __future__ import annotations

import pytest
from test_import_config import _imported, imported_by_cli

from core import config as cfgmod
from core import importers

# sd-scripts docs/flux_train_network.md's example, as a user runs it (accelerate's options first, continued lines)
SD_SCRIPTS_FLUX = r"""accelerate launch --mixed_precision bf16 --num_cpu_threads_per_process 1 flux_train_network.py \
  --pretrained_model_name_or_path /models/flux/flux1-dev.safetensors --clip_l /models/flux/clip_l.safetensors \
  --t5xxl /models/flux/t5xxl_fp16.safetensors --ae /models/flux/ae.safetensors --cache_latents_to_disk \
  --save_model_as safetensors --sdpa --persistent_data_loader_workers --max_data_loader_n_workers 2 --seed 42 \
  --gradient_checkpointing --mixed_precision bf16 --save_precision bf16 --network_module networks.lora_flux \
  --network_dim 4 --network_train_unet_only --optimizer_type adamw8bit --learning_rate 1e-4 \
  --cache_text_encoder_outputs --cache_text_encoder_outputs_to_disk --fp8_base --highvram --max_train_epochs 4 \
  --save_every_n_epochs 1 --train_data_dir /data/img --output_dir /out --output_name flux-lora-name \
  --timestep_sampling shift --discrete_flow_shift 3.1582 --model_prediction_type raw --guidance_scale 1.0 \
  --blocks_to_swap 18 --resolution 1024,1024 --network_args "train_blocks=single" "split_qkv=False"
"""

# what lora-scripts' flux-lora form writes (mikazuki/schema/flux-lora.ts: every field, its defaults where untouched)
LORA_SCRIPTS_FLUX = """
model_train_type = "flux-lora"
model_type = "flux"
pretrained_model_name_or_path = "./sd-models/flux1-schnell.safetensors"
ae = "./sd-models/ae.safetensors"
clip_l = "./sd-models/clip_l.safetensors"
t5xxl = "./models/t5xxl_fp8_e4m3fn.safetensors"
timestep_sampling = "sigmoid"
sigmoid_scale = 1.0
model_prediction_type = "raw"
discrete_flow_shift = 1.0
loss_type = "l2"
guidance_scale = 1.0
train_t5xxl = false
apply_t5_attn_mask = true
train_data_dir = "./train/aki"
prior_loss_weight = 1
resolution = "768,768"
enable_bucket = true
min_bucket_reso = 256
max_bucket_reso = 2048
bucket_reso_steps = 64
output_name = "aki"
output_dir = "./output"
save_model_as = "safetensors"
save_precision = "bf16"
save_every_n_epochs = 2
max_train_epochs = 20
train_batch_size = 1
gradient_checkpointing = true
network_train_unet_only = true
network_train_text_encoder_only = false
learning_rate = 0.0001
unet_lr = 0.0005
text_encoder_lr = 0.00001
lr_scheduler = "cosine_with_restarts"
lr_warmup_steps = 0
lr_scheduler_num_cycles = 1
optimizer_type = "PagedAdamW8bit"
network_module = "networks.lora_flux"
network_dim = 2
network_alpha = 16
network_args_custom = ["split_qkv=True"]
seed = 1337
mixed_precision = "bf16"
fp8_base = true
fp8_base_unet = false
sdpa = true
cache_latents = true
cache_latents_to_disk = true
cache_text_encoder_outputs = true
cache_text_encoder_outputs_to_disk = true
persistent_data_loader_workers = true
"""

# sd-scripts' Chroma recipe (docs §4) in its TOML sections, with guidance and the prediction type left out
CHROMA_TOML = """
[model_arguments]
model_type = "chroma"
pretrained_model_name_or_path = "/models/chroma/Chroma1-Base.safetensors"
t5xxl = "/models/chroma/t5xxl_fp16.safetensors"
ae = "/models/chroma/ae.safetensors"
apply_t5_attn_mask = true

[training_arguments]
timestep_sampling = "sigmoid"
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16
network_args = ["img_mod_dim=0", "txt_mod_dim=0", "single_mod_dim=0", "loraplus_lr_ratio=4"]
optimizer_type = "AdamW"
learning_rate = 1e-4
max_train_steps = 1500
lr_warmup_steps = 150
mixed_precision = "bf16"
sample_prompts = "a cat --n low quality, blurry --g 0 --l 4.0 --s 30 --w 1024 --h 1024"
"""


def _row(result: importers.Imported, peer_key: str, key: str | None = None) -> importers.Row:
    return next(r for r in result.rows if r.peer_key == peer_key and (key is None or r.key == key))


def _unsupported(result: importers.Imported) -> set[str]:
    return {r.peer_key for r in result.rows if r.status == "unsupported"}


def test_sd_scripts_flux_command_line(tmp_path):
    result = _imported(tmp_path, "train_flux.sh", SD_SCRIPTS_FLUX, "sd-scripts")
    c = result.config
    assert (c.model.family, c.model.variant, c.model.base, c.model.vae) == (
        "flux", "dev", "/models/flux/flux1-dev.safetensors", "/models/flux/ae.safetensors")
    assert (c.network.type, c.network.rank, c.network.alpha, c.network.train_text_encoder) == ("lora", 4, 1.0, False)
    assert (c.training.fp8_base, c.training.blocks_to_swap, c.training.gradient_checkpointing) == (True, 18, True)
    assert (c.dataset.cache_latents, c.dataset.cache_text_encoder_outputs,
            c.dataset.resolution) == ("disk", True, 1024)
    # shift 3.1582 = e^1.15, the shift flux_shift gives 1024 px: the run's noise levels, at its resolution
    assert c.training.timestep_type == "flux_shift" and _row(result, "discrete_flow_shift").status == "mapped"
    assert "3.16 at 1024 px" in _row(result, "timestep_sampling").why_en
    # sd-scripts' own sample settings: 20 steps, 512 px, CFG 1 (the embedded guidance 3.5 is what Danlu's dev uses)
    assert (c.sampling.steps, c.sampling.cfg, c.sampling.width) == (20, 1.0, 512)
    assert _row(result, "guidance_scale").status == "mapped"
    assert _row(result, "model_prediction_type").status == "mapped"
    assert _row(result, "clip_l").status == "mapped" and "beside the base" in _row(result, "t5xxl").why_en
    assert _row(result, "network_args split_qkv").status == "changed"
    assert _row(result, "network_alpha").peer_value == 1.0 and "network_alpha" in result.defaulted  # sd-scripts: 1
    assert _unsupported(result) == {"network_args train_blocks"}
    assert not result.warnings  # the run followed sd-scripts' recommended settings


def test_flags_left_out_are_sd_scripts_defaults_and_warned_in_both_languages(tmp_path):
    line = ("python flux_train_network.py --pretrained_model_name_or_path /m/my_finetune.safetensors "
            "--ae /m/ae.safetensors --network_module networks.lora_flux --network_dim 16 --train_data_dir /d "
            "--resolution 512 --t5xxl_max_token_length 256 --apply_t5_attn_mask")
    result = _imported(tmp_path, "run.sh", line, "sd-scripts")
    c = result.config
    assert result.defaulted >= {"guidance_scale", "model_prediction_type", "timestep_sampling", "discrete_flow_shift"}
    # sigma: a uniform pick of the 1000 training sigmas shifted by 3.0 = Danlu's shift table with dev's shift 3.0
    assert c.training.timestep_type == "shift" and _row(result, "discrete_flow_shift").status == "mapped"
    assert c.model.variant == "dev" and "dev assumed" in _row(result, "pretrained_model_name_or_path",
                                                               "model.variant").why_en
    # sd-scripts trained a CLIP-L LoRA (network_train_unet_only left out): so does the imported run
    assert c.network.train_text_encoder and _row(result, "network_train_unet_only").status == "changed"
    assert _unsupported(result) == {"guidance_scale", "model_prediction_type", "t5xxl_max_token_length",
                                    "apply_t5_attn_mask"}
    said = {"en": ("| unsupported | guidance_scale | 3.5 (not set: default) |", "**Warnings**",
                   "guidance_scale = 3.5 (left out: sd-scripts' default): sd-scripts' docs say to set 1 for dev",
                   "model_prediction_type = sigma_scaled (left out: sd-scripts' default): "
                   "sd-scripts' docs recommend raw"),
            "zh": ("| 无对应项 | model_prediction_type | sigma_scaled （未设置，默认） |", "**警告**",
                   "guidance_scale = 3.5（未设置：sd-scripts 的默认值）：sd-scripts 文档要求 dev 设为 1",
                   "sd-scripts 文档推荐 raw")}
    for lang, lines in said.items():
        table = result.table(lang)
        assert all(line in table for line in lines), (lang, table)


def test_lora_scripts_flux_toml_and_the_cli(tmp_path, capsys, monkeypatch):
    path = tmp_path / "aki-flux.toml"
    c, printed = imported_by_cli(path, LORA_SCRIPTS_FLUX, "zh", monkeypatch, capsys)
    assert (c.model.family, c.model.variant, c.training.timestep_type, c.network.alpha) == (
        "flux", "schnell", "sigmoid", 16.0)
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.warmup) == ("AdamW8bit", 5e-4, 0.0)
    assert (c.sampling.cfg, c.dataset.resolution, c.dataset.cache_text_encoder_outputs) == (1.0, 768, True)
    assert "已按 lora-scripts (秋叶) 格式读取" in printed
    assert "| 已映射 | guidance_scale | 1.0 | — |  | schnell 没有引导输入：原配置也不使用 |" in printed
    result = importers.import_file(path)
    # T5 elsewhere than beside the base or in ComfyUI's folders; FLUX.1 with the T5 mask: Danlu cannot
    assert _unsupported(result) == {"t5xxl", "apply_t5_attn_mask", "prior_loss_weight"}
    assert {"loss_type", "network_args_custom split_qkv"} <= {r.peer_key for r in result.rows if r.status == "mapped"}
    assert not result.defaulted and not result.warnings  # the form writes every flag, as sd-scripts advises


def test_chroma_toml(tmp_path):
    result = _imported(tmp_path, "chroma.toml", CHROMA_TOML, "sd-scripts")
    c = result.config
    assert (c.model.family, c.training.timestep_type, c.network.dit_targets) == (
        "chroma", "sigmoid", ["attention", "feed_forward"])
    assert (c.network.loraplus_lr_ratio, c.training.max_train_steps, c.optimizer.warmup) == (4.0, 1500, 0.1)
    # --g (embedded guidance) means nothing to Chroma; --l is its real CFG, as Danlu's cfg
    assert c.sampling.prompts == ["a cat --n low quality, blurry --l 4.0 --s 30 --w 1024 --h 1024"]
    assert _row(result, "sample_prompts").status == "changed" and c.sampling.cfg == 1.0  # sd-scripts' CFG default
    dev = importers.convert("sd-scripts", {"model_type": "flux", "pretrained_model_name_or_path": "flux1-dev.sft",
                                           "sample_prompts": "a cat --g 2.5 --l 1.0 --d 7"})
    assert dev.config.sampling.prompts == ["a cat --l 1.0 --d 7"]  # --l is Danlu's cfg; dev's guidance stays 3.5
    assert _row(result, "apply_t5_attn_mask").status == "mapped"
    assert not any(r.key == "model.variant" for r in result.rows)  # Chroma has none
    # guidance left out = 3.5 into Chroma's approximator, and sigma_scaled: Danlu feeds 0 and trains raw
    assert _unsupported(result) == {"guidance_scale", "model_prediction_type"}
    en, zh = (" ".join(w[i] for w in result.warnings) for i in (0, 1))
    assert "sd-scripts' docs say to set 0 for chroma" in en and "sd-scripts 文档要求 chroma 设为 0" in zh


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """Tiny FLUX dev, schnell and Chroma transformers as BFL single files (as sd-scripts is given them), and a
    two-image dataset."""
    from PIL import Image

    from models.families.flux.tiny import build_chroma, build_tiny, save_transformer_files

    root = tmp_path_factory.mktemp("flux-import")
    files = {name: save_transformer_files(pipe, root, f"model-{name}")[0] for name, pipe in
             (("dev", build_tiny(0, "dev")), ("schnell", build_tiny(0, "schnell")), ("chroma", build_chroma(0)))}
    sub = root / "data" / "2_cat"
    sub.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 90, 40, 40)).save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text("a photo of the cat", encoding="utf-8")
    return root, files


@pytest.mark.parametrize("text, name, family", [(SD_SCRIPTS_FLUX, "dev", "flux"),
                                                (LORA_SCRIPTS_FLUX, "schnell", "flux"),
                                                (CHROMA_TOML, "chroma", "chroma")])
def test_imported_runs_pass_the_start_checks_on_the_tiny_models(tiny_files, tmp_path, monkeypatch, capsys, text,
                                                                 name, family):
    from training.cli import main as train_cli

    root, files = tiny_files
    base = str(files[name])
    # the peer's paths replaced by the tiny ones; the name "model-…" does not say the variant: the header does
    text = text.replace("/models/flux/flux1-dev.safetensors", base).replace(
        "./sd-models/flux1-schnell.safetensors", base).replace("/models/chroma/Chroma1-Base.safetensors", base)
    result = _imported(tmp_path, "run.sh" if text.startswith("accelerate") else "run.toml", text,
                       "lora-scripts" if "model_train_type" in text else "sd-scripts")
    assert result.config.model.family == family
    if family == "flux":
        assert result.config.model.variant == name and "header" in _row(result, "pretrained_model_name_or_path",
                                                                         "model.variant").why_en
    tiny = {"model": {"vae": ""}, "dataset": {"dir": str(root / "data"), "resolution": 256},
            "saving": {"output_dir": str(tmp_path / "outputs")}}
    toml = tmp_path / "danlu.toml"
    cfgmod.save(cfgmod.merge_dict(result.config, tiny), toml)
    monkeypatch.setattr("models.preflight.device_kind", lambda _setting: "cuda")  # the user's machine has a GPU
    monkeypatch.setenv("DANLU_LANG", "en")
    assert train_cli([str(toml), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "ERROR" not in printed and "2 images" in printed
