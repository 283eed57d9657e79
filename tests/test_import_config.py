"""Importing a peer's config (core.importers): files written by hand in each peer's format, as their docs name
the keys (sd-scripts' argument names, kohya_ss's GUI JSON, lora-scripts' TOML)."""

from __future__ import annotations

import json

import pytest

from core import config as cfgmod
from core import importers
from core.errors import DanluError
from core.importers import cli as import_cli

SD_SCRIPTS_ARGS = r"""accelerate launch --num_cpu_threads_per_process 1 train_network.py \
    --pretrained_model_name_or_path="/models/anything-v5.safetensors" \
    --train_data_dir=/data/aki --output_dir=/out --output_name=aki \
    --resolution=512,768 --network_module=networks.lora --network_dim=16 --network_alpha 8 \
    --learning_rate=1e-4 --unet_lr=2e-4 --text_encoder_lr=5e-5 --optimizer_type="AdamW8bit" \
    --lr_scheduler=cosine_with_restarts --lr_scheduler_num_cycles=3 --max_train_epochs=12 --train_batch_size=2 \
    --mixed_precision="fp16" --save_precision=fp16 --save_every_n_epochs=2 --cache_latents --gradient_checkpointing \
    --clip_skip=2 --seed=1337 --shuffle_caption --keep_tokens=1 --xformers --save_model_as=safetensors \
    --network_train_unet_only --color_aug --save_last_n_epochs=3
"""

SD_SCRIPTS_TOML = """
[model_arguments]
pretrained_model_name_or_path = "/models/sdxl.safetensors"
sdxl = true
v_parameterization = true

[dataset_arguments]
train_data_dir = "/data/x"
resolution = "1024,1024"
cache_latents_to_disk = true

[training_arguments]
max_train_steps = 2000
lr_warmup_steps = 100
lr_scheduler = "constant_with_warmup"
save_every_n_steps = 250
save_last_n_steps = 1000
optimizer_type = "Prodigy"
learning_rate = 1.0
sample_sampler = "k_euler_a"
min_snr_gamma = 5
"""

KOHYA_SS_JSON = {
    "LoRA_type": "Standard", "pretrained_model_name_or_path": "/models/v1-5.safetensors", "v2": False,
    "v_parameterization": False, "sdxl": False, "train_data_dir": "/data/img", "output_dir": "/out",
    "output_name": "style", "max_resolution": "512,512", "epoch": 10, "train_batch_size": 1,
    "learning_rate": 0.0001, "unet_lr": 0.0001, "text_encoder_lr": 5e-05, "lr_scheduler": "cosine",
    "lr_warmup": 10, "optimizer": "AdamW", "network_dim": 32, "network_alpha": 16, "clip_skip": "1",
    "keep_tokens": "0", "mixed_precision": "bf16", "save_precision": "bf16", "save_every_n_epochs": 1,
    "cache_latents": True, "cache_latents_to_disk": False, "flip_aug": True, "seed": "", "noise_offset": 0.05,
    "sample_prompts": "1girl, solo --n lowres --w 512 --h 768 --d 5", "sample_sampler": "euler_a",
    "caption_extension": ".txt", "enable_bucket": True, "bucket_reso_steps": 64, "color_aug": True,
    "scale_weight_norms": 1.0, "block_lr_zero_threshold": "", "debiased_estimation_loss": False, "fp8_base": False,
}

LORA_SCRIPTS_TOML = """
model_train_type = "sdxl-lora"
pretrained_model_name_or_path = "./sd-models/noob.safetensors"
train_data_dir = "./train/aki"
prior_loss_weight = 1.0
resolution = "1024,1024"
enable_bucket = true
min_bucket_reso = 256
max_bucket_reso = 2048
output_name = "aki"
output_dir = "./output"
save_model_as = "safetensors"
save_precision = "fp16"
save_every_n_epochs = 2
max_train_epochs = 10
train_batch_size = 1
network_train_unet_only = false
network_train_text_encoder_only = false
learning_rate = 0.0001
unet_lr = 0.0001
text_encoder_lr = 0.00001
lr_scheduler = "cosine_with_restarts"
lr_warmup_steps = 0
lr_scheduler_num_cycles = 1
optimizer_type = "Lion"
network_module = "networks.lora"
network_dim = 32
network_alpha = 32
sample_prompts = "(masterpiece, best quality:1.2), 1girl --n lowres, bad hands --w 1024 --h 1024 --l 7 --s 24 --d 1337"
log_with = "tensorboard"
logging_dir = "./logs"
caption_extension = ".txt"
shuffle_caption = true
keep_tokens = 0
max_token_length = 255
noise_offset = 0.0
seed = 1337
clip_skip = 2
mixed_precision = "fp16"
xformers = true
lowram = false
cache_latents = true
cache_latents_to_disk = true
persistent_data_loader_workers = true
"""


