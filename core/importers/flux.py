"""FLUX.1 and Chroma runs of the peers: sd-scripts' `flux_train_network.py` (its command line or TOML) and
lora-scripts' flux-lora TOML (the same keys; model_type = "chroma" for Chroma).

A flag left out means sd-scripts' default (kohya-ss/sd-scripts 48d368f, library/flux_train_utils.py
`add_flux_train_arguments`, flux_train_network.py, library/train_util.py): guidance_scale 3.5,
model_prediction_type sigma_scaled, timestep_sampling sigma (a uniform index into the 1000 training sigmas shifted
by discrete_flow_shift, 3.0), sigmoid_scale 1.0, T5 512 tokens for dev and 256 for schnell, no T5 mask (Chroma
refuses to start without one), and a CLIP-L LoRA unless network_train_unet_only (Danlu's too:
network.train_text_encoder). Danlu's FLUX training has no setting for several of these (training/families/flux.py):
dev's guidance is 1.0, the loss compares the raw velocity, T5 takes 512 / 256 tokens, only Chroma's padding is
masked, T5 never gets a LoRA. The report
says which of the run's choices Danlu keeps, which it cannot, and warns where the run left sd-scripts' own
recommendation (docs/flux_train_network.md: guidance_scale 1.0, model_prediction_type raw; Chroma: guidance 0).
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from core import family_facts
from core.importers.keys import Row, network_args, sample_prompts

SCRIPT_KEY = "(script)"   # the script an sd-scripts command line runs (core.importers reads it from the line)
DEFAULTS: dict[str, Any] = {"model_type": "flux", "network_alpha": 1.0, "timestep_sampling": "sigma",
                            "discrete_flow_shift": 3.0, "guidance_scale": 3.5, "model_prediction_type": "sigma_scaled",
                            "apply_t5_attn_mask": False, "network_train_unet_only": False}
# the static shift of the base's own scheduler config, which Danlu's "shift" timesteps use (training/flow.py)
BASE_SHIFT = {"dev": 3.0, "schnell": 1.0, "chroma": 3.0}
TRAINING_GUIDANCE = {"dev": 1.0, "chroma": 0.0}  # what Danlu gives the model (Chroma: diffusers always feeds 0)
_MARKS = ("ae", "clip_l", "t5xxl", "guidance_scale", "model_prediction_type", "t5xxl_max_token_length",
          "apply_t5_attn_mask", "timestep_sampling")
# sd-scripts' samples when a prompt line does not say (library/flux_train_utils.py sample_image_inference): 20 steps,
# 512 px, embedded guidance 3.5 (what Danlu's dev samples use) and CFG 1 (Danlu's cfg: ComfyUI's KSampler cfg)
SAMPLES = {"steps": 20, "width": 512, "height": 512, "sampler": "euler", "cfg": 1.0}


def is_flux(peer: dict[str, Any]) -> bool:
    """A FLUX.1 / Chroma run: its script or lora-scripts' train type where given (other models share FLUX's flags:
    SD3's and Lumina's scripts take ae, t5xxl, timestep_sampling…), else model_type, the network module, or FLUX's
    own keys without SD3's clip_g or Lumina's gemma2."""
    if SCRIPT_KEY in peer:
        return str(peer[SCRIPT_KEY]).startswith("flux_train")
    if "model_train_type" in peer:
        return peer["model_train_type"] == "flux-lora"
    if str(peer.get("model_type", "")) in ("flux", "chroma") or str(peer.get("network_module", "")).endswith("_flux"):
        return True
    return not {"clip_g", "gemma2"} & set(peer) and any(k in peer for k in _MARKS)


def with_defaults(peer: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The run's keys with sd-scripts' defaults for the flags it left out, and which keys those are."""
    missing = {k: v for k, v in DEFAULTS.items() if k not in peer or peer[k] in ("", None)}
    return {**peer, **missing}, set(missing)


def starting_point(peer: dict[str, Any]) -> dict[str, Any]:
    """The samples sd-scripts made of the run, under what its keys set."""
    return {"sampling": dict(SAMPLES)}


