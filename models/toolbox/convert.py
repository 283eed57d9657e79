"""Convert a LoRA between the layouts its family has (built on common.py's helpers).

The family module names its layouts (`LORA_LAYOUTS`, the first is what Danlu writes):

- the SD-UNet families: "kohya" (``lora_unet_…`` / ``lora_te…`` with lora_down / lora_up / alpha: WebUI,
  ComfyUI and diffusers) and "peft" (``unet.<module>.lora_A.weight`` / ``lora_B.weight``, alpha folded into B:
  diffusers' own format);
- a DiT family: "diffusers" (its LoRA keys on the diffusers module names) and "comfyui" (the original single-file
  names, q/k/v fused): the module's `to_file_keys` / `from_file_keys` say how names map and what is fused;
- a DiT family whose lora module converts its own layouts (`convert_layout`: FLUX's "diffusers" and "kohya").

Fusing q, k and v into one qkv layer is exact as a LoRA: down = [A_q; A_k; A_v] (rank 3r) and up the block
diagonal of B_q, B_k, B_v, so qkv's ΔW stacks the three ΔW. Splitting gives each part the rows of up that belong
to it, with the all-zero columns dropped (exact again). Every conversion is checked: the converted tensors,
converted back, give every module's ΔW within float rounding of the original's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.toolbox.common import Job, LoraFile, lora_factors, open_lora, write_lora

UNET_LAYOUTS = ("kohya", "peft")
DIT_LAYOUTS = ("diffusers", "comfyui")  # a DiT family that names none: its diffusers names, its file names
# kohya names replace every '.' of a module path by '_'; these names keep their '_' (longest first).
_JOINED = sorted(("down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_q", "to_k", "to_v", "to_out",
                  "proj_in", "proj_out", "conv_shortcut", "time_emb_proj", "text_model", "self_attn", "q_proj",
                  "k_proj", "v_proj", "out_proj", "input_blocks", "output_blocks", "middle_block", "in_layers",
                  "out_layers", "emb_layers", "skip_connection", "conv_in", "conv_out", "final_layer_norm",
                  "layer_norm1", "layer_norm2", "text_projection"), key=lambda s: -s.count("_"))
_RESNET = ("conv1", "conv2", "time_emb_proj", "conv_shortcut")  # the layers of a UNet resnet that LoCon adapts
_PEFT_PARTS = ("unet", "text_encoder_2", "text_encoder")  # peft component prefixes, the longer first
CHECK_TOLERANCE = 1e-5  # relative: ΔW of the converted file vs the original, fp32 rounding of folded scales


@dataclass
class ConvertReport:
    out: Path
    source: str
    target: str
    keys_before: int
    keys_after: int
    modules: int
    max_rel_error: float  # max over modules of max|ΔW_converted − ΔW| / max|ΔW|

    def text(self, lang: str | None = None) -> str:
        from core.errors import current_lang

        if (lang or current_lang()) == "zh":
            return (f"{self.out.name}：{self.source} → {self.target}，{self.modules} 个模块，"
                    f"键数 {self.keys_before} → {self.keys_after}；"
                    f"转换后 ΔW 与原文件的最大相对误差 {self.max_rel_error:.1e}。")
        return (f"{self.out.name}: {self.source} → {self.target}, {self.modules} modules, keys {self.keys_before} → "
                f"{self.keys_after}; ΔW of the converted file vs the original: max relative error "
                f"{self.max_rel_error:.1e}.")


def layouts(family: str | None) -> tuple[str, ...]:
    """The LoRA layouts of a family, as its module names them."""
    from models import families

    if family is None:
        return UNET_LAYOUTS
    if (own := _own_layouts(family)) is not None:
        return tuple(own.LAYOUTS)
    default = DIT_LAYOUTS if families.dit_module(family) is not None else UNET_LAYOUTS
    return tuple(getattr(families.module(family), "LORA_LAYOUTS", default))


def layout_of(lora: LoraFile) -> str:
    """Which of its family's layouts a file is in."""
    if (own := _own_layouts(lora.family)) is not None:
        return own.layout_of(lora.modules)
    dit = _dit(lora.family)
    if dit is None:
        return "peft" if lora.layout == "peft" else "kohya"
    names = [n.removeprefix(dit.LORA_PREFIX) for n in lora.modules]
    return layouts(lora.family)[1 if _dit_file_names(dit, names) != set(names) else 0]