def _row(result: importers.Imported, peer_key: str) -> importers.Row:
    return next(r for r in result.rows if r.peer_key == peer_key)


def _imported(folder, name: str, text: str, kind: str) -> importers.Imported:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    result = importers.import_file(path)
    assert result.kind == kind
    return result


def test_sd_scripts_argument_file(tmp_path):
    result = _imported(tmp_path, "train.sh", SD_SCRIPTS_ARGS, "sd-scripts")
    c = result.config
    assert (c.model.base, c.dataset.dir, c.saving.output_dir, c.saving.name) == (
        "/models/anything-v5.safetensors", "/data/aki", "/out", "aki")
    assert (c.network.rank, c.network.alpha, c.network.train_text_encoder) == (16, 8.0, False)
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.text_encoder_lr) == ("AdamW8bit", 2e-4, 5e-5)
    assert (c.optimizer.scheduler, c.optimizer.num_cycles, c.training.epochs, c.training.batch_size) == (
        "cosine_with_restarts", 3, 12, 2)
    assert (c.training.clip_skip, c.training.seed, c.dataset.shuffle_caption, c.dataset.keep_tokens) == (
        2, 1337, True, 1)
    assert (c.dataset.cache_latents, c.training.gradient_checkpointing, c.saving.every_n_epochs) == ("memory", True, 2)
    # 512x768 is an area: one side of the same area, rounded to 64
    assert c.dataset.resolution == 640 and _row(result, "resolution").status == "changed"
    assert _row(result, "learning_rate").status == "changed" and "unet_lr" in _row(result, "learning_rate").why_en
    assert _row(result, "color_aug").status == "unsupported"
    assert _row(result, "network_dim").status == "mapped"
    assert c.saving.keep_last_epochs == 3 and _row(result, "save_last_n_epochs").status == "mapped"
    assert not any(r.peer_key in ("xformers", "save_model_as", "num_cpu_threads_per_process") for r in result.rows)


def test_sd_scripts_toml_with_sections(tmp_path):
    result = _imported(tmp_path, "config.toml", SD_SCRIPTS_TOML, "sd-scripts")
    c = result.config
    assert (c.model.family, c.model.prediction_type, c.dataset.resolution) == ("sdxl", "v_prediction", 1024)
    assert (c.dataset.cache_latents, c.training.max_train_steps, c.training.min_snr_gamma) == ("disk", 2000, 5.0)
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.scheduler) == ("Prodigy", 1.0, "constant_with_warmup")
    assert c.optimizer.warmup == pytest.approx(0.05)  # 100 of 2000 steps
    # save_last_n_steps counts steps; keep_last counts files: 1000 steps of files saved every 250 → 4
    assert (c.saving.every_n_steps, c.saving.keep_last) == (250, 4)
    assert _row(result, "save_last_n_steps").status == "changed"
    assert c.sampling.sampler == "euler_a" and _row(result, "sample_sampler").status == "changed"
    lyco = importers.convert("lora-scripts", {"model_train_type": "sd-lora", "network_module": "lycoris.kohya",
                                              "lycoris_algo": "glora", "enable_preview": False,
                                              "sample_prompts": "a cat", "sample_every_n_epochs": 2})
    assert {r.peer_key for r in lyco.rows if r.status == "unsupported"} == {
        "network_module", "sample_prompts", "sample_every_n_epochs"}


