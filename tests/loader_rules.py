"""How WebUI's built-in Lora extension and ComfyUI find a kohya file's modules, written out from their public source.

The model's own module names come from the base's single-file checkpoint (LDM/SGM names, models/ldm.py), which is
what both programs load.

WebUI (AUTOMATIC1111 ``extensions-builtin/Lora/networks.py``): ``assign_network_names_to_compvis_modules`` names
every module of ``cond_stage_model.wrapped`` (SD1/SD2) or of each SDXL embedder ``i`` (``f"{i}_{name}"``) and of
``sd_model.model`` with dots as underscores (``network_layer_mapping``). ``load_network`` splits each key at the
first dot, converts the base with ``convert_diffusers_name_to_compvis`` (regexes for diffusers-style names), falls
back to the ``(.*)_([qkv]_proj)$`` parent (OpenCLIP's fused attention), then to ``lora_unet`` → ``diffusion_model``
and ``lora_te1_text_model`` → ``0_transformer_text_model``; an unmatched key lands in ``keys_failed_to_match``. Each
matched module goes to the first module type that accepts its keys (``network_lora.py``: lora_up/lora_down;
``network_hada.py``: hada_w1_a/b, hada_w2_a/b; ``network_lokr.py``: lokr_w1 or lokr_w1_a+b, and lokr_w2 or
lokr_w2_a+b), which reads its own keys plus ``alpha``, ``scale``, ``bias`` and ``dora_scale`` (``network.py``).

ComfyUI (``comfy/lora.py``): ``model_lora_keys_unet`` maps ``lora_unet_`` + each LDM weight name (underscored) and,
through ``comfy/utils.py`` ``unet_to_diffusers`` (the UNet config read from the checkpoint as
``comfy/model_detection.py`` does), ``lora_unet_`` + each diffusers weight name; ``model_lora_keys_clip`` maps
``lora_te_``/``lora_te1_``/``lora_te2_text_model_encoder_layers_{b}_{c}`` for b < 32 and the six CLIP linears of
``LORA_CLIP_MAP``. ``load_lora`` takes, per mapped name, ``alpha``, ``dora_scale``, and the adapter keys
(``weight_adapter/lora.py``, ``loha.py``, ``lokr.py``); every file key outside that set is logged "lora key not
loaded".
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------------------ WebUI

_SUFFIX = {"attentions": {}, "resnets": {"conv1": "in_layers_2", "conv2": "out_layers_3",
                                         "time_emb_proj": "emb_layers_1", "conv_shortcut": "skip_connection"}}
_RULES = [
    (r"lora_unet_conv_in(.*)", lambda m: f"diffusion_model_input_blocks_0_0{m[0]}"),
    (r"lora_unet_conv_out(.*)", lambda m: f"diffusion_model_out_2{m[0]}"),
    (r"lora_unet_time_embedding_linear_(\d+)(.*)", lambda m: f"diffusion_model_time_embed_{m[0] * 2 - 2}{m[1]}"),
    (r"lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)",
     lambda m: f"diffusion_model_input_blocks_{1 + m[0] * 3 + m[2]}_{1 if m[1] == 'attentions' else 0}_"
               f"{_SUFFIX.get(m[1], {}).get(m[3], m[3])}"),
    (r"lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)",
     lambda m: f"diffusion_model_middle_block_{1 if m[0] == 'attentions' else m[1] * 2}_"
               f"{_SUFFIX.get(m[0], {}).get(m[2], m[2])}"),
    (r"lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)",
     lambda m: f"diffusion_model_output_blocks_{m[0] * 3 + m[2]}_{1 if m[1] == 'attentions' else 0}_"
               f"{_SUFFIX.get(m[1], {}).get(m[3], m[3])}"),
    (r"lora_unet_down_blocks_(\d+)_downsamplers_0_conv",
     lambda m: f"diffusion_model_input_blocks_{3 + m[0] * 3}_0_op"),
    (r"lora_unet_up_blocks_(\d+)_upsamplers_0_conv",
     lambda m: f"diffusion_model_output_blocks_{2 + m[0] * 3}_{2 if m[0] > 0 else 1}_conv"),
]


def _openclip(prefix: str, rest: str) -> str:
    for a, b in (("mlp_fc1", "mlp_c_fc"), ("mlp_fc2", "mlp_c_proj"), ("self_attn", "attn")):
        if a in rest:
            return f"{prefix}model_transformer_resblocks_{rest.replace(a, b)}"
    return f"{prefix}model_transformer_resblocks_{rest}"


def compvis_name(key: str, is_sd2: bool) -> str:
    """``convert_diffusers_name_to_compvis``."""
    for pattern, build in _RULES:
        if r := re.match(pattern, key):
            return build([int(x) if re.match(r"\d+", x) else x for x in r.groups()])
    if r := re.match(r"lora_te_text_model_encoder_layers_(\d+)_(.+)", key):
        return _openclip("", f"{r[1]}_{r[2]}") if is_sd2 else f"transformer_text_model_encoder_layers_{r[1]}_{r[2]}"
    if r := re.match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)", key):
        return _openclip("1_", f"{r[1]}_{r[2]}")
    return key


def webui_layer_names(checkpoint_keys: list[str]) -> set[str]:
    """``network_layer_mapping``'s names: every module (and its parents) owning a tensor of the checkpoint."""
    out = set()
    for key in checkpoint_keys:
        if key.startswith("model.diffusion_model."):
            name = key[len("model."):]
        elif key.startswith("cond_stage_model."):
            name = key[len("cond_stage_model."):]
        elif m := re.match(r"conditioner\.embedders\.(\d+)\.(.+)", key):
            name = f"{m[1]}_{m[2]}"
        else:
            continue
        parts = name.split(".")[:-1]  # the tensor's owner module
        out.update("_".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


LORA_TYPES = [  # (type, accepts, keys it reads), in module_types' order
    ("lora", lambda w: {"lora_up.weight", "lora_down.weight"} <= w, {"lora_up.weight", "lora_down.weight",
                                                                    "lora_mid.weight"}),
    ("hada", lambda w: {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= w,
     {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"}),
    ("lokr", lambda w: ("lokr_w1" in w or {"lokr_w1_a", "lokr_w1_b"} <= w)
     and ("lokr_w2" in w or {"lokr_w2_a", "lokr_w2_b"} <= w),
     {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"}),
]
NETWORK_MODULE_KEYS = {"alpha", "scale", "bias", "dora_scale"}  # network.NetworkModule.__init__


def webui_load(file_keys: list[str], layers: set[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """``load_network``: ({sd_key: {"parts": set, "type": name, "unread": set}}, keys_failed_to_match)."""
    is_sd2 = "model_transformer_resblocks" in " ".join(layers)
    matched: dict[str, set] = {}
    failed = {}
    for key_network in file_keys:
        base, part = key_network.split(".", 1)
        key = compvis_name(base, is_sd2)
        found = key in layers
        if not found and (m := re.match(r"(.*)_([qkv]_proj)$", key)):
            found = m[1] in layers
        if not found and "lora_unet" in base:
            key = base.replace("lora_unet", "diffusion_model")
            found = key in layers
        elif not found and "lora_te1_text_model" in base:
            key = base.replace("lora_te1_text_model", "0_transformer_text_model")
            found = key in layers
            if not found:
                key = base.replace("lora_te1_text_model", "transformer_text_model")
                found = key in layers
        if not found:
            failed[key_network] = key
            continue
        matched.setdefault(key, set()).add(part)
    out = {}
    for key, parts in matched.items():
        kind = next((name for name, accepts, _ in LORA_TYPES if accepts(parts)), None)
        reads = next((r for name, _, r in LORA_TYPES if name == kind), set()) | NETWORK_MODULE_KEYS
        out[key] = {"parts": parts, "type": kind, "unread": parts - reads}
    return out, failed


# ---------------------------------------------------------------------------------------------- ComfyUI

LORA_CLIP_MAP = {"mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
                 "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
                 "self_attn.out_proj": "self_attn_out_proj"}
_ATTN = {"proj_in.weight", "proj_out.weight"}
_TRANSFORMER = {f"{a}.{b}.weight" for a in ("attn1", "attn2") for b in ("to_q", "to_k", "to_v", "to_out.0")} | \
    {"ff.net.0.proj.weight", "ff.net.2.weight"}
_RESNET = {"in_layers.2.weight": "conv1.weight", "emb_layers.1.weight": "time_emb_proj.weight",
           "out_layers.3.weight": "conv2.weight", "skip_connection.weight": "conv_shortcut.weight"}
_BASIC = {"conv_in.weight": "input_blocks.0.0.weight", "conv_out.weight": "out.2.weight",
          "time_embedding.linear_1.weight": "time_embed.0.weight",
          "time_embedding.linear_2.weight": "time_embed.2.weight",
          "add_embedding.linear_1.weight": "label_emb.0.0.weight",
          "add_embedding.linear_2.weight": "label_emb.0.2.weight"}


def comfy_model_keys(checkpoint_keys: list[str]) -> tuple[set[str], set[str]]:
    """(UNet state-dict keys ``diffusion_model.…``, CLIP keys ``clip_l/clip_g.transformer.text_model.…``) as ComfyUI
    holds them after loading the checkpoint (``supported_models`` prefix rules, ``utils.transformers_convert``)."""
    unet = {k[len("model."):] for k in checkpoint_keys if k.startswith("model.diffusion_model.")}
    clip = set()
    openclip = {"attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for k in checkpoint_keys:
        if m := re.match(r"(?:cond_stage_model|conditioner\.embedders\.0)\.transformer\.(.+)", k):
            clip.add(f"clip_l.transformer.{m[1]}")
        elif m := re.match(r"conditioner\.embedders\.1\.model\.transformer\.resblocks\.(\d+)\.(.+)[._]weight$", k):
            layer = f"clip_g.transformer.text_model.encoder.layers.{m[1]}."
            if m[2] == "attn.in_proj":  # the fused in_proj_weight is split into q, k, v
                clip.update(f"{layer}self_attn.{p}_proj.weight" for p in "qkv")
            elif m[2] in openclip:
                clip.add(f"{layer}{openclip[m[2]]}.weight")
    return unet, clip


def _count(keys: set[str], template: str) -> int:
    n = 0
    while any(k.startswith(template.format(n)) for k in keys):
        n += 1
    return n


def _depth(keys: set[str], prefix: str) -> int:
    return _count(keys, prefix + "1.transformer_blocks.{}.")


def unet_config(unet_keys: set[str]) -> dict:
    """``model_detection.detect_unet_config``'s block layout (output depths listed from the last output block)."""
    keys = {k[len("diffusion_model."):] for k in unet_keys}
    num_res, depth, depth_out, last = [], [], [], 0
    n_in = _count(keys, "input_blocks.{}.")
    for count in range(n_in):
        prefix, prefix_out = f"input_blocks.{count}.", f"output_blocks.{n_in - count - 1}."
        if f"{prefix}0.op.weight" in keys:
            num_res.append(last)
            last = 0
            depth_out.append(_depth(keys, prefix_out))
            continue
        if f"{prefix}0.in_layers.0.weight" in keys:
            last += 1
            depth.append(_depth(keys, prefix))
        if f"{prefix_out}0.in_layers.0.weight" in keys:
            depth_out.append(_depth(keys, prefix_out))
    num_res.append(last)
    return {"num_res_blocks": num_res, "transformer_depth": depth, "transformer_depth_output": depth_out,
            "transformer_depth_middle": _depth(keys, "middle_block.")}


def unet_to_diffusers(config: dict) -> dict[str, str]:
    """``utils.unet_to_diffusers`` (the ``.weight`` entries): diffusers UNet name → LDM name."""
    num_res = config["num_res_blocks"]
    depth, depth_out = list(config["transformer_depth"]), list(config["transformer_depth_output"])
    out = {}
    for x in range(len(num_res)):
        n = 1 + (num_res[x] + 1) * x
        for i in range(num_res[x]):
            out.update({f"down_blocks.{x}.resnets.{i}.{d}": f"input_blocks.{n}.0.{ld}" for ld, d in _RESNET.items()})
            t = depth.pop(0)
            if t > 0:
                out.update({f"down_blocks.{x}.attentions.{i}.{b}": f"input_blocks.{n}.1.{b}" for b in _ATTN})
                for j in range(t):
                    out.update({f"down_blocks.{x}.attentions.{i}.transformer_blocks.{j}.{b}":
                                f"input_blocks.{n}.1.transformer_blocks.{j}.{b}" for b in _TRANSFORMER})
            n += 1
        out[f"down_blocks.{x}.downsamplers.0.conv.weight"] = f"input_blocks.{n}.0.op.weight"
    out.update({f"mid_block.attentions.0.{b}": f"middle_block.1.{b}" for b in _ATTN})
    for j in range(config["transformer_depth_middle"]):
        out.update({f"mid_block.attentions.0.transformer_blocks.{j}.{b}": f"middle_block.1.transformer_blocks.{j}.{b}"
                    for b in _TRANSFORMER})
    for i, n in enumerate([0, 2]):
        out.update({f"mid_block.resnets.{i}.{d}": f"middle_block.{n}.{ld}" for ld, d in _RESNET.items()})
    num_res = list(reversed(num_res))
    for x in range(len(num_res)):
        n, blocks = (num_res[x] + 1) * x, num_res[x] + 1
        for i in range(blocks):
            c = 1
            out.update({f"up_blocks.{x}.resnets.{i}.{d}": f"output_blocks.{n}.0.{ld}" for ld, d in _RESNET.items()})
            t = depth_out.pop()
            if t > 0:
                c += 1
                out.update({f"up_blocks.{x}.attentions.{i}.{b}": f"output_blocks.{n}.1.{b}" for b in _ATTN})
                for j in range(t):
                    out.update({f"up_blocks.{x}.attentions.{i}.transformer_blocks.{j}.{b}":
                                f"output_blocks.{n}.1.transformer_blocks.{j}.{b}" for b in _TRANSFORMER})
            if i == blocks - 1:
                out[f"up_blocks.{x}.upsamplers.0.conv.weight"] = f"output_blocks.{n}.{c}.conv.weight"
            n += 1
    out.update(_BASIC)
    return out


def comfy_key_map(unet: set[str], clip: set[str]) -> dict[str, str]:
    """``model_lora_keys_unet`` + ``model_lora_keys_clip``: kohya base name → model weight key."""
    key_map = {}
    for k in unet:
        if k.endswith(".weight"):
            key_map["lora_unet_" + k[len("diffusion_model."):-len(".weight")].replace(".", "_")] = k
    for k, ldm in unet_to_diffusers(unet_config(unet)).items():
        key_map["lora_unet_" + k[:-len(".weight")].replace(".", "_")] = f"diffusion_model.{ldm}"
    return {**key_map, **comfy_clip_key_map(clip)}


def comfy_clip_key_map(clip: set[str]) -> dict[str, str]:
    """``model_lora_keys_clip`` for CLIP-L and CLIP-G (SD, SDXL, and FLUX's clip_l): the kohya names and the
    diffusers ones (``text_encoder.`` for clip_l, or for clip_g alone; ``text_encoder_2.`` for clip_g beside
    clip_l)."""
    key_map = {}
    clip_l = False
    for b in range(32):
        for c, lora_c in LORA_CLIP_MAP.items():
            if (k := f"clip_l.transformer.text_model.encoder.layers.{b}.{c}.weight") in clip:
                key_map[f"lora_te_text_model_encoder_layers_{b}_{lora_c}"] = k
                key_map[f"lora_te1_text_model_encoder_layers_{b}_{lora_c}"] = k
                key_map[f"text_encoder.text_model.encoder.layers.{b}.{c}"] = k
                clip_l = True
            if (k := f"clip_g.transformer.text_model.encoder.layers.{b}.{c}.weight") in clip:
                prefix = "lora_te2_" if clip_l else "lora_te_"
                key_map[f"{prefix}text_model_encoder_layers_{b}_{lora_c}"] = k
                key_map[f"{'text_encoder_2' if clip_l else 'text_encoder'}.text_model.encoder.layers.{b}.{c}"] = k
    return key_map


LOKR_KEYS = ("lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_t2")


def _adapter_keys(x: str, keys: set[str]) -> set[str]:
    """The keys of one mapped name that ``weight_adapter``'s LoRA, LoHa and LoKr ``load`` take."""
    out = set()
    if f"{x}.lora_up.weight" in keys:  # LoRAAdapter: up, down, and mid when present
        out |= {f"{x}.lora_up.weight", f"{x}.lora_down.weight"} | ({f"{x}.lora_mid.weight"} & keys)
    elif f"{x}.lora_B.weight" in keys:  # LoRAAdapter's diffusers2 names: lora_B is up, lora_A down
        out |= {f"{x}.lora_B.weight", f"{x}.lora_A.weight"}
    if f"{x}.hada_w1_a" in keys:  # LoHaAdapter: the four factors, t1/t2 when present
        out |= {f"{x}.hada_w1_a", f"{x}.hada_w1_b", f"{x}.hada_w2_a", f"{x}.hada_w2_b"}
        out |= {f"{x}.hada_t1", f"{x}.hada_t2"} & keys
    out |= {f"{x}.{s}" for s in LOKR_KEYS} & keys  # LoKrAdapter: each one present
    return out


def comfy_load(file_keys: list[str], key_map: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """``load_lora``: (keys not loaded, {base name: model weight key it patches})."""
    keys = set(file_keys)
    loaded, patched = set(), {}
    for x, target in key_map.items():
        adapter = _adapter_keys(x, keys)
        if adapter:
            patched[x] = target
        loaded |= adapter | ({f"{x}.alpha", f"{x}.dora_scale"} & keys)
    return keys - loaded, patched


# ------------------------------------------------------------------------------------- ComfyUI: FLUX, Chroma
# ComfyUI holds FLUX and Chroma under the BFL names (comfy/ldm/flux/model.py, comfy/ldm/chroma/model.py);
# model_base.Chroma subclasses Flux, so both get the same LoRA key map. FLUX's text encoders (comfy/text_encoders/
# flux.py FluxClipModel) hold clip_l and t5xxl: model_lora_keys_clip maps clip_l's keys (comfy_clip_key_map); a
# Chroma CLIP object holds T5 alone.

FLUX_DOUBLE = ("img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2", "img_mod.lin",
               "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2", "txt_mod.lin")
FLUX_SINGLE = ("linear1", "linear2", "modulation.lin")
FLUX_OTHER = ("img_in", "txt_in", "time_in.in_layer", "time_in.out_layer", "vector_in.in_layer",
              "vector_in.out_layer", "final_layer.linear", "final_layer.adaLN_modulation.1")


def flux_model_keys(depth: int, depth_single: int, *, guidance: bool = True, chroma: bool = False) -> set[str]:
    """The linear weights ComfyUI's Flux (or Chroma: no modulation linears, no time/vector/guidance inputs, the
    distilled_guidance_layer instead) holds, as ``diffusion_model.<BFL name>.weight``."""
    skip = ("_mod.lin", "modulation.lin", "time_in", "vector_in", "adaLN") if chroma else ()
    names = [f"double_blocks.{i}.{n}" for i in range(depth) for n in FLUX_DOUBLE]
    names += [f"single_blocks.{i}.{n}" for i in range(depth_single) for n in FLUX_SINGLE]
    names += list(FLUX_OTHER) + (["guidance_in.in_layer", "guidance_in.out_layer"] if guidance and not chroma else [])
    if chroma:
        names += ["distilled_guidance_layer.in_proj", "distilled_guidance_layer.out_proj"]
        names += [f"distilled_guidance_layer.layers.{i}.{n}" for i in range(5) for n in ("in_layer", "out_layer")]
    return {f"diffusion_model.{n}.weight" for n in names if not any(s in n for s in skip)}


_FLUX_DOUBLE_MAP = {"attn.to_out.0": "img_attn.proj", "norm1.linear": "img_mod.lin",
                    "norm1_context.linear": "txt_mod.lin", "attn.to_add_out": "txt_attn.proj",
                    "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0",
                    "ff_context.net.2": "txt_mlp.2"}
_FLUX_BASIC = {"proj_out": "final_layer.linear", "x_embedder": "img_in", "context_embedder": "txt_in",
               "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
               "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
               "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
               "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
               "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
               "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
               "norm_out.linear": "final_layer.adaLN_modulation.1"}


def flux_to_diffusers(depth: int, depth_single: int, hidden: int) -> dict[str, str | tuple[str, tuple[int, int, int]]]:
    """``utils.flux_to_diffusers(..., output_prefix="diffusion_model.")``, the ``.weight`` entries: diffusers name →
    BFL weight key, or (BFL key, (dim, offset, length)) for a row slice of a fused linear."""
    out: dict[str, str | tuple[str, tuple[int, int, int]]] = {}
    for i in range(depth):
        a, to = f"transformer_blocks.{i}.attn.", f"diffusion_model.double_blocks.{i}."
        for j, (img, txt) in enumerate((("to_q", "add_q_proj"), ("to_k", "add_k_proj"), ("to_v", "add_v_proj"))):
            out[f"{a}{img}.weight"] = (f"{to}img_attn.qkv.weight", (0, hidden * j, hidden))
            out[f"{a}{txt}.weight"] = (f"{to}txt_attn.qkv.weight", (0, hidden * j, hidden))
        out.update({f"transformer_blocks.{i}.{d}.weight": f"{to}{b}.weight" for d, b in _FLUX_DOUBLE_MAP.items()})
    for i in range(depth_single):
        a, to = f"single_transformer_blocks.{i}.", f"diffusion_model.single_blocks.{i}."
        for j, name in enumerate(("attn.to_q", "attn.to_k", "attn.to_v")):
            out[f"{a}{name}.weight"] = (f"{to}linear1.weight", (0, hidden * j, hidden))
        out[f"{a}proj_mlp.weight"] = (f"{to}linear1.weight", (0, hidden * 3, hidden * 4))
        out[f"{a}norm.linear.weight"] = f"{to}modulation.lin.weight"
        out[f"{a}proj_out.weight"] = f"{to}linear2.weight"
    out.update({f"{d}.weight": f"diffusion_model.{b}.weight" for d, b in _FLUX_BASIC.items()})
    return out


def comfy_flux_key_map(unet: set[str], depth: int, depth_single: int, hidden: int) -> dict:
    """``model_lora_keys_unet`` for a Flux (or Chroma) model: the generic part (``lora_unet_`` + underscored and
    the bare ``diffusion_model.`` name of every weight) and the Flux branch (``transformer.``, ``lycoris_`` and
    ``lora_transformer_`` + each flux_to_diffusers name; ``<linear1>_qkv`` for the first 3·hidden rows).
    Bare diffusers names (the newest ComfyUI's DiffSynth entry) are left out: v0.3.64 does not map them."""
    key_map: dict = {}
    for k in unet:
        if k.endswith(".weight"):
            key_map["lora_unet_" + k[len("diffusion_model."):-len(".weight")].replace(".", "_")] = k
            key_map[k[:-len(".weight")]] = k
    for k, to in flux_to_diffusers(depth, depth_single, hidden).items():
        base = k[:-len(".weight")]
        key_map[f"transformer.{base}"] = to
        key_map[f"lycoris_{base.replace('.', '_')}"] = to
        key_map[f"lora_transformer_{base.replace('.', '_')}"] = to
    for k in unet:
        if k.endswith(".linear1.weight"):
            key_map[k.replace(".linear1.weight", ".linear1_qkv")] = (k, (0, 0, hidden * 3))
    return key_map


# ------------------------------------------------------------------------------------------ ComfyUI: Qwen-Image
# ComfyUI holds Qwen-Image under the diffusers names (comfy/ldm/qwen_image/model.py), so its LoRA keys are those names
# with a prefix; there is no fused layer and no conversion table.

def qwen_model_keys(module_names) -> set[str]:
    """The linear weights ComfyUI's QwenImage holds, as ``diffusion_model.<diffusers name>.weight``."""
    return {f"diffusion_model.{n}.weight" for n in module_names}


def comfy_qwen_key_map(unet: set[str]) -> dict[str, str]:
    """``model_lora_keys_unet`` for a QwenImage model: the generic part (``lora_unet_`` + underscored and the bare
    ``diffusion_model.`` name of every weight) and the QwenImage branch (the name with no prefix, ``transformer.``
    + the name, ``lycoris_`` + the underscored name)."""
    key_map: dict[str, str] = {}
    for k in unet:
        if k.endswith(".weight"):
            name = k[len("diffusion_model."):-len(".weight")]
            key_map["lora_unet_" + name.replace(".", "_")] = k
            key_map[k[:-len(".weight")]] = k
            key_map[name] = k
            key_map[f"transformer.{name}"] = k
            key_map[f"lycoris_{name.replace('.', '_')}"] = k
    return key_map
