"""SmilingWolf WD1.4 / WD v3 taggers through onnxruntime: model files, session, preprocessing, tag selection.

The steps follow the SmilingWolf `wd-tagger` Space (see reference/tagging.md): alpha on white, white
centred square, PIL BICUBIC to the side the model declares, BGR float32 0–255 NHWC; probabilities come
out already sigmoid-ed in CSV row order. Captions are stored unescaped (no `\\(`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.dataset.tags import dedupe, split_tags, tag_key
from core.errors import DanluError
from core.fsutil import read_user_text
from taggers.catalog import DEFAULT_ORG, DEFAULT_TAGGER, TAGGERS, tagger_hub_id

HUB_ORG = DEFAULT_ORG
MODELS = list(TAGGERS)   # the table in taggers/catalog.py: repos, thresholds, notes
DEFAULT_MODEL = DEFAULT_TAGGER
MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"

# toriato's list, copied by the Space and lora-scripts: these keep their underscores.
KAOMOJI = {"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o", "@_@",
           "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"}
RATING, GENERAL, CHARACTER = 9, 0, 4
_WORD = re.compile(r"^[a-z]{2,}$")


# ---------------------------------------------------------------- model files

def resolve_model(model: str, progress: Callable[[str, int, int], None] | None = None,
                  local_files_only: bool | None = None) -> Path:
    """A folder holding model.onnx and selected_tags.csv, from a local folder, a .onnx path or a hub id.

    Hub ids: a name from taggers/catalog.py, 'org/name' or 'org/name@revision'. Downloads go through
    the chosen source's cache, so a second run is offline; progress(filename, done_bytes, total_bytes).
    """
    model = (model or DEFAULT_MODEL).strip()
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".onnx":
        path = path.parent
    if path.is_dir():
        missing = [f for f in (MODEL_FILE, TAGS_FILE) if not (path / f).is_file()]
        if missing:
            raise DanluError(f"The tagger folder {path} lacks {', '.join(missing)}.",
                             f"打标模型文件夹 {path} 中缺少 {', '.join(missing)}。",
                             f"A WD tagger folder holds {MODEL_FILE} and {TAGS_FILE} (as on the hub).",
                             f"WD 打标模型文件夹应包含 {MODEL_FILE} 和 {TAGS_FILE}（与 hub 上相同）。",
                             key="tagger.model")
        return path
    if model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1:
        raise DanluError(f"The tagger folder {model} does not exist.", f"打标模型文件夹 {model} 不存在。",
                         "Check the path, or pick a model from the list to download it.",
                         "请检查路径，或从列表中选择模型以下载。", key="tagger.model")
    return _download(tagger_hub_id(model), progress, local_files_only)


def _download(spec: str, progress, local_files_only: bool | None) -> Path:
    """The two files from the download source chosen in the page, TOML or environment (core.download)."""
    from core.download import fetch

    return fetch(spec, files=(TAGS_FILE, MODEL_FILE), progress=progress, local_files_only=local_files_only,
                 what=("tagger", "打标模型"), key="tagger.model")


# ---------------------------------------------------------------- labels

@dataclass
class Labels:
    names: list[str]            # normalised (underscores → spaces except kaomoji)
    raw: list[str]              # as in the CSV
    rating: np.ndarray          # row indices, by the category column
    general: np.ndarray
    character: np.ndarray
    kaomoji: set[str] = field(default_factory=set)


def kaomoji_candidates(raw_names: list[str]) -> set[str]:
    """Short tags with one underscore where neither side is a word ('^_^', 'x_x', '||_||'): keep their '_'."""
    out = set()
    for name in raw_names:
        if name.count("_") != 1 or len(name) > 7:
            continue
        left, right = name.split("_")
        if left and right and not _WORD.match(left.lower()) and not _WORD.match(right.lower()):
            out.add(name)
    return out


def normalize_tag(name: str, kaomoji: set[str] = KAOMOJI) -> str:
    return name if name in kaomoji else name.replace("_", " ")


def load_labels(csv_path: Path) -> Labels:
    """Read selected_tags.csv (tag_id,name,category,count), indexing by the category column, not row position.

    A file that is not such a table is refused naming it; one in a download cache (a hub blob) is damaged state:
    it is moved aside, so that the next run downloads it again."""
    try:
        raw, cats = _read_tag_rows(Path(csv_path))
    except (DanluError, csv.Error, KeyError, ValueError, TypeError) as e:
        raise _bad_labels(Path(csv_path), e) from None
    cats_a = np.asarray(cats)
    kaomoji = KAOMOJI | kaomoji_candidates(raw)
    return Labels(names=[normalize_tag(n, kaomoji) for n in raw], raw=raw, rating=np.flatnonzero(cats_a == RATING),
                  general=np.flatnonzero(cats_a == GENERAL), character=np.flatnonzero(cats_a == CHARACTER),
                  kaomoji=kaomoji)


def _read_tag_rows(path: Path) -> tuple[list[str], list[int]]:
    raw, cats = [], []
    # a folder, a link loop, a gigabyte (csv reads NUL bytes since Python 3.11), GBK: refused before csv sees it
    text = read_user_text(path, ("the tag list", "标签表"), ("", ""), limit=64 * 1024 * 1024)
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if not isinstance(row.get("name"), str) or not row["name"]:
            raise ValueError(f"row {len(raw) + 2} has no name")
        raw.append(row["name"])
        cats.append(int(row["category"]))
    if not raw:
        raise ValueError("no tag rows")
    return raw, cats


def _bad_labels(path: Path, e: Exception) -> DanluError:
    why = e.en.split(": ", 1)[-1].rstrip(".") if isinstance(e, DanluError) else str(e) or type(e).__name__
    from core.state_files import set_aside_download

    if set_aside_download(path, ("The downloaded tag list", "下载的标签表"), why):  # a cut or damaged download
        return DanluError(f"The downloaded {TAGS_FILE} was damaged ({why}) and was moved aside.",
                          f"下载的 {TAGS_FILE} 已损坏（{why}），已移到一旁。",
                          "Start the tagging again: the file is downloaded anew.",
                          "请重新开始打标：会重新下载该文件。", key="tagger.model")
    return DanluError(f"{path} is not a WD tag list ({why}).", f"{path} 不是 WD 标签表（{why}）。",
                      f"{TAGS_FILE} is a CSV with the columns tag_id,name,category,count, as on the hub; put the "
                      "model's own file back.",
                      f"{TAGS_FILE} 是含 tag_id,name,category,count 列的 CSV（与 hub 上相同），"
                      "请放回该模型原本的文件。", key="tagger.model")


# ---------------------------------------------------------------- preprocessing

def preprocess(image, size: int) -> np.ndarray:
    """One PIL image → (size, size, 3) float32 BGR 0–255, the Space's steps in its order."""
    return to_model_input(preprocess_rgb(image, size))


