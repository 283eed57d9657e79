"""Saving a LoRA file with its metadata, and rendering samples from the file just saved."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.config import RunConfig, blocks
from core.runs import layout as run_layout
from models import families
from models.lora_file import (
    CONFIG_KEY,
    MODELSPEC_ARCH,
    base_model_version,
    peft_to_kohya,
    save_lora,
)
from training import faults
from training import state as train_state

file_name = run_layout.lora_file_name  # the trainer's name for it


def base_hashes(base: str) -> tuple[str, str]:
    """(sha256, WebUI 'Model hash' = first 10 hex) of a single-file base; empty for folders and hub ids."""
    path = Path(base)
    if not path.is_file():
        return "", ""
    from models.hashes import sha256_file

    full = sha256_file(path)
    return full, full[:10]


def metadata(cfg: RunConfig, info: dict, *, family: str, prediction_type: str, epoch: int, step: int) -> dict:
    """ss_* metadata (strings, as sd-scripts writes them) plus modelspec and the whole run TOML."""
    from training.optim import CLASS_NAMES, SCHEDULE_FREE

    n, o, t, d = cfg.network, cfg.optimizer, cfg.training, cfg.dataset
    v2 = family == "sd2"
    vpred = prediction_type == "v_prediction"
    args = {"conv_dim": str(n.conv_dim), "conv_alpha": str(n.conv_alpha)} if n.conv_dim else {}
    if n.use_dora:
        args["algo"] = "dora"
    if n.dropout:
        args["dropout"] = str(n.dropout)
    for name in ("rank_dropout", "module_dropout"):  # network args of sd-scripts' networks.lora
        if getattr(n, name):
            args[name] = str(getattr(n, name))
    if n.loraplus_lr_ratio:
        args["loraplus_lr_ratio"] = str(n.loraplus_lr_ratio)  # sd-scripts takes it among the network args
    if n.type == "lora" and n.train_unet and _dit(family) is None:  # block-wise LR and dims, as given
        args.update(blocks.network_args(n))
    if n.type != "lora":  # LyCORIS's kohya wrapper: network_module lycoris.kohya, the algo among the args
        args["algo"] = n.type
    dit = _dit(family)
    version = dit.LORA_VERSION if dit else base_model_version(family, prediction_type)
    arch = dit.LORA_MODELSPEC if dit else MODELSPEC_ARCH["sd2v" if v2 and vpred else family]
    meta = {
        "ss_network_module": "networks.lora" if n.type == "lora" else "lycoris.kohya",
        "ss_network_dim": n.rank, "ss_network_alpha": n.alpha or float(n.rank),
        "ss_network_args": args or None, "ss_base_model_version": version, "ss_v2": v2,
        "ss_v_parameterization": vpred if v2 else None, "ss_resolution": f"({d.resolution}, {d.resolution})",
        "ss_num_epochs": t.epochs, "ss_epoch": epoch, "ss_steps": step, "ss_max_train_steps": info["total_steps"],
        "ss_learning_rate": o.lr, "ss_unet_lr": o.lr if n.train_unet else None,
        "ss_text_encoder_lr": o.text_encoder_lr if n.train_text_encoder else None,
        "ss_lr_scheduler": "constant" if o.name in SCHEDULE_FREE else o.scheduler, "ss_lr_warmup": o.warmup,
        "ss_optimizer": CLASS_NAMES.get(o.name, o.name),  # module.Class, as sd-scripts writes it
        "ss_fp8_base": t.fp8_base,
        "ss_batch_size_per_device": t.batch_size, "ss_gradient_accumulation_steps": t.gradient_accumulation_steps,
        "ss_mixed_precision": info["mixed_precision"], "ss_seed": t.seed, "ss_clip_skip": t.clip_skip,
        "ss_noise_offset": t.noise_offset or None, "ss_min_snr_gamma": t.min_snr_gamma or None,
        "ss_multires_noise_iterations": t.multires_noise_iterations or None,
        "ss_multires_noise_discount": t.multires_noise_discount if t.multires_noise_iterations else None,
        "ss_zero_terminal_snr": cfg.model.zero_terminal_snr, "ss_debiased_estimation": t.debiased_estimation,
        "ss_max_token_length": t.max_token_length, "ss_cache_latents": d.cache_latents != "none",
        "ss_num_train_images": info["images"], "ss_shuffle_caption": d.shuffle_caption,
        "ss_keep_tokens": d.keep_tokens,
        "ss_caption_dropout_rate": d.caption_dropout_rate, "ss_flip_aug": d.flip_aug,
        "ss_caption_tag_dropout_rate": d.caption_tag_dropout_rate,
        "ss_enable_bucket": d.enable_bucket,
        "ss_dataset_dirs": info["dataset_dirs"], "ss_tag_frequency": info["tag_frequency"],
        "ss_bucket_info": info["bucket_info"], "ss_sd_model_name": Path(cfg.model.base).name,
        "ss_new_sd_model_hash": info["base_sha256"] or None, "ss_sd_model_hash": info["base_sha256"] or None,
        "ss_training_started_at": int(info["started_at"]), "ss_training_finished_at": int(time.time()),
        "ss_training_comment": "trained with Danlu",
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": arch,
        "modelspec.implementation": "diffusers", "modelspec.title": cfg.saving.name,
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"), "modelspec.resolution": f"{d.resolution}x{d.resolution}",
        "modelspec.prediction_type": "v" if vpred else prediction_type,  # sd-scripts' sai_model_spec: "v" / "epsilon"
        CONFIG_KEY: cfgmod.dumps(cfg),
    }
    return {k: ("True" if v else "False") if isinstance(v, bool) else v for k, v in meta.items() if v is not None}


def _dit(family: str | None):
    return families.dit_module(family)


def save_file(path: Path, models: dict[str, Any], cfg: RunConfig, info: dict, *, family: str,
              prediction_type: str, epoch: int, step: int):
    """The LoRA file: kohya names for the SD families; a DiT family's own names (its family module says)."""
    meta = metadata(cfg, info, family=family, prediction_type=prediction_type, epoch=epoch, step=step)
    dit = _dit(family)
    if dit is not None:  # the trainer keeps the denoiser under "unet"
        lora = families.part(dit, "lora")
        # the denoiser, and a text encoder where the family trains one (FLUX.1's CLIP-L under "text_encoder")
        components = {dit.DENOISER: models.get("unet"), **{k: m for k, m in models.items() if k != "unet"}}
        state, meta = lora.lora_state(components), lora.lora_metadata(meta)
    else:
        state = peft_to_kohya(models, family)
    try:
        faults.point("save")
        return save_lora(path, state, meta, cfg.saving.precision)  # atomic: the earlier file of that name stays
    except OSError as e:
        train_state.raise_if_disk_full(e, path, train_state.KEPT_EN, train_state.KEPT_ZH)
        raise


