"""LyCORIS LoHa and LoKr in the kohya file, and the weight deltas WebUI and ComfyUI compute from it.

Keys per module, as LyCORIS writes them and both loaders read them: ``<base>.hada_w1_a`` (out, r), ``hada_w1_b``
(r, in·k·k), ``hada_w2_a``, ``hada_w2_b``; or ``<base>.lokr_w1`` (full) with ``lokr_w2`` (full) or ``lokr_w2_a`` /
``lokr_w2_b``; plus ``<base>.alpha``. The deltas (A1111 ``extensions-builtin/Lora/network_hada.py``,
``network_lokr.py``, ``network.py``; ComfyUI ``comfy/weight_adapter/loha.py``, ``lokr.py``):

- LoHa: ΔW = (w1_a @ w1_b) ⊙ (w2_a @ w2_b) · alpha / rank, rank = w1_b.shape[0];
- LoKr: ΔW = kron(w1, w2) · alpha / rank, rank the inner size of the factor given as a/b pair, and scale 1 when
  both factors are full matrices (alpha is then ignored);
- LoRA: ΔW = up @ down · alpha / rank;

each reshaped to the layer's weight shape, times the user's strength, added to the weight. With ``dora_scale``
(DoRA, LyCORIS's input-axis form: shape (1, in), conv (1, in, 1, 1)) both loaders replace W by
W' = (W + ΔW) · dora_scale / ‖W + ΔW‖, the norm per input column, and add strength · (W' − W)
(A1111 ``network.py`` ``apply_weight_decompose``, ComfyUI ``comfy/weight_adapter/base.py`` ``weight_decompose``).
"""

from __future__ import annotations

from typing import Any

HADA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
LOKR = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")
NETWORK_MODULE = "lycoris.kohya"  # ss_network_module of LyCORIS's kohya wrapper
DORA_MAGNITUDE = "lora_dora_scale"  # the input-axis DoRA magnitude a trained layer carries (training/dora.py)


def layer_tensors(layer: Any, adapter: str = "default") -> dict[str, Any] | None:
    """{suffix: fp32 CPU tensor} of a peft LoHa or LoKr layer in LyCORIS's names; None for any other layer."""
    import torch
    from peft.tuners.loha import LoHaLayer
    from peft.tuners.lokr import LoKrLayer

    def get(name):
        p = getattr(layer, name)
        return p[adapter].detach().float().cpu().contiguous() if adapter in p else None

    if isinstance(layer, LoHaLayer):
        if adapter in layer.hada_t1:
            raise ValueError("CP-decomposed LoHa (hada_t1/hada_t2) is not written")
        out = {n: get(n) for n in HADA}
        rank = out["hada_w1_b"].shape[0]
    elif isinstance(layer, LoKrLayer):
        if adapter in layer.lokr_t2:
            raise ValueError("Tucker-decomposed LoKr (lokr_t2) is not written")
        out = {n: t for n in LOKR if (t := get(n)) is not None}
        rank = out["lokr_w2_b"].shape[0] if "lokr_w2_b" in out else \
            out["lokr_w1_b"].shape[0] if "lokr_w1_b" in out else None
        if rank is None and float(layer.scaling[adapter]) != 1.0:  # loaders apply full factors at scale 1
            out["lokr_w2"] = out["lokr_w2"] * float(layer.scaling[adapter])
    else:
        return None
    alpha = float(layer.scaling[adapter]) * rank if rank is not None else float(layer.alpha[adapter])
    out["alpha"] = torch.tensor(alpha, dtype=torch.float32)
    return out


