"""Single-file checkpoints with the original (LDM / SGM) key names, both ways.

WebUI, ComfyUI and sd-scripts read one ``.safetensors`` file whose keys follow the original
Stability code: ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and the text
encoders under ``cond_stage_model.*`` (SD1/SD2) or ``conditioner.embedders.N.*`` (SDXL). diffusers
uses other module names. The maps here are built from the diffusers configs, so they work for the
real models and for the tiny test models alike; the reverse of each map loads such a file.
models/files.py reads a file's tensor names, dtypes and shapes without touching the weights.
"""

from __future__ import annotations

from typing import Any

# Where each family keeps its text encoders in the single file, and in which naming:
# "hf" = Hugging Face CLIP names under a prefix, "openclip" = OpenCLIP names (fused qkv).
TEXT_ENCODER_LAYOUT: dict[str, list[tuple[str, str, str]]] = {
    "sd15": [("text_encoder", "cond_stage_model.transformer.", "hf")],
    "sd2": [("text_encoder", "cond_stage_model.model.", "openclip")],
    "sdxl": [("text_encoder", "conditioner.embedders.0.transformer.", "hf"),
             ("text_encoder_2", "conditioner.embedders.1.model.", "openclip")],
    "sdxl_refiner": [("text_encoder_2", "conditioner.embedders.0.model.", "openclip")],
}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

_RESNET = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
           ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]
_VAE_RESNET = [("conv_shortcut.", "nin_shortcut.")]
_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def layout_family(family: str) -> str:
    """The key layout of a family name ('sd2v' and 'sd2' share one)."""
    return "sd2" if family.startswith("sd2") else family