def _dit(family: str | None):
    from models import families

    return families.dit_module(family)


def _own_layouts(family: str | None) -> Any:
    """The lora module of a DiT family that converts between its layouts itself (`LAYOUTS`, `layout_of(names)`,
    `convert_layout({module: (down, up)}, target)`: FLUX's kohya names are not its single file's), else None."""
    from models import families

    dit = _dit(family)
    lora = families.part(dit, "lora") if dit is not None else None
    return lora if hasattr(lora, "convert_layout") else None


def file_names(dit: Any) -> Any:
    """The part of a DiT family that maps its single-file names to diffusers names (from_file_keys/to_file_keys)."""
    from models import families

    return families.part(dit, "load")


def _dit_file_names(dit: Any, names: list[str]) -> set[str]:
    """Module names as the family's diffusers → file renaming gives them (q/k/v become one qkv)."""
    import torch

    renamed = file_names(dit).from_file_keys({f"{n}.weight": torch.zeros(3, 1) for n in names})
    return {k.removesuffix(".weight") for k in renamed}


# --- SD-UNet families: kohya <-> peft ----------------------------------------------------------------------

def _dotted(name: str) -> str:
    """A kohya module name (underscores) back to a dotted path, keeping the names that contain '_'."""
    tokens, out, i = name.split("_"), [], 0
    while i < len(tokens):
        for joined in _JOINED:
            parts = joined.split("_")
            if tokens[i:i + len(parts)] == parts:
                out.append(joined)
                i += len(parts)
                break
        else:
            out.append(tokens[i])
            i += 1
    return ".".join(out)


def _prefixes(family: str) -> dict[str, str]:
    """{kohya prefix: component} of a family, from the names lora_file writes (`lora_<part>_…`)."""
    from models.lora_names import kohya_name

    probe = {"unet": "mid_block.attentions.0.proj_in", "text_encoder": "text_model.x",
             "text_encoder_2": "text_model.x"}
    return {"_".join(kohya_name(c, path, family).split("_")[:2]): c for c, path in probe.items()}


def _name(component: str, path: str, family: str, **kw: Any) -> str | None:
    """kohya name of a module path; None for a path the family's names do not cover."""
    from models.lora_names import kohya_name

    try:
        return kohya_name(component, path, family, **kw)
    except ValueError:
        return None


def _block_table(family: str) -> dict[str, str]:
    """{kohya name: diffusers path} of the UNet's block prefixes, resnet layers and samplers, where a family's
    kohya names are not its diffusers paths (SDXL's SAI block names)."""
    paths = ["mid_block.attentions.0", *[f"mid_block.resnets.{j}.{inner}" for j in range(2) for inner in _RESNET]]
    for i in range(4):
        paths.append(f"down_blocks.{i}.downsamplers.0.conv")
        for j in range(3):
            for side in ("down_blocks", "up_blocks"):
                paths.append(f"{side}.{i}.attentions.{j}")
                paths += [f"{side}.{i}.resnets.{j}.{inner}" for inner in _RESNET]
    table: dict[str, str] = {}
    for path in paths:
        attention = path.split(".")[-2] == "attentions" or path.endswith("attentions.0")
        name = _name("unet", path + ".x" if attention else path, family)
        if name is not None:
            table[name[:-2] if attention else name] = path
    for i in range(4):
        for slot in (1, 2):  # the upsampler's slot depends on whether its block has attention
            path = f"up_blocks.{i}.upsamplers.0.conv"
            if (name := _name("unet", path, family, upsampler_index=slot)) is not None:
                table[name] = path
    return table