def module_delta(tensors: dict[str, Any], shape: tuple[int, ...]) -> Any:
    """ΔW (fp32) of one module of a kohya/LyCORIS file, for a weight of `shape`, at strength 1."""
    import torch

    alpha = tensors.get("alpha")
    alpha = float(alpha) if alpha is not None else None
    if "hada_w1_a" in tensors:
        t = {k: tensors[k].float() for k in HADA}
        delta = (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
        rank = t["hada_w1_b"].shape[0]
    elif any(k in tensors for k in LOKR):
        rank = None
        if "lokr_w1" in tensors:
            w1 = tensors["lokr_w1"].float()
        else:
            w1, rank = tensors["lokr_w1_a"].float() @ tensors["lokr_w1_b"].float(), tensors["lokr_w1_b"].shape[0]
        if "lokr_w2" in tensors:
            w2 = tensors["lokr_w2"].float()
        else:
            w2, rank = tensors["lokr_w2_a"].float() @ tensors["lokr_w2_b"].float(), tensors["lokr_w2_b"].shape[0]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        delta = torch.kron(w1, w2.contiguous())
    elif "lora_down.weight" in tensors:
        down, up = tensors["lora_down.weight"].float(), tensors["lora_up.weight"].float()
        delta, rank = up.flatten(1) @ down.flatten(1), down.shape[0]
    else:
        raise ValueError(f"no LoRA, LoHa or LoKr weights among {sorted(tensors)}")
    scale = alpha / rank if rank is not None and alpha is not None else 1.0
    return delta.reshape(shape) * scale


def group_modules(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{kohya base name: {suffix: tensor}} of a kohya/LyCORIS state dict."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        base, _, suffix = key.partition(".")
        groups.setdefault(base, {})[suffix] = value
    return groups


def merge_into(components: dict[str, Any], state: dict[str, Any], family: str, strength: float = 1.0) -> int:
    """Add every module's ΔW · strength of a kohya/LyCORIS state dict to the matching weights of `components`
    ({'unet': …, 'text_encoder': …, 'text_encoder_2': …}), in fp32 and cast back, as ComfyUI patches a model.

    Every module of the file must find its layer; returns the number merged."""
    groups = group_modules(state)
    merge_groups(file_weights(components, groups, family), groups, strength)
    return len(groups)


def file_weights(components: dict[str, Any], groups: dict[str, dict[str, Any]], family: str) -> dict[str, Any]:
    """{kohya base name: weight parameter} of every module of a file (group_modules) in plain, un-injected models;
    a module that matches no layer is a ValueError."""
    from models.lora_names import module_bases

    layers = {base: module for component, model in components.items() if model is not None
              for base, module in module_bases(component, model, family)}
    missing = sorted(set(groups) - set(layers))
    if missing:
        raise ValueError(f"{len(missing)} modules of the file match no layer, e.g. {missing[:3]}")
    return {base: layers[base].weight for base in groups}


def merge_groups(weights: dict[str, Any], groups: dict[str, dict[str, Any]], strength: float = 1.0) -> None:
    """W += strength · ΔW per module (for DoRA strength · (W' − W), as both loaders apply the multiplier), in place.

    A1111 ``network.py`` ``finalize_updown`` returns (W' − W) · multiplier; ComfyUI ``weight_decompose`` sets
    W + strength · (W' − W)."""
    import torch

    with torch.no_grad():
        for base, tensors in groups.items():
            weight = weights[base]
            delta = module_delta(tensors, tuple(weight.shape)).to(weight.device)
            if "dora_scale" in tensors:
                delta = decompose(weight.float(), delta, tensors["dora_scale"].float().to(weight.device))
            weight.copy_((weight.float() + delta * strength).to(weight.dtype))


def decompose(weight: Any, delta: Any, dora_scale: Any) -> Any:
    """W' − W of DoRA's input-axis decomposition, as A1111 and ComfyUI compute it (fp32)."""
    merged = weight + delta
    norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1, keepdim=True)
    norm = norm.reshape(merged.shape[1], *[1] * (merged.dim() - 1)).transpose(0, 1)
    return merged * (dora_scale / norm) - weight


def pipe_components(pipe: Any) -> dict[str, Any]:
    """The models of a pipeline a kohya file patches."""
    return {name: getattr(pipe, name, None) for name in ("unet", "text_encoder", "text_encoder_2")}


def merge_file(pipe: Any, path: Any, family: str, strength: float = 1.0) -> int:
    """Merge a saved LoRA/LoHa/LoKr file into a pipeline's UNet and text encoders (what the samples use)."""
    from safetensors.torch import load_file

    return merge_into(pipe_components(pipe), load_file(str(path)), family, strength)


def file_kind(path: Any) -> str | None:
    """'dora', 'loha' or 'lokr' for a file that diffusers cannot load as an adapter (its samples and grid cells are
    merged by merge_groups); None for a plain LoRA/LoCon file or a file that is not safetensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception:  # noqa: BLE001 - not a safetensors file: its loader says what it is
        return None
    for kind, marker in (("dora", ".dora_scale"), ("loha", ".hada_"), ("lokr", ".lokr_")):
        if any(marker in k for k in keys):
            return kind
    return None


def applied_note(kind: str) -> str:
    """The 'Lora applied' recipe value of a sample or grid cell whose file was merged into the weights."""
    return f"{kind} deltas merged into the weights as WebUI and ComfyUI do"
