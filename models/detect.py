"""What a model file is, from its header alone: family, prediction type, resolution, precision, problems.

A safetensors file starts with an 8-byte length and a JSON header listing every tensor's name,
dtype, shape and byte range; reading that is enough to classify a multi-GB checkpoint in
milliseconds. Pickles (.ckpt/.pt) are opened only with torch's weights-only loader (memory-mapped).
`python launcher.py check MODEL` prints the report (exit 0 for a usable base, 2 otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import DanluError
from models import families
from models.families import lora_family
from models.files import (
    DTYPE_BYTES,
    DTYPE_NAMES,
    HeaderError,
    clean_path,
    is_hub_id,
    read_header,
    safe_torch_load,
    sniff_pickle,
    split_hub_id,
)
from models.model_info import ModelInfo

LORA_MARKERS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".hada_w1_a", ".lokr_w1", ".oft_", "lora.down.",
                ".dora_scale")
LYCORIS_MARKERS = (".hada_w", ".lokr_", ".oft_", ".boft_", ".glora_", ".dora_scale")


def _classify(info: ModelInfo, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]) -> ModelInfo:
    keys = list(tensors)
    info.tensors, info.metadata = len(keys), meta
    floats = {}
    for dtype, shape in tensors.values():
        if dtype in DTYPE_NAMES:
            n = 1
            for s in shape:
                n *= s
            floats[DTYPE_NAMES[dtype]] = floats.get(DTYPE_NAMES[dtype], 0) + n * DTYPE_BYTES[dtype]
    info.precision = max(floats, key=floats.get) if floats else ""
    if len(floats) > 1:
        info.precision += " (mixed: " + ", ".join(sorted(floats)) + ")"
    if any(m in k for k in keys for m in LORA_MARKERS) or any(k.startswith(("lora_unet_", "lora_te")) for k in keys):
        lyco = any(m in k for k in keys for m in LYCORIS_MARKERS) or "lycoris" in meta.get("ss_network_module", "")
        kind = "LyCORIS" if lyco else "LoRA"
        fam = lora_family(tensors, meta)
        info.kind, info.family = "lora", fam
        dit = families.dit_module(fam)
        if dit is not None:
            adapter = "adapter" in (Path(info.path).name.lower() + meta.get("ss_output_name", "").lower())
            info.prediction_type, info.native_resolution = dit.PREDICTION, dit.NATIVE_RESOLUTION
            return info.refuse(*dit.not_a_base("adapter" if adapter else "lora"))
        label = families.LABELS.get(fam or "", "an unknown family")
        return info.refuse(f"This is a {kind} for {label}, not a base model.",
                           f"这是一个 {families.LABELS.get(fam or '', '未知系列')} 的 {kind}，不是底模。",
                           "Pick a full checkpoint (usually 2-7 GB) as the base; LoRA files are used at generation.",
                           "请选择完整的底模（通常 2-7 GB）；LoRA 文件是在出图时加载的。")
    for dit in families.DIT_MODULES.values():  # DiT families ship the transformer alone: they say what it is
        if dit.matches(keys):
            return families.part(dit, "load").classify_file(info, tensors, meta)
        if (other := dit.other_part(tensors)) is not None:  # ... and their text encoder and VAE apart
            return info.refuse(*other)
    unet = [k for k in keys if k.startswith("model.diffusion_model.")]
    if not unet:
        prefixes = sorted({k.split(".")[0] for k in keys})[:6]
        hint = ("It looks like a diffusers UNet alone; pick the whole diffusers folder instead."
                if any(k.startswith("down_blocks.") for k in keys) else "")
        return info.refuse(f"Unknown layout: no UNet weights (model.diffusion_model.*) found; top-level names: "
                           f"{', '.join(prefixes) or 'none'}.",
                           "无法识别的结构：没有 UNet 权重（model.diffusion_model.*）；"
                           f"顶层名称：{', '.join(prefixes) or '无'}。",
                           hint or "Pick an SD1.x, SD2.x or SDXL checkpoint.",
                           "请选择 SD1.x、SD2.x 或 SDXL 的完整模型。")
    from models.families import sd2, sd15, sdxl

    if sdxl.is_refiner(keys):
        fam = "sdxl_refiner"
    elif sdxl.matches(keys):
        fam = "sdxl"
    elif sd2.matches(keys):
        fam = "sd2"
    elif sd15.matches(keys):
        fam = "sd15"
    else:  # a UNet without text encoders: the cross-attention width names the family
        ctx = next((s[1] for k, (_, s) in tensors.items() if k.endswith("attn2.to_k.weight") and len(s) == 2), None)
        fam = {768: "sd15", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}.get(ctx or 0)
        if fam is None:
            return info.refuse(f"Unknown layout: a UNet with cross-attention width {ctx} and no text encoder.",
                               f"无法识别的结构：UNet 的交叉注意力宽度为 {ctx}，且没有文本编码器。",
                               "Pick an SD1.x, SD2.x or SDXL checkpoint.", "请选择 SD1.x、SD2.x 或 SDXL 的完整模型。")
        info.warnings.append(("The file holds no text encoder; the family was read from the UNet shapes.",
                              "文件中没有文本编码器；系列是根据 UNet 形状判断的。"))
    info.family = fam
    info.has_vae = any(k.startswith("first_stage_model.") for k in keys)
    if not info.has_vae:
        info.warnings.append(("The file holds no VAE: set a separate VAE in the model settings.",
                              "文件中没有 VAE：请在模型设置中指定独立的 VAE。"))
    ema = [k for k in keys if k.startswith("model_ema.")]
    info.ema = "EMA weights included (not pruned)" if ema else "pruned (no EMA weights)"
    _prediction(info, keys, meta)
    res = meta.get("modelspec.resolution", "")
    try:
        info.native_resolution = int(res.lower().split("x")[0])
    except ValueError:
        info.native_resolution = families.native_resolution(fam, info.prediction_type)
    if fam == "sdxl_refiner":
        return info.refuse("This is the SDXL refiner, which is not a base for LoRA training.",
                           "这是 SDXL refiner（精修模型），不能作为 LoRA 训练的底模。",
                           "Pick the SDXL base model (or a model fine-tuned from it).",
                           "请选择 SDXL base 或基于它的模型。")
    info.usable = True
    return info


def _prediction(info: ModelInfo, keys: list[str], meta: dict[str, str]) -> None:
    spec = meta.get("modelspec.prediction_type", "").lower()
    name = Path(info.path).name.lower()
    info.zero_terminal_snr = "ztsnr" in keys
    if spec:
        info.prediction_type = "v_prediction" if spec.startswith("v") else "epsilon"
        info.prediction_source = "metadata"
    elif "v_pred" in keys or "v_prediction" in keys:
        info.prediction_type, info.prediction_source = "v_prediction", "v_pred key"
    elif any(s in name for s in ("vpred", "v-pred", "v_pred")) or (info.family == "sd2" and "768" in name):
        # SD2's 768 px releases are all v-prediction (v2-1_768-ema-pruned, 768-v-ema).
        info.prediction_type, info.prediction_source = "v_prediction", "file name"
    else:
        info.prediction_type = families.module(info.family or "sd15").PREDICTION
        info.prediction_source = "family rule"
        if info.family == "sd2":
            info.warnings.append((
                ("SD2.x 768 models use v-prediction and SD2.x 512 (base) models use epsilon; the file does not say "
                "which. Assumed epsilon: set the prediction type to v_prediction if this is a 768-v model."),
                ("SD2.x 768 模型使用 v-prediction，512（base）模型使用 epsilon；文件中没有说明。已假定 epsilon："
                "如果这是 768-v 模型，请把预测类型设为 v_prediction。")))


def _diffusers_folder(info: ModelInfo, folder: Path) -> ModelInfo:
    info.kind = "diffusers"
    for dit in families.DIT_MODULES.values():
        if dit.is_folder(folder):
            return families.part(dit, "load").classify_folder(info, folder)
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return info.refuse(f"{folder.name} is not a complete diffusers folder: {exc}",
                           f"{folder.name} 不是完整的 diffusers 文件夹：{exc}",
                           "The folder needs model_index.json and unet/config.json.",
                           "文件夹中需要 model_index.json 和 unet/config.json。")
    cls = index.get("_class_name", "")
    if "XL" in cls:
        info.family = "sdxl" if index.get("text_encoder", [None])[0] else "sdxl_refiner"
    else:
        te_cfg = folder / "text_encoder" / "config.json"
        te = json.loads(te_cfg.read_text(encoding="utf-8")) if te_cfg.exists() else {}
        sd2 = unet.get("cross_attention_dim") == 1024 or te.get("hidden_act") == "gelu"
        info.family = "sd2" if sd2 else "sd15"
    sched_cfg = folder / "scheduler" / "scheduler_config.json"
    sched = json.loads(sched_cfg.read_text(encoding="utf-8")) if sched_cfg.exists() else {}
    info.prediction_type = sched.get("prediction_type", "epsilon")
    info.prediction_source = "scheduler config"
    info.native_resolution = int(unet.get("sample_size", 64)) * 8
    files = [p for p in folder.rglob("*") if p.is_file()]
    info.size = sum(p.stat().st_size for p in files)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if weights.exists():
        try:
            tensors, _ = read_header(weights)
            dt = {d for d, _ in tensors.values()}
            info.precision = ", ".join(sorted(DTYPE_NAMES.get(d, d) for d in dt))
        except HeaderError as exc:
            return info.refuse(f"unet weights: {exc}.", f"unet 权重文件损坏：{exc}。")
    elif not any(p.suffix == ".safetensors" for p in (folder / "unet").glob("*")):
        return info.refuse("The diffusers folder has no safetensors UNet weights.",
                           "diffusers 文件夹中没有 safetensors 格式的 UNet 权重。",
                           "Download the safetensors weights of this model.", "请下载该模型的 safetensors 权重。")
    if info.family == "sdxl_refiner":
        return info.refuse("This is the SDXL refiner, which is not a base for LoRA training.",
                           "这是 SDXL refiner（精修模型），不能作为 LoRA 训练的底模。")
    info.usable = True
    return info


def detect(path_or_id: str, *, compute_hash: bool = False) -> ModelInfo:
    """Classify a checkpoint file, a diffusers folder or a hub id. Never loads the weights of a safetensors file."""
    from models.hashes import cached_sha256, sha256_file

    text = clean_path(path_or_id)
    info = ModelInfo(path=text)
    path = Path(text)
    if not text:
        return info.refuse("No model given.", "没有指定模型。")
    if not path.exists():
        if is_hub_id(text):
            return _hub(info, text, split_hub_id)
        info.kind = "missing"
        if path.is_symlink():
            return info.refuse(f"{text} is a link that leads to no file (its target is missing or it links to "
                               "itself).", f"{text} 是一个链接，但不指向任何文件（目标不存在或链接指向自身）。",
                               "Pick the model file itself.", "请直接选择模型文件本身。")
        return info.refuse(f"Not found: {text}", f"找不到：{text}",
                           "Check the path (copy it from the file manager) or use org/name for a hub model.",
                           "请检查路径（可从文件管理器复制），hub 模型请用 org/name 形式。")
    if path.is_dir():
        if (path / "model_index.json").is_file() or any(d.is_folder(path) for d in families.DIT_MODULES.values()):
            return _diffusers_folder(info, path)
        return info.refuse(f"{path.name} is a folder but not a diffusers model (no model_index.json).",
                           f"{path.name} 是文件夹，但不是 diffusers 模型（没有 model_index.json）。",
                           "Pick a .safetensors file or a diffusers folder.",
                           "请选择 .safetensors 文件或 diffusers 文件夹。")
    info.size = path.stat().st_size
    info.kind = "single_file"
    try:
        tensors, meta = read_header(path)
    except HeaderError as exc:
        sniff = sniff_pickle(path)
        if sniff or path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
            info.kind = "pickle"
            return _pickle(info, path)
        return info.refuse(f"{path.name} is not a usable safetensors file: {exc}.",
                           f"{path.name} 不是可用的 safetensors 文件：{exc}。",
                           "Download the file again (it may be incomplete) or pick another file.",
                           "请重新下载（文件可能不完整）或选择其他文件。")
    _classify(info, tensors, meta)
    info.sha256 = sha256_file(path) if compute_hash else (cached_sha256(path) or "")
    _name_notes(info, path)
    return info


def _name_notes(info: ModelInfo, path: Path) -> None:
    name = path.stem.lower()
    if info.usable and ("mix" in name or "merge" in name):
        info.warnings.append((("The name suggests a merged model ('mix'): LoRAs trained on merges transfer less well "
                              "to other models than LoRAs trained on a native base."),
                              ("文件名表明这是融合模型（mix）：在融合模型上训练的 LoRA "
                               "迁移到其他模型的效果不如在原生底模上训练的。")))


def _pickle(info: ModelInfo, path: Path) -> ModelInfo:
    """Classify a pickle checkpoint through torch's weights-only loader (nothing in it can run)."""
    try:
        obj = safe_torch_load(path)
    except DanluError as err:
        return info.refuse(err.en, err.zh, err.hint_en, err.hint_zh)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    tensors = {k: (str(v.dtype).replace("torch.float32", "F32").replace("torch.float16", "F16")
                   .replace("torch.bfloat16", "BF16"), list(v.shape))
               for k, v in (obj.items() if isinstance(obj, dict) else []) if hasattr(v, "shape")}
    _classify(info, tensors, {})
    if info.usable:
        info.warnings.append((("Pickle checkpoint read with weights-only loading; a .safetensors copy loads faster "
                              "and safer."),
                              "已用 weights-only 方式读取 pickle 模型；.safetensors 版本加载更快更安全。"))
    return info


