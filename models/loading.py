"""Load a base model as a diffusers pipeline: a diffusers folder, a single file, or a hub id.

Single files load with no network: the components are built from a config folder (the one next
to the file when there is one, e.g. the tiny model's diffusers folder, else the configs shipped
in models/configs/) and filled from the file through the key maps of models/ldm.py. Pickled
checkpoints (.ckpt/.pt) are read only with torch's weights-only loader; nothing is unpickled.
"""

from __future__ import annotations

import functools
import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

from core.errors import DanluError
from core.fsutil import atomic_write_text
from models import families
from models.bpe import bytes_to_unicode
from models.files import clean_path, is_hub_id, read_state_dict, split_hub_id
from models.vae import load_vae

CONFIGS = Path(__file__).resolve().parent / "configs"
BPE_VOCAB = CONFIGS / "clip" / "bpe_simple_vocab_16e6.txt.gz"


@functools.lru_cache(maxsize=1)
def clip_vocab_dir() -> Path:
    """vocab.json + merges.txt of the CLIP BPE, built from the vocabulary open_clip ships (MIT).

    Built the way OpenAI's tokenizer builds its table: the 256 byte symbols, the same with the
    end-of-word mark, one entry per merge, then the two special tokens (49408 in all).
    """
    with gzip.open(BPE_VOCAB, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out = Path(tempfile.gettempdir()) / f"danlu-clip-bpe-{BPE_VOCAB.stat().st_size}"
    if not ((out / "vocab.json").exists() and (out / "merges.txt").exists()):
        # Atomic writes: several processes (the UI, a training run) may build it at the same moment.
        atomic_write_text(out / "vocab.json", json.dumps({v: i for i, v in enumerate(vocab)}, ensure_ascii=False))
        atomic_write_text(out / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return out


def clip_tokenizer(pad_token: str = "<|endoftext|>", max_length: int = 77):
    """The CLIP tokenizer of SD1/SD2/SDXL. SD2 and SDXL's second encoder pad with '!' (OpenCLIP)."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(clip_vocab_dir(), pad_token=pad_token, model_max_length=max_length)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and backend.normalizer is not None:
        from tokenizers import normalizers

        backend.normalizer = normalizers.Sequence([*_ftfy_like_rules(), backend.normalizer])
    return tok


def _ftfy_like_rules() -> list:
    """What OpenAI's reference tokenizer does before BPE (ftfy.fix_text + html.unescape) and the
    tokenizers-based CLIPTokenizer does not: full-width ASCII and the ideographic space to plain ASCII
    (Chinese prompts are full of '，'), curly quotes to straight ones, and the common HTML entities."""
    from tokenizers import normalizers

    pairs = [(chr(c), chr(c - 0xFEE0)) for c in range(0xFF01, 0xFF5F)] + [("\u3000", " ")]
    pairs += [("\u201c", '"'), ("\u201d", '"'), ("\u201e", '"'), ("\u2018", "'"), ("\u2019", "'"), ("\u201a", "'")]
    pairs += [("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&nbsp;", " ")]
    return [normalizers.Replace(a, b) for a, b in pairs]


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    if (folder / "vocab.json").exists() or (folder / "tokenizer.json").exists():
        return CLIPTokenizer.from_pretrained(folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")) if folder.is_dir() else {}
    return clip_tokenizer(cfg.get("pad_token", "<|endoftext|>"), cfg.get("model_max_length", 77))


def config_folder_for(path: Path, family: str) -> Path:
    """The config folder a single file is built with: its own diffusers folder if next to it, else the shipped one."""
    for cand in (path.with_suffix(""), path.parent):
        if (cand / "model_index.json").is_file() and (cand / "unet" / "config.json").is_file():
            return cand
    key = "sd2" if family.startswith("sd2") else family
    folder = CONFIGS / key
    if not (folder / "model_index.json").is_file():
        raise DanluError(f"No shipped configuration for family {family!r}.", f"没有 {family!r} 系列的内置配置。",
                         "Use an SD1.x, SD2.x or SDXL base model.", "请使用 SD1.x、SD2.x 或 SDXL 底模。")
    return folder


def _components(folder: Path, torch_dtype: Any) -> dict[str, Any]:
    """Empty (meta) UNet, VAE and text encoders built from the configs in `folder`; tokenizers and scheduler."""
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    comps: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        lib, cls_name = spec
        if name.startswith("tokenizer"):
            comps[name] = _tokenizer(folder / name)
        elif name == "scheduler":
            cls = getattr(diffusers, cls_name)
            comps[name] = cls.from_config(cls.load_config(folder / name))
        elif lib == "diffusers":
            cls = getattr(diffusers, cls_name)
            with init_empty_weights():
                comps[name] = cls.from_config(cls.load_config(folder / name))
        elif lib == "transformers":
            cls = getattr(transformers, cls_name)
            with init_empty_weights():
                comps[name] = cls(cls.config_class.from_pretrained(folder / name))
    return comps


def load_single_file(path: Path, family: str, prediction_type: str, torch_dtype: Any = None):
    """Build the pipeline of `family` from its config folder and fill it from the single file."""
    from types import SimpleNamespace

    import torch

    from models import families
    from models.ldm import ldm_to_diffusers

    folder = config_folder_for(path, family)
    comps = _components(folder, torch_dtype)
    if folder.parent == CONFIGS and family.startswith("sd2") and prediction_type == "v_prediction":
        # The 768-v release: 768 px and attention upcast, as in its published config.
        from accelerate import init_empty_weights
        from diffusers import UNet2DConditionModel

        with init_empty_weights():
            comps["unet"] = UNet2DConditionModel.from_config(comps["unet"].config, sample_size=96,
                                                             upcast_attention=True)
    sd = read_state_dict(path)
    try:
        converted = ldm_to_diffusers(sd, SimpleNamespace(**comps), family)
    except KeyError as exc:
        raise DanluError(f"{path.name} does not match the {family} layout: weight {exc} is missing.",
                         f"{path.name} 与 {family} 结构不符：缺少权重 {exc}。",
                         "Check the family (or leave it on auto) and that the file is complete.",
                         "请检查模型系列（或设为 auto），并确认文件完整。", key="model.base") from exc
    for name, state in converted.items():
        model = comps[name]
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise DanluError(f"{path.name}: the {name} weights do not fit the {family} configuration: "
                             f"{str(exc).splitlines()[0][:300]}",
                             f"{path.name}：{name} 的权重与 {family} 配置不符。",
                             "The file may be another family or a pruned/partial checkpoint.",
                             "文件可能属于其他系列，或是不完整的模型。", key="model.base") from exc
        # As diffusers' from_pretrained: fp32 unless asked, whatever the file stores (fp16 cannot run on a CPU).
        model.to(torch_dtype or torch.float32)
        model.eval()
    sched = comps["scheduler"]
    comps["scheduler"] = sched.__class__.from_config(sched.config, prediction_type=prediction_type)
    cls = families.module(family).pipeline_class()
    if family == "sdxl":
        return cls(**{k: comps[k] for k in ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
                                            "unet", "scheduler")})
    return cls(vae=comps["vae"], text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"], unet=comps["unet"],
               scheduler=comps["scheduler"], safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)


def load_folder(folder: Path, torch_dtype: Any = None):
    import diffusers

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    cls = getattr(diffusers, index.get("_class_name", "DiffusionPipeline"), diffusers.DiffusionPipeline)
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if "safety_checker" in index:
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return cls.from_pretrained(folder, local_files_only=True, **kwargs)


def download(hub_id: str, progress=None, family: str | None = None) -> Path:
    """Fetch a diffusers repo's configs and safetensors weights from the chosen source (core.download).

    A DiT family's repo (named by `family`, or a hub id the family lists) is fetched with its own patterns
    (transformer shards and parts), an SD repo with the UNet's.
    """
    from core.download import fetch

    dit = families.dit_module(family) or next(
        (m for m in families.DIT_MODULES.values() if split_hub_id(hub_id)[0] in m.HUB_IDS), None)
    patterns = dit.MODEL_PATTERNS if dit is not None else [
        "model_index.json", "*/*.json", "*/*.txt", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors", "text_encoder*/model.safetensors"]
    return fetch(hub_id, patterns=patterns, progress=progress, key="model.base")


def load_pipeline(base: str, *, family: str | None = None, prediction_type: str | None = None, torch_dtype=None,
                  vae: str | None = None, device: str = "cpu"):
    """A diffusers pipeline for `base` (diffusers folder, single file, or hub id `org/name[@rev]`).

    `family` / `prediction_type` override what detection finds ('auto' or None keeps it). Raises
    DanluError saying why the base cannot be loaded.
    """
    from models.detect import detect

    text = clean_path(base)
    if not text:
        raise DanluError("No base model chosen.", "尚未选择底模。", "Pick one in the Model tab.", "请在“底模”页选择。",
                         key="model.base")
    path = Path(text)
    if not path.exists() and is_hub_id(text):
        path = download(text, family=family)  # a DiT repo: its transformer shards and parts, not an SD UNet
    info = detect(str(path))
    if not info.usable:
        raise DanluError(info.problem_en, info.problem_zh, info.hint_en, info.hint_zh, key="model.base")
    dit = families.dit_module(info.family)
    if dit is not None:
        pipe = families.part(dit, "load").load_parts(path, torch_dtype=torch_dtype)
        if vae:
            pipe.vae = load_vae(vae, pipe.vae, torch_dtype)
        return pipe.to(device)
    fam = family if family and family != "auto" else info.family
    pred = prediction_type if prediction_type and prediction_type != "auto" else info.prediction_type
    if path.is_dir():
        pipe = load_folder(path, torch_dtype)
        if pred != pipe.scheduler.config.get("prediction_type"):
            pipe.scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config, prediction_type=pred)
    else:
        pipe = load_single_file(path, fam, pred, torch_dtype)
    if vae:
        pipe.vae = load_vae(vae, pipe.vae, torch_dtype)
    return pipe.to(device)


def resolve_family(pipe: Any) -> str:
    """'sdxl', 'sd2', 'sd15' or a DiT family ('zimage') of a loaded pipeline."""
    dit = families.of_pipeline(pipe)
    if dit is not None:
        return dit.FAMILY
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    te = pipe.text_encoder.config
    if pipe.unet.config.cross_attention_dim == 1024 or te.hidden_act == "gelu":
        return "sd2"  # OpenCLIP ViT-H: 1024 wide, plain GELU (CLIP-L uses quick_gelu)
    return "sd15"
