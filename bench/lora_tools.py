"""Time and peak memory of the LoRA toolbox on full-size SD1.5 and SDXL shapes (random weights, CPU).

    python bench/lora_tools.py [--family sd15 sdxl] [--layers 24] [--rank 64]
                               [--sd-scripts PATH --python VENV_PYTHON]

- resize: a LoRA on every layer extract targets (UNet transformer and ResNet layers, text encoders; rank --rank,
  convolutions rank/2), resized to rank 16, the whole file;
- merge: that LoRA merged at weight 1 into a whole checkpoint of the family's real keys and shapes (random fp16,
  2 GB for SD1.5, 7 GB for SDXL; twice that on disk with the output), beside the memory one layer needs;
- extract: two checkpoints holding --layers of those layers at their real sizes (every part represented; a whole
  SDXL pair would be 14 GB of disk), a LoRA of rank 32 (conv 16) from their difference; the time per layer is
  scaled to all the layers of the model.

Each tool runs in a fresh child process; its peak memory is the child's peak RSS minus that of a child that only
imports the same modules. With --sd-scripts and --python, sd-scripts' networks/resize_lora.py resizes the same file
(run as tools/sdscripts_resize_compare.py runs it, in its own interpreter) for the time and peak memory it needs
over that interpreter's own baseline, and the ratio of Danlu's to sd-scripts'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _AnyKey:
    """A header that holds every name: the targets' text-encoder keys take the current (text_model.) form."""

    def __contains__(self, key: object) -> bool:
        return True


def all_targets(family: str, folder: Path):
    from models.toolbox.layers import sd_targets

    return sd_targets(folder / "none.safetensors", family, _AnyKey(), conv=True)