def to_model_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., side, side, 3) → contiguous float32 BGR 0–255 (exact: every uint8 is a float32)."""
    return rgb[..., ::-1].astype(np.float32)


def preprocess_rgb(image, size: int) -> np.ndarray:
    """Steps 1–3 (alpha on white, white centred square, BICUBIC) as uint8 RGB: a quarter of the float's bytes
    to hand between threads; the pipeline converts a whole batch to float BGR in one pass."""
    from PIL import Image

    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    img = image.convert("RGBA") if has_alpha and image.mode != "RGBA" else image
    if has_alpha and img.getextrema()[3][0] < 255:
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        canvas.alpha_composite(img)
        img = canvas
    # An opaque image composited on white is itself, so the composite (15 ms at 1 MP) is skipped for it.
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    side = max(w, h)
    square = img
    if w != h:  # padding a square changes nothing, so it is skipped
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(img, ((side - w) // 2, (side - h) // 2))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square, dtype=np.uint8)


def load_rgb(path: Path, size: int) -> np.ndarray:
    """Decode an image file and run preprocess_rgb on it (what the decoding threads do)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return preprocess_rgb(im, size)


def load_and_preprocess(path: Path, size: int) -> np.ndarray:
    """An image file → the model's (side, side, 3) float32 BGR input."""
    return to_model_input(load_rgb(path, size))


# ---------------------------------------------------------------- session

def _gpu_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _capture_stderr(fn: Callable, capture: bool):
    """Run fn and return (result, what native code wrote to stderr): ORT says why CUDA failed only there."""
    if not capture:
        return fn(), ""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", errors="replace")
    return result, text


