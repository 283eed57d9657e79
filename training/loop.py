"""The training loop, top to bottom: setup, data, model, LoRA, optimizer, caches, steps, saves, samples, stop.

`_train` reads as the table of contents, one stage a function, in the order they run (as diffusers' training
scripts stage their `main()`); what the stages share is held in three small records: the Run (settings, process,
log and events), the Plan (dataset and step arithmetic) and the Model (parts, LoRA, optimizer). What differs
between families is in the family's training seam (training/families/), reached through `parts.setup`.

Runs alone (`python -m training RUN.toml`) or under `accelerate launch` (data parallel: every process
takes its share of each step's batches; only the main process writes files and events).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.config import RunConfig
from core.dataset.steps import total_steps
from core.events import EVENTS_FILE, STOP_FILE, EventWriter
from core.runs import layout as run_layout
from models.preflight import device_kind as device_kind_for
from training import (
    adapters,
    block_swap,
    blocks,
    checks,
    dop,
    export,
    faults,
    lora,
    optim,
    precache,
    state,
    tboard,
    validation,
)
from training import data as D
from training.families import setup as family_setup
from training.parts import encode_latents
from training.runtime import Log, Result, Stopper

PROGRESS_EVERY_S = 2.0


@dataclass
class Run:
    """The run's settings, its process (accelerate), its precision and where it reports."""

    cfg: RunConfig
    acc: Any
    device: Any
    world: int
    rank: int
    mixed: str
    weight_dtype: Any
    log: Log
    writer: EventWriter | None
    resuming: bool
    t0: float
    mirror: Any = None  # TensorBoard scalars (saving.tensorboard)

    @property
    def main(self) -> bool:
        return self.acc.is_main_process

    def emit(self, type_: str, **fields) -> None:
        if self.writer:
            self.writer.emit(type_, **fields)
        if self.mirror is not None:
            self.mirror.emit(type_, fields)

    def warn(self, en: str, zh: str) -> None:
        self.log(f"WARNING: {en}")
        self.emit("warning", message=en, message_zh=zh)


@dataclass
class Plan:
    """The dataset and its step arithmetic, as the Dataset and Parameters tabs count it."""

    ds: Any
    val_items: list
    batch_size: int
    accum: int
    epochs: int
    n_batches: int
    steps_per_epoch: int
    total: int


@dataclass
class Model:
    """The base's parts with the LoRA on them, the modules trained, the optimizer and its schedule."""

    parts: Any
    wrapped: dict[str, Any]   # trained modules by component, as accelerate prepared them
    trained: dict[str, Any]
    opt: Any
    sched: Any
    train_te: bool
    step: int = 0             # the step the run starts from (a resumed run's saved step)

    @property
    def unet(self) -> Any:
        return self.wrapped.get("unet", self.parts.unet)


@dataclass
class Feed:
    """Latents and text features of a batch (from the caches when they are on) and the validation scorer."""

    latents_for: Callable
    text_for: Callable
    validator: Any
    info: dict = field(default_factory=dict)  # what the LoRA file's metadata says of the run


def train(cfg: RunConfig, *, resume: bool = False, command: str = "") -> Result:
    """Train the LoRA the config describes; returns when finished or stopped (raises DanluError on problems)."""
    stopper = Stopper(cfg.run_dir)
    try:
        return _train(cfg, stopper, resume=resume, command=command)
    finally:
        stopper.restore()


def _train(cfg: RunConfig, stopper: Stopper, *, resume: bool, command: str) -> Result:
    run = _start(cfg, resume)                 # checks, device and precision, the run folder, log and events
    plan = _data(run, command)                # the dataset, a held-out validation share, the step plan
    model = _model(run, plan, resume)         # the base, the LoRA on it, optimizer and schedule, a resumed state
    feed, cache_s = _caches(run, plan, model)  # both caches full before step 1, so speed and ETA measure steps
    result = Result("finished", total_steps=plan.total, family=model.parts.family, cache_s=cache_s)
    feed.info = _file_info(run, plan)
    _loop(run, plan, model, feed, result, stopper)
    return _end(run, plan, model, feed, result)