def test_kohya_ss_gui_json(tmp_path):
    result = _imported(tmp_path, "style.json", json.dumps(KOHYA_SS_JSON), "kohya_ss")
    c = result.config
    assert (c.model.base, c.saving.name, c.dataset.resolution, c.training.epochs) == (
        "/models/v1-5.safetensors", "style", 512, 10)
    assert (c.optimizer.warmup, c.training.mixed_precision, c.saving.precision) == (0.1, "bf16", "bf16")
    assert (c.training.clip_skip, c.dataset.keep_tokens, c.dataset.flip_aug, c.training.noise_offset) == (
        1, 0, True, 0.05)
    assert c.training.seed == cfgmod.default_config().training.seed  # "" in the GUI: not set
    assert c.sampling.prompts == ["1girl, solo --n lowres --w 512 --h 768 --d 5"]  # kohya's flags are Danlu's too
    assert _row(result, "lr_warmup").status == "changed"
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("# kohya's prompt file\na cat --d 1\n\na dog --w 768\n", encoding="utf-8")
    from_file = importers.convert("sd-scripts", {"sample_prompts": str(prompts_file)})
    assert from_file.config.sampling.prompts == ["a cat --d 1", "a dog --w 768"]
    missing = importers.convert("sd-scripts", {"sample_prompts": "/nowhere/prompts.toml"})
    assert _row(missing, "sample_prompts").status == "unsupported" and "sampling.prompts" in missing.rows[0].why_en
    unsupported = {r.peer_key for r in result.rows if r.status == "unsupported"}
    assert {"color_aug", "scale_weight_norms"} <= unsupported
    assert not {"debiased_estimation_loss", "fp8_base"} & unsupported  # switched off there: nothing is lost


def imported_by_cli(path, text: str, lang: str, monkeypatch, capsys) -> tuple[cfgmod.RunConfig, str]:
    """`launcher.py import FILE -o OUT` in `lang`: the Danlu config it wrote (loaded as a run) and what it printed."""
    path.write_text(text, encoding="utf-8")
    out = path.with_name("danlu.toml")
    monkeypatch.setenv("DANLU_LANG", lang)
    assert import_cli.main([str(path), "-o", str(out)]) == 0
    return cfgmod.load(out), capsys.readouterr().out  # the written TOML is a valid Danlu run


def test_lora_scripts_toml_and_the_cli(tmp_path, capsys, monkeypatch):
    path = tmp_path / "aki.toml"
    c, printed = imported_by_cli(path, LORA_SCRIPTS_TOML, "en", monkeypatch, capsys)
    assert (c.model.family, c.dataset.max_bucket_reso, c.optimizer.name, c.optimizer.text_encoder_lr) == (
        "sdxl", 2048, "Lion", 1e-5)
    assert (c.training.clip_skip, c.dataset.cache_latents, c.network.train_unet, c.network.train_text_encoder) == (
        2, "disk", True, True)
    assert c.sampling.prompts[0].endswith("--w 1024 --h 1024 --l 7 --s 24 --d 1337")
    assert "Read as lora-scripts" in printed and "| max_token_length | 255 |" in printed
    assert "| changed | max_token_length | 255 | training.max_token_length | 225 |" in printed
    assert c.training.max_token_length == 225  # sd-scripts takes 75, 150 or 225
    zh = importers.import_file(path).table("zh")
    assert "| 已映射 | network_dim | 32 | network.rank | 32 |" in zh and "| 无对应项 | prior_loss_weight |" in zh
    assert import_cli.default_output(path).name == "aki.danlu.toml"


def test_launcher_dispatches_import():
    import launcher

    assert launcher.HANDLERS["import"] == ("core.importers.cli", "main") and "import" in launcher.SUBCOMMANDS


def test_unreadable_file_is_a_bilingual_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DanluError) as e:
        importers.import_file(path)
    assert "JSON" in e.value.en and "JSON" in e.value.zh and e.value.hint_zh


def test_config_tab_import_shows_the_table(tmp_path):
    from ui.tab_config import import_peer

    path = tmp_path / "style.json"
    path.write_text(json.dumps(KOHYA_SS_JSON), encoding="utf-8")
    text, data, message = import_peer(str(path), "zh")
    assert cfgmod.loads(text).saving.name == "style" and data["saving"]["name"] == "style"
    assert message.startswith("已按 kohya_ss GUI JSON 格式导入") and "| 已更改 | lr_warmup |" in message
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert import_peer(str(bad), "en")[:2] == (None, None)
