"""Side by side with sd-scripts' networks/resize_lora.py: the same LoRA resized by both, rank and ΔW per module.

    python tools/sdscripts_resize_compare.py --sd-scripts PATH/TO/sd-scripts --python PATH/TO/venv/bin/python

sd-scripts runs unmodified in its own interpreter (a venv with torch, safetensors, numpy and tqdm is enough): its
`library` helpers that resize_lora.py imports only for file handling (is_safetensors, the sshs hashes, logging) are
given small stand-ins in a temporary folder, so its maths (SVD, rank rules, alpha) is exactly its own.

The test LoRA has modules with decaying spectra (as trained LoRAs do), linear, 1×1 and 3×3 conv, alpha ≠ rank.
For each dynamic method the tool prints, per module, the rank sd-scripts picks, the rank Danlu picks (the rule as
stated) and with --sd-scripts-compat, and the largest relative ΔW difference between the two files
(ΔW = alpha / rank · up @ down), and a summary line per method.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STUBS = {
    "library/__init__.py": "",
    "library/model_util.py": "def is_safetensors(path):\n    return str(path).endswith('.safetensors')\n",
    "library/train_util.py": "def precalculate_safetensors_hashes(state_dict, metadata):\n    return '', ''\n",
    "library/utils.py": "def setup_logging(*args, **kwargs):\n    import logging\n    logging.basicConfig()\n",
}
CASES = [("sv_ratio", 2.0), ("sv_ratio", 8.0), ("sv_fro", 0.9), ("sv_fro", 0.99), ("sv_cumulative", 0.9),
         ("sv_cumulative", 0.7)]
MODULES = {"lora_unet_a_attn1_to_q": (320, 320), "lora_unet_a_ff_net_0_proj": (2560, 320),
           "lora_unet_a_proj_in": (320, 320, 1, 1), "lora_unet_b_conv1": (320, 320, 3, 3),
           "lora_te_text_model_encoder_layers_0_mlp_fc1": (3072, 768)}
RANK, ALPHA, MAX_RANK = 32, 16.0, 32


def make_lora(path: Path, seed: int = 0) -> None:
    """Random factors with singular values decaying like a trained LoRA's (s_i ∝ 0.85^i), per module."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (name, shape) in enumerate(MODULES.items()):
        cols = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
        u, _ = torch.linalg.qr(torch.randn(shape[0], RANK, generator=g))
        v, _ = torch.linalg.qr(torch.randn(cols, RANK, generator=g))
        s = (0.85 - 0.05 * i) ** torch.arange(RANK, dtype=torch.float32)
        up, down = u * s.sqrt(), (v * s.sqrt()).T
        state[f"{name}.lora_up.weight"] = up.reshape(shape[0], RANK, *([1, 1] if len(shape) == 4 else []))
        state[f"{name}.lora_down.weight"] = down.reshape(RANK, *shape[1:]).contiguous()
        state[f"{name}.alpha"] = torch.tensor(ALPHA)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"ss_network_dim": str(RANK)})


def deltas(path: Path) -> dict:
    """{module: (rank, ΔW 2-D fp64)} of a kohya file."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    out = {}
    for key in sd:
        if key.endswith(".lora_down.weight"):
            name = key[: -len(".lora_down.weight")]
            down, up = sd[key].double(), sd[f"{name}.lora_up.weight"].double()
            scale = float(sd[f"{name}.alpha"]) / down.shape[0]
            out[name] = (down.shape[0], up.flatten(1) @ down.flatten(1) * scale)
    return out


def run_sd_scripts(python: str, script_dir: Path, src: Path, dst: Path, method: str, param: float) -> None:
    cmd = [python, str(script_dir / "networks" / "resize_lora.py"), "--model", str(src), "--save_to", str(dst),
           "--new_rank", str(MAX_RANK), "--new_conv_rank", str(MAX_RANK), "--save_precision", "float",
           "--dynamic_method", method, "--dynamic_param", str(param), "--device", "cpu"]
    # sd-scripts is installed with `pip install -e .`, which puts its root (and `library`) on the path
    env = {**os.environ, "PYTHONPATH": str(script_dir)}
    done = subprocess.run(cmd, cwd=script_dir, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"sd-scripts failed:\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    from models.toolbox.resize import resize_lora

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sd-scripts", required=True, help="a checkout of kohya-ss/sd-scripts")
    p.add_argument("--python", required=True, help="the interpreter sd-scripts runs in (its own venv)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="resize-compare-"))
    script_dir = work / "sd-scripts"
    (script_dir / "networks").mkdir(parents=True)
    (script_dir / "networks" / "resize_lora.py").write_bytes(
        (Path(args.sd_scripts) / "networks" / "resize_lora.py").read_bytes())
    for rel, text in STUBS.items():
        (script_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (script_dir / rel).write_text(text)
    src = work / "in.safetensors"
    make_lora(src)
    verdict = 0
    for method, param in CASES:
        theirs = work / f"sd-{method}-{param}.safetensors"
        run_sd_scripts(args.python, script_dir, src, theirs, method, param)
        exact = deltas(resize_lora(src, work / f"d-{method}-{param}.safetensors", rank=MAX_RANK, method=method,
                                   param=param, precision="float").out)
        compat = deltas(resize_lora(src, work / f"c-{method}-{param}.safetensors", rank=MAX_RANK, method=method,
                                    param=param, precision="float", compat=True).out)
        ref = deltas(theirs)
        print(f"\n{method} {param}: module | sd-scripts rank | Danlu rank (rule) | Danlu --sd-scripts-compat | "
              "max rel. ΔW difference (compat vs sd-scripts)")
        worst, same = 0.0, 0
        for name, (rank, dw) in ref.items():
            diff = float((compat[name][1] - dw).abs().max() / dw.abs().max())
            worst = max(worst, diff)
            same += compat[name][0] == rank
            print(f"  {name} | {rank} | {exact[name][0]} | {compat[name][0]} | {diff:.2e}")
        print(f"  -> compat picks the same rank in {same}/{len(ref)} modules; ΔW agree within {worst:.1e}; "
              f"the rule as stated keeps {sum(ref[n][0] - exact[n][0] for n in ref)} ranks fewer in all")
        verdict |= same != len(ref) or worst > 1e-4
    return int(verdict)


if __name__ == "__main__":
    sys.exit(main())
