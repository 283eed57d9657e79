"""FLUX.1's LoRA (Chroma's too): the linears it trains and the two file layouts the field loads.

Layouts (checked against ComfyUI's key map, tests/loader_rules.py, and diffusers 0.42.1's loader in
tests/test_flux_lora_file.py, on the full-size key set):

- "diffusers" (the default): `transformer.<diffusers module>.lora_A/lora_B.weight`, ai-toolkit's FLUX layout.
  diffusers loads it as peft weights for any model size; ComfyUI maps every key through its `flux_to_diffusers`
  table (q/k/v onto row slices of the fused qkv, proj_mlp onto rows 3h…7h of linear1), and treats Chroma as FLUX.
  No alpha keys: alpha/rank (peft's scaling, rslora included) is folded into lora_B, so a loader reading
  alpha = rank applies exactly the trained delta.
- "kohya": sd-scripts' `lora_unet_<BFL name>.lora_down/lora_up.weight` + `.alpha`, read by ComfyUI, Forge and
  diffusers. BFL fuses q, k, v (and a single block's MLP input) into one linear, so their LoRAs are written as one:
  the downs stacked (rank ×3, or ×4 for linear1), the ups block-diagonal. A loader scales by alpha / (file rank),
  so the scaling is folded into lora_up and alpha is written equal to each module's own file rank (3r for a qkv,
  4r for linear1): the ×3 weakening of sd-scripts' split_qkv files (its issue #2204) cannot happen. diffusers'
  converter hard-codes FLUX's 19/38 blocks and 3072 widths, so it reads this layout for full-size models only.

FLUX.1's optional CLIP-L LoRA (network.train_text_encoder; T5 never, Chroma has no CLIP) goes in the layout of the
transformer's part: `text_encoder.<CLIP module>.lora_A/lora_B.weight` (what diffusers' FluxLoraLoaderMixin loads into
pipe.text_encoder and ComfyUI's model_lora_keys_clip maps for clip_l), or sd-scripts' `lora_te1_<module>` with
lora_down / lora_up / alpha (alpha = rank, the scaling folded into lora_up as above).

Never `diffusion_model.<name>`: diffusers ignores those keys without an error (the LoRA changes nothing).
"""

from __future__ import annotations

import re
from typing import Any

from models.families import chroma, flux
from models.families.flux import DENOISER

LAYOUTS = ("diffusers", "kohya")
DEFAULT_LAYOUT = "diffusers"
DIFFUSERS_PREFIX = flux.LORA_PREFIX
KOHYA_PREFIX = "lora_unet_"
TEXT_ENCODER = "text_encoder"  # the trainer's and diffusers' name of CLIP-L
TE_PREFIX = "text_encoder."  # diffusers' prefix of CLIP-L's LoRA keys, and of its modules in the deltas here
KOHYA_TE_PREFIX = "lora_te1_"  # sd-scripts' lora_flux: CLIP-L is te1 (T5 would be te3)
_KOHYA_TE = re.compile(rf"^{KOHYA_TE_PREFIX}text_model_encoder_layers_(\d+)_(self_attn|mlp)_(.+)$")
# Kinds as targets name them → module names inside a double (`transformer_blocks.N`) and a single
# (`single_transformer_blocks.N`) block, diffusers 0.42.1's transformer_flux.py. A single block's proj_out is the
# output projection of attention and MLP together (BFL's linear2); it goes with attention, as to_out.0 does.
DOUBLE_MODULES = {
    "attention": ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
                  "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out"),
    "mlp": ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"),
    "modulation": ("norm1.linear", "norm1_context.linear")}
SINGLE_MODULES = {"attention": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_out"), "mlp": ("proj_mlp",),
                  "modulation": ("norm.linear",)}
BLOCKS = {"transformer_blocks": DOUBLE_MODULES, "single_transformer_blocks": SINGLE_MODULES}
# diffusers module → (BFL module, slot in the fused linear, members of the fused linear), as sd-scripts'
# BFL_TO_DIFFUSERS_MAP and ComfyUI's flux_to_diffusers pair them. Chroma's blocks have no modulation linears.
DOUBLE_BFL = {"attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0",
              "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
              "norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin"}