def _header_keys(path: Path) -> frozenset[str] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_header(str(path), stat.st_mtime, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_header(path: str, mtime: float, size: int) -> frozenset[str] | None:
    """The tensor names of a .safetensors file (its JSON header only: 8 bytes of length, then the header)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size, 200 * 1024 * 1024):
                return None
            return frozenset(json.loads(f.read(n)))
    except (OSError, ValueError, struct.error):
        return None


def variant(peer: dict[str, Any]) -> tuple[str, str, str]:
    """(dev | schnell | chroma, why in English, why in 中文): Chroma from model_type; dev or schnell from the
    checkpoint's header where it can be read (schnell has no guidance_in, as sd-scripts' analyze_checkpoint_state
    tells them apart), else from its name, else dev."""
    if str(peer.get("model_type")) == "chroma":
        return "chroma", "", ""
    base = str(peer.get("pretrained_model_name_or_path") or "")
    names = {k.removeprefix("model.diffusion_model.") for k in _header_keys(Path(base)) or ()}
    if any(k.startswith(("double_blocks.", "transformer_blocks.")) for k in names):
        dev = "guidance_in.in_layer.weight" in names or "time_text_embed.guidance_embedder.linear_1.weight" in names
        return (("dev", "its header has the guidance embedder (guidance_in)", "文件头中有引导嵌入层（guidance_in）")
                if dev else ("schnell", "its header has no guidance embedder", "文件头中没有引导嵌入层"))
    stem = Path(base.replace("\\", "/")).name.lower()
    if "schnell" in stem:
        return "schnell", "its name says schnell", "文件名表明是 schnell"
    if re.search(r"(^|[^a-z])dev([^a-z]|$)", stem):
        return "dev", "its name says dev", "文件名表明是 dev"
    return ("dev", "the checkpoint could not be read here and its name does not say: dev assumed (the Model tab "
            "reads it from the file)", "此处无法读取底模文件，文件名也未表明：按 dev 处理（模型页会从文件读取）")


def _kind(peer: dict[str, Any]) -> str:
    return variant(peer)[0]


def _family(peer: dict[str, Any]) -> str:
    """model.family: sd-scripts' model_type names Danlu's two families."""
    return "chroma" if str(peer.get("model_type")) == "chroma" else "flux"


def _has_clip(peer: dict[str, Any]) -> bool:
    """FLUX.1 takes CLIP-L's pooled output; Chroma has no CLIP (the family's facts row says which)."""
    return family_facts.has(_family(peer), "pooled_text")


def _same(result, k: str, v: Any, en: str, zh: str, status: str = "mapped") -> None:
    """A key whose effect Danlu has without a setting (or that had none there either)."""
    result.rows.append(Row(status, k, v, why_en=en, why_zh=zh))


def _cannot(result, k: str, v: Any, en: str, zh: str) -> None:
    result.rows.append(Row("unsupported", k, v, why_en=en, why_zh=zh))


def _warn(result, k: str, v: Any, en: str, zh: str) -> None:
    said = " (left out: sd-scripts' default)" if k in result.defaulted else ""
    said_zh = "（未设置：sd-scripts 的默认值）" if k in result.defaulted else ""
    result.warnings.append((f"{k} = {v}{said}: {en}", f"{k} = {v}{said_zh}：{zh}"))


# --- the keys ---------------------------------------------------------------------------------------------------

def _model_type(k, v, peer, put, result):
    put(k, "model.family", _family(peer))


def _train_type(k, v, peer, put, result):
    put(k, "model.family", _family(peer))


def _base(k, v, peer, put, result):
    put(k, "model.base", v)
    kind, en, zh = variant(peer)
    if kind != "chroma":
        put(k, "model.variant", kind, (f"FLUX.1 {kind}: {en}", f"FLUX.1 {kind}：{zh}"))


def _guidance(k, v, peer, put, result):
    kind, g = _kind(peer), float(v)
    if kind == "schnell":
        return _same(result, k, v, "schnell has no guidance input: not used there either",
                     "schnell 没有引导输入：原配置也不使用")
    want = TRAINING_GUIDANCE[kind]
    if g == want:
        return _same(result, k, v, f"Danlu trains {kind} with guidance {want:g} too",
                     f"丹炉训练 {kind} 同样使用引导 {want:g}")
    _cannot(result, k, v, f"Danlu trains {kind} with guidance {want:g}; this run gave the model {g:g}",
            f"丹炉训练 {kind} 时引导为 {want:g}；该运行给模型的是 {g:g}")
    _warn(result, k, v, f"sd-scripts' docs say to set {want:g} for {kind}; a LoRA trained at {g:g} may need that "
          "guidance to look right. Danlu trains at " + f"{want:g}.",
          f"sd-scripts 文档要求 {kind} 设为 {want:g}；以 {g:g} 训练的 LoRA 可能要在该引导下才正常。"
          f"丹炉按 {want:g} 训练。")


def _prediction(k, v, peer, put, result):
    if str(v) == "raw":
        return _same(result, k, v, "Danlu compares the raw velocity with noise − latents too",
                     "丹炉同样直接用速度预测与 noise − latents 比较")
    _cannot(result, k, v, f"Danlu trains the raw velocity; {v} compares "
            + ("x_t − σ·prediction (weighted by weighting_scheme)" if v == "sigma_scaled" else "x_t + prediction")
            + " with noise − latents, which Danlu cannot reproduce",
            f"丹炉训练的是原始速度（raw）；{v} 把"
            + ("x_t − σ·预测（按 weighting_scheme 加权）" if v == "sigma_scaled" else "x_t + 预测")
            + "与 noise − latents 比较，丹炉无法复现")
    _warn(result, k, v, "sd-scripts' docs recommend raw; Danlu trains raw.",
          "sd-scripts 文档推荐 raw；丹炉按 raw 训练。")


def _flux_shift_at(peer: dict[str, Any]) -> tuple[int, float]:
    """The side of the run's resolution and the shift flux_shift gives it (μ from 0.5 at 256 to 1.15 at 4096
    packed tokens, shift = e^μ)."""
    sides = [int(float(p)) for p in re.split(r"[,x]", str(peer.get("resolution") or 1024)) if p.strip()] or [1024]
    side = int(math.sqrt(sides[0] * sides[-1]))
    tokens = (side // 16) ** 2
    return side, math.exp(0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256))


def _timesteps(k, v, peer, put, result):
    sampling, shift = str(v), float(peer["discrete_flow_shift"])
    base = BASE_SHIFT[_kind(peer)]
    if sampling in ("uniform", "sigmoid", "flux_shift"):
        return put(k, "training.timestep_type", sampling)
    if sampling == "sigma":
        if shift == 1.0:
            return put(k, "training.timestep_type", "uniform", ("sigma with discrete_flow_shift 1.0 is uniform",
                                                                "discrete_flow_shift 为 1.0 时 sigma 即均匀抽取"))
        same = shift == base
        return put(k, "training.timestep_type", "shift", (
            f"a uniform pick of the 1000 training sigmas shifted by {shift:g}: Danlu's shift, which shifts by the "
            f"base scheduler's {base:g}" + ("" if same else f" (not {shift:g})"),
            f"从按 {shift:g} 偏移的 1000 个训练 sigma 中均匀抽取：即丹炉的 shift，它按底模调度器的 {base:g} 偏移"
            + ("" if same else f"（而非 {shift:g}）")))
    if sampling == "shift":
        if shift == 1.0:
            return put(k, "training.timestep_type", "sigmoid", ("shift by 1.0 is sigmoid", "偏移 1.0 即 sigmoid"))
        side, at = _flux_shift_at(peer)
        return put(k, "training.timestep_type", "flux_shift", (
            f"sigmoid shifted by a fixed {shift:g}; Danlu's flux_shift shifts the sigmoid by the image's size: "
            f"{at:.2f} at {side} px" + ("" if side == 1024 else " (3.16 at 1024 px)"),
            f"sigmoid 按固定的 {shift:g} 偏移；丹炉的 flux_shift 按图像尺寸偏移 sigmoid：{side} px 时为 {at:.2f}"
            + ("" if side == 1024 else "（1024 px 时为 3.16）")))
    _cannot(result, k, v, f"Danlu has no timestep sampling {v}", f"丹炉没有 {v} 这种时间步采样")


def _flow_shift(k, v, peer, put, result):
    sampling, shift = str(peer["timestep_sampling"]), float(v)
    if sampling not in ("sigma", "shift"):
        return _same(result, k, v, f"not used with timestep_sampling {sampling} there either",
                     f"timestep_sampling 为 {sampling} 时原配置也不使用")
    base, at = BASE_SHIFT[_kind(peer)], _flux_shift_at(peer)[1]
    if shift == 1.0 or (sampling == "sigma" and shift == base) or (sampling == "shift" and abs(shift - at) < 0.01):
        return _same(result, k, v, "read with timestep_sampling", "已随 timestep_sampling 一并读取")
    _cannot(result, k, v, "Danlu takes the shift from the base's scheduler or the image size (see timestep_sampling)",
            "丹炉的偏移取自底模调度器或图像尺寸（见 timestep_sampling）")


def _sigmoid_scale(k, v, peer, put, result):
    if float(v) == 1.0 or str(peer["timestep_sampling"]) not in ("sigmoid", "shift", "flux_shift"):
        return _same(result, k, v, "Danlu's sigmoid levels use scale 1.0 too, or not used there",
                     "丹炉的 sigmoid 同样用 1.0，或原配置不使用")
    _cannot(result, k, v, "Danlu's sigmoid levels use scale 1.0", "丹炉的 sigmoid 噪声强度固定用 1.0 的缩放")


def _t5_mask(k, v, peer, put, result):
    on = str(v).lower() in ("1", "true")
    if _kind(peer) == "chroma":
        return _same(result, k, v, "Danlu masks Chroma's T5 padding always (a bool mask)" if on else
                     "sd-scripts refuses Chroma without it; Danlu masks Chroma's T5 padding always",
                     "丹炉总是遮蔽 Chroma 的 T5 填充（bool 掩码）" if on else
                     "sd-scripts 在 Chroma 上不允许关闭它；丹炉总是遮蔽 Chroma 的 T5 填充",
                     "mapped" if on else "changed")
    if not on:
        return _same(result, k, v, "Danlu trains FLUX.1 without the T5 mask too", "丹炉训练 FLUX.1 同样不用 T5 掩码")
    _cannot(result, k, v, "Danlu trains FLUX.1 without the T5 mask, as it was released and as ComfyUI and diffusers "
            "run it (sd-scripts: not recommended)",
            "丹炉训练 FLUX.1 不用 T5 掩码，与模型发布时及 ComfyUI、diffusers 的用法一致（sd-scripts 也不推荐）")


def _t5_length(k, v, peer, put, result):
    kind, n = _kind(peer), int(float(v))
    want = 256 if kind == "schnell" else 512
    if n == want:
        return _same(result, k, v, f"Danlu encodes {want} T5 tokens for {kind} too",
                     f"丹炉对 {kind} 同样编码 {want} 个 T5 token")
    _cannot(result, k, v, f"Danlu encodes {want} T5 tokens for {kind}", f"丹炉对 {kind} 编码 {want} 个 T5 token")


def _part(k, v, peer, put, result):
    if k == "ae":
        return put(k, "model.vae", v)
    what = "T5-XXL" if k == "t5xxl" else "CLIP-L"
    if k == "clip_l" and not _has_clip(peer):
        return _same(result, k, v, "Chroma has no CLIP-L: not used there either", "Chroma 没有 CLIP-L：原配置也不使用")
    part, base = Path(str(v).replace("\\", "/")), Path(str(peer.get("pretrained_model_name_or_path") or "")
                                                      .replace("\\", "/"))
    beside = part.parent == base.parent or (part.parent.name in ("text_encoders", "clip")
                                           and part.parent.parent == base.parent.parent)
    if beside:
        return _same(result, k, v, f"Danlu finds {what} there (beside the base or in ComfyUI's text_encoders)",
                     f"丹炉会在那里找到 {what}（底模旁边或 ComfyUI 的 text_encoders 文件夹）")
    _cannot(result, k, v, f"Danlu looks for {what} beside the base or in ComfyUI's models/text_encoders: move or link "
            "the file there",
            f"丹炉在底模旁边或 ComfyUI 的 models/text_encoders 中查找 {what}：请把文件移动或链接到那里")


def _network_module(k, v, peer, put, result):
    if str(v) == "networks.lora_flux":
        return put(k, "network.type", "lora")
    _cannot(result, k, v, f"Danlu trains FLUX and Chroma with LoRA (networks.lora_flux), not {v}",
            f"丹炉训练 FLUX 和 Chroma 只用 LoRA（networks.lora_flux），不支持 {v}")


_MOD_DIMS = ("img_mod_dim", "txt_mod_dim", "single_mod_dim")
_TYPE_DIMS = ("img_attn_dim", "img_mlp_dim", "txt_attn_dim", "txt_mlp_dim", "single_dim", *_MOD_DIMS)


def _network_args(k, v, peer, put, result):
    """lora_flux's network_args (networks/lora_flux.py create_network); the others as for SD."""
    items = [str(a) for a in (v if isinstance(v, list) else str(v).split())]
    args = {n.strip(): val.strip() for n, _, val in (a.partition("=") for a in items)}
    rest = []
    for name, value in args.items():
        key, on = f"{k} {name}", value.lower() in ("1", "true")
        if name == "split_qkv":
            _same(result, key, value, "Danlu trains q, k and v (and linear1's MLP) as separate LoRAs too; its kohya "
                  "file keeps each one's strength (sd-scripts #2204)" if on else "Danlu trains q, k and v (and "
                  "linear1's MLP) as separate LoRAs of this rank, as split_qkv = true does",
                  "丹炉同样把 q、k、v（及 linear1 的 MLP）分开训练；其 kohya 文件保持各自强度（sd-scripts #2204）"
                  if on else "丹炉把 q、k、v（及 linear1 的 MLP）分别训练为该秩的 LoRA，等同 split_qkv = true",
                  "mapped" if on else "changed")
        elif (name == "train_blocks" and value == "all") or (name == "train_t5xxl" and not on) or name == "verbose":
            _same(result, key, value, "as Danlu trains", "与丹炉的训练方式相同")
        elif name in _MOD_DIMS and all(args.get(m) == "0" for m in _MOD_DIMS):
            put(key, "network.dit_targets", ["attention", "feed_forward"],
                ("the modulation linears get no LoRA", "调制层不加 LoRA"), raw=value)
        elif name in ("train_blocks", "train_t5xxl", "in_dims", "train_double_block_indices",
                      "train_single_block_indices", *_TYPE_DIMS):
            _cannot(result, key, value, "Danlu trains every double and single block's linears at one rank, and "
                    "no text encoder", "丹炉以同一个秩训练所有双流和单流块的线性层，不训练文本编码器")
        else:
            rest.append(f"{name}={value}")
    if rest:
        network_args(k, rest, peer, put, result)


