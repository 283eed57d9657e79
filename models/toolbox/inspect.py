"""Inspect a LoRA file and edit its user-facing metadata.

`inspect_lora` reads only the header (and the small alpha tensors): family and base model, network type, rank and
alpha per module, conv layers, text-encoder parts, precision, training settings from ss_* metadata and the run
TOML, modelspec, trigger words and tag frequencies, file size, and which loaders take every key.
`edit_metadata` writes a new file with the title / trigger words / description / cover image (as modelspec names
them); the tensor bytes are copied unchanged.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DanluError, current_lang
from models.lora_file import CONFIG_KEY
from models.toolbox.common import atomic_output, check_outputs, open_lora

# Adapter suffixes each loader reads (their public source: A1111 extensions-builtin/Lora/network_*.py, ComfyUI
# comfy/weight_adapter/*.py, diffusers' kohya and peft converters); a key with another suffix is not loaded.
_LYCORIS = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a",
            "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"}
LOADER_SUFFIXES = {
    "WebUI": {"lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha", "dora_scale"} | _LYCORIS,
    "ComfyUI": {"lora_down.weight", "lora_up.weight", "lora_mid.weight", "lora_A.weight", "lora_B.weight", "alpha",
                "dora_scale"} | _LYCORIS,
    "diffusers": {"lora_down.weight", "lora_up.weight", "alpha", "dora_scale", "lora_A.weight", "lora_B.weight"},
}
KOHYA_PARTS = (("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"),
               ("lora_te_", "text_encoder"))
TRAINING_KEYS = ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_learning_rate",
                 "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer", "ss_lr_scheduler", "ss_num_epochs", "ss_epoch",
                 "ss_steps", "ss_max_train_steps", "ss_batch_size_per_device", "ss_resolution",
                 "ss_mixed_precision", "ss_seed", "ss_clip_skip", "ss_noise_offset", "ss_min_snr_gamma",
                 "ss_num_train_images", "ss_training_comment")
# Chinese labels of the rows the report shows; English keeps sd-scripts' and modelspec's own key names, which
# their users know
TRAINING_LABELS = {
    "ss_network_module": "网络模块", "ss_network_dim": "网络维度（rank）",
    "ss_network_alpha": "网络 alpha", "ss_network_args": "网络参数",
    "ss_learning_rate": "学习率", "ss_unet_lr": "UNet 学习率",
    "ss_text_encoder_lr": "文本编码器学习率", "ss_optimizer": "优化器",
    "ss_lr_scheduler": "学习率调度器", "ss_num_epochs": "总轮数", "ss_epoch": "保存时的轮数",
    "ss_steps": "已训练步数", "ss_max_train_steps": "最大训练步数",
    "ss_batch_size_per_device": "每张显卡的批量大小", "ss_resolution": "分辨率",
    "ss_mixed_precision": "混合精度", "ss_seed": "随机种子", "ss_clip_skip": "CLIP 跳层",
    "ss_noise_offset": "噪声偏移", "ss_min_snr_gamma": "最小信噪比 gamma",
    "ss_num_train_images": "训练图片数", "ss_training_comment": "训练备注"}
MODELSPEC_LABELS = {
    "modelspec.title": "标题", "modelspec.description": "描述", "modelspec.trigger_phrase": "触发词（modelspec）",
    "modelspec.architecture": "架构", "modelspec.implementation": "实现", "modelspec.date": "日期",
    "modelspec.resolution": "分辨率（modelspec）", "modelspec.sai_model_spec": "modelspec 规范版本",
    "modelspec.author": "作者", "modelspec.license": "许可协议", "modelspec.tags": "标签",
    "modelspec.usage_hint": "用法提示", "modelspec.prediction_type": "预测类型", "modelspec.merged_from": "合并自",
    "modelspec.timestep_range": "时间步范围", "modelspec.encoder_layer": "编码器层",
    "modelspec.hash_sha256": "SHA-256"}
PART_LABELS = {"unet": ("UNet", "UNet"), "text_encoder": ("文本编码器", "text encoder"),
               "text_encoder_2": ("文本编码器 2", "text encoder 2"),
               "diffusion_model": ("扩散模型", "diffusion model"), "transformer": ("扩散模型", "diffusion model")}
EDITABLE = {"title": "modelspec.title", "trigger_words": "modelspec.trigger_phrase",
            "description": "modelspec.description", "cover": "modelspec.thumbnail"}
COVER_SIDE = 512  # a cover image is stored at most this wide and high, so the header stays small


@dataclass
class LoraInfo:
    path: Path
    family: str | None
    size: int
    layout: str                      # "kohya", "peft" or "lycoris"
    network: str                     # "LoRA", "LoCon", "LoHa", "LoKr", "DoRA"
    ranks: dict[str, int]            # module → rank (0 for a LoKr module made of full factors)
    alphas: dict[str, float]         # module → alpha (rank when the file stores none)
    conv_modules: list[str]
    parts: dict[str, int]            # part (unet, text_encoder, …) → modules
    precision: str
    base: dict[str, str]             # hash, name
    training: dict[str, str]         # ss_* settings shown to the user
    modelspec: dict[str, str]
    trigger_words: list[str]
    tag_frequency: dict[str, int]
    loaders: dict[str, list[str]]    # loader → keys it does not take (empty: takes every key)
    metadata: dict[str, str] = field(default_factory=dict)
    run_toml: str = ""               # the run TOML Danlu embeds in the files it trains (rerun it with `train`)

    def report(self, lang: str | None = None) -> str:
        """A readable summary for the console and the Tools tab."""
        from models.families import LABELS

        zh = (lang or current_lang()) == "zh"
        ranks = sorted(set(self.ranks.values()))
        alphas = sorted(set(self.alphas.values()))
        fam = LABELS.get(self.family or "", self.family or ("未知" if zh else "unknown"))
        rank_text = ", ".join(map(str, ranks)) if len(ranks) < 6 else f"{ranks[0]}–{ranks[-1]}"
        alpha_text = ", ".join(f"{a:g}" for a in alphas) if len(alphas) < 6 else f"{alphas[0]:g}–{alphas[-1]:g}"
        parts = ("、" if zh else ", ").join(f"{PART_LABELS.get(k, (k, k))[0 if zh else 1]} {v}"
                                           for k, v in self.parts.items())
        modules = f"{len(self.ranks)} 个模块：{parts}" if zh else f"{len(self.ranks)} modules: {parts}"
        rows = [
            (("文件", "file"), f"{self.path.name}（{self.size / 2**20:.1f} MiB）" if zh else
             f"{self.path.name} ({self.size / 2**20:.1f} MiB)"),
            (("底模系列", "family"), fam),
            (("底模", "base model"), " ".join(v for v in (self.base.get("name"), self.base.get("hash")) if v) or "-"),
            (("网络", "network"), f"{self.network}（{self.layout}），{modules}" if zh else
             f"{self.network} ({self.layout}), {modules}"),
            (("秩", "rank"), rank_text + ("（各模块不同）" if zh and len(ranks) > 1 else
                                          " (differs between modules)" if len(ranks) > 1 else "")),
            (("alpha", "alpha"), alpha_text),
            (("卷积层", "conv layers"), str(len(self.conv_modules))),
            (("精度", "precision"), self.precision),
            (("触发词", "trigger words"), ", ".join(self.trigger_words) or "-"),
        ]
        if self.tag_frequency:
            top = sorted(self.tag_frequency.items(), key=lambda kv: -kv[1])[:10]
            rows.append((("常见标签", "top tags"), ", ".join(f"{t} ({n})" for t, n in top)))
        for loader, missed in self.loaders.items():
            ok = ("读取全部键" if zh else "takes every key") if not missed else \
                (f"不读取 {len(missed)} 个键，如 {missed[0]}" if zh else f"skips {len(missed)} keys, e.g. {missed[0]}")
            rows.append(((loader, loader), ok))
        rows += [((TRAINING_LABELS.get(k, k), k), v) for k, v in self.training.items()]
        if self.run_toml:
            rows.append((("训练配置（TOML）", "run TOML"), "\n" + self.run_toml.strip()))
        rows += [((MODELSPEC_LABELS.get(k, k), k), v[:80]) for k, v in self.modelspec.items()
                 if k != "modelspec.thumbnail"]
        return "\n".join(f"{label[0]}：{value}" if zh else f"{label[1]}: {value}" for label, value in rows)


def _part(name: str) -> str:
    for prefix, part in KOHYA_PARTS:
        if name.startswith(prefix):
            return part
    return name.split(".", 1)[0] if "." in name else name.split("_", 1)[0]


def _network(suffixes: set[str], has_conv: bool, metadata: dict[str, str]) -> str:
    if "dora_scale" in suffixes:
        return "DoRA"
    if any(s.startswith("hada_") for s in suffixes):
        return "LoHa"
    if any(s.startswith("lokr_") for s in suffixes):
        return "LoKr"
    return "LoCon" if has_conv else "LoRA"


def _loaders(lora, family: str | None) -> dict[str, list[str]]:
    """Keys each loader leaves out by its naming rules; a DiT family is not loaded by WebUI at all."""
    from models.families import dit_module

    out = {}
    for loader, suffixes in LOADER_SUFFIXES.items():
        if loader == "WebUI" and dit_module(family) is not None:
            continue
        out[loader] = sorted(k for k in lora.shapes
                             if not any(k.endswith("." + s) for s in suffixes))
    return out


def inspect_lora(path: str | Path) -> LoraInfo:
    """What is inside a LoRA file, read from its header and its alpha tensors only."""
    from safetensors import safe_open

    from models.files import DTYPE_NAMES

    lora = open_lora(path)
    meta = lora.metadata
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    conv: list[str] = []
    with safe_open(str(lora.path), framework="pt") as f:
        for name, parts in lora.modules.items():
            shapes = {s: lora.shapes[k][1] for s, k in parts.items()}
            down = shapes.get("lora_down.weight") or shapes.get("lora_A.weight") or shapes.get("hada_w1_b") \
                or shapes.get("lokr_w2_b") or shapes.get("lokr_w1_b")
            ranks[name] = down[0] if down else 0
            alphas[name] = float(f.get_tensor(parts["alpha"])) if "alpha" in parts else float(ranks[name])
            if any(len(s) == 4 and s[-1] > 1 for s in shapes.values()):
                conv.append(name)
    suffixes = {s for parts in lora.modules.values() for s in parts}
    parts_count: dict[str, int] = {}
    for name in lora.modules:
        parts_count[_part(name)] = parts_count.get(_part(name), 0) + 1
    dtypes = sorted({DTYPE_NAMES.get(d, d) for d, _ in lora.shapes.values()})
    tags: dict[str, int] = {}
    try:
        for folder in json.loads(meta.get("ss_tag_frequency", "{}")).values():
            for tag, n in folder.items():
                tags[tag] = tags.get(tag, 0) + int(n)
    except (ValueError, AttributeError, TypeError):
        tags = {}
    triggers = [t.strip() for t in meta.get("modelspec.trigger_phrase", "").split(",") if t.strip()]
    base = {"name": meta.get("ss_sd_model_name", ""),
            "hash": meta.get("ss_new_sd_model_hash") or meta.get("ss_sd_model_hash", "")}
    return LoraInfo(
        path=lora.path, family=lora.family, size=lora.path.stat().st_size, layout=lora.layout,
        network=_network(suffixes, bool(conv), meta), ranks=ranks, alphas=alphas, conv_modules=conv,
        parts=parts_count, precision="/".join(dtypes), base={k: v for k, v in base.items() if v},
        training={k: meta[k] for k in TRAINING_KEYS if meta.get(k)},
        modelspec={k: v for k, v in meta.items() if k.startswith("modelspec.")},
        trigger_words=triggers, tag_frequency=tags, loaders=_loaders(lora, lora.family), metadata=meta,
        run_toml=meta.get(CONFIG_KEY, ""))


def cover_data_uri(image: str | Path) -> str:
    """A cover image as modelspec stores it: a PNG data URI, scaled to at most COVER_SIDE pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as img:
            img = img.convert("RGB")
            img.thumbnail((COVER_SIDE, COVER_SIDE))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except (OSError, UnidentifiedImageError) as exc:
        raise DanluError(f"The cover {Path(image).name} is not an image: {exc}",
                         f"封面 {Path(image).name} 不是图片：{exc}", "Pick a PNG, JPEG or WebP file.",
                         "请选择 PNG、JPEG 或 WebP 图片。") from None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def edit_metadata(path: str | Path, out: str | Path, *, title: str | None = None,
                  trigger_words: list[str] | None = None, description: str | None = None,
                  cover: str | Path | None = None) -> Path:
    """A copy of the LoRA with new user-facing metadata (None leaves a field as it is, "" or [] clears it); the
    header is rewritten, the tensor bytes are copied unchanged (so sshs_model_hash stays true). Atomic."""
    from models.lora_file import with_metadata

    lora = open_lora(path)
    out = check_outputs(out, [path])
    meta = dict(lora.metadata)
    values = {"title": title, "description": description,
              "trigger_words": None if trigger_words is None else ", ".join(w.strip() for w in trigger_words),
              "cover": None if cover is None else cover_data_uri(cover) if str(cover) else ""}
    for field_name, value in values.items():
        if value is None:
            continue
        if value:
            meta[EDITABLE[field_name]] = value
        else:
            meta.pop(EDITABLE[field_name], None)
    with open(lora.path, "rb") as src, atomic_output(out, [path]) as dst:
        n = int.from_bytes(src.read(8), "little")
        head, _ = with_metadata(n.to_bytes(8, "little") + src.read(n), meta)  # offsets stay relative to the data
        dst.write(head)
        shutil.copyfileobj(src, dst, 16 * 2**20)  # tensor bytes, unchanged, a chunk at a time
    return out