def pick(targets, n: int):
    """n layers spread over the model, every part (UNet, each text encoder) and a convolution among them."""
    parts: dict[str, list] = {}
    for t in targets:
        parts.setdefault(t.name.split("_")[1] + ("conv" if t.conv else ""), []).append(t)
    per = max(1, n // len(parts))
    return [group[i * len(group) // per] for group in parts.values() for i in range(min(per, len(group)))]


def write_pair(targets, folder: Path) -> tuple[Path, Path]:
    """base and tuned checkpoints (fp16) with these layers; tuned = base + a rank-16 change + small noise."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    base, tuned = {}, {}
    for t in targets:
        full = list(t.shape)
        if t.chunk:
            full[0] *= t.chunk[1]
        if t.key in base:
            continue
        w = torch.randn(*full, generator=g) * 0.02
        rows, cols = full[0], w[0].numel()
        d = (torch.randn(rows, 16, generator=g) @ torch.randn(16, cols, generator=g)) * 1e-3
        base[t.key] = w.half()
        tuned[t.key] = (w + d.reshape(w.shape) + torch.randn(*full, generator=g) * 1e-5).half()
    a, b = folder / "base.safetensors", folder / "tuned.safetensors"
    save_file(base, str(a))
    save_file(tuned, str(b))
    return a, b


def write_lora(targets, path: Path, rank: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    state = {}
    for t in targets:
        r = rank // 2 if t.conv else rank
        cols = 1
        for x in t.shape[1:]:
            cols *= x
        down = torch.randn(r, cols, generator=g) * 0.01
        state[f"{t.name}.lora_down.weight"] = down.reshape(r, *t.shape[1:]).half()
        state[f"{t.name}.lora_up.weight"] = (torch.randn(t.shape[0], r, generator=g) * 0.01).reshape(
            t.shape[0], r, *([1, 1] if len(t.shape) == 4 else [])).half()
        state[f"{t.name}.alpha"] = torch.tensor(float(r) / 2).half()
    save_file(state, str(path), metadata={"ss_network_dim": str(rank)})


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import torch, safetensors.torch, diffusers, transformers  # extract builds empty models from the configs
from models.toolbox import extract, layers, resize
job = json.loads(sys.argv[1])
t = time.perf_counter()
if job["tool"] == "setup":  # what extract does before its first layer: detect both files, list the layers
    path, family, header = extract._checkpoint(job["base"])
    extract._checkpoint(job["tuned"])
    layers.sd_targets(path, family, header, True)
elif job["tool"] == "resize":
    resize.resize_lora(job["src"], job["out"], rank=16, precision="fp16")
elif job["tool"] == "extract":
    extract.extract_lora(job["base"], job["tuned"], job["out"], rank=32, conv_rank=16)
elif job["tool"] == "merge":
    from models.toolbox import merge
    merge.merge_into_base(job["base"], [(job["lora"], 1.0)], job["out"])
print(json.dumps({{"s": time.perf_counter() - t, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def child(job: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{job['tool']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SD_CHILD = """
import json, resource, runpy, sys, time
import torch, safetensors.torch, numpy  # what any resize imports: the baseline's share
t = time.perf_counter()
if len(sys.argv) > 1:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
print(json.dumps({"s": time.perf_counter() - t, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def sd_scripts_resize(python: str, sd_scripts: Path, src: Path, out: Path) -> tuple[dict, int]:
    """Time and peak RSS of sd-scripts' resize_lora.py on the same file, in its own interpreter, and the peak RSS
    of that interpreter with only torch, safetensors and numpy imported (its baseline)."""
    from tools.sdscripts_resize_compare import STUBS

    script_dir = out.parent / "sd-scripts"
    (script_dir / "networks").mkdir(parents=True, exist_ok=True)
    (script_dir / "networks" / "resize_lora.py").write_bytes((sd_scripts / "networks" / "resize_lora.py").read_bytes())
    for rel, text in STUBS.items():
        (script_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (script_dir / rel).write_text(text)
    runs = []
    for argv in ([], [str(script_dir / "networks" / "resize_lora.py"), "--model", str(src), "--save_to", str(out),
                      "--new_rank", "16", "--save_precision", "fp16", "--device", "cpu"]):
        done = subprocess.run([python, "-c", SD_CHILD, *argv], cwd=script_dir, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(script_dir)})
        if done.returncode:
            raise SystemExit(f"sd-scripts resize_lora.py failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs[1], runs[0]["rss"]


def _resize(args: argparse.Namespace, targets, lora: Path, folder: Path, idle: int, family: str) -> None:
    write_lora(targets, lora, args.rank)
    r = child({"tool": "resize", "src": str(lora), "out": str(folder / "r16.safetensors")})
    print(f"{family} resize: {len(targets)} modules, rank {args.rank} → 16, file "
          f"{lora.stat().st_size / 2**20:.0f} MiB: {r['s']:.1f} s, peak +{(r['rss'] - idle) / 1024:.0f} MiB")
    if args.sd_scripts and args.python:
        s, s_idle = sd_scripts_resize(args.python, args.sd_scripts, lora, folder / "sd-r16.safetensors")
        ours, theirs = (r["rss"] - idle) / 1024, (s["rss"] - s_idle) / 1024
        print(f"{family} sd-scripts resize_lora.py, same file and rank: {s['s']:.1f} s, peak +{theirs:.0f} MiB "
              f"(its baseline {s_idle / 1024:.0f} MiB); Danlu / sd-scripts: time {r['s'] / s['s']:.2f}, "
              f"peak {ours / max(theirs, 1):.2f}")


def write_checkpoint(family: str, path: Path) -> dict[str, tuple[str, list[int]]]:
    """A single-file checkpoint with every key and shape of the real one (the shipped configs through models.ldm's
    names), random fp16, written one tensor at a time so the bench itself stays small. Returns its header."""
    from types import SimpleNamespace

    import torch

    from models import ldm
    from models.loading import _components, config_folder_for

    comps = _components(config_folder_for(path, family), None)  # empty (meta) models: names and shapes only
    parts = SimpleNamespace(**{k: comps.get(k) for k in ("unet", "vae", "text_encoder", "text_encoder_2")})
    shapes = {k: ("F16", list(v.shape)) for k, v in ldm.diffusers_to_ldm(parts, family).items()}
    g = torch.Generator().manual_seed(2)
    with open(path, "wb") as w:
        w.write(_header(shapes))
        for _, shape in shapes.values():
            w.write((torch.randn(*shape, generator=g) * 0.02).half().reshape(-1).view(torch.uint8).numpy().tobytes())
    return shapes


def _header(shapes: dict[str, tuple[str, list[int]]]) -> bytes:
    header, offset = {}, 0
    for key, (dtype, shape) in shapes.items():
        size = 2 * _numel(shape)
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def _numel(shape) -> int:
    n = 1
    for x in shape:
        n *= x
    return n


def _merge(targets, lora: Path, folder: Path, idle: int, family: str) -> None:
    """The LoRA on every layer (resize's file) merged into a full-size checkpoint."""
    base = folder / "base-full.safetensors"
    t = time.perf_counter()
    shapes = write_checkpoint(family, base)
    made = time.perf_counter() - t
    if not lora.exists():
        write_lora(targets, lora, 64)
    m = child({"tool": "merge", "base": str(base), "lora": str(lora), "out": str(folder / "merged.safetensors")})
    largest = max(_numel(shapes[t.key][1]) for t in targets)
    peak = (m["rss"] - idle) / 1024
    # what streaming must hold: the largest patched tensor as read (fp16), its patched copy, fp32 working copies
    # (the weight and ΔW) and the fp16 bytes being written; untouched tensors pass in 16 MiB pieces
    bound = max(largest * (2 + 2 + 4 + 4 + 2), 16 * 2**20) / 2**20
    print(f"{family} merge into base: checkpoint {base.stat().st_size / 2**20:.0f} MiB fp16 ({len(shapes)} tensors, "
          f"made in {made:.0f} s), LoRA on {len(targets)} layers: {m['s']:.1f} s, peak +{peak:.0f} MiB; largest "
          f"patched tensor {largest * 2 / 2**20:.0f} MiB fp16, with its copies and output buffer {bound:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", nargs="+", default=["sd15", "sdxl"])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--tools", nargs="+", choices=("resize", "merge", "extract"),
                   default=["resize", "merge", "extract"])
    p.add_argument("--sd-scripts", type=Path)
    p.add_argument("--python")
    args = p.parse_args(argv)
    idle = child({"tool": "none"})["rss"]
    print(f"baseline child (torch + toolbox imported): {idle / 1024:.0f} MiB peak RSS")
    for family in args.family:
        with tempfile.TemporaryDirectory(prefix=f"lora-bench-{family}-") as tmp:
            folder = Path(tmp)
            targets = all_targets(family, folder)
            lora = folder / "lora.safetensors"
            if "resize" in args.tools:
                _resize(args, targets, lora, folder, idle, family)
            if "merge" in args.tools:
                _merge(targets, lora, folder, idle, family)
            if "extract" not in args.tools:
                continue
            chosen = pick(targets, args.layers)
            base, tuned = write_pair(chosen, folder)
            e = child({"tool": "extract", "base": str(base), "tuned": str(tuned),
                       "out": str(folder / "x.safetensors")})
            setup = child({"tool": "setup", "base": str(base), "tuned": str(tuned)})
            biggest = max(t.shape[0] * _cols(t) for t in chosen) * 4 / 2**20
            per = max(0.0, e["s"] - setup["s"]) / len(chosen)
            print(f"{family} extract: {len(chosen)} of {len(targets)} layers in {e['s']:.1f} s, of which "
                  f"{setup['s']:.1f} s before the first layer ({per:.2f} s per layer, about "
                  f"{(setup['s'] + per * len(targets)) / 60:.1f} min for the whole model), peak "
                  f"+{(e['rss'] - idle) / 1024:.0f} MiB (largest layer {biggest:.0f} MiB in fp32)")
    return 0


def _cols(t) -> int:
    n = 1
    for x in t.shape[1:]:
        n *= x
    return n


if __name__ == "__main__":
    sys.exit(main())
