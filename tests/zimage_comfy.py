"""ComfyUI's documented rules for Z-Image LoRA files, written out for tests (no ComfyUI code is used).

ComfyUI loads a Z-Image LoRA key `diffusion_model.<diffusers module>` (also `transformer.<module>`,
`lycoris_<module with _>` or the bare name) onto the original checkpoint's weights: to_q / to_k / to_v patch row
slices [0:d], [d:2d], [2d:3d] of the fused `attention.qkv.weight`; `attention.to_out.0` patches
`attention.out.weight`; the norms are renamed q_norm / k_norm; every other block linear keeps its name.
The patch is W += strength · (alpha / rank) · (lora_B @ lora_A), alpha = rank when the file has no `.alpha`.
"""

from __future__ import annotations

import re

_QKV = {"to_q": 0, "to_k": 1, "to_v": 2}


def comfy_target(module: str, dim: int) -> tuple[str, slice | None]:
    """(original weight key, row slice or None) that a LoRA on diffusers `module` patches in ComfyUI."""
    m = re.match(r"^(.*\.attention)\.(to_q|to_k|to_v)$", module)
    if m:
        i = _QKV[m.group(2)]
        return f"{m.group(1)}.qkv.weight", slice(i * dim, (i + 1) * dim)
    if module.endswith(".attention.to_out.0"):
        return module[: -len("to_out.0")] + "out.weight", None
    return module + ".weight", None


def comfy_merge(original: dict, lora: dict, strength: float = 1.0) -> tuple[dict, list[str]]:
    """The original-named state with the LoRA merged as ComfyUI merges it; and the keys ComfyUI would not load."""
    import torch

    dim = original["cap_embedder.1.weight"].shape[0]
    out = {k: v.clone().float() for k, v in original.items()}
    not_loaded = []
    for key in lora:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")].removeprefix("diffusion_model.")
        target, rows = comfy_target(module, dim)
        if target not in out:
            not_loaded += [key, key.replace(".lora_A.", ".lora_B.")]
            continue
        base = key[: -len(".lora_A.weight")]
        rank = lora[key].shape[0]
        alpha = float(lora[base + ".alpha"]) if base + ".alpha" in lora else rank
        delta = strength * alpha / rank * (lora[base + ".lora_B.weight"].double() @ lora[key].double())
        with torch.no_grad():
            if rows is None:
                out[target] = (out[target].double() + delta).float()
            else:
                out[target][rows] = (out[target][rows].double() + delta).float()
    consumed = {k for k in lora if k.endswith((".lora_A.weight", ".lora_B.weight", ".alpha"))}
    return out, not_loaded + sorted(set(lora) - consumed)
