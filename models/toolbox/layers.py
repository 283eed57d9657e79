"""Where each LoRA module's weight lives in a single-file checkpoint, read from the header and the family's
configs, never from the weights: extract walks these layers of two files, merge-into-base patches them in one.

SD families: every Linear / Conv2d of the UNet and text encoders that a loader can find by its kohya name
(models.lora_names.module_bases), at its single-file key (models.ldm's names: LDM UNet, HF or OpenCLIP text
encoders, whose q/k/v are thirds of one fused `in_proj_weight` and whose `text_projection` is stored transposed).
DiT families: the family's own file → diffusers renaming (models/families/<family>/load.py from_file_keys), run on
stand-ins for the tensors so that a fused qkv split shows up as (index, parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    """One layer a LoRA module is extracted for or merged into."""

    name: str                            # module name in the LoRA file (keys are name + suffix)
    key: str                             # the weight's key in the checkpoint
    chunk: tuple[int, int] | None = None  # (index, parts) of a fused weight (q/k/v stored as one)
    conv: bool = False                   # a convolution with a kernel larger than 1×1 (conv_rank applies)
    shape: tuple[int, ...] = ()          # the layer's weight shape (a fused weight's part)
    transposed: bool = False             # stored as the transpose of the layer's weight (OpenCLIP's projection)


class _Ref:
    """A weight named but not read: a family's key renaming (from_file_keys) maps these instead of tensors, and a
    fused weight's `chunk` is remembered as (index, parts)."""

    def __init__(self, key: str, chunk: tuple[int, int] | None = None):
        self.key, self.part = key, chunk

    def chunk(self, n: int, dim: int = 0) -> list[_Ref]:
        return [_Ref(self.key, (i, n)) for i in range(n)]


class _Names:
    """Stands in for a model where a family's target rule only walks `named_modules()`."""

    def __init__(self, names: list[str]):
        self.names = names

    def named_modules(self):
        return ((n, None) for n in self.names)


def sd_layers(path: Path, family: str, header: Any) -> list[tuple[str, str, Target]]:
    """(component, diffusers module path, target) of every Linear / Conv2d a kohya name reaches in the UNet and
    text encoders of an SD-family checkpoint, from the family's configs; `header` holds the file's keys (an HF
    text encoder's keys with or without the `text_model.` level)."""
    from models import ldm
    from models.loading import _components, config_folder_for
    from models.lora_names import module_bases

    comps = _components(config_folder_for(path, family), None)
    layout = {attr: (prefix, naming) for attr, prefix, naming in ldm.TEXT_ENCODER_LAYOUT[ldm.layout_family(family)]}
    out: list[tuple[str, str, Target]] = []
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = comps.get(component)
        if model is None:
            continue
        names = {id(m): n for n, m in model.named_modules()}
        umap = ldm.unet_prefix_map(dict(model.config)) if component == "unet" else None
        for base, module in module_bases(component, model, family):
            name = names[id(module)]
            shape = tuple(module.weight.shape)
            if component == "unet":
                kernel = module.weight.dim() == 4 and module.weight.shape[-1] > 1
                key = ldm.UNET_PREFIX + ldm._rename(name + ".weight", umap)
                out.append((component, name, Target(base, key, None, kernel, shape)))
                continue
            prefix, naming = layout[component]
            key = ldm._canonical(name + ".weight")
            if naming == "hf":
                key = prefix + key if prefix + key in header else prefix + key.removeprefix("text_model.")
                target = Target(base, key, shape=shape)
            elif key == "text_projection.weight":  # OpenCLIP multiplies x @ P: the file holds the transpose
                target = Target(base, prefix + "text_projection", shape=shape, transposed=True)
            elif (other := ldm._openclip_name(key)) is not None:
                target = Target(base, prefix + other, shape=shape)
            elif ".self_attn." in key and key.split(".")[5][:1] in ("q", "k", "v"):  # thirds of in_proj_weight
                parts = key.split(".")
                fused = f"{prefix}transformer.resblocks.{parts[3]}.attn.in_proj_weight"
                target = Target(base, fused, ("qkv".index(parts[5][0]), 3), shape=shape)
            else:
                continue
            out.append((component, name, target))
    return out


def sd_targets(path: Path, family: str, header: Any, conv: bool) -> list[Target]:
    """The layers extract makes a LoRA for: the UNet's transformer layers and the text encoders' attention and MLP
    linears (with conv: the UNet's ResNet blocks and samplers too), as kohya's trainers target them."""
    chosen = []
    for component, name, target in sd_layers(path, family, header):
        if component == "unet":
            if ".attentions." in name or (conv and (".resnets." in name or "samplers." in name)):
                chosen.append(target)
        elif ".encoder.layers." in f".{name}" and (".self_attn." in name or ".mlp." in name):
            chosen.append(target)
    return chosen


def dit_names(dit: Any, header: Any) -> dict[str, _Ref]:
    """{diffusers weight name: where it is in the file} of a DiT family's checkpoint."""
    from models.families import part

    return part(dit, "load").from_file_keys({k: _Ref(k) for k in header})


def dit_targets(dit: Any, header: dict) -> list[Target]:
    """The DiT family's LoRA layers (its own target rule and file keys), mapped to the checkpoint's keys by the
    family's own renaming (fused qkv split included)."""
    from models.families import part

    names = dit_names(dit, header)
    lora = part(dit, "lora")
    modules = {k.removesuffix(".weight") for k in names if k.endswith(".weight")}
    chosen = lora.lora_target_modules(_Names(sorted(modules)), refiners=True)
    out = []
    for m in chosen:
        ref = names[m + ".weight"]
        shape = list(header[ref.key][1])
        shape[0] //= ref.part[1] if ref.part else 1
        out.append(Target(lora.lora_key(m, "lora_A").removesuffix(".lora_A.weight"), ref.key, ref.part,
                          shape=tuple(shape)))
    return out


def part_of(weight: Any, target: Target) -> Any:
    """The layer's weight inside a checkpoint tensor: a view (a third of a fused qkv, the transpose of a stored
    projection), so writing into it writes into `weight`."""
    if target.chunk is not None:
        weight = weight.chunk(target.chunk[1], dim=0)[target.chunk[0]]
    return weight.t() if target.transposed else weight
