"""Training speed: samples/s, peak memory, time to first step, cache time and save time.

    python bench/train_speed.py [RUN.toml] [--set section.key=value ...] [--epochs 2]
    python bench/train_speed.py --family zimage [--set ...]    (the tiny Z-Image Turbo + adapter demo run)
    python bench/train_speed.py --family flux|chroma|qwen_image [--swap 2]   (the tiny demo run, without and with
        block swap)
    python bench/train_speed.py --full-size --family zimage [--steps 10] [--resolution 1024]
    python bench/train_speed.py --full-size [--family sd15|sdxl|both] [--batch-sizes 1,2,4] [--steps 10]

Default: the real trainer (training.loop.train) on the given run, or on a tiny SD1.5 run built here
(64 px flat-colour images; runs on a CPU). Sampling and intermediate saves are turned off; the
time to first step includes loading and filling the latent and text caches (cache_s, reported apart),
samples/s and s_per_step are measured after it; save_s is the time spent writing LoRA files. Then the save
of a LoRA with SD1.5's shapes (rank 16 on the attention layers, random factors, fp16): the file as Danlu
writes it (precision report on 64 rows per layer, one serialisation) against the earlier way (report on the
full delta of every layer, the file serialised twice for its hashes), and the ratio (--save-shapes none: skip).

--full-size: the real SD1.5 (512 px) / SDXL (1024 px) UNet architectures from their shipped configs
with random weights (no download), LoRA rank 16 on the kohya targets, cached latents and text
embeddings, on CUDA when present (bf16). For each batch size, with and without gradient
checkpointing: Danlu's training step (training.families.sd.loss under accelerate's autocast) against a
plain baseline loop (the UNet forward/backward and AdamW, nothing else), the ratio, peak memory, and
MFU from the FLOP counts in reference/conventions.md §7.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# TFLOP per sample for a LoRA step (forward + activation-gradient backward), conventions.md §7.
STEP_TFLOP = {"sd15": 1.72, "sdxl": 14.19}
STEP_TFLOP_CKPT = {"sd15": 2.53, "sdxl": 21.0}   # with the recomputed forward
RESOLUTION = {"sd15": 512, "sdxl": 1024}
DEMO_FAMILIES = ("zimage", "flux", "chroma", "qwen_image")
SWAP_FAMILIES = ("flux", "chroma", "qwen_image")  # training.blocks_to_swap applies to them
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


def _peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- the trainer on a run ------------------------------------------------------------------------

def bench_run(toml: str | None, overrides: list[str], epochs: int, family: str = "sd15") -> dict:
    from core import config as cfgmod
    from training.loop import train

    tmp = Path(tempfile.mkdtemp(prefix="danlu-bench-"))
    if not toml and family in DEMO_FAMILIES:  # the family's demo run: its preset scaled down to the tiny model
        from models.demo import make_demo

        toml = str(make_demo(tmp / "demo", family=family))
    if toml:
        cfg = cfgmod.load(toml, overrides=overrides)
        cfg.saving.output_dir = str(tmp / "runs")
    else:
        from models.tiny import save_tiny
        from training.tiny_run import flat_dataset, tiny_config

        base = save_tiny("sd15", tmp / "base", single_file=False).folder
        cfg = tiny_config(base, flat_dataset(tmp / "data", count=8, repeats=4), tmp / "runs", "bench")
        cfg = cfgmod.apply_overrides(cfg, overrides)
    cfg.training.epochs = epochs
    cfg.sampling.prompts = []
    cfg.saving.every_n_epochs = 0
    cfg.saving.save_state = False
    result = train(cfg, command="bench/train_speed.py")
    import torch

    device = "cuda" if torch.cuda.is_available() and cfg.training.device in ("auto", "cuda") else "cpu"
    steady_steps = max(result.step - 1, 1)
    return {"base": cfg.model.base, "device": device, "batch_size": cfg.training.batch_size,
            "steps": result.step, "time_to_first_step_s": round(result.first_step_s, 2),
            "cache_s": round(result.cache_s, 2), "save_s": round(result.save_s, 3),
            "samples_per_s": round(result.steady_samples / max(result.steady_s, 1e-9), 2),
            "s_per_step": round(result.steady_s / steady_steps, 3),
            "peak_memory_mb": round(_peak_memory_mb(device), 1),
            "gradient_checkpointing": cfg.training.gradient_checkpointing,
            "mixed_precision": cfg.training.mixed_precision}


def bench_swap(toml: str | None, overrides: list[str], epochs: int, family: str, swap: int) -> list[dict]:
    """The same run without and with `swap` blocks swapped, in one process; the last row is the speed ratio."""
    plain = bench_run(toml, [*overrides, "training.blocks_to_swap=0"], epochs, family)
    swapped = bench_run(toml, [*overrides, f"training.blocks_to_swap={swap}"], epochs, family)
    plain["blocks_to_swap"], swapped["blocks_to_swap"] = 0, swap
    ratio = swapped["s_per_step"] / max(plain["s_per_step"], 1e-9)
    return [plain, swapped, {"family": family, "swap_over_plain_s_per_step": round(ratio, 3)}]


def bench_save(family: str = "sd15", rank: int = 16) -> dict:
    """Save time of a LoRA with the family's UNet attention shapes: as written now against the earlier way."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save

    from core.fsutil import atomic_write_bytes
    from models.lora_file import cast_state, safetensors_hashes, save_lora
    from models.lora_names import module_bases

    config = json.loads((ROOT / "models" / "configs" / family / "unet" / "config.json").read_text(encoding="utf-8"))
    with torch.device("meta"):  # shapes only, no weights
        unet = UNet2DConditionModel.from_config(config)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for base, layer in module_bases("unet", unet, family):
        if "attentions" not in base:  # kohya's default LoRA targets: the transformer blocks
            continue
        shape = layer.weight.shape
        state[f"{base}.lora_down.weight"] = torch.randn(rank, *shape[1:], generator=gen) * 0.01
        state[f"{base}.lora_up.weight"] = torch.randn(shape[0], rank, *([1] * (len(shape) - 2)), generator=gen) * 1e-3
        state[f"{base}.alpha"] = torch.tensor(float(rank))
    meta = {"ss_network_dim": str(rank), "ss_base_model_version": "sd_v1", "danlu_note": "bench"}
    folder = Path(tempfile.mkdtemp(prefix="danlu-bench-save-"))

    def earlier(path: Path):  # the full report, then one serialisation for the hashes and one to write
        tensors, report = cast_state(state, "fp16", full=True)
        full_meta = {**meta, "ss_output_name": path.stem}
        model_hash, legacy = safetensors_hashes(save(tensors, metadata={k: v for k, v in full_meta.items()
                                                                         if k.startswith("ss_")}))
        atomic_write_bytes(path, save(tensors, metadata={**full_meta, "sshs_model_hash": model_hash,
                                                         "sshs_legacy_hash": legacy}))
        return report

    timings = {}
    for name, fn in (("now", lambda p: save_lora(p, state, meta, "fp16")), ("earlier", earlier)):
        fn(folder / f"warm-{name}.safetensors")
        started = time.perf_counter()
        report = fn(folder / f"{name}.safetensors")
        timings[name] = (time.perf_counter() - started, report.max_rel_error)
    return {"save_shapes": family, "rank": rank, "layers": len(state) // 3,
            "file_mb": round((folder / "now.safetensors").stat().st_size / 2**20, 1),
            "save_now_s": round(timings["now"][0], 3), "save_earlier_s": round(timings["earlier"][0], 3),
            "earlier_over_now": round(timings["earlier"][0] / max(timings["now"][0], 1e-9), 1),
            "max_rel_error_now": f"{timings['now'][1]:.2e}", "max_rel_error_full": f"{timings['earlier'][1]:.2e}"}