# --- checks, device and precision ---------------------------------------------------------------
def _start(cfg: RunConfig, resume: bool) -> Run:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # their "Loading weights" / "Loading pipeline components" bars would fill train.log with bar characters
    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    t0 = time.time()
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    notes = checks.preflight(cfg)  # core.checks, as the Start button and --dry-run ask them: errors stop here
    device_kind = device_kind_for(cfg.training.device) or "cpu"
    mixed = "no" if device_kind == "cpu" else cfg.training.mixed_precision  # core.checks warns about the CPU
    acc = Accelerator(mixed_precision=mixed, cpu=device_kind == "cpu")
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)
    if cfg.training.full_bf16:  # core.checks asks for mixed_precision bf16 on a GPU; on the CPU all of it is bf16
        weight_dtype = torch.bfloat16
    main = acc.is_main_process
    run = Run(cfg, acc, acc.device, acc.num_processes, acc.process_index, mixed, weight_dtype,
              Log(run_dir / "train.log", main), EventWriter(run_dir / EVENTS_FILE) if main else None,
              resume or bool(cfg.training.resume), t0)
    moved = run_layout.set_aside_earlier_run(run_dir) if main and not run.resuming else None
    if main:
        (run_dir / STOP_FILE).unlink(missing_ok=True)  # an old stop request must not end this run at once
        if not (run_dir / "config.toml").is_file() or cfgmod.load(run_dir / "config.toml") != cfg:
            cfgmod.save(cfg, run_dir / "config.toml")
    acc.wait_for_everyone()
    if moved:
        run.warn(f"This run folder held results of an earlier run; they were moved to {moved}.",
                 f"该运行文件夹中有上一次训练的结果，已移到 {moved}。")
    for note in notes:
        run.warn(note.en, note.zh) if note.level == "warning" else run.log(note.en)
    if main and cfg.saving.tensorboard:
        run.mirror = tboard.open_mirror(run_dir, run.warn)
    set_seed(cfg.training.seed + run.rank)  # each process draws its own noise
    return run


# --- data ----------------------------------------------------------------------------------------
def _data(run: Run, command: str) -> Plan:
    cfg = run.cfg
    ds = D.build_dataset(cfg, run.warn)
    val_items = validation.split(ds, cfg, run.warn)  # a held-out share leaves the training set here
    bs, accum, epochs = cfg.training.batch_size, cfg.training.gradient_accumulation_steps, cfg.training.epochs
    n_batches = len(D.epoch_batches(ds, bs, cfg.training.seed, 0))
    spe = D.steps_per_epoch(n_batches, run.world, accum)
    total = total_steps(spe, epochs, cfg.training.max_train_steps)  # as the Dataset and Parameters tabs count
    run.log(f"{len(ds.items)} images, {ds.images_per_epoch} with repeats; {n_batches} batches of {bs} per epoch "
            f"(one bucket per batch) / ({run.world} processes × accumulation {accum}) = {spe} steps per epoch; "
            f"× {epochs} epochs = {total} steps")
    run.emit("start", total_steps=total, epochs=epochs, steps_per_epoch=spe, images=ds.images_per_epoch,
             command=command)
    return Plan(ds, val_items, bs, accum, epochs, n_batches, spe, total)