def kohya_to_path(name: str, family: str, table: dict[str, str] | None = None) -> tuple[str, str]:
    """(component, diffusers module path) of a kohya module name; DanluError for a name no layer has."""
    for prefix, component in sorted(_prefixes(family).items(), key=lambda p: -len(p[0])):
        if not name.startswith(prefix + "_"):
            continue
        path = _dotted(name[len(prefix) + 1:])
        if _name(component, path, family) == name:
            return component, path
        if component == "unet":
            table = table if table is not None else _block_table(family)
            if name in table:
                return component, table[name]
            for head in sorted((h for h in table if name.startswith(h + "_")), key=len, reverse=True):
                path = f"{table[head]}.{_dotted(name[len(head) + 1:])}"
                if _name(component, path, family) == name:
                    return component, path
    raise DanluError(f"The module {name} has a name no {family} layer has.",
                     f"模块 {name} 的名字与 {family} 的任何层都不对应。",
                     "Check that the file is a LoRA for this model family.", "请确认该文件是此模型系列的 LoRA。",
                     key=name)


def _kohya_to_peft(lora: LoraFile, job: Job | None) -> dict[str, Any]:
    table = _block_table(lora.family or "")
    out: dict[str, Any] = {}
    for name, tensors in _modules(lora, job):
        component, path = kohya_to_path(name, lora.family or "", table)
        down, up, scale = lora_factors(tensors)
        out[f"{component}.{path}.lora_A.weight"] = down
        out[f"{component}.{path}.lora_B.weight"] = up * scale  # diffusers' PEFT files carry no alpha keys
    return out


def _peft_to_kohya(lora: LoraFile, job: Job | None) -> dict[str, Any]:
    import torch

    from models.lora_names import kohya_name

    out: dict[str, Any] = {}
    names = set(lora.modules)
    for name, tensors in _modules(lora, job):
        component = next((c for c in _PEFT_PARTS if name.startswith(c + ".")), None)
        if component is None:
            raise DanluError(f"The module {name} names no part of the model (unet., text_encoder., text_encoder_2.).",
                             f"模块 {name} 不属于模型的任何部分（unet.、text_encoder.、text_encoder_2.）。",
                             "Check that the file is a diffusers/PEFT LoRA.",
                             "请确认该文件是 diffusers/PEFT 格式的 LoRA。")
        path = name[len(component) + 1:]
        # An upsampler's SAI slot is 2 in an up block with attention layers (the file adapts them), else 1.
        block = path.split(".")[1] if path.startswith("up_blocks.") and ".upsamplers." in path else None
        attention = block is not None and any(n.startswith(f"unet.up_blocks.{block}.attentions.") for n in names)
        slot = 2 if attention else 1
        base = kohya_name(component, path, lora.family or "", upsampler_index=slot)
        down, up, scale = lora_factors(tensors)
        out[f"{base}.lora_down.weight"] = down
        out[f"{base}.lora_up.weight"] = up * scale
        out[f"{base}.alpha"] = torch.tensor(float(down.shape[0]))  # the scale is folded into up
    return out


# --- DiT families: diffusers <-> the single file's names (fused qkv) ---------------------------------------

def _dit_groups(dit: Any, keys: list[str]) -> list[list[str]]:
    """The diffusers weight keys that each file key is made of, in the family's concatenation order (a probe
    of one-row tensors holding each key's index goes through the family's own renaming)."""
    import torch

    probe = {k: torch.full((1, 1), float(i)) for i, k in enumerate(keys)}
    try:
        fused = file_names(dit).to_file_keys(probe)
    except KeyError as exc:
        raise DanluError(f"The fused layer needs all of its parts, and {exc} is missing from the file.",
                         f"融合层需要全部分量，文件中缺少 {exc}。", "Keep this file in the diffusers layout.",
                         "请保留 diffusers 格式。") from None
    return [[keys[int(i)] for i in value.flatten()] for value in fused.values()]


