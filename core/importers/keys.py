"""The peer trainers' keys, one by one: which Danlu key each sd-scripts / kohya_ss / lora-scripts key becomes,
and the converters of the keys whose value needs more than a type (resolution as an area, optimizer and scheduler
names, network_args, block-wise weights, caches, sample prompts…). core.importers reads the files and applies
these; each converter is called as `convert(peer_key, value, peer, put, result)` and reports through `put` (a
Danlu key and value, with a reason when it changed) or a Row in `result.rows`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.config.sample_prompts import KOHYA_SAMPLERS
from core.errors import DanluError
from core.fsutil import read_user_text

# peer key → Danlu key (values taken as they are, converted to the field's type)
DIRECT = {
    "pretrained_model_name_or_path": "model.base", "vae": "model.vae",
    "train_data_dir": "dataset.dir", "reg_data_dir": "dataset.reg_dir",
    "caption_extension": "dataset.caption_extension",
    "enable_bucket": "dataset.enable_bucket", "min_bucket_reso": "dataset.min_bucket_reso",
    "max_bucket_reso": "dataset.max_bucket_reso", "bucket_reso_steps": "dataset.bucket_reso_steps",
    "bucket_no_upscale": "dataset.bucket_no_upscale", "shuffle_caption": "dataset.shuffle_caption",
    "keep_tokens": "dataset.keep_tokens", "caption_dropout_rate": "dataset.caption_dropout_rate",
    "caption_tag_dropout_rate": "dataset.caption_tag_dropout_rate",
    "flip_aug": "dataset.flip_aug",
    "network_dim": "network.rank", "network_alpha": "network.alpha", "network_dropout": "network.dropout",
    "loraplus_lr_ratio": "network.loraplus_lr_ratio",
    "unet_lr": "optimizer.lr", "text_encoder_lr": "optimizer.text_encoder_lr",
    "lr_scheduler_num_cycles": "optimizer.num_cycles", "lr_scheduler_power": "optimizer.power",
    "lr_scheduler_min_lr_ratio": "optimizer.min_lr_ratio",
    "full_bf16": "training.full_bf16", "fp8_base": "training.fp8_base", "blocks_to_swap": "training.blocks_to_swap",
    "max_train_epochs": "training.epochs", "epoch": "training.epochs", "train_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "max_train_steps": "training.max_train_steps", "mixed_precision": "training.mixed_precision",
    "gradient_checkpointing": "training.gradient_checkpointing", "seed": "training.seed",
    "noise_offset": "training.noise_offset", "min_snr_gamma": "training.min_snr_gamma",
    "zero_terminal_snr": "model.zero_terminal_snr", "debiased_estimation_loss": "training.debiased_estimation",
    "scale_v_pred_loss_like_noise_pred": "training.scale_v_pred_loss_like_noise_pred",
    "v_pred_like_loss": "training.v_pred_like_loss",
    "multires_noise_iterations": "training.multires_noise_iterations",
    "multires_noise_discount": "training.multires_noise_discount",
    "clip_skip": "training.clip_skip",
    "output_dir": "saving.output_dir", "output_name": "saving.name", "save_every_n_epochs": "saving.every_n_epochs",
    "save_every_n_steps": "saving.every_n_steps", "save_last_n_epochs": "saving.keep_last_epochs",
    "save_precision": "saving.precision", "save_state": "saving.save_state",
    "sample_sampler": "sampling.sampler",
}
# keys that only say how the peer runs, not what is trained: read without a note
QUIET = {"save_model_as", "logging_dir", "log_prefix", "xformers", "sdpa", "mem_eff_attn",
         "persistent_data_loader_workers", "max_data_loader_n_workers", "log_with", "ddp_timeout", "lowram",
         "highvram", "enable_preview", "lycoris_algo", "enable_block_weights",
         "console_log_level", "config_file", "output_config", "mem_eff_save", "disable_mmap_load_safetensors",
         "tokenizer_cache_dir", "(script)"}
PRECISIONS = {"fp16": "fp16", "bf16": "bf16", "float": "float", "fp32": "float", "no": "no"}
OPTIMIZERS = {"adamw": "AdamW", "adamw8bit": "AdamW8bit", "lion": "Lion", "lion8bit": "Lion", "prodigy": "Prodigy",
              "adafactor": "Adafactor", "pagedadamw8bit": "AdamW8bit",
              "dadaptation": "DAdaptAdam", "dadaptadampreprint": "DAdaptAdam"}
SCHEDULERS = {"cosine_warmup_with_min_lr": "cosine_with_min_lr"}


@dataclass
class Row:
    """One key read from the peer's file: what became of it."""

    status: str              # mapped, changed, unsupported
    peer_key: str
    peer_value: Any
    key: str = ""            # the Danlu key
    value: Any = None
    why_en: str = ""
    why_zh: str = ""