def _flag(k, v, peer, put, result):
    on = str(v).lower() in ("1", "true")
    if k == "network_train_unet_only":
        if on or not _has_clip(peer):
            return put(k, "network.train_text_encoder", False)
        return put(k, "network.train_text_encoder", True, ("sd-scripts also trained a CLIP-L LoRA: so does Danlu",
                                                           "sd-scripts 同时训练了 CLIP-L 的 LoRA：丹炉也一样"))
    if not on:
        return None
    if k == "fp8_base_unet":
        return put(k, "training.fp8_base", True, ("Danlu's fp8_base stores the transformer alone in fp8",
                                                 "丹炉的 fp8_base 只把 transformer 存为 fp8"))
    if k == "split_mode" and not peer.get("blocks_to_swap"):
        return put(k, "training.blocks_to_swap", 18, ("sd-scripts turns the old split_mode into blocks_to_swap 18",
                                                      "sd-scripts 把旧的 split_mode 换成 blocks_to_swap 18"))
    if k in ("train_t5xxl", "network_train_text_encoder_only"):
        _cannot(result, k, v, "Danlu trains FLUX's transformer only", "丹炉只训练 FLUX 的 transformer")


def _prompt_flags(line: str) -> str:
    """sd-scripts' FLUX flags in Danlu's words: --l (true CFG) is Danlu's cfg for every variant (ComfyUI's KSampler
    cfg); --g (dev's embedded guidance) has no flag: Danlu's dev samples use the published 3.5, schnell and Chroma
    have no such input."""
    head, *flags = line.split(" --")
    return " --".join([head, *(f for f in flags if f.strip().partition(" ")[0].lower() != "g")])