# --- model, LoRA, optimizer and schedule ---------------------------------------------------------
def _model(run: Run, plan: Plan, resume: bool) -> Model:
    cfg, acc = run.cfg, run.acc
    run.log(f"Loading {cfg.model.base} on {run.device} ({'fp32' if run.mixed == 'no' else run.mixed})")
    # fp8 base: the parts go to the GPU once the UNet is in fp8, so the 16-bit UNet never sits there
    device = "cpu" if cfg.training.fp8_base else str(run.device)
    parts = family_setup(cfg).load_parts(cfg, device, run.weight_dtype, run.log)
    trained, comp_names, block_plan = adapters.attach(cfg, parts, run.device, run.log)

    unet_params = lora.lora_parameters(parts.unet) if "unet" in trained else []
    te_params = [p for name in comp_names if name in trained for p in lora.lora_parameters(trained[name])]
    plus = {i for m in trained.values() for i in lora.loraplus_ids(m)}
    unet_blocks = blocks.param_groups(parts.unet, parts.family, block_plan) if block_plan and unet_params else None
    opt = optim.make_optimizer(cfg, unet_params, te_params, plus, unet_blocks)
    sched = optim.make_scheduler(cfg, opt, plan.total)
    names = list(trained)
    # a denoiser with blocks swapped is placed already, part of it in CPU memory: accelerate must not move it
    placement = [not block_swap.swapped(trained[k]) for k in names] + [True, True]
    prepared = acc.prepare(*[trained[k] for k in names], opt, sched, device_placement=placement)
    wrapped = dict(zip(names, prepared[:len(names)]))
    model = Model(parts, wrapped, trained, prepared[-2], prepared[-1], bool(te_params))
    parts.text_encoders = [wrapped.get(k, te) for k, te in zip(comp_names, parts.text_encoders)]
    if run.resuming:
        which = cfg.training.resume if not resume else (cfg.training.resume or "auto")
        folder = state.find_state(cfg.run_dir, which)
        progress = state.load_state(folder, trained, model.opt, model.sched)
        model.step = progress["step"]
        if progress["total_steps"] != plan.total:
            run.warn(f"The saved state planned {progress['total_steps']} steps; the settings now give {plan.total}.",
                     f"保存的状态计划 {progress['total_steps']} 步；当前设置为 {plan.total} 步。")
        run.log(f"Resumed from {folder} at step {model.step} of {plan.total}")
    return model


# --- caches --------------------------------------------------------------------------------------
def _caches(run: Run, plan: Plan, model: Model) -> tuple[Feed, float]:
    import torch

    cfg, parts, device = run.cfg, model.parts, run.device
    fam = parts.setup  # the family's stages: text encoding and collating
    vae_id = f"{cfg.model.base}|{cfg.model.vae}|{parts.vae.dtype}"
    cache = D.LatentCache(cfg.dataset.cache_latents, Path(cfg.saving.output_dir) / ".cache" / "latents", vae_id) \
        if cfg.dataset.cache_latents != "none" else None
    d = cfg.dataset
    # core.checks refuses caching with a trained text encoder and warns when captions change every step
    changing = d.shuffle_caption or d.caption_dropout_rate or d.caption_tag_dropout_rate
    te_cache: dict[str, Any] | None = {} if d.cache_text_encoder_outputs and not (model.train_te or changing) \
        else None

    def latents_for(items: list, flips: list[bool]):
        if cache is None:
            pixels = torch.stack([D.load_pixels(it, f) for it, f in zip(items, flips)])
            return encode_latents(parts, pixels)
        enc = lambda it, f: encode_latents(parts, D.load_pixels(it, f)[None])[0]
        return torch.stack([cache.get(it, f, enc) for it, f in zip(items, flips)]).to(device)

    def text_for(captions: list[str]):
        if te_cache is None:
            with torch.set_grad_enabled(model.train_te):
                return fam.encode_text(parts, captions, cfg, device)
        missing = [c for c in dict.fromkeys(captions) if c not in te_cache]
        if missing:
            with torch.no_grad():
                h, p = fam.encode_text(parts, missing, cfg, device)
            for i, c in enumerate(missing):
                te_cache[c] = (h[i], None if p is None else p[i])
        return fam.collate_text([te_cache[c][0] for c in captions], [te_cache[c][1] for c in captions])

    validator = validation.Validator(plan.val_items, parts, latents_for, text_for, device) if plan.val_items \
        else None
    # latents read from disk when there; text features encoded once per caption
    cache_s = precache.fill_caches(cfg, plan.ds, plan.val_items, cache, te_cache is not None, latents_for, text_for,
                                   parts.is_flow, run.emit, run.log)
    free = getattr(fam, "free_text_encoder", None)  # every caption is cached now: a family may let its encoder go
    if te_cache is not None and free is not None:
        free(parts, run.log)
    return Feed(latents_for, text_for, validator), cache_s