# --- keys whose value needs more than a type --------------------------------------------------------------------

def _resolution(k, v, peer, put, result):
    parts = [int(float(p)) for p in str(v).replace("x", ",").split(",") if p.strip()]
    w, h = (parts + parts)[:2]
    if w == h:
        return put(k, "dataset.resolution", w)
    side = int(round(math.sqrt(w * h) / 64) * 64)
    put(k, "dataset.resolution", side, (f"{w}x{h} is an area; Danlu's buckets use one side: {side} (same area, "
                                        "rounded to 64)",
                                        f"{w}x{h} 表示面积；丹炉的分桶用一个边长：{side}（面积相同，取 64 的倍数）"))


def _precision(k, v, peer, put, result):
    key = "saving.precision" if k == "save_precision" else "training.mixed_precision"
    put(k, key, PRECISIONS.get(str(v).lower(), str(v)))


def _optimizer(k, v, peer, put, result):
    offered = {c.lower(): c for c in cfgmod.field_spec("optimizer.name").choices or ()}
    short = str(v).rsplit(".", 1)[-1].lower()  # sd-scripts also takes module.Class (pytorch_optimizer.CAME)
    name = offered.get(short) or OPTIMIZERS.get(short.replace("_", ""))
    if name is None:
        return put(k, "optimizer.name", "AdamW", (f"{v} is not offered; AdamW is used", f"不提供 {v}，改用 AdamW"))
    why = None if name.lower() == str(v).lower() else (f"{v} → {name}", f"{v} → {name}")
    put(k, "optimizer.name", name, why)


def _scheduler(k, v, peer, put, result):
    offered = cfgmod.field_spec("optimizer.scheduler").choices or ()
    name = str(v) if str(v) in offered else SCHEDULERS.get(str(v), str(v))
    why = None if name == v else (f"{v} → {name}; the warmup is kept in optimizer.warmup",
                                  f"{v} → {name}；预热保留在 optimizer.warmup")
    put(k, "optimizer.scheduler", name, why)


def _warmup(k, v, peer, put, result):
    steps = float(v)
    if k == "lr_warmup":  # kohya_ss GUI: percent of the steps
        return put(k, "optimizer.warmup", steps / 100, (f"{v}% of the steps → {steps / 100:g}",
                                                          f"占总步数 {v}% → {steps / 100:g}"))
    total = float(peer.get("max_train_steps") or 0)
    if 0 <= steps < 1:  # a share of the steps (0: no warmup)
        return put(k, "optimizer.warmup", steps)
    if total:
        return put(k, "optimizer.warmup", min(steps / total, 1.0), (f"{v:g} steps of {total:g} → a share",
                                                                   f"{total:g} 步中的 {v:g} 步 → 比例"))
    put(k, "optimizer.warmup", 0.05, (f"{v} steps without a step count → 5% of the steps",
                                      f"{v} 步，但未知总步数 → 总步数的 5%"))


def _network_module(k, v, peer, put, result):
    algo = str(peer.get("lycoris_algo") or "")  # lora-scripts' form field; sd-scripts has it in network_args
    args = peer.get("network_args") or []
    for a in args if isinstance(args, list) else str(args).split():
        name, _, value = str(a).partition("=")
        if name.strip() == "algo":
            algo = value.strip()
    kind = "lora" if v == "networks.lora" else {"loha": "loha", "lokr": "lokr"}.get(algo, "")
    if not kind:
        return result.rows.append(Row("unsupported", k, v, why_en=f"{v} {algo} has no Danlu network type",
                                      why_zh=f"丹炉没有 {v} {algo} 这种网络"))
    put(k, "network.type", kind)


# sd-scripts' network_args that Danlu has a setting for (algo is read with network_module)
NETWORK_ARGS = {"loraplus_lr_ratio": "network.loraplus_lr_ratio", "conv_dim": "network.conv_dim",
                "conv_alpha": "network.conv_alpha", "dropout": "network.dropout",
                "rank_dropout": "network.rank_dropout", "module_dropout": "network.module_dropout",
                **{k: f"network.{k}" for k in ("down_lr_weight", "mid_lr_weight", "up_lr_weight",
                                               "block_lr_zero_threshold", "block_dims", "block_alphas",
                                               "conv_block_dims", "conv_block_alphas")}}


