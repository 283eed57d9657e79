"""How much the XYZ grid saves by loading each base once and switching LoRA weights.

    python bench/grid_speed.py [--size tiny|full] [--loras 3] [--weights 3] [--steps 8] [--device cpu|cuda]

Two ways to render the same cells (X LoRA files × Y weights):
  switch: the grid's way — the base and every LoRA loaded once, each cell only sets the adapter weights;
  reload: a fresh pipeline loaded from disk for every cell, its LoRA loaded, then rendered.
Prints the time per cell, the LoRA switch time against the pipeline reload time, and the ratio.
`--size full` builds the real SD1.5 architecture (random weights, no download); by default it runs
when CUDA is present, after the tiny model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_lora_files(pipe, folder: Path, stems: list[str], *, rank: int = 4, strength: float = 1.0,
                    family: str = "sd15", seed: int = 0, metadata: dict | None = None) -> list[Path]:
    """Kohya LoRA files with random (non-zero) weights on the UNet attention, for grids without training."""
    import torch
    from peft import LoraConfig

    from models.lora_file import base_model_version, peft_to_kohya, save_lora

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, stem in enumerate(stems):
        torch.manual_seed(seed + i)
        name = f"bench{i}"
        pipe.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name=name)
        state = peft_to_kohya({"unet": pipe.unet}, family, adapter=name)
        pipe.unet.delete_adapters(name)
        for key in state:  # make the effect visible at 64 px: scale the up matrices
            if key.endswith("lora_up.weight"):
                state[key] = state[key] * strength
        meta = {"ss_base_model_version": base_model_version(family), "ss_network_dim": rank,
                "ss_network_alpha": float(rank), "ss_network_module": "networks.lora", **(metadata or {})}
        path = folder / f"{stem}.safetensors"
        save_lora(path, state, meta, "float")
        out.append(path)
    return out


def full_size_sd15(folder: Path, device: str):
    """The SD1.5 architecture at full size with random weights (UNet 860M), saved as a diffusers folder."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from models.tiny import write_tokenizer

    tok = CLIPTokenizer.from_pretrained(write_tokenizer(folder / "_tok"))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=3072,
                                      num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                      bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1,
                                      pad_token_id=len(tok) - 1))
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe.to(dtype=dtype)
    pipe.save_pretrained(folder / "full-sd15", safe_serialization=True)
    return pipe, folder / "full-sd15", 512


def bench(size: str, n_loras: int, n_weights: int, steps: int, device: str, resolution: int = 0) -> dict:
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix=f"danlu-gridbench-{size}-"))
    try:
        return _bench(tmp, size, n_loras, n_weights, steps, device, resolution)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the full-size model is gigabytes


def _bench(tmp: Path, size: str, n_loras: int, n_weights: int, steps: int, device: str, resolution: int) -> dict:
    import torch

    from models.generate import load_lora, open_pipeline, render, set_lora_weights

    if size == "tiny":
        from models.tiny import TINY_RESOLUTION, build_tiny, save_tiny

        base = str(save_tiny("sd15", tmp, single_file=False).folder)
        builder, res, strength = build_tiny("sd15"), TINY_RESOLUTION, 30.0
    else:
        builder, folder, res = full_size_sd15(tmp, device)
        base, strength = str(folder), 1.0
        builder.to("cpu")
    loras = make_lora_files(builder, tmp / "loras", [f"bench-{i:06d}" for i in range(n_loras)],
                            strength=strength, rank=4 if size == "tiny" else 16)
    del builder
    res = resolution or res
    weights = [round((i + 1) / n_weights, 2) for i in range(n_weights)]
    dtype = torch.float16 if device == "cuda" else torch.float32
    kw = {"prompt": "a photo of a red square", "steps": steps, "cfg": 7.0, "seed": 1234, "width": res, "height": res,
              "sampler": "euler"}

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    # switch: base once, every LoRA once, weights switched per cell
    t0 = time.perf_counter()
    pipe = open_pipeline(base, device=device, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    names = [load_lora(pipe, p, f"x{i}") for i, p in enumerate(loras)]
    setup_switch = time.perf_counter() - t0
    switch_s, cell_s = [], []
    for name in names:
        for w in weights:
            t = time.perf_counter()
            set_lora_weights(pipe, {name: w})
            sync()
            switch_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            render(pipe, **kw)
            sync()
            cell_s.append(time.perf_counter() - t)
    total_switch = time.perf_counter() - t0
    del pipe

    # reload: a fresh pipeline and LoRA for every cell
    t0 = time.perf_counter()
    reload_s = []
    for path in loras:
        for w in weights:
            t = time.perf_counter()
            pipe = open_pipeline(base, device=device, torch_dtype=dtype)
            pipe.set_progress_bar_config(disable=True)
            set_lora_weights(pipe, {load_lora(pipe, path, "x"): w})
            sync()
            reload_s.append(time.perf_counter() - t)
            render(pipe, **kw)
            sync()
            del pipe
    total_reload = time.perf_counter() - t0
    cells = n_loras * n_weights
    return {"size": size, "device": device, "cells": cells, "steps": steps, "resolution": res,
            "setup_s": setup_switch, "switch_ms": 1000 * statistics.median(switch_s),
            "reload_s": statistics.median(reload_s), "render_s": statistics.median(cell_s),
            "switch_per_cell_s": total_switch / cells, "reload_per_cell_s": total_reload / cells,
            "ratio": total_reload / total_switch}


def report(r: dict) -> str:
    return (f"[{r['size']} sd15, {r['device']}, {r['cells']} cells, {r['steps']} steps, {r['resolution']} px]\n"
            f"  base + LoRAs loaded once: {r['setup_s']:.2f} s; LoRA weight switch: {r['switch_ms']:.1f} ms "
            f"vs pipeline reload + LoRA load: {r['reload_s']:.2f} s  ({r['reload_s'] * 1000 / r['switch_ms']:.0f}x)\n"
            f"  render per cell: {r['render_s']:.2f} s\n"
            f"  per cell, all included: switch {r['switch_per_cell_s']:.2f} s, reload {r['reload_per_cell_s']:.2f} s"
            f"  → reloading is {r['ratio']:.1f}x slower")


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "full", "auto"], default="auto",
                   help="auto: tiny, then full size when CUDA is present")
    p.add_argument("--loras", type=int, default=3)
    p.add_argument("--weights", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--resolution", type=int, default=0, help="image side (default: 64 tiny, 512 full)")
    args = p.parse_args(argv)
    sizes = ["tiny", "full"] if args.size == "auto" and args.device == "cuda" else \
        (["tiny"] if args.size == "auto" else [args.size])
    for size in sizes:
        steps = args.steps if size == "tiny" else max(args.steps, 20)
        print(report(bench(size, args.loras, args.weights, steps, args.device, args.resolution)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