def _file_info(run: Run, plan: Plan) -> dict:
    """What each LoRA file's metadata says of the run (export.metadata)."""
    base_sha, base_hash10 = export.base_hashes(run.cfg.model.base) if run.main else ("", "")
    ds = plan.ds
    return {"total_steps": plan.total, "images": ds.images_per_epoch, "mixed_precision": run.mixed,
            "dataset_dirs": D.dataset_dirs(ds), "tag_frequency": D.tag_frequency(ds),
            "bucket_info": D.bucket_info(ds), "base_sha256": base_sha, "base_hash10": base_hash10,
            "started_at": run.t0}


# --- saving: the file, its state, then validation and samples -----------------------------------
def _save(run: Run, plan: Plan, model: Model, feed: Feed, result: Result, path: Path, epoch: int, step: int) -> None:
    cfg, acc, opt = run.cfg, run.acc, model.opt
    acc.wait_for_everyone()
    optim.averaged_weights(opt)  # schedule-free: the file (and so the samples) holds its averaged weights
    if run.main:
        unwrapped = {k: acc.unwrap_model(m) for k, m in model.wrapped.items()}
        save_started = time.time()
        report = export.save_file(path, unwrapped, cfg, feed.info, family=model.parts.family,
                                  prediction_type=model.parts.prediction_type, epoch=epoch, step=step)
        result.save_s += time.time() - save_started
        run.log(f"Saved {path.name} (epoch {epoch}, step {step}) in {time.time() - save_started:.1f} s; "
                f"{report.text()}")
        if report.flushed_share > 0.001:
            run.warn(f"{100 * report.flushed_share:.2f}% of the LoRA values became zero in {report.precision}; "
                     "save as float or bf16.",
                     f"保存为 {report.precision} 时有 {100 * report.flushed_share:.2f}% 的数值变成 0；"
                     "请改用 float 或 bf16 保存。")
        run.emit("saved", file=str(path.resolve()), epoch=epoch, step=step, size=path.stat().st_size)
        result.files.append(path)
    optim.training_weights(opt)  # every process: the steps go on from the train-mode weights
    # The state goes with the file before anything slow or fallible (validation, samples: minutes on a real
    # model, and where memory runs out): a run killed after this point resumes from the file just written.
    if run.main and cfg.saving.save_state:  # the train-mode weights, as a resumed run goes on from
        state.save_state(cfg.run_dir, {k: acc.unwrap_model(m) for k, m in model.wrapped.items()}, opt, model.sched,
                         step=step, epoch=epoch, total_steps=plan.total)
    if run.main and feed.validator is not None:
        _validate(run, plan, model, feed, epoch, step)
    if run.main and cfg.sampling.prompts:
        result.samples += _samples(run, model, feed, path, epoch, step)
    acc.wait_for_everyone()


def _validate(run: Run, plan: Plan, model: Model, feed: Feed, epoch: int, step: int) -> None:
    with state.weights_restored(model.wrapped):  # scored on the averaged weights, trained on from the state's
        optim.averaged_weights(model.opt)
        for m in model.wrapped.values():
            m.eval()
        rng = state.rng_state()  # scoring must not change what is trained next
        val_loss = feed.validator.score(run.acc.unwrap_model(model.unet))
        state.set_rng_state(rng)
        for m in model.wrapped.values():
            m.train()
        optim.training_weights(model.opt)
    run.log(f"Validation loss {val_loss:.5f} ({len(plan.val_items)} images, epoch {epoch}, step {step})")
    run.emit("validation", epoch=epoch, step=step, loss=val_loss, images=len(plan.val_items))