def network_args(k, v, peer, put, result):
    for a in v if isinstance(v, list) else str(v).split():
        name, _, value = str(a).partition("=")
        name, value = name.strip(), value.strip()
        if name == "algo":
            continue
        if name in NETWORK_ARGS:
            put(f"{k} {name}", NETWORK_ARGS[name], value)
        else:
            result.rows.append(Row("unsupported", f"{k} {name}", value, why_en="no Danlu setting",
                                   why_zh="丹炉没有对应设置"))


def _block_wise(k, v, peer, put, result):
    """Block-wise LR and dims as their own keys (kohya_ss GUI, lora-scripts); lora-scripts uses the LR weights only
    with enable_block_weights on."""
    off = str(peer.get("enable_block_weights", True)).lower() in ("0", "false")
    if off and k.endswith(("lr_weight", "threshold")):
        return result.rows.append(Row("unsupported", k, v, why_en="enable_block_weights is off: not used there "
                                      "either", why_zh="enable_block_weights 已关闭：原配置也不使用"))
    put(k, f"network.{k}", v)


def _lora_type(k, v, peer, put, result):
    kind = {"Standard": "lora", "LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr"}.get(str(v), "")
    if not kind:
        return result.rows.append(Row("unsupported", k, v, why_en=f"{v} has no Danlu network type",
                                      why_zh=f"丹炉没有 {v} 这种网络"))
    put(k, "network.type", kind)


def _family_flag(k, v, peer, put, result):
    if str(v).lower() not in ("1", "true"):
        return None
    if k == "v_parameterization":
        return put(k, "model.prediction_type", "v_prediction")
    put(k, "model.family", "sdxl" if k == "sdxl" else "sd2")


def _only(k, v, peer, put, result):
    if str(v).lower() in ("1", "true"):
        put(k, "network.train_text_encoder" if k == "network_train_unet_only" else "network.train_unet", False)


def _conv(k, v, peer, put, result):
    put(k, "network.conv_dim" if k == "conv_dim" else "network.conv_alpha", v)


def _cache(k, v, peer, put, result):
    if k == "cache_latents_to_disk" and str(v).lower() in ("1", "true"):
        return put(k, "dataset.cache_latents", "disk")
    if k == "cache_latents":
        to_disk = str(peer.get("cache_latents_to_disk", "")).lower() in ("1", "true")
        return put(k, "dataset.cache_latents", "disk" if to_disk else ("memory" if str(v).lower() in ("1", "true")
                                                                       else "none"))
    on = str(v).lower() in ("1", "true")
    to_disk = str(peer.get("cache_text_encoder_outputs_to_disk", "")).lower() in ("1", "true")
    if k == "cache_text_encoder_outputs_to_disk":  # sd-scripts turns the cache on with it
        return put(k, "dataset.cache_text_encoder_outputs", True, ("Danlu keeps them in memory",
                                                                   "丹炉把它们保存在内存中")) if on else None
    put(k, "dataset.cache_text_encoder_outputs", on or to_disk)


def _loss_type(k, v, peer, put, result):
    if str(v).lower() in ("l2", "mse"):
        return result.rows.append(Row("mapped", k, v, why_en="Danlu's loss is l2 (mean squared error) too",
                                      why_zh="丹炉的损失同样是 l2（均方误差）"))
    result.rows.append(Row("unsupported", k, v, why_en="Danlu's loss is l2 (mean squared error)",
                           why_zh="丹炉的损失是 l2（均方误差）"))


def sample_prompts(k, v, peer, put, result):
    if str(peer.get("enable_preview", True)).lower() in ("0", "false"):  # lora-scripts: previews switched off
        return result.rows.append(Row("unsupported", k, v, why_en="enable_preview is off: not sampled there either",
                                      why_zh="enable_preview 已关闭：原配置也不出样图"))
    lines = v if isinstance(v, list) else [ln.strip() for ln in str(v).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) == 1 and Path(lines[0]).suffix in (".txt", ".toml", ".json"):  # sd-scripts: a file of prompts
        p = Path(lines[0])
        if p.suffix != ".txt":
            return result.rows.append(Row("unsupported", k, v, why_en=f"the prompt file {p} is not .txt: paste its "
                                          "prompts into sampling.prompts",
                                          why_zh=f"提示词文件 {p} 不是 .txt：请把提示词粘贴到 sampling.prompts"))
        try:
            text = read_user_text(p, ("the prompt file", "提示词文件"), ("", ""), limit=1024 * 1024)
        except DanluError as e:  # one key not taken; the rest of the config still comes across
            return result.rows.append(Row("unsupported", k, v, why_en=f"{e.en} Paste its prompts into "
                                          "sampling.prompts.", why_zh=f"{e.zh}请把提示词粘贴到 sampling.prompts。"))
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    put(k, "sampling.prompts", lines)