def _prompts(k, v, peer, put, result):
    kind = _kind(peer)

    def rewritten(peer_key, key, lines, why=None, raw=None):
        new = [_prompt_flags(ln) for ln in lines]
        note = (f"sd-scripts' --g left out for {kind}: Danlu's dev samples use the distilled guidance 3.5, schnell "
                "and Chroma have none; --l (true CFG) is Danlu's cfg",
                f"{kind} 去掉了 sd-scripts 的 --g：丹炉的 dev 样图使用蒸馏引导 3.5，schnell 与 Chroma 没有此输入；"
                "--l（真正的 CFG）即丹炉的 cfg")
        put(peer_key, key, new, why or (note if new != lines else None), raw)

    sample_prompts(k, v, peer, rewritten, result)


def _max_token_length(k, v, peer, put, result):
    _same(result, k, v, "not used for FLUX there either (sd-scripts says so)",
          "FLUX 训练时原配置也不使用（sd-scripts 会提示）")


SPECIAL = {"model_type": _model_type, "model_train_type": _train_type, "pretrained_model_name_or_path": _base,
           "guidance_scale": _guidance, "model_prediction_type": _prediction, "timestep_sampling": _timesteps,
           "discrete_flow_shift": _flow_shift, "sigmoid_scale": _sigmoid_scale, "apply_t5_attn_mask": _t5_mask,
           "t5xxl_max_token_length": _t5_length, "ae": _part, "clip_l": _part, "t5xxl": _part,
           "network_module": _network_module, "network_args": _network_args, "network_args_custom": _network_args,
           "max_token_length": _max_token_length, "sample_prompts": _prompts,
           **dict.fromkeys(("network_train_unet_only", "fp8_base_unet", "split_mode", "train_t5xxl",
                            "network_train_text_encoder_only"), _flag)}