def _ort_reason(log: str) -> str:
    """The useful part of ORT's CUDA failure: the missing library and the CUDA/cuDNN versions it needs."""
    parts = []
    m = re.search(r"with error: ([^\n\x1b]+)", log)
    if m:
        parts.append(m.group(1).strip())
    m = re.search(r"Require (cuDNN [^ ]+ and CUDA [^ .]+(?:\.\*)?)", log)
    if m:
        parts.append("needs " + m.group(1))
    return "; ".join(parts)


@dataclass
class Tagger:
    """One reusable session (creating it per image costs ~20 %) and the CSV, read once."""

    folder: Path
    device: str = "auto"              # auto: CUDA when there is one, else CPU; 'cpu' forces CPU
    session: object = None
    labels: Labels | None = None
    size: int = 448
    dynamic_batch: bool = False
    input_name: str = ""
    output_name: str = ""
    providers: list[str] = field(default_factory=list)
    fallback: tuple[str, str] | None = None   # (en, zh) why CUDA was expected but CPU is used

    def __post_init__(self) -> None:
        import onnxruntime as ort

        self.folder = Path(self.folder)
        available = ort.get_available_providers()
        want_cuda = self.device != "cpu" and (_gpu_present() or self.device == "cuda")
        requested = ["CPUExecutionProvider"]
        if want_cuda and "CUDAExecutionProvider" in available:
            if hasattr(ort, "preload_dlls"):  # finds CUDA/cuDNN from pip wheels or torch, as lora-scripts does
                try:
                    ort.preload_dlls()
                except Exception:  # noqa: BLE001, S110 - a failed preload shows up as a CPU session below
                    pass
            requested = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the CUDA fallback is reported in the page, not as console noise
        # Idle ORT worker threads spin by default, taking the cores the decoding threads need between runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session, ort_log = _capture_stderr(lambda: ort.InferenceSession(
                str(self.folder / MODEL_FILE), sess_options=options, providers=requested), len(requested) > 1)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own classes for a broken file
            raise DanluError(f"onnxruntime cannot open {self.folder / MODEL_FILE}: {e}",
                             f"onnxruntime 无法打开 {self.folder / MODEL_FILE}：{e}",
                             "The file may be incomplete: delete it and download again.",
                             "文件可能不完整：请删除后重新下载。", key="tagger.model") from e
        # On Windows ORT falls back to CPU without raising, so check what the session really got.
        self.providers = list(self.session.get_providers())
        if want_cuda and "CUDAExecutionProvider" not in self.providers:
            if "CUDAExecutionProvider" not in available:
                self.fallback = ("the installed onnxruntime has no CUDA provider (install onnxruntime-gpu in place "
                                 "of onnxruntime)",
                                 "已安装的 onnxruntime 不含 CUDA 支持（请用 onnxruntime-gpu 替换 onnxruntime）")
            else:
                detail = _ort_reason(ort_log)
                self.fallback = ("the CUDA provider failed to load: CUDA or cuDNN libraries are missing or do not "
                                 "match this onnxruntime build" + (f" ({detail})" if detail else ""),
                                 "CUDA 提供程序加载失败：缺少 CUDA/cuDNN 库或版本与 onnxruntime 不匹配"
                                 + (f"（{detail}）" if detail else ""))
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        shape = inp.shape
        if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int):
            raise DanluError(f"{self.folder / MODEL_FILE} is not a WD tagger: its input is {shape}, expected "
                             "[batch, side, side, 3].",
                             f"{self.folder / MODEL_FILE} 不是 WD 打标模型：输入形状为 {shape}，"
                             "应为 [batch, 边长, 边长, 3]。", key="tagger.model")
        self.size = int(shape[1])
        self.dynamic_batch = not isinstance(shape[0], int) or shape[0] <= 0
        self.input_name, self.output_name = inp.name, out.name
        self.labels = load_labels(self.folder / TAGS_FILE)
        width = out.shape[-1] if out.shape else None
        if isinstance(width, int) and width != len(self.labels.names):
            raise DanluError(f"The model outputs {width} tags but {TAGS_FILE} lists {len(self.labels.names)}.",
                             f"模型输出 {width} 个标签，但 {TAGS_FILE} 中有 {len(self.labels.names)} 个。",
                             "The two files come from different models: download both again.",
                             "两个文件来自不同的模型：请重新下载两者。", key="tagger.model")

    @property
    def on_gpu(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    @property
    def max_batch(self) -> int | None:
        """None when any batch size works, else the fixed batch (1 for the v2 MOAT/ViT/ConvNeXtV2 exports)."""
        return None if self.dynamic_batch else int(self.session.get_inputs()[0].shape[0])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(n, side, side, 3) → (n, tags) probabilities; runs one image at a time for fixed-batch models."""
        if self.dynamic_batch:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.concatenate([self.session.run([self.output_name], {self.input_name: batch[i:i + 1]})[0]
                               for i in range(len(batch))])


# ---------------------------------------------------------------- tag selection

@dataclass
class TagOptions:
    general_threshold: float = 0.35
    character_threshold: float = 0.85
    general_mcut: bool = False
    character_mcut: bool = False
    rating: bool = False                 # add the most probable rating tag at the end
    exclude: list[str] = field(default_factory=list)          # matched on tag_key
    exclude_categories: list[str] = field(default_factory=list)  # 'general' and/or 'character'
    trigger: str = ""                    # comma-separated trigger tags, put first


def mcut_threshold(probs: np.ndarray) -> float:
    """Maximum Cut Thresholding: the midpoint of the largest gap between neighbouring sorted probabilities."""
    p = np.sort(np.asarray(probs, dtype=np.float64))[::-1]
    if len(p) < 2:
        return 0.0
    gaps = p[:-1] - p[1:]
    t = int(gaps.argmax())
    return float((p[t] + p[t + 1]) / 2)


@dataclass
class Prediction:
    rating: dict[str, float]
    character: list[tuple[str, float]]
    general: list[tuple[str, float]]


def select(probs: np.ndarray, labels: Labels, opts: TagOptions) -> Prediction:
    """Apply thresholds (the Space's strict '>'), MCut, exclusions; tags sorted by confidence."""
    excluded = {tag_key(e) for e in opts.exclude if e.strip()}

    def pick(idx: np.ndarray, threshold: float, mcut: bool, floor: float) -> list[tuple[str, float]]:
        values = probs[idx]
        if mcut:
            threshold = max(mcut_threshold(values), floor)
        order = np.argsort(-values, kind="stable")
        return [(labels.names[idx[i]], float(values[i])) for i in order
                if values[i] > threshold and tag_key(labels.names[idx[i]]) not in excluded]

    char = [] if "character" in opts.exclude_categories else pick(labels.character, opts.character_threshold,
                                                                  opts.character_mcut, 0.15)
    gen = [] if "general" in opts.exclude_categories else pick(labels.general, opts.general_threshold,
                                                               opts.general_mcut, 0.0)
    rating = {labels.names[i]: float(probs[i]) for i in labels.rating}
    return Prediction(rating=rating, character=char, general=gen)


def caption_tags(pred: Prediction, opts: TagOptions) -> list[str]:
    """Trigger tags first, then characters, then general tags by confidence; the argmax rating last if asked."""
    tags = split_tags(opts.trigger) + [n for n, _ in pred.character] + [n for n, _ in pred.general]
    if opts.rating and pred.rating:
        tags.append(max(pred.rating.items(), key=lambda kv: kv[1])[0])
    return dedupe(tags)


POLICIES = ("skip", "overwrite", "append", "prepend")


def merge_caption(existing: str, new_tags: list[str], policy: str, trigger: str = "") -> str | None:
    """The caption to write under an existing-caption policy; None means leave the file alone.

    append keeps the existing tags first, prepend puts the new ones first; both de-duplicate and keep the
    trigger tags in front so `keep_tokens` still protects them.
    """
    if policy not in POLICIES:
        raise DanluError(f"Unknown caption policy {policy!r}; use one of {', '.join(POLICIES)}.",
                         f"未知的标注处理方式 {policy!r}；可选 {', '.join(POLICIES)}。", key="tagger.policy")
    old = split_tags(existing.replace("\n", ","))
    if old and policy == "skip":
        return None
    if policy == "append":
        tags = old + new_tags
    elif policy == "prepend":
        tags = new_tags + old
    else:
        tags = list(new_tags)
    trig = {tag_key(t) for t in split_tags(trigger)}
    tags = dedupe(split_tags(trigger) + [t for t in tags if tag_key(t) not in trig]) if trig else dedupe(tags)
    return ", ".join(tags)