def _samples(run: Run, model: Model, feed: Feed, path: Path, epoch: int, step: int) -> list[Path]:
    import torch

    parts, device = model.parts, run.device
    rng = state.rng_state()  # sampling must not change what is trained next
    # The sample pipeline is a second copy of the base: park the training copy in CPU memory
    # meanwhile so small GPUs hold one at a time (parameters keep their identity for the optimizer).
    offload = device.type == "cuda" and run.world == 1
    resident = [parts.unet, parts.vae, *parts.text_encoders]
    if offload:
        for m in resident:
            block_swap.move(m, "cpu")
        torch.cuda.empty_cache()
    for m in model.wrapped.values():
        m.eval()
    try:
        return export.render_samples(run.cfg, path, feed.info, epoch=epoch, step=step, device=str(device),
                                     dtype=run.weight_dtype, emit=run.emit, setup=parts.setup, family=parts.family)
    finally:
        for m in model.wrapped.values():
            m.train()
        if offload:
            for m in resident:
                block_swap.move(m, device)
        state.set_rng_state(rng)


# --- the loop ------------------------------------------------------------------------------------
def _loop(run: Run, plan: Plan, model: Model, feed: Feed, result: Result, stopper: Stopper) -> None:
    import torch

    cfg, acc, spe = run.cfg, run.acc, plan.steps_per_epoch
    for m in model.wrapped.values():
        m.train()
    recent: deque[float] = deque(maxlen=20)
    last_report, steps_at_start, stop = 0.0, model.step, False
    result.step = model.step
    result.saved_at = -1
    while result.step < plan.total and not stop:
        epoch = result.step // spe  # 0-based epoch being trained
        batches = D.epoch_batches(plan.ds, plan.batch_size, cfg.training.seed, epoch)
        for s_in_epoch in range(result.step % spe, spe):
            step_started = time.time()
            loss_sum = _step(run, plan, model, feed, batches, s_in_epoch)
            result.step += 1
            step = result.step
            if step > steps_at_start + 1:  # speed from the steps after the first (loading and caching excluded)
                result.steady_s += time.time() - step_started
                result.steady_samples += plan.batch_size * plan.accum * run.world
            recent.append(loss_sum)
            result.losses.append(loss_sum)
            now = time.time()
            if step == steps_at_start + 1:
                result.first_step_s = now - run.t0
                run.log(f"First step after {now - run.t0:.1f} s")
            due = now - last_report >= PROGRESS_EVERY_S or step == plan.total or step == steps_at_start + 1
            if run.main and due:
                _report(run, plan, model, result, recent, epoch, loss_sum, now)
                last_report = now
            if cfg.saving.every_n_steps and step % cfg.saving.every_n_steps == 0 and step < plan.total:
                _save(run, plan, model, feed, result, cfg.run_dir / export.file_name(cfg.saving.name, step=step),
                      epoch + 1, step)
                result.saved_at = step
                if run.main:
                    export.prune_step_files(cfg.run_dir, cfg.saving.name, cfg.saving.keep_last)
            stop = stopper.requested()
            if run.world > 1:
                flag = torch.tensor([1.0 if stop else 0.0], device=run.device)
                stop = bool(acc.reduce(flag, reduction="sum").item() > 0)
            if stop or step >= plan.total:
                break
        step, every = result.step, cfg.saving.every_n_epochs
        epoch_done = step % spe == 0 or step >= plan.total
        if epoch_done and step < plan.total and every and (epoch + 1) % every == 0:
            _save(run, plan, model, feed, result, cfg.run_dir / export.file_name(cfg.saving.name, epoch=epoch + 1),
                  epoch + 1, step)
            result.saved_at = step
            if run.main:
                export.prune_step_files(cfg.run_dir, cfg.saving.name, cfg.saving.keep_last_epochs, kind="epoch")