def _per_block(value: Any, n: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [int(value)] * n


def unet_prefix_map(config: dict) -> list[tuple[str, str, list]]:
    """(diffusers prefix, LDM prefix, inner renames) for every UNet module of this config."""
    downs, ups = list(config["down_block_types"]), list(config["up_block_types"])
    layers = _per_block(config["layers_per_block"], len(downs))
    out: list[tuple[str, str, list]] = [
        ("conv_in.", "input_blocks.0.0.", []), ("time_embedding.linear_1.", "time_embed.0.", []),
        ("time_embedding.linear_2.", "time_embed.2.", []), ("add_embedding.linear_1.", "label_emb.0.0.", []),
        ("add_embedding.linear_2.", "label_emb.0.2.", []), ("conv_norm_out.", "out.0.", []),
        ("conv_out.", "out.2.", []), ("mid_block.resnets.0.", "middle_block.0.", _RESNET),
        ("mid_block.attentions.0.", "middle_block.1.", []), ("mid_block.resnets.1.", "middle_block.2.", _RESNET)]
    idx = 1
    for i, _ in enumerate(downs):
        for j in range(layers[i]):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{idx}.0.", _RESNET))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{idx}.1.", []))
            idx += 1
        if i < len(downs) - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{idx}.0.op.", []))
            idx += 1
    idx = 0
    for i, kind in enumerate(ups):
        n = list(reversed(layers))[i] + 1
        for j in range(n):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{idx}.0.", _RESNET))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{idx}.1.", []))
            idx += 1
        # The upsampler sits after the resnet (and the attention, when the block has one) of the last layer.
        slot = 2 if "CrossAttn" in kind else 1
        out.append((f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{idx - 1}.{slot}.conv.", []))
    return out


def vae_prefix_map(config: dict) -> list[tuple[str, str, list]]:
    n = len(config["block_out_channels"])
    layers = int(config.get("layers_per_block", 2))
    out: list[tuple[str, str, list]] = []
    for side in ("encoder", "decoder"):
        out += [(f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1.", _VAE_RESNET),
                (f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2.", _VAE_RESNET),
                (f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1.", _VAE_ATTN),
                (f"{side}.conv_norm_out.", f"{side}.norm_out.", [])]
    for i in range(n):
        for j in range(layers):
            out.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", _VAE_RESNET))
        out.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv.", []))
        for j in range(layers + 1):
            out.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}.", _VAE_RESNET))
        out.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{n - 1 - i}.upsample.conv.", []))
    return out


def _rename(key: str, prefix_map: list[tuple[str, str, list]]) -> str:
    for src, dst, inner in prefix_map:
        if key.startswith(src):
            rest = key[len(src):]
            for a, b in inner:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            return dst + rest
    return key  # conv_in/conv_out of the VAE, quant convs, transformer internals: same names in both


def _openclip_name(key: str) -> str | None:
    """HF CLIP text-model key → OpenCLIP key; None for keys OpenCLIP does not store (qkv are fused apart)."""
    k = key.removeprefix("text_model.")
    simple = {"embeddings.token_embedding.weight": "token_embedding.weight",
              "embeddings.position_embedding.weight": "positional_embedding",
              "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
    if k in simple:
        return simple[k]
    if k.startswith("encoder.layers."):
        parts = k.split(".", 3)  # encoder, layers, N, rest
        rest = parts[3]
        for a, b in (("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("self_attn.out_proj.", "attn.out_proj."),
                     ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")):
            if rest.startswith(a):
                return f"transformer.resblocks.{parts[2]}.{b}{rest[len(a):]}"
    return None


def _canonical(key: str) -> str:
    """Text-encoder keys with the `text_model.` level that single files use (transformers 5 drops it
    from CLIPTextModel but keeps it in CLIPTextModelWithProjection)."""
    if key.startswith(("text_model.", "text_projection.")):
        return key
    return "text_model." + key


def diffusers_to_ldm(pipe: Any, family: str) -> dict:
    """All weights of `pipe` under the original single-file key names (tensors shared, not copied)."""
    import torch

    fam = layout_family(family)
    sd: dict[str, torch.Tensor] = {}
    umap = unet_prefix_map(dict(pipe.unet.config))
    for k, v in pipe.unet.state_dict().items():
        sd[UNET_PREFIX + _rename(k, umap)] = v
    vmap = vae_prefix_map(dict(pipe.vae.config))
    for k, v in pipe.vae.state_dict().items():
        name = _rename(k, vmap)
        if ".mid.attn_1." in name and name.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]  # the original VAE attention uses 1×1 convs
        sd[VAE_PREFIX + name] = v
    for attr, prefix, naming in TEXT_ENCODER_LAYOUT[fam]:
        te = getattr(pipe, attr)
        tsd = {_canonical(k): v for k, v in te.state_dict().items()}
        if naming == "hf":
            sd.update({prefix + k: v for k, v in tsd.items()})
            continue
        for k, v in tsd.items():
            if k == "text_projection.weight":
                sd[prefix + "text_projection"] = v.t().contiguous()  # OpenCLIP multiplies x @ P
            elif (name := _openclip_name(k)) is not None:
                sd[prefix + name] = v
        for i in range(te.config.num_hidden_layers):
            base = f"text_model.encoder.layers.{i}.self_attn."
            for kind in ("weight", "bias"):
                sd[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(
                    [tsd[f"{base}{p}_proj.{kind}"] for p in "qkv"])
    return sd


def ldm_to_diffusers(sd: dict, pipe: Any, family: str) -> dict[str, dict]:
    """The reverse: {component: state dict} for the components of `pipe` (used for names and shapes).

    Raises KeyError naming the first weight the file lacks.
    """
    fam = layout_family(family)
    out: dict[str, dict] = {"unet": unet_from_ldm(sd, pipe.unet), "vae": vae_from_ldm(sd, pipe.vae)}
    for attr, prefix, naming in TEXT_ENCODER_LAYOUT[fam]:
        out[attr] = text_encoder_from_ldm(sd, getattr(pipe, attr), prefix, naming)
    return out


def unet_from_ldm(sd: dict, unet: Any) -> dict:
    umap = unet_prefix_map(dict(unet.config))
    return {k: sd[UNET_PREFIX + _rename(k, umap)] for k in unet.state_dict()}


def vae_from_ldm(sd: dict, vae: Any, prefix: str = VAE_PREFIX) -> dict:
    vmap = vae_prefix_map(dict(vae.config))
    out = {}
    for k, ref in vae.state_dict().items():
        v = sd[prefix + _rename(k, vmap)]
        out[k] = v.reshape(ref.shape) if v.ndim != ref.ndim else v
    return out


def text_encoder_from_ldm(sd: dict, te: Any, prefix: str, naming: str) -> dict:
    tsd: dict = {}
    for key, ref in te.state_dict().items():
        k = _canonical(key)
        if naming == "hf":
            if prefix + k in sd:
                tsd[key] = sd[prefix + k]
            elif prefix + k.removeprefix("text_model.") in sd:  # files written with transformers < 4.2 names
                tsd[key] = sd[prefix + k.removeprefix("text_model.")]
            elif k.endswith("position_ids"):
                tsd[key] = ref  # older files leave the position ids out
            else:
                tsd[key] = sd[prefix + k]  # raises KeyError naming the key
        elif k == "text_projection.weight":
            tsd[key] = sd[prefix + "text_projection"].t().contiguous()
        elif k.endswith("position_ids"):
            tsd[key] = ref
        elif (name := _openclip_name(k)) is not None:
            tsd[key] = sd[prefix + name]
        else:  # q/k/v projections: thirds of the fused in_proj
            parts = k.split(".")  # text_model.encoder.layers.N.self_attn.q_proj.weight
            fused = sd[f"{prefix}transformer.resblocks.{parts[3]}.attn.in_proj_{parts[6]}"]
            tsd[key] = fused.chunk(3, dim=0)["qkv".index(parts[5][0])]
    return tsd
