"""The training loop, top to bottom: setup, data, model, LoRA, optimizer, steps, saves, samples, stop.

Runs alone (`python -m training RUN.toml`) or under `accelerate launch` (data parallel: every process
takes its share of each step's batches; only the main process writes files and events).
"""

from __future__ import annotations

import random
import time
from collections import deque
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.config import RunConfig
from core.dataset.steps import total_steps
from core.events import EVENTS_FILE, STOP_FILE, EventWriter
from core.runs import layout as run_layout
from models.preflight import device_kind as device_kind_for
from training import adapters, blocks, checks, dop, export, faults, lora, optim, precache, state, tboard, validation
from training import data as D
from training.families import setup as family_setup
from training.parts import encode_latents
from training.runtime import Log, Result, Stopper

PROGRESS_EVERY_S = 2.0


def train(cfg: RunConfig, *, resume: bool = False, command: str = "") -> Result:
    """Train the LoRA the config describes; returns when finished or stopped (raises DanluError on problems)."""
    stopper = Stopper(cfg.run_dir)
    try:
        return _train(cfg, stopper, resume=resume, command=command)
    finally:
        stopper.restore()


def _train(cfg: RunConfig, stopper: Stopper, *, resume: bool, command: str) -> Result:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Loading weights" bar would fill train.log with bar characters

    t0 = time.time()
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    # --- checks, device and precision -----------------------------------------------------------
    notes = checks.preflight(cfg)  # core.checks, as the Start button and --dry-run ask them: errors stop here
    device_kind = device_kind_for(cfg.training.device) or "cpu"
    mixed = cfg.training.mixed_precision
    if device_kind == "cpu":
        mixed = "no"  # core.checks warns about it
    acc = Accelerator(mixed_precision=mixed, cpu=device_kind == "cpu")
    main = acc.is_main_process
    device, world, rank = acc.device, acc.num_processes, acc.process_index
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)
    if cfg.training.full_bf16:  # core.checks asks for mixed_precision bf16 on a GPU; on the CPU all of it is bf16
        weight_dtype = torch.bfloat16

    log = Log(run_dir / "train.log", main)
    writer = EventWriter(run_dir / EVENTS_FILE) if main else None

    mirror = None  # TensorBoard scalars (saving.tensorboard), opened once warn() exists

    def emit(type_: str, **fields) -> None:
        if writer:
            writer.emit(type_, **fields)
        if mirror is not None:
            mirror.emit(type_, fields)

    def warn(en: str, zh: str) -> None:
        log(f"WARNING: {en}")
        emit("warning", message=en, message_zh=zh)

    resuming = resume or bool(cfg.training.resume)
    moved = run_layout.set_aside_earlier_run(run_dir) if main and not resuming else None
    if main:
        (run_dir / STOP_FILE).unlink(missing_ok=True)  # an old stop request must not end this run at once
        if not (run_dir / "config.toml").is_file() or cfgmod.load(run_dir / "config.toml") != cfg:
            cfgmod.save(cfg, run_dir / "config.toml")
    acc.wait_for_everyone()
    if moved:
        warn(f"This run folder held results of an earlier run; they were moved to {moved}.",
             f"该运行文件夹中有上一次训练的结果，已移到 {moved}。")
    for note in notes:
        warn(note.en, note.zh) if note.level == "warning" else log(note.en)
    if main and cfg.saving.tensorboard:
        mirror = tboard.open_mirror(run_dir, warn)
    s = cfg.sampling
    set_seed(cfg.training.seed + rank)  # each process draws its own noise

    # --- data ------------------------------------------------------------------------------------
    ds = D.build_dataset(cfg, warn)
    val_items = validation.split(ds, cfg, warn)  # a held-out share leaves the training set here
    bs, accum, epochs = cfg.training.batch_size, cfg.training.gradient_accumulation_steps, cfg.training.epochs
    n_batches = len(D.epoch_batches(ds, bs, cfg.training.seed, 0))
    spe = D.steps_per_epoch(n_batches, world, accum)
    total = total_steps(spe, epochs, cfg.training.max_train_steps)  # as the Dataset and Parameters tabs count
    log(f"{len(ds.items)} images, {ds.images_per_epoch} with repeats; {n_batches} batches of {bs} per epoch "
        f"(one bucket per batch) / ({world} processes × accumulation {accum}) = {spe} steps per epoch; "
        f"× {epochs} epochs = {total} steps")
    emit("start", total_steps=total, epochs=epochs, steps_per_epoch=spe, images=ds.images_per_epoch, command=command)

    # --- model and LoRA --------------------------------------------------------------------------
    log(f"Loading {cfg.model.base} on {device} ({'fp32' if mixed == 'no' else mixed})")
    # fp8 base: the parts go to the GPU once the UNet is in fp8, so the 16-bit UNet never sits there
    parts = family_setup(cfg).load_parts(cfg, "cpu" if cfg.training.fp8_base else str(device), weight_dtype, log)
    fam = parts.setup  # the family's stages (training/families/): text, loss, samples
    trained, comp_names, block_plan = adapters.attach(cfg, parts, device, log)

    # --- optimizer and schedule ------------------------------------------------------------------
    unet_params = lora.lora_parameters(parts.unet) if "unet" in trained else []
    te_params = [p for name in comp_names if name in trained for p in lora.lora_parameters(trained[name])]
    plus = {i for m in trained.values() for i in lora.loraplus_ids(m)}
    unet_blocks = blocks.param_groups(parts.unet, parts.family, block_plan) if block_plan and unet_params else None
    opt = optim.make_optimizer(cfg, unet_params, te_params, plus, unet_blocks)
    sched = optim.make_scheduler(cfg, opt, total)
    names = list(trained)
    prepared = acc.prepare(*[trained[k] for k in names], opt, sched)
    wrapped = dict(zip(names, prepared[:len(names)]))
    opt, sched = prepared[-2], prepared[-1]
    unet = wrapped.get("unet", parts.unet)
    parts.text_encoders = [wrapped.get(k, te) for k, te in zip(comp_names, parts.text_encoders)]

    step = 0
    if resuming:
        folder = state.find_state(run_dir, cfg.training.resume if not resume else (cfg.training.resume or "auto"))
        progress = state.load_state(folder, trained, opt, sched)
        step = progress["step"]
        if progress["total_steps"] != total:
            warn(f"The saved state planned {progress['total_steps']} steps; the settings now give {total}.",
                 f"保存的状态计划 {progress['total_steps']} 步；当前设置为 {total} 步。")
        log(f"Resumed from {folder} at step {step} of {total}")

    # --- caches ----------------------------------------------------------------------------------
    vae_id = f"{cfg.model.base}|{cfg.model.vae}|{parts.vae.dtype}"
    cache = D.LatentCache(cfg.dataset.cache_latents, Path(cfg.saving.output_dir) / ".cache" / "latents", vae_id) \
        if cfg.dataset.cache_latents != "none" else None
    train_te = bool(te_params)
    te_cache: dict[str, Any] | None = None
    # core.checks refuses caching with a trained text encoder and warns when captions change every step
    d = cfg.dataset
    if d.cache_text_encoder_outputs and not (train_te or d.shuffle_caption or d.caption_dropout_rate
                                             or d.caption_tag_dropout_rate):
        te_cache = {}

    def latents_for(items: list, flips: list[bool]):
        if cache is None:
            pixels = torch.stack([D.load_pixels(it, f) for it, f in zip(items, flips)])
            return encode_latents(parts, pixels)
        enc = lambda it, f: encode_latents(parts, D.load_pixels(it, f)[None])[0]
        return torch.stack([cache.get(it, f, enc) for it, f in zip(items, flips)]).to(device)

    def text_for(captions: list[str]):
        if te_cache is None:
            with torch.set_grad_enabled(train_te):
                return fam.encode_text(parts, captions, cfg, device)
        missing = [c for c in dict.fromkeys(captions) if c not in te_cache]
        if missing:
            with torch.no_grad():
                h, p = fam.encode_text(parts, missing, cfg, device)
            for i, c in enumerate(missing):
                te_cache[c] = (h[i], None if p is None else p[i])
        return fam.collate_text([te_cache[c][0] for c in captions], [te_cache[c][1] for c in captions])

    validator = validation.Validator(val_items, parts, latents_for, text_for, device) if val_items else None
    # both caches full before step 1 (latents read from disk when there), so the speed and ETA measure steps
    cache_s = precache.fill_caches(cfg, ds, val_items, cache, te_cache is not None, latents_for, text_for,
                                   parts.is_flow, emit, log)

    # --- saving ----------------------------------------------------------------------------------
    base_sha, base_hash10 = export.base_hashes(cfg.model.base) if main else ("", "")
    info = {"total_steps": total, "images": ds.images_per_epoch, "mixed_precision": mixed,
            "dataset_dirs": D.dataset_dirs(ds), "tag_frequency": D.tag_frequency(ds), "bucket_info": D.bucket_info(ds),
            "base_sha256": base_sha, "base_hash10": base_hash10, "started_at": t0}
    result = Result("finished", total_steps=total, family=parts.family, cache_s=cache_s)

    def save(path: Path, epoch: int, with_state: bool) -> None:
        acc.wait_for_everyone()
        optim.averaged_weights(opt)  # schedule-free: the file (and so the samples) holds its averaged weights
        if main:
            unwrapped = {k: acc.unwrap_model(m) for k, m in wrapped.items()}
            save_started = time.time()
            report = export.save_file(path, unwrapped, cfg, info, family=parts.family,
                                      prediction_type=parts.prediction_type, epoch=epoch, step=step)
            result.save_s += time.time() - save_started
            log(f"Saved {path.name} (epoch {epoch}, step {step}) in {time.time() - save_started:.1f} s; "
                f"{report.text()}")
            if report.flushed_share > 0.001:
                warn(f"{100 * report.flushed_share:.2f}% of the LoRA values became zero in {report.precision}; "
                     "save as float or bf16.",
                     f"保存为 {report.precision} 时有 {100 * report.flushed_share:.2f}% 的数值变成 0；"
                     "请改用 float 或 bf16 保存。")
            emit("saved", file=str(path.resolve()), epoch=epoch, step=step, size=path.stat().st_size)
            result.files.append(path)
        optim.training_weights(opt)  # every process: the steps go on from the train-mode weights
        # The state goes with the file before anything slow or fallible (validation, samples: minutes on a real
        # model, and where memory runs out): a run killed after this point resumes from the file just written.
        if main and with_state and cfg.saving.save_state:  # the train-mode weights, as a resumed run goes on from
            state.save_state(run_dir, {k: acc.unwrap_model(m) for k, m in wrapped.items()}, opt, sched, step=step,
                             epoch=epoch, total_steps=total)
        if main:
            if validator is not None:
                with state.weights_restored(wrapped):  # scored on the averaged weights, trained on from the state's
                    optim.averaged_weights(opt)
                    for m in wrapped.values():
                        m.eval()
                    rng = state.rng_state()  # scoring must not change what is trained next
                    val_loss = validator.score(acc.unwrap_model(unet))
                    state.set_rng_state(rng)
                    for m in wrapped.values():
                        m.train()
                    optim.training_weights(opt)
                log(f"Validation loss {val_loss:.5f} ({len(val_items)} images, epoch {epoch}, step {step})")
                emit("validation", epoch=epoch, step=step, loss=val_loss, images=len(val_items))
            if s.prompts:
                rng = state.rng_state()  # sampling must not change what is trained next
                # The sample pipeline is a second copy of the base: park the training copy in CPU memory
                # meanwhile so small GPUs hold one at a time (parameters keep their identity for the optimizer).
                offload = device.type == "cuda" and world == 1
                resident = [parts.unet, parts.vae, *parts.text_encoders]
                if offload:
                    for m in resident:
                        m.to("cpu")
                    torch.cuda.empty_cache()
                for m in wrapped.values():
                    m.eval()
                try:
                    result.samples += export.render_samples(cfg, path, info, epoch=epoch, step=step,
                                                            device=str(device), dtype=weight_dtype, emit=emit,
                                                            setup=fam, family=parts.family)
                finally:
                    for m in wrapped.values():
                        m.train()
                    if offload:
                        for m in resident:
                            m.to(device)
                state.set_rng_state(rng)
        acc.wait_for_everyone()

    # --- the loop --------------------------------------------------------------------------------
    for m in wrapped.values():
        m.train()
    recent: deque[float] = deque(maxlen=20)
    last_report = 0.0
    first_step_at = None
    steps_at_start = step
    stop = False
    saved_at = -1
    while step < total and not stop:
        epoch = step // spe                      # 0-based epoch being trained
        batches = D.epoch_batches(ds, bs, cfg.training.seed, epoch)
        for s_in_epoch in range(step % spe, spe):
            step_started = time.time()
            loss_sum = 0.0
            for micro in range(accum):
                batch = batches[((s_in_epoch * accum + micro) * world + rank) % n_batches]
                flips = [cfg.dataset.flip_aug and random.random() < 0.5 for _ in batch]
                captions = [D.process_caption(it.caption, cfg, random) for it in batch]
                latents = latents_for(batch, flips)
                text = text_for(captions)
                with_dop = cfg.training.dop_multiplier and parts.is_flow  # the same captions with the class word
                class_text = text_for(dop.dop_captions(captions, cfg.dataset.trigger_word,
                                                       cfg.training.dop_class_word)) if with_dop else None
                with acc.autocast():
                    loss = fam.loss(parts, unet, latents, text, batch, cfg, class_text)
                acc.backward(loss / accum)
                loss_sum += loss.detach().item() / accum
            faults.point("step")
            acc.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if first_step_at is not None:
                result.steady_s += time.time() - step_started
                result.steady_samples += bs * accum * world
            recent.append(loss_sum)
            result.losses.append(loss_sum)
            now = time.time()
            if first_step_at is None:
                first_step_at = now
                result.first_step_s = now - t0
                log(f"First step after {now - t0:.1f} s")
            if main and (now - last_report >= PROGRESS_EVERY_S or step == total or step == steps_at_start + 1):
                # speed from the steps after the first (loading and caching excluded), saves not counted
                if result.steady_s > 0:
                    samples_per_s = result.steady_samples / result.steady_s
                else:
                    samples_per_s = bs * accum * world / max(now - t0, 1e-9)
                eta = (total - step) * bs * accum * world / max(samples_per_s, 1e-9)
                emit("progress", step=step, total=total, epoch=epoch + 1, epochs=epochs, loss=loss_sum,
                     loss_avg=sum(recent) / len(recent), lr=sched.get_last_lr()[0], samples_per_s=samples_per_s,
                     eta_s=eta)
                log(f"step {step}/{total} epoch {epoch + 1}/{epochs} loss {loss_sum:.4f} "
                    f"avg {sum(recent) / len(recent):.4f} lr {sched.get_last_lr()[0]:.2e}")
                last_report = now
            if cfg.saving.every_n_steps and step % cfg.saving.every_n_steps == 0 and step < total:
                save(run_dir / export.file_name(cfg.saving.name, step=step), epoch + 1, with_state=True)
                saved_at = step
                if main:
                    export.prune_step_files(run_dir, cfg.saving.name, cfg.saving.keep_last)
            stop = stopper.requested()
            if world > 1:
                flag = torch.tensor([1.0 if stop else 0.0], device=device)
                stop = bool(acc.reduce(flag, reduction="sum").item() > 0)
            if stop or step >= total:
                break
        epoch_done = step % spe == 0 or step >= total
        every = cfg.saving.every_n_epochs
        if epoch_done and step < total and every and (epoch + 1) % every == 0:
            save(run_dir / export.file_name(cfg.saving.name, epoch=epoch + 1), epoch + 1, with_state=True)
            saved_at = step
            if main:
                export.prune_step_files(run_dir, cfg.saving.name, cfg.saving.keep_last_epochs, kind="epoch")

    # --- the end: final file, or what was trained so far when stopped ---------------------------
    final_epoch = step // spe if step % spe == 0 else step // spe + 1
    if step < total:
        result.status = "stopped"
        if saved_at != step:  # stopped right after an epoch file: that file and its state are the save
            save(run_dir / export.file_name(cfg.saving.name, step=step), final_epoch, with_state=True)
        log(f"Stopped at step {step} of {total}; continue with --resume")
        if main:
            (run_dir / STOP_FILE).unlink(missing_ok=True)
    else:
        save(run_dir / export.file_name(cfg.saving.name), final_epoch, with_state=True)
        log(f"Finished {total} steps in {time.time() - t0:.1f} s")
    result.step = step
    result.models = {k: acc.unwrap_model(m) for k, m in wrapped.items()}
    emit("done", status=result.status, files=[str(p) for p in result.files])
    if mirror is not None:
        mirror.close()
    acc.end_training()
    return result