def _step(run: Run, plan: Plan, model: Model, feed: Feed, batches: list, s_in_epoch: int) -> float:
    """One optimizer step over `accum` micro-batches; returns its loss."""
    cfg, acc, parts, opt = run.cfg, run.acc, model.parts, model.opt
    loss_sum = 0.0
    for micro in range(plan.accum):
        batch = batches[((s_in_epoch * plan.accum + micro) * run.world + run.rank) % plan.n_batches]
        flips = [cfg.dataset.flip_aug and random.random() < 0.5 for _ in batch]
        captions = [D.process_caption(it.caption, cfg, random) for it in batch]
        latents = feed.latents_for(batch, flips)
        text = feed.text_for(captions)
        with_dop = cfg.training.dop_multiplier and parts.is_flow  # the same captions with the class word
        class_text = feed.text_for(dop.dop_captions(captions, cfg.dataset.trigger_word,
                                                    cfg.training.dop_class_word)) if with_dop else None
        with acc.autocast():
            loss = parts.setup.loss(parts, model.unet, latents, text, batch, cfg, class_text)
        acc.backward(loss / plan.accum)
        loss_sum += loss.detach().item() / plan.accum
    faults.point("step")
    acc.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()
    model.sched.step()
    opt.zero_grad(set_to_none=True)
    return loss_sum


def _report(run: Run, plan: Plan, model: Model, result: Result, recent: deque, epoch: int, loss_sum: float,
            now: float) -> None:
    """The progress event and log line: speed from the steps after the first, saves not counted."""
    per_step = plan.batch_size * plan.accum * run.world
    if result.steady_s > 0:
        samples_per_s = result.steady_samples / result.steady_s
    else:
        samples_per_s = per_step / max(now - run.t0, 1e-9)
    eta = (plan.total - result.step) * per_step / max(samples_per_s, 1e-9)
    lr = model.sched.get_last_lr()[0]
    run.emit("progress", step=result.step, total=plan.total, epoch=epoch + 1, epochs=plan.epochs, loss=loss_sum,
             loss_avg=sum(recent) / len(recent), lr=lr, samples_per_s=samples_per_s, eta_s=eta)
    run.log(f"step {result.step}/{plan.total} epoch {epoch + 1}/{plan.epochs} loss {loss_sum:.4f} "
            f"avg {sum(recent) / len(recent):.4f} lr {lr:.2e}")


# --- the end: final file, or what was trained so far when stopped -------------------------------
def _end(run: Run, plan: Plan, model: Model, feed: Feed, result: Result) -> Result:
    cfg, step, spe = run.cfg, result.step, plan.steps_per_epoch
    final_epoch = step // spe if step % spe == 0 else step // spe + 1
    if step < plan.total:
        result.status = "stopped"
        if result.saved_at != step:  # stopped right after an epoch file: that file and its state are the save
            _save(run, plan, model, feed, result, cfg.run_dir / export.file_name(cfg.saving.name, step=step),
                  final_epoch, step)
        run.log(f"Stopped at step {step} of {plan.total}; continue with --resume")
        if run.main:
            (cfg.run_dir / STOP_FILE).unlink(missing_ok=True)
    else:
        _save(run, plan, model, feed, result, cfg.run_dir / export.file_name(cfg.saving.name), final_epoch, step)
        run.log(f"Finished {plan.total} steps in {time.time() - run.t0:.1f} s")
    result.models = {k: run.acc.unwrap_model(m) for k, m in model.wrapped.items()}
    run.emit("done", status=result.status, files=[str(p) for p in result.files])
    if run.mirror is not None:
        run.mirror.close()
    run.acc.end_training()
    return result