# --- full-size UNet ------------------------------------------------------------------------------

def _unet(family: str, device: str, dtype):
    from diffusers import UNet2DConditionModel

    config = json.loads((ROOT / "models" / "configs" / family / "unet" / "config.json").read_text(encoding="utf-8"))
    unet = UNet2DConditionModel.from_config(config)
    return unet.to(device, dtype=dtype)


def _inputs(family: str, batch: int, device: str, dtype, resolution: int):
    import torch

    side = resolution // 8
    latents = torch.randn(batch, 4, side, side, device=device)
    hidden = torch.randn(batch, 77, 2048 if family == "sdxl" else 768, device=device, dtype=dtype)
    pooled = torch.randn(batch, 1280, device=device, dtype=dtype) if family == "sdxl" else None
    r = resolution
    time_ids = torch.tensor([[r, r, 0, 0, r, r]] * batch, device=device, dtype=dtype) if family == "sdxl" else None
    return latents, hidden, pooled, time_ids


def _time_steps(step_fn, steps: int, device: str) -> float:
    """Seconds per step after two warm-up steps."""
    import torch

    for _ in range(2):
        step_fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step_fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def _measure(acc, parts, opt, cfg, inputs, steps: int) -> tuple[float, float]:
    """Seconds per step: (plain baseline loop, Danlu's training step) on the same UNet and inputs."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from training.families import sd

    unet = parts.unet
    latents, hidden, pooled, time_ids = inputs
    batch, device, dtype = latents.shape[0], latents.device.type, hidden.dtype
    params = [p for g in opt.param_groups for p in g["params"]]
    cond = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}} if pooled is not None else {}
    side = latents.shape[-1] * 8  # the SDXL size conditioning of square images at this resolution (time_ids above)
    items = [SimpleNamespace(original=(side, side), crop_ltrb=(0, 0, side, side), size=(side, side))] * batch

    def danlu_step():
        with acc.autocast():
            loss = sd.loss(parts, unet, latents, (hidden, pooled), items, cfg)
        acc.backward(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def plain_step():
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(latents)
        pred = unet(latents.to(dtype), t, encoder_hidden_states=hidden, **cond).sample
        F.mse_loss(pred.float(), noise).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _time_steps(plain_step, steps, device), _time_steps(danlu_step, steps, device)


def bench_full(family: str, batch_sizes: list[int], steps: int, peak_tflops: float | None,
               resolution: int | None = None) -> list[dict]:
    import torch
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    from core import config as cfgmod
    from training import lora
    from training.families import sd
    from training.parts import Parts

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    acc = Accelerator(mixed_precision="bf16" if device == "cuda" else "no", cpu=device == "cpu")
    if peak_tflops is None and device == "cuda":
        name = torch.cuda.get_device_name()
        peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    sched_config = json.loads((ROOT / "models" / "configs" / family / "scheduler" / "scheduler_config.json")
                              .read_text(encoding="utf-8"))
    noise_scheduler = DDPMScheduler.from_config(sched_config)
    cfg = cfgmod.default_config()
    res = resolution or RESOLUTION[family]
    rows = []
    for ckpt in (False, True):
        unet = _unet(family, device, dtype)
        unet.requires_grad_(False)
        layers = lora.inject(unet, rank=16, alpha=16, component="unet")
        for p in lora.lora_parameters(unet):
            p.data = p.data.float()
        if ckpt:
            unet.enable_gradient_checkpointing()
        unet.train()
        params = lora.lora_parameters(unet)
        opt = torch.optim.AdamW(params, lr=1e-4)
        parts = Parts(family, "epsilon", unet, None, [], [], noise_scheduler, sched_config, sd)
        for batch in batch_sizes:
            row = {"family": family, "device": device, "resolution": res, "batch_size": batch,
                   "gradient_checkpointing": ckpt, "lora_layers": layers}
            try:
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t_plain, t_danlu = _measure(acc, parts, opt, cfg, _inputs(family, batch, device, dtype, res), steps)
            except torch.cuda.OutOfMemoryError:
                row["error"] = "out of memory"
                rows.append(row)
                torch.cuda.empty_cache()
                break
            row.update(plain_samples_per_s=round(batch / t_plain, 2), samples_per_s=round(batch / t_danlu, 2),
                       ratio_to_plain=round(t_plain / t_danlu, 3), peak_memory_mb=round(_peak_memory_mb(device), 1))
            if peak_tflops and res == RESOLUTION[family]:  # the FLOP counts are for the native size
                # MFU counts model FLOPs only: the recomputed forward of checkpointing is not useful work
                row["mfu"] = round(batch / t_danlu * STEP_TFLOP[family] / peak_tflops, 4)
                row["hfu"] = round(batch / t_danlu * (STEP_TFLOP_CKPT if ckpt else STEP_TFLOP)[family]
                                   / peak_tflops, 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del unet, opt
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def bench_full_zimage(steps: int, resolution: int | None, quantize: bool, tokens: int = 64,
                      config: dict | None = None) -> dict:
    """The real Z-Image transformer (Turbo's config, random weights, no download) with LoRA rank 16 on the main
    blocks' linears, gradient checkpointing, bf16 on CUDA, optionally int8 weights (model.quantize): s/step, peak
    memory. The text encoder and VAE are not loaded (cached latents and text features, as the low-VRAM path runs)."""
    import torch
    from accelerate import Accelerator
    from diffusers import ZImageTransformer2DModel

    from core import config as cfgmod
    from training import lora
    from training.families import zimage as dit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    acc = Accelerator(mixed_precision="bf16" if device == "cuda" else "no", cpu=device == "cpu")
    res = resolution or 1024
    torch.set_default_dtype(dtype)  # build the 6B weights directly in the training dtype
    try:
        with torch.device("cpu" if quantize else device):
            transformer = ZImageTransformer2DModel(**(config or {}))
    finally:
        torch.set_default_dtype(torch.float32)
    transformer.requires_grad_(False)
    if quantize:
        dit.quantize_int8(transformer, device)
    transformer.to(device)
    layers = lora.inject(transformer, rank=16, alpha=16, family="zimage",
                         dit_targets=["attention", "feed_forward", "adaLN"])
    for p in lora.lora_parameters(transformer):
        p.data = p.data.float()
    transformer.enable_gradient_checkpointing()
    transformer.train()
    params = lora.lora_parameters(transformer)
    opt = torch.optim.AdamW(params, lr=1e-4)
    parts = SimpleNamespace(flow=dit.FLOW, unet=transformer)
    cfg = cfgmod.load(preset="zimage_turbo_adapter")
    latents = torch.randn(1, transformer.config.in_channels, res // 8, res // 8, device=device)
    feats = [torch.randn(tokens, transformer.config.cap_feat_dim, device=device, dtype=dtype)]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with acc.autocast():
            loss = dit.loss(parts, transformer, latents, (feats, None), [], cfg)
        acc.backward(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    s_per_step = _time_steps(step, steps, device)
    row = {"family": "zimage", "device": device, "resolution": res, "batch_size": 1, "tokens": tokens,
           "weights": "int8" if quantize else str(dtype).removeprefix("torch."), "lora_layers": layers,
           "lora_parameters": sum(p.numel() for p in params), "gradient_checkpointing": True,
           "s_per_step": round(s_per_step, 3), "peak_memory_mb": round(_peak_memory_mb(device), 1)}
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?", help="run TOML (default: a tiny SD1.5 run built here)")
    p.add_argument("--set", action="append", default=[], help="override a setting, e.g. training.batch_size=4")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--full-size", action="store_true", help="real SD1.5/SDXL UNet architectures, random weights")
    p.add_argument("--family", default="both", choices=["sd15", "sdxl", "both", *DEMO_FAMILIES],
                   help="sd15, sdxl or both (full size); zimage: the tiny Z-Image run, or with --full-size the real "
                        "transformer in bf16 and with int8 weights; flux, chroma, qwen_image: the tiny demo run "
                        "without and with block swap (--swap)")
    p.add_argument("--swap", type=int, default=2,
                   help="flux, chroma, qwen_image: training.blocks_to_swap of the second run")
    p.add_argument("--batch-sizes", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=10, help="timed steps per setting (full size)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: from its name)")
    p.add_argument("--resolution", type=int, default=None, help="full size: image side (default: native)")
    p.add_argument("--save-shapes", default="sd15", choices=["sd15", "sdxl", "none"],
                   help="after the run: time saving a rank-16 LoRA of these UNet shapes, now and the earlier way")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.full_size and args.family == "zimage":
        results = [bench_full_zimage(args.steps, args.resolution, quantize) for quantize in (False, True)]
    elif args.full_size:
        families = ["sd15", "sdxl"] if args.family == "both" else [args.family]
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        results = [r for fam in families
                   for r in bench_full(fam, sizes, args.steps, args.peak_tflops, args.resolution)]
    elif args.family in SWAP_FAMILIES:
        results = bench_swap(args.config, args.set, args.epochs, args.family, args.swap)
        print(json.dumps(results, indent=2))
    else:
        results = [bench_run(args.config, args.set, args.epochs, args.family)]
        if args.save_shapes != "none":
            results.append(bench_save(args.save_shapes))
        print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