def _dit_factors(lora: LoraFile, job: Job | None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(family module, {diffusers weight key: down}, {same key: up with the scale folded in}) of a DiT LoRA."""
    dit = _dit(lora.family)
    downs, ups = {}, {}
    for name, tensors in _modules(lora, job):
        down, up, scale = lora_factors(tensors)
        key = name.removeprefix(dit.LORA_PREFIX) + ".weight"
        downs[key], ups[key] = down, up * scale
    return dit, downs, ups


def _dit_state(dit: Any, downs: dict[str, Any], ups: dict[str, Any]) -> dict[str, Any]:
    """The file's lora_A / lora_B tensors of {weight key: down} and {weight key: up}."""
    out = {}
    for key, down in downs.items():
        name = dit.LORA_PREFIX + key.removesuffix(".weight")
        out[f"{name}.lora_A.weight"], out[f"{name}.lora_B.weight"] = down.contiguous(), ups[key].contiguous()
    return out


def _dit_to_file(lora: LoraFile, job: Job | None) -> dict[str, Any]:
    """diffusers names → the family's file names: q/k/v LoRAs fused exactly (stacked downs, block-diagonal ups)."""
    import torch

    dit, downs, ups = _dit_factors(lora, job)
    padded = {}  # each up widened to its group's rank, so the family's concatenation builds the block diagonal
    for members in _dit_groups(dit, list(downs)):
        widths = [downs[k].shape[0] for k in members]
        for n, key in enumerate(members):
            up = ups[key]
            padded[key] = torch.cat([up.new_zeros(up.shape[0], sum(widths[:n])), up,
                                     up.new_zeros(up.shape[0], sum(widths[n + 1:]))], 1)
    return _dit_state(dit, file_names(dit).to_file_keys(downs), file_names(dit).to_file_keys(padded))


def _dit_from_file(lora: LoraFile, job: Job | None) -> dict[str, Any]:
    """The family's file names → diffusers names: a fused LoRA split by rows of up, zero columns dropped."""
    import torch

    dit, downs, ups = _dit_factors(lora, job)
    for key, down in downs.items():
        parts = len(file_names(dit).from_file_keys({key: torch.zeros(3, 1)}))  # how many layers it splits into
        downs[key] = torch.cat([down] * parts) if parts > 1 else down  # each part gets the whole down
    split_downs, split_ups = file_names(dit).from_file_keys(downs), file_names(dit).from_file_keys(ups)
    for key, up in split_ups.items():
        keep = up.flatten(1).abs().amax(0) > 0
        if 0 < int(keep.sum()) < up.shape[1]:
            split_ups[key], split_downs[key] = up[:, keep], split_downs[key][keep]
    return _dit_state(dit, split_downs, split_ups)


# --- the tool ----------------------------------------------------------------------------------------------

def _modules(lora: LoraFile, job: Job | None):
    """Plain LoRA modules one at a time; LoHa/LoKr/DoRA have no other layout and are refused by name."""
    from models.toolbox.common import iter_modules

    for name, tensors in iter_modules(lora, job):
        if lora_factors(tensors) is None or "dora_scale" in tensors:
            raise DanluError(f"{lora.path.name}: {name} is a LoHa, LoKr or DoRA module; only plain LoRA modules "
                             "change layout.",
                             f"{lora.path.name}：{name} 是 LoHa、LoKr 或 DoRA 模块，只有普通 LoRA 模块能转换格式。",
                             "Merge it into a base model instead, or resize it to a plain LoRA first.",
                             "可改为合并进底模。", key=str(lora.path))
        yield name, tensors


def convert_state(lora: LoraFile, target: str, job: Job | None = None) -> dict[str, Any]:
    """The tensors of `lora` in the layout `target` (fp32); the file's own layout gives its tensors back."""
    source = layout_of(lora)
    names = layouts(lora.family)
    if target not in names:
        raise DanluError(f"{target!r} is not a LoRA layout of this family; it has {', '.join(names)}.",
                         f"{target!r} 不是此系列的 LoRA 格式；可选：{'、'.join(names)}。",
                         f"Choose one of {', '.join(names)}.", f"请从 {'、'.join(names)} 中选择。", key=target)
    if source == target:
        return {key: lora.tensor(key).float() for key in lora.shapes if key in _lora_keys(lora)}
    if (own := _own_layouts(lora.family)) is not None:
        factors = {name: lora_factors(tensors) for name, tensors in _modules(lora, job)}
        return own.convert_layout({name: (down, up * scale) for name, (down, up, scale) in factors.items()}, target)
    if _dit(lora.family) is not None:
        return _dit_to_file(lora, job) if target == names[1] else _dit_from_file(lora, job)
    return _kohya_to_peft(lora, job) if target == "peft" else _peft_to_kohya(lora, job)


def _lora_keys(lora: LoraFile) -> set[str]:
    return {key for parts in lora.modules.values() for key in parts.values()}


def module_deltas(state: dict[str, Any]) -> dict[str, Any]:
    """{module: ΔW at strength 1 (fp32, 2-D)} of a plain LoRA state dict in any layout."""
    from models.toolbox.common import split_key

    modules: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        if (parts := split_key(key)) is not None:
            modules.setdefault(parts[0], {})[parts[1]] = value
    out = {}
    for name, tensors in modules.items():
        down, up, scale = lora_factors(tensors)
        out[name] = (up.flatten(1) @ down.flatten(1)) * scale
    return out


def check_same_delta(original: LoraFile, converted: LoraFile) -> float:
    """Max over modules of the relative ΔW difference between a file and its conversion (converted back in
    memory to the original's layout); DanluError when a module is missing."""
    back = module_deltas(convert_state(converted, layout_of(original)))
    ref = module_deltas({key: original.tensor(key) for key in _lora_keys(original)})
    if set(back) != set(ref):
        missing = sorted(set(ref) ^ set(back))[:3]
        raise DanluError(f"The converted file does not hold the same modules, e.g. {missing}.",
                         f"转换后的文件模块不一致，例如 {missing}。", "Report this file.", "请报告此文件。")
    worst = 0.0
    for name, delta in ref.items():
        scale = float(delta.abs().max())
        if scale > 0:
            worst = max(worst, float((back[name] - delta).abs().max()) / scale)
    return worst


def convert_lora(path: str | Path, out: str | Path, *, target: str, precision: str | None = None,
                 job: Job | None = None) -> ConvertReport:
    """Write `path` in the layout `target`, with the key counts and the ΔW check in the report."""
    lora = open_lora(path)
    source = layout_of(lora)
    if source == target:
        raise DanluError(f"{lora.path.name} is already in the {target} layout.",
                         f"{lora.path.name} 已经是 {target} 格式。",
                         "Choose the other layout.", "请选择另一种格式。", key=target)
    state = convert_state(lora, target, job)
    meta = dict(lora.metadata)
    meta["danlu_converted_from"] = source
    written = write_lora(out, state, meta, [path], precision or _precision(lora))
    error = check_same_delta(lora, open_lora(written))
    if error > CHECK_TOLERANCE and (precision or _precision(lora)) == "float":
        Path(written).unlink(missing_ok=True)
        raise DanluError(f"The converted file's ΔW differs from the original's (relative error {error:.1e}); "
                         "nothing was kept.", f"转换后的 ΔW 与原文件不同（相对误差 {error:.1e}），未保留文件。",
                         "Report this file.", "请报告此文件。")
    return ConvertReport(Path(written), source, target, len(lora.shapes), len(state), len(lora.modules), error)


def _precision(lora: LoraFile) -> str:
    """The save precision of a file's first LoRA matrix ('fp16', 'bf16' or 'float')."""
    dtype = next((lora.shapes[k][0] for parts in lora.modules.values() for s, k in parts.items() if s != "alpha"),
                 "F32")
    return {"F16": "fp16", "BF16": "bf16"}.get(dtype, "float")