def _sampler(k, v, peer, put, result):
    name = KOHYA_SAMPLERS.get(str(v).lower(), str(v).lower())
    put(k, "sampling.sampler", name, None if name == v else (f"{v} → {name}", f"{v} → {name}"))


def _learning_rate(k, v, peer, put, result):
    if peer.get("unet_lr") not in (None, ""):  # sd-scripts: unet_lr takes the U-Net's rate
        return result.rows.append(Row("changed", k, v, "optimizer.lr", peer["unet_lr"],
                                      "unet_lr is given and sets the U-Net's rate, as in sd-scripts",
                                      "已给出 unet_lr，它决定 U-Net 的学习率（与 sd-scripts 相同）"))
    put(k, "optimizer.lr", v)


def _keep_last(k, v, peer, put, result):
    every = int(float(peer.get("save_every_n_steps") or 0))
    if not every:
        return result.rows.append(Row("unsupported", k, v, why_en="no save_every_n_steps to count files by",
                                      why_zh="没有 save_every_n_steps，无法换算文件数"))
    files = max(1, math.ceil(int(float(v)) / every))
    put(k, "saving.keep_last", files, (f"files of the last {v} steps, saved every {every} → the newest {files}",
                                       f"最近 {v} 步内、每 {every} 步保存的文件 → 最新 {files} 个"))


def _train_type(k, v, peer, put, result):
    family = {"sd-lora": "sd15", "sdxl-lora": "sdxl"}.get(str(v))
    if family is None:
        return result.rows.append(Row("unsupported", k, v, why_en=f"{v} is not trained by Danlu",
                                      why_zh=f"丹炉不训练 {v}"))
    why = ("sd-lora covers SD1.5 and SD2; auto reads which from the base",
           "sd-lora 包括 SD1.5 与 SD2；auto 会从底模识别")
    put(k, "model.family", "auto" if family == "sd15" else family, why if family == "sd15" else None)


def _token_length(k, v, peer, put, result):
    n = int(float(v))
    allowed = max([c for c in (75, 150, 225) if c <= n] or [75])
    put(k, "training.max_token_length", allowed, None if allowed == n else (
        f"{n} is not one of 75, 150, 225 (sd-scripts' choices) → {allowed}",
        f"{n} 不在 75、150、225 之中（sd-scripts 的可选值）→ {allowed}"))


def _sample_every(k, v, peer, put, result):
    result.rows.append(Row("unsupported", k, v, why_en="Danlu renders samples from each saved file: set "
                           "saving.every_n_epochs / every_n_steps", why_zh="丹炉在每次保存后用保存的文件出样图："
                           "请设置 saving.every_n_epochs / every_n_steps"))


SPECIAL = {"max_token_length": _token_length, "sample_every_n_epochs": _sample_every,
           "sample_every_n_steps": _sample_every, "learning_rate": _learning_rate, "save_last_n_steps": _keep_last,
           "model_train_type": _train_type,
           "resolution": _resolution, "max_resolution": _resolution, "save_precision": _precision,
           "mixed_precision": _precision, "optimizer_type": _optimizer, "optimizer": _optimizer,
           "lr_scheduler": _scheduler, "lr_warmup_steps": _warmup, "lr_warmup": _warmup,
           "network_module": _network_module, "network_args": network_args, "LoRA_type": _lora_type,
           "v2": _family_flag, "sdxl": _family_flag,
           "v_parameterization": _family_flag, "network_train_unet_only": _only,
           "network_train_text_encoder_only": _only, "conv_dim": _conv, "conv_alpha": _conv,
           "cache_latents": _cache, "cache_latents_to_disk": _cache, "cache_text_encoder_outputs": _cache,
           "cache_text_encoder_outputs_to_disk": _cache, "loss_type": _loss_type, "network_args_custom": network_args,
           "sample_prompts": sample_prompts, "sample_sampler": _sampler,
           **dict.fromkeys(("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold",
                            "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas"), _block_wise)}