def _hub(info: ModelInfo, text: str, split_hub_id) -> ModelInfo:
    info.kind = "hub"
    repo, rev = split_hub_id(text)
    from core.download import cached

    folder = cached(repo, rev)
    if folder is None:
        return info.refuse(f"{text} is not a local path, and as a hub id it is not downloaded yet.",
                           f"{text} 不是本地路径；作为 hub 模型 id，它尚未下载。",
                           "For a hub model press Download (from the download source chosen in the Model tab); "
                           "for a file, check the path.",
                           "hub 模型请点击“下载”（从“底模”页所选的下载源）；本地文件请检查路径。")
    result = _diffusers_folder(info, folder)
    result.path = text
    return result


def check_lora_against_base(lora_path: Path, family: str) -> None:
    """Raise DanluError naming both families when the LoRA was made for another family than the base."""
    lora_path = Path(lora_path)
    try:
        tensors, meta = read_header(lora_path)
    except (OSError, HeaderError) as exc:
        raise DanluError(f"Cannot read the LoRA {lora_path.name}: {exc}",
                         f"无法读取 LoRA {lora_path.name}：{exc}") from exc
    lora = lora_family(tensors, meta)
    base = "sd2" if family.startswith("sd2") else "sdxl" if family.startswith("sdxl") else family
    if lora and lora != base:
        raise DanluError(f"{lora_path.name} is a LoRA for {families.LABELS[lora]}, but the base model is "
                         f"{families.LABELS.get(base, base)}.",
                         f"{lora_path.name} 是 {families.LABELS[lora]} 的 LoRA，"
                         f"但底模是 {families.LABELS.get(base, base)}。",
                         "Use a base model of the family the LoRA was trained on.",
                         "请使用与 LoRA 训练时同系列的底模。",
                         key="lora")


def main(argv: list[str] | None = None) -> int:
    """`python launcher.py check MODEL [--hash] [--lang zh|en]`: print the report; 0 usable base, 2 otherwise."""
    import argparse

    from core.errors import current_lang

    parser = argparse.ArgumentParser(prog="launcher.py check",
                                     description="Check a base model file, folder or hub id.")
    parser.add_argument("model", help="a .safetensors/.ckpt file, a diffusers folder, or org/name[@rev]")
    parser.add_argument("--no-hash", action="store_true", help="skip the sha256 (AutoV2) hash of large files")
    parser.add_argument("--lang", choices=("zh", "en"), default=None)
    args = parser.parse_args(argv)
    info = detect(args.model, compute_hash=False)
    if info.kind == "single_file" and info.usable and not args.no_hash:
        from models.hashes import cached_sha256, console_progress, sha256_file

        big = info.size > 512 * 1024 * 1024 and not cached_sha256(info.path)
        info.sha256 = sha256_file(info.path, console_progress("sha256") if big else None)
    print(info.report(args.lang or current_lang()))
    return 0 if info.usable else 2