SINGLE_BFL = {"proj_out": "linear2", "norm.linear": "modulation.lin"}
FUSED = {"transformer_blocks": {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                                "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")},
         "single_transformer_blocks": {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}}
BFL_BLOCKS = {"transformer_blocks": "double_blocks", "single_transformer_blocks": "single_blocks"}
_BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$")


def lora_target_modules(transformer, targets=("attention", "mlp"), refiners: bool = False) -> list[str]:
    """Full module names of the block linears that get LoRA: double and single blocks, by kind ("attention",
    "mlp", "modulation"). Only block linears: Chroma's distilled_guidance_layer (and FLUX's embedders) never.
    FLUX has no refiners; the argument is the family seam's."""
    unknown = set(targets) - set(DOUBLE_MODULES)
    if unknown:
        raise ValueError(f"unknown FLUX LoRA targets {sorted(unknown)}; known: {sorted(DOUBLE_MODULES)}")
    out = []
    for name, _ in transformer.named_modules():
        m = _BLOCK.match(name)
        if m and any(m[3] in BLOCKS[m[1]][t] for t in targets):
            out.append(name)
    return out


def lora_state(components: dict[str, Any], adapter: str = "default", layout: str = DEFAULT_LAYOUT) -> dict[str, Any]:
    """The file's tensors (fp32, CPU) from a peft-injected transformer and, where trained, CLIP-L (components
    "transformer", "text_encoder"), in `layout` ("diffusers" or "kohya")."""
    from models.lora_names import folded_pairs

    model, clip = components.get(DENOISER), components.get(TEXT_ENCODER)
    if model is None and clip is None:
        raise ValueError("FLUX LoRA files hold the transformer's and CLIP-L's layers only")
    deltas = {} if model is None else {name: (down, up) for name, down, up in folded_pairs(model, "FLUX", adapter)}
    if clip is not None:
        deltas.update({clip_name(name): (down, up) for name, down, up in folded_pairs(clip, "FLUX", adapter)})
    return layout_state(deltas, {} if model is None else out_features(model), layout)


def clip_name(module: str) -> str:
    """The file's name of a CLIP-L module: text_encoder.text_model.<…>, the level newer transformers leave out of
    CLIPTextModel's module names kept, as every loader (and sd-scripts' lora_te1_text_model_…) names it."""
    return TE_PREFIX + ("" if module.startswith("text_model.") else "text_model.") + module


def out_features(transformer) -> dict[str, int]:
    """Output width of every block linear (what a fused kohya LoRA needs for a member that was not trained)."""
    return {name: mod.out_features for name, mod in transformer.named_modules()
            if _BLOCK.match(name) and hasattr(mod, "out_features")}


def layout_state(deltas: dict[str, tuple[Any, Any]], widths: dict[str, int], layout: str = DEFAULT_LAYOUT):
    """File tensors of {diffusers module: (down, up with the scaling folded in)}; `widths` is out_features()."""
    if layout == "diffusers":
        state = {}
        for name, (down, up) in deltas.items():
            key = name if name.startswith(TE_PREFIX) else DIFFUSERS_PREFIX + name
            state[f"{key}.lora_A.weight"] = down
            state[f"{key}.lora_B.weight"] = up
        return state
    if layout == "kohya":
        clip = {n: pair for n, pair in deltas.items() if n.startswith(TE_PREFIX)}
        blocks = {n: pair for n, pair in deltas.items() if n not in clip}
        return {**_kohya_state(blocks, widths), **_kohya_te_state(clip)}
    raise ValueError(f"unknown FLUX LoRA layout {layout!r}; known: {LAYOUTS}")


