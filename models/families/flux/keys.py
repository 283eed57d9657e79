"""FLUX.1 / Chroma transformer names: BFL single files (what sd-scripts and ComfyUI read and write) ↔ diffusers.

The table follows diffusers' single_file_utils `convert_flux_transformer_checkpoint_to_diffusers` and
`convert_chroma_transformer_checkpoint_to_diffusers` (and sd-scripts' flux_utils `BFL_TO_DIFFUSERS_MAP`), with the
widths read from the weights instead of the real model's 3072 (diffusers' converters hard-code it, so they cannot
load a test-sized model). Fused BFL weights: `{img,txt}_attn.qkv` rows are q, k, v; single blocks' `linear1` rows
are q, k, v (the width each) then the MLP input. `final_layer.adaLN_modulation.1` has its shift and scale halves in
the opposite order to diffusers' `norm_out.linear`.
"""

from __future__ import annotations

import re
from typing import Any

FILE_PREFIX = "model.diffusion_model."

_TOP = {"time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
        "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
        "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
        "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
        "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
        "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
        "txt_in": "context_embedder", "img_in": "x_embedder", "final_layer.linear": "proj_out",
        "final_layer.adaLN_modulation.1": "norm_out.linear",
        "distilled_guidance_layer.in_proj": "distilled_guidance_layer.in_proj",
        "distilled_guidance_layer.out_proj": "distilled_guidance_layer.out_proj"}
_DOUBLE = {"img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear", "img_attn.proj": "attn.to_out.0",
           "txt_attn.proj": "attn.to_add_out", "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
           "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2"}
_DOUBLE_NORMS = {"img_attn.norm.query_norm.scale": "attn.norm_q.weight",
                 "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
                 "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
                 "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight"}
_SINGLE = {"modulation.lin": "norm.linear", "linear2": "proj_out"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}
_FUSED = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
          "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
_LINEAR1 = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")


def _params(modules: dict[str, str], norms: dict[str, str]) -> dict[str, str]:
    """Full parameter names (weight and bias of each module, the norms' scales) BFL → diffusers."""
    out = {f"{a}.{p}": f"{b}.{p}" for a, b in modules.items() for p in ("weight", "bias")}
    return {**out, **norms}


TOP, DOUBLE, SINGLE = _params(_TOP, {}), _params(_DOUBLE, _DOUBLE_NORMS), _params(_SINGLE, _SINGLE_NORMS)
TOP_BACK, DOUBLE_BACK, SINGLE_BACK = ({v: k for k, v in t.items()} for t in (TOP, DOUBLE, SINGLE))
_APPROX = (("layers.{}.in_layer.", "layers.{}.linear_1."), ("layers.{}.out_layer.", "layers.{}.linear_2."),
           ("norms.{}.scale", "norms.{}.weight"))


def _swap_halves(t):
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _approximator(key: str, back: bool) -> str | None:
    m = re.match(r"distilled_guidance_layer\.(layers|norms)\.(\d+)\.(.*)$", key)
    if not m:
        return None
    for bfl, dif in _APPROX:
        src, dst = (dif, bfl) if back else (bfl, dif)
        head = src.format(m[2])
        rest = f"{m[1]}.{m[2]}.{m[3]}"
        if rest.startswith(head):
            return "distilled_guidance_layer." + dst.format(m[2]) + rest[len(head):]
    return None


def from_file_keys(state: dict[str, Any]) -> dict[str, Any]:
    """BFL transformer names (with or without `model.diffusion_model.`) → diffusers names. With the prefix
    present, only the prefixed keys are the transformer's (a checkpoint may carry its VAE or text encoders)."""
    if any(k.startswith(FILE_PREFIX) for k in state):
        state = {k[len(FILE_PREFIX):]: v for k, v in state.items() if k.startswith(FILE_PREFIX)}
    out: dict[str, Any] = {}
    for key, value in state.items():
        m = re.match(r"(double_blocks|single_blocks)\.(\d+)\.(.+)$", key)
        if m is None:
            out[_approximator(key, back=False) or TOP.get(key, key)] = (
                _swap_halves(value) if key.startswith("final_layer.adaLN_modulation.1.") else value)
            continue
        kind, i, rest = m[1], m[2], m[3]
        head = f"transformer_blocks.{i}." if kind == "double_blocks" else f"single_transformer_blocks.{i}."
        module, _, param = rest.rpartition(".")
        if kind == "double_blocks" and module in _FUSED:
            for name, part in zip(_FUSED[module], value.chunk(3, dim=0)):
                out[f"{head}{name}.{param}"] = part
        elif kind == "single_blocks" and module == "linear1":
            width = state[f"single_blocks.{i}.linear2.weight"].shape[0]
            parts = value.split([width, width, width, value.shape[0] - 3 * width], dim=0)
            for name, part in zip(_LINEAR1, parts):
                out[f"{head}{name}.{param}"] = part
        else:
            table = DOUBLE if kind == "double_blocks" else SINGLE
            out[head + table.get(rest, rest)] = value
    return out


def to_file_keys(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """diffusers transformer names → BFL names (q/k/v and the single blocks' MLP input fused), with `prefix`
    ("" as sd-scripts writes, `model.diffusion_model.` as ComfyUI's checkpoints)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        m = re.match(r"(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$", key)
        if m is None:
            name = _approximator(key, back=True) or TOP_BACK.get(key, key)
            out[prefix + name] = _swap_halves(value) if key.startswith("norm_out.linear.") else value
            continue
        kind, i, rest = m[1], m[2], m[3]
        module, _, param = rest.rpartition(".")
        if kind == "transformer_blocks":
            head = f"double_blocks.{i}."
            fused = next((f for f, names in _FUSED.items() if module in names), None)
            if fused is not None:
                if module == _FUSED[fused][0]:
                    out[f"{prefix}{head}{fused}.{param}"] = torch.cat(
                        [state[f"{key.split('.attn.')[0]}.{n}.{param}"] for n in _FUSED[fused]])
                continue
            out[prefix + head + DOUBLE_BACK.get(rest, rest)] = value
        else:
            head = f"single_blocks.{i}."
            if module in _LINEAR1:
                if module == _LINEAR1[0]:
                    out[f"{prefix}{head}linear1.{param}"] = torch.cat(
                        [state[f"single_transformer_blocks.{i}.{n}.{param}"] for n in _LINEAR1])
                continue
            out[prefix + head + SINGLE_BACK.get(rest, rest)] = value
    return out