def prune_step_files(run_dir: Path, name: str, keep: int, kind: str = "step") -> list[Path]:
    """Delete all but the newest `keep` step files (name-stepNNNNNNNN.safetensors), or epoch files (name-NNNNNN)
    with kind="epoch"; return what was deleted.

    Only files this run wrote are candidates: a step file named by the run layout that the run's events.jsonl
    lists as saved. A file the user renamed, moved in, or kept from elsewhere is never deleted."""
    if keep <= 0:
        return []
    from core.events import read_events

    events, _ = read_events(run_dir / "events.jsonl")
    saved = {Path(e["file"]).resolve() for e in events if e.get("type") == "saved" and e.get("file")}
    files = [p for k, _, p in run_layout.lora_files(run_dir, name) if k == kind and p.resolve() in saved]
    old = files[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def merged_in_samples(cfg: RunConfig) -> bool:
    """LoHa, LoKr and DoRA files are merged into the sample pipeline's weights rather than loaded by diffusers."""
    return cfg.network.type != "lora" or cfg.network.use_dora


def render_samples(cfg: RunConfig, lora_path: Path, info: dict, *, epoch: int, step: int, device: str, dtype: Any,
                   emit, setup: Any, family: str | None = None) -> list[Path]:
    """Each sampling prompt rendered from the saved file, loaded into a fresh pipeline of the base as the user's UI
    loads it (the family's training setup says how: training/families/)."""
    import torch

    from models import generate, recipe
    from models.lora_file import read_metadata

    s = cfg.sampling
    pipe = setup.sample_pipeline(cfg, lora_path, device, dtype, family or cfg.model.family)
    pipe.set_progress_bar_config(disable=True)
    stem = lora_path.stem
    lora_hash = read_metadata(lora_path).get("sshs_model_hash", "")[:12]
    out = []
    folder = cfg.run_dir / run_layout.SAMPLES
    for i, prompt in enumerate(s.prompts):
        sample = recipe.build(s, prompt=prompt, clip_skip=cfg.training.clip_skip, family=family or cfg.model.family,
                              model=Path(cfg.model.base).stem, model_hash=info["base_hash10"],
                              loras=[{"name": stem, "weight": 1.0, "hash": lora_hash}],
                              zero_terminal_snr=cfg.model.zero_terminal_snr, base=cfg.model.base)
        if merged_in_samples(cfg):
            from models.lycoris import applied_note

            kind = "dora" if cfg.network.use_dora else cfg.network.type
            sample.recipe.setdefault("extra", {})["Lora applied"] = applied_note(kind)
        image = generate.render(pipe, **sample.args)  # a DiT family's pipeline renders through its family module
        text = generate.recipe_text(sample.recipe)
        png = folder / run_layout.sample_file_name(stem, epoch, i)
        try:
            faults.point("sample")
            generate.save_png(image, png, text, sample.recipe.get("png_chunks"))
        except OSError as e:
            train_state.raise_if_disk_full(e, png, "The LoRA file and the run's saved state are kept.",
                                           "LoRA 文件和训练状态都已保留。")
            raise
        # absolute: a relative output_dir is the trainer's folder's, and readers look from elsewhere (the run folder)
        emit("sample", png=str(png.resolve()), epoch=epoch, step=step, prompt_index=i, prompt=prompt, parameters=text)
        out.append(png)
    del pipe
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def info_json(info: dict) -> str:
    return json.dumps(info, ensure_ascii=False, default=str)