def kohya_base(name: str) -> tuple[str, int, tuple[str, ...]]:
    """(kohya base name, slot, members) of diffusers module `name`: the members of the fused BFL linear it is part
    of (full module names, in row order) and its slot among them; members is (name,) for an unfused linear."""
    m = _BLOCK.match(name)
    if not m:
        raise ValueError(f"{name} is not a FLUX block linear")
    kind, index, rest = m[1], m[2], m[3]
    prefix = f"{KOHYA_PREFIX}{BFL_BLOCKS[kind]}_{index}_"
    for bfl, members in FUSED[kind].items():
        if rest in members:
            return prefix + bfl.replace(".", "_"), members.index(rest), tuple(f"{kind}.{index}.{x}" for x in members)
    bfl = (DOUBLE_BFL if kind == "transformer_blocks" else SINGLE_BFL).get(rest)
    if bfl is None:
        raise ValueError(f"{name} has no BFL name")
    return prefix + bfl.replace(".", "_"), 0, (name,)


def _kohya_state(deltas: dict[str, tuple[Any, Any]], widths: dict[str, int]) -> dict[str, Any]:
    import torch

    groups: dict[str, tuple[tuple[str, ...], dict[int, tuple[Any, Any]]]] = {}
    for name, pair in deltas.items():
        base, slot, members = kohya_base(name)
        groups.setdefault(base, (members, {}))[1][slot] = pair
    state = {}
    for base, (members, slots) in groups.items():
        rank, width_in = next(iter(slots.values()))[0].shape
        if len(members) == 1:
            down, up = slots[0]
        else:
            # A member left untrained (linear1's MLP part when only attention is targeted) is a zero block: every
            # fused linear keeps rank r per member, which diffusers' converter needs to split it back.
            outs = [widths[member] for member in members]
            downs, up = [], torch.zeros(sum(outs), rank * len(members))
            row = 0
            for slot, width_out in enumerate(outs):
                down, part_up = slots.get(slot, (torch.zeros(rank, width_in), None))
                if down.shape[0] != rank:
                    raise ValueError(f"{base}: the fused modules must share one rank")
                downs.append(down)
                if part_up is not None:
                    up[row:row + width_out, slot * rank:(slot + 1) * rank] = part_up
                row += width_out
            down = torch.cat(downs)
        state.update({f"{base}.lora_down.weight": down.contiguous(), f"{base}.lora_up.weight": up.contiguous(),
                      f"{base}.alpha": torch.tensor(float(down.shape[0]))})
    return state


