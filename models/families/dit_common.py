"""What the DiT family packages do the same way: recognising their diffusers folders, where the parts beside a
transformer file are looked for first, and reading a folder's transformer weights into the detection report."""

from __future__ import annotations

import json
from pathlib import Path


def folder_is(folder: Path, pipeline: str, transformer: str) -> bool:
    """A diffusers folder of this pipeline class, or a transformer-only folder of this transformer class."""
    for cfg, cls in ((folder / "model_index.json", pipeline), (folder / "transformer" / "config.json", transformer)):
        try:
            if json.loads(cfg.read_text(encoding="utf-8")).get("_class_name") == cls:
                return True
        except (OSError, ValueError):
            continue
    return False


def part_candidates(path: Path, components: str | Path | None = None) -> list[Path]:
    """Folders that may hold a transformer's other parts, nearest first: `components`, the model's own folder (or
    the folder named like the file), then every folder beside it."""
    cands = [Path(components)] if components else []
    cands.append(path if path.is_dir() else path.with_suffix(""))
    try:
        cands += sorted(p for p in path.parent.iterdir() if p.is_dir())
    except OSError:
        pass
    return cands


def folder_weights(info, folder: Path, label: str) -> bool:
    """Fill the report's precision and size from a diffusers folder's transformer weights; False (the report
    refused, saying why) when they are missing or damaged."""
    from models.files import DTYPE_NAMES, HeaderError, read_header

    shards = sorted((folder / "transformer").glob("*.safetensors"))
    if not shards:
        info.refuse(f"The {label} folder has no safetensors transformer weights.",
                    f"{label} 文件夹中没有 safetensors 格式的 transformer 权重。",
                    "Download the transformer of this model.", "请下载该模型的 transformer 权重。")
        return False
    try:
        tensors, _ = read_header(shards[0])
    except HeaderError as exc:
        info.refuse(f"transformer weights: {exc}.", f"transformer 权重文件损坏：{exc}。")
        return False
    info.precision = ", ".join(sorted({DTYPE_NAMES.get(d, d) for d, _ in tensors.values()}))
    info.size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return True


def wrong_part(what: tuple[str, str], pick_en: str, pick_zh: str) -> tuple[str, str, str, str]:
    """(en, zh, hint_en, hint_zh) for a text encoder or VAE given where the base model is needed."""
    return f"This is {what[0]}, not a base model.", f"这是{what[1]}，不是底模。", pick_en, pick_zh


def read_json(path: Path) -> dict:
    """A config file's contents; {} when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
