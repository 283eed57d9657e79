"""Where FLUX.1's and Chroma's other parts are (models/families/flux/load.py's docstring says in which order):
the family's hub repo, a diffusers folder that holds them, single files recognised by their headers. Shared by
load.py and detect.py (the report says where the parts will come from)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from models.families import chroma, flux
from models.families.dit_common import part_candidates

CONFIG_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*", "text_encoder/*.json",
                   "text_encoder_2/*.json", "vae/*.json", "transformer/*.json"]
COMFY_DIRS = ("text_encoders", "clip", "vae")
AXES_BY_HEAD = {128: (16, 56, 56)}  # the real models' RoPE split; test sizes keep its proportions (see infer_config)


def family_module(family: str) -> ModuleType:
    return chroma if family == chroma.FAMILY else flux


def _repo(family: str, variant: str = "dev") -> str:
    return chroma.HD_REPO if family == chroma.FAMILY else flux.REPO_BY_VARIANT.get(variant, flux.DEV_REPO)


def _t5_dir(family: str) -> str:
    """Where a diffusers folder keeps T5: FLUX's second text encoder, Chroma's only one."""
    return "text_encoder" if family == chroma.FAMILY else "text_encoder_2"


@dataclass(frozen=True)
class Parts:
    """Where T5, CLIP-L, the VAE, the tokenizers and the scheduler come from."""

    folder: Path | None = None   # a diffusers folder holding them all
    t5: Path | None = None       # single files, with `configs` for their configs and the tokenizers
    clip: Path | None = None
    vae: Path | None = None
    configs: Path | None = None  # None: fetched from the hub repo when loading

    def note(self, model: Path, family: str) -> tuple[str, str] | None:
        """(en, zh) for the report; None when the model's own folder holds them."""
        if self.folder == model:
            return None
        if self.folder is not None:
            what = ("T5", "T5") if family == chroma.FAMILY else ("T5, CLIP-L", "T5、CLIP-L")
            return (f"{what[0]}, tokenizers and VAE taken from {self.folder}.",
                    f"{what[1]}、分词器和 VAE 取自 {self.folder}。")
        names = ", ".join(p.name for p in (self.t5, self.clip, self.vae) if p is not None)
        return (f"Text encoders and VAE from the files {names}; the tokenizers and configs from "
                f"{_repo(family)} (a few MB).",
                f"文本编码器和 VAE 取自文件 {names}；分词器和配置取自 {_repo(family)}（几 MB）。")


# --- where the parts are ---------------------------------------------------------------------

def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def has_configs(folder: Path, family: str) -> bool:
    """Configs of T5 (and CLIP-L for FLUX) and the 16-channel VAE, and the tokenizers."""
    ok = (_json(folder / _t5_dir(family) / "config.json").get("model_type") == "t5"
          and _json(folder / "vae" / "config.json").get("latent_channels") == 16)
    if family == chroma.FAMILY:
        return ok and (folder / "tokenizer").is_dir()
    return ok and _json(folder / "text_encoder" / "config.json").get("model_type") == "clip_text_model" and all(
        (folder / d).is_dir() for d in ("tokenizer", "tokenizer_2"))


def has_parts(folder: Path, family: str) -> bool:
    """The configs and the weights of the text encoders and the VAE."""
    dirs = ["vae", _t5_dir(family)] + ([] if family == chroma.FAMILY else ["text_encoder"])
    return has_configs(folder, family) and all(any((folder / d).glob("*.safetensors")) for d in dirs)


def _header(path: Path) -> dict[str, tuple[str, list[int]]]:
    from models.files import HeaderError, read_header

    try:
        return read_header(path)[0]
    except (HeaderError, OSError):
        return {}


def part_kind(path: Path) -> str | None:
    """"t5", "clip" or "vae" for a single file of one of FLUX's parts, from its header."""
    tensors = _header(path)
    keys = list(tensors)
    if any(k.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") for k in keys):
        return "t5"
    if flux.is_clip_text(keys) and not any(k.startswith("model.diffusion_model.") for k in keys):
        return "clip"
    conv = (tensors.get("decoder.conv_in.weight") or ("", []))[1]
    return "vae" if len(conv) == 4 and conv[1] == 16 else None


def part_files(path: Path, family: str) -> dict[str, Path] | None:
    """{t5, clip (FLUX only), vae: file} beside the transformer file or in ComfyUI's folders next to its folder."""
    want = ("t5", "vae") if family == chroma.FAMILY else ("t5", "clip", "vae")
    places = [path.parent] + [path.parent.parent / d for d in COMFY_DIRS]
    found: dict[str, Path] = {}
    for place in places:
        for f in sorted(place.glob("*.safetensors")) if place.is_dir() else ():
            if f != path and (kind := part_kind(f)) in want and kind not in found:
                found[kind] = f
    return found if all(k in found for k in want) else None


def _cached_repo(family: str, check) -> Path | None:
    from core.download import cached

    repo = cached(_repo(family))
    return repo if repo is not None and check(repo, family) else None


def find_parts(path: Path, components: str | Path | None = None, family: str = "flux") -> Parts | None:
    """Where the parts come from (module docstring); None: the hub repo's parts will be downloaded."""
    for cand in part_candidates(path, components):
        if has_parts(cand, family):
            return Parts(folder=cand)
    if path.is_file() and (files := part_files(path, family)):
        return Parts(t5=files["t5"], clip=files.get("clip"), vae=files["vae"],
                     configs=_cached_repo(family, has_configs))
    repo = _cached_repo(family, has_parts)
    return Parts(folder=repo) if repo else None