def _kohya_te_state(deltas: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """CLIP-L's modules as sd-scripts writes them: lora_te1_ + the underscored module name, alpha = rank."""
    import torch

    state = {}
    for name, (down, up) in deltas.items():
        base = KOHYA_TE_PREFIX + name.removeprefix(TE_PREFIX).replace(".", "_")
        state.update({f"{base}.lora_down.weight": down.contiguous(), f"{base}.lora_up.weight": up.contiguous(),
                      f"{base}.alpha": torch.tensor(float(down.shape[0]))})
    return state


def lora_metadata(meta: dict[str, Any], family: str = flux.FAMILY) -> dict[str, Any]:
    """Family fields of the file's metadata: alpha is folded, so the file's alpha is its rank; the base named as
    sd-scripts names it (ss_base_model_version flux1 / chroma, modelspec flux-1-dev / flux-1-schnell / chroma)."""
    meta = dict(meta)
    if "ss_network_dim" in meta:
        meta["ss_network_alpha"] = str(meta["ss_network_dim"])
    row = chroma if family == chroma.FAMILY else flux
    arch = chroma.MODELSPEC if row is chroma else flux.MODELSPEC_BY_VARIANT[_variant(meta)]
    meta.update({"ss_base_model_version": row.LORA_VERSION, "ss_v2": "False",
                 "modelspec.architecture": f"{arch}/lora", "modelspec.prediction_type": row.PREDICTION})
    meta.pop("ss_v_parameterization", None)
    return meta


def _variant(meta: dict[str, Any]) -> str:
    """dev or schnell: the run's model.variant in the embedded run TOML (models.lora_file.CONFIG_KEY), else dev."""
    from models.lora_file import trained_variant

    return trained_variant(meta, flux.VARIANTS, "dev")


# --- reading a file back (the toolbox's convert) -----------------------------------------------------------------

def layout_of(names) -> str:
    """Which layout a file's keys (or module names) are in."""
    return "kohya" if any(str(n).startswith((KOHYA_PREFIX, KOHYA_TE_PREFIX)) for n in names) else "diffusers"


def _kohya_members(base: str) -> tuple[str, ...]:
    """The diffusers modules (row order) of a kohya base name; ValueError for a name outside the blocks."""
    m = re.match(rf"^{KOHYA_PREFIX}(double_blocks|single_blocks)_(\d+)_(.+)$", base)
    kind = {v: k for k, v in BFL_BLOCKS.items()}.get(m[1]) if m else None
    if kind is None:
        raise ValueError(f"{base} is not a FLUX block LoRA")
    table = {b.replace(".", "_"): (d,) for d, b in (DOUBLE_BFL if m[1] == "double_blocks" else SINGLE_BFL).items()}
    table.update({b.replace(".", "_"): members for b, members in FUSED[kind].items()})
    if m[3] not in table:
        raise ValueError(f"{base} is not a FLUX block LoRA")
    return tuple(f"{kind}.{m[2]}.{x}" for x in table[m[3]])


def read_modules(factors: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """{diffusers module: (down, up)} of a file's {module: (down, up with alpha/rank folded)} in either layout. A
    fused kohya LoRA is split by rows of up (q/k/v of hidden rows each, linear1's MLP of 4·hidden): a block-diagonal
    one into its blocks, any other with the whole down for each part (as diffusers' converter does); a part whose
    block is all zero (a member that was not trained) is left out."""
    out = {}
    for name, (down, up) in factors.items():
        if te := _KOHYA_TE.match(name):  # CLIP-L: text_model.encoder.layers.N.(self_attn|mlp).<linear>
            out[f"{TE_PREFIX}text_model.encoder.layers.{te[1]}.{te[2]}.{te[3]}"] = (down, up)
            continue
        if not name.startswith(KOHYA_PREFIX):
            out[name.removeprefix(DIFFUSERS_PREFIX)] = (down, up)
            continue
        members = _kohya_members(name)
        if len(members) == 1:
            out[members[0]] = (down, up)
            continue
        hidden = up.shape[0] // (7 if len(members) == 4 else 3)
        rows = [4 * hidden if m.endswith("proj_mlp") else hidden for m in members]
        rank = down.shape[0] // len(members)
        diagonal = down.shape[0] % len(members) == 0 and not any(
            _off_block(up, rows, rank, i).any() for i in range(len(members)))
        for i, member in enumerate(members):
            part = up[sum(rows[:i]):sum(rows[:i + 1])]
            if diagonal:
                part, part_down = part[:, i * rank:(i + 1) * rank], down[i * rank:(i + 1) * rank]
            else:
                part_down = down
            if part.any():
                out[member] = (part_down.contiguous(), part.contiguous())
    return out


def _off_block(up, rows: list[int], rank: int, i: int):
    """The columns of member i's rows of up outside its own rank block."""
    import torch

    part = up[sum(rows[:i]):sum(rows[:i + 1])]
    return torch.cat([part[:, :i * rank], part[:, (i + 1) * rank:]], 1)


def inferred_widths(deltas: dict[str, tuple[Any, Any]]) -> dict[str, int]:
    """out_features() without the model: each module's rows, and for the members of a fused linear that the LoRA
    lacks, hidden (q/k/v) or 4·hidden (a single block's MLP input), hidden read from the members it has."""
    widths = {name: up.shape[0] for name, (_, up) in deltas.items()}
    for name in [n for n in deltas if not n.startswith(TE_PREFIX)]:  # CLIP-L's linears are never fused
        members = kohya_base(name)[2]
        known = next(widths[m] // (4 if m.endswith("proj_mlp") else 1) for m in members if m in widths)
        for m in members:
            widths.setdefault(m, 4 * known if m.endswith("proj_mlp") else known)
    return widths


def convert_layout(factors: dict[str, tuple[Any, Any]], target: str) -> dict[str, Any]:
    """A file's {module: (down, up, alpha/rank folded)} (either layout) as the tensors of layout `target`."""
    deltas = read_modules(factors)
    return layout_state(deltas, inferred_widths(deltas), target)
