"""Natural-language captioners through transformers' own classes: Florence-2 and Qwen3-VL, no remote code.

Florence-2 is an encoder-decoder that answers task tokens: `<CAPTION>` (short) and `<DETAILED_CAPTION>`,
with the model card's beam search (3 beams, no sampling). Qwen3-VL is a chat model: one user turn with the
image and an instruction, greedy decoding, left padding so a batch ends where generation starts.

Qwen's processor class also builds a video processor, which needs torchvision; Danlu has no torchvision, so
the image processor and the tokenizer are loaded on their own and each `<|image_pad|>` is expanded to the
number of merged patches here, as the processor would do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DanluError
from taggers.catalog import CAPTIONER_KINDS, CAPTIONERS, DEFAULT_CAPTIONER

STYLES = ("short", "detailed")
FLORENCE_TASKS = {"short": "<CAPTION>", "detailed": "<DETAILED_CAPTION>"}
QWEN_PROMPTS = {
    "short": "Describe this image in one sentence.",
    "detailed": "Describe this image in detail in one paragraph of plain text: the subject, clothing, pose, "
                "setting, lighting and art style.",
}
# What a snapshot needs; weights in safetensors only (no pickles).
FILE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


# ---------------------------------------------------------------- model files

def resolve_captioner(model: str, progress: Callable[[str, int, int], None] | None = None,
                      local_files_only: bool | None = None) -> Path:
    """A folder with config.json and weights: a local folder, a name from the catalog, or a hub id 'org/name'."""
    model = (model or DEFAULT_CAPTIONER).strip()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DanluError(f"The captioner folder {path} has no config.json.",
                             f"描述模型文件夹 {path} 中没有 config.json。",
                             "Enter a folder downloaded from the hub (config.json, *.safetensors, tokenizer files).",
                             "请填写从 hub 下载的完整文件夹（config.json、*.safetensors、分词器文件）。",
                             key="caption.model")
        return path
    if model.startswith((".", "/", "~")) or "\\" in model or model.count("/") != 1 and model not in CAPTIONERS:
        raise DanluError(f"The captioner {model} is neither a folder nor a hub id.",
                         f"描述模型 {model} 既不是文件夹也不是 hub id。",
                         "Check the path, or pick a model from the list to download it.",
                         "请检查路径，或从列表中选择模型以下载。", key="caption.model")
    repo = CAPTIONERS[model].repo if model in CAPTIONERS else model
    return _download(repo, progress, local_files_only)


def _download(repo: str, progress, local_files_only: bool | None) -> Path:
    """The snapshot from the download source chosen in the page, TOML or environment (core.download)."""
    from core.download import fetch

    return fetch(repo, patterns=FILE_PATTERNS, progress=progress, local_files_only=local_files_only,
                 what=("captioner", "描述模型"), key="caption.model")


def model_kind(folder: Path) -> str:
    """'florence2' or 'qwen3_vl' from config.json; refuses remote-code checkpoints and other models."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"it holds a {type(config).__name__}, not an object")
    except (OSError, ValueError, RecursionError) as e:
        from core.state_files import set_aside_download

        again = set_aside_download(path, ("The downloaded model settings", "下载的模型设置"), str(e))
        raise DanluError(f"Cannot read {path}: {e}", f"无法读取 {path}：{e}",
                         "It was damaged and moved aside: start again to download it anew." if again else
                         "Give the captioner's folder as downloaded (its config.json is JSON).",
                         "该文件已损坏并已移到一旁：请重新开始以重新下载。" if again else
                         "请提供下载得到的描述模型文件夹（其 config.json 为 JSON）。", key="caption.model") from None
    kind = config.get("model_type", "")
    if config.get("auto_map"):
        raise DanluError(f"{folder} needs the model's own code (trust_remote_code), which Danlu does not run.",
                         f"{folder} 需要运行模型自带的代码（trust_remote_code），丹炉不运行此类代码。",
                         "Use the transformers-native copy: florence-community/Florence-2-base or -large.",
                         "请改用 transformers 原生格式的版本：florence-community/Florence-2-base 或 -large。",
                         key="caption.model")
    if kind not in CAPTIONER_KINDS:
        raise DanluError(f"{folder} is a {kind or 'unknown'} model; Danlu captions with "
                         f"{' or '.join(CAPTIONER_KINDS)}.",
                         f"{folder} 是 {kind or '未知'} 模型；丹炉支持的描述模型为 {' 或 '.join(CAPTIONER_KINDS)}。",
                         key="caption.model")
    return kind


def chat_template(folder: Path) -> str | None:
    """The chat template kept beside the processor (chat_template.jinja, or chat_template.json's one string)."""
    jinja, js = Path(folder) / "chat_template.jinja", Path(folder) / "chat_template.json"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    if js.is_file():
        return json.loads(js.read_text(encoding="utf-8")).get("chat_template")
    return None


# ---------------------------------------------------------------- the captioner

def pick_device(device: str = "auto") -> tuple[str, object]:
    """(device, dtype): CUDA in bf16 (fp16 on cards without bf16) when present, else CPU in float32."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def clean_text(text: str) -> str:
    """One line with collapsed whitespace and no surrounding quotes (sd-scripts reads a caption's first line)."""
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    return re.sub(r"\s+", " ", text).strip().strip('"').strip()


@dataclass
class Captioner:
    folder: Path
    device: str = "auto"
    kind: str = ""
    model: object = None
    processor: object = None        # Florence2Processor
    tokenizer: object = None        # Qwen: tokenizer and image processor, loaded on their own
    image_processor: object = None
    dtype: object = None
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from transformers import AutoModelForImageTextToText

        self.folder = Path(self.folder)
        self.kind = model_kind(self.folder)
        self.device, self.dtype = pick_device(self.device)
        try:
            if self.kind == "florence2":
                from transformers import AutoProcessor

                self.processor = AutoProcessor.from_pretrained(self.folder)
                self.tokenizer = self.processor.tokenizer
            else:
                from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

                self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
                self.tokenizer.padding_side = "left"
                if not getattr(self.tokenizer, "chat_template", None):
                    self.tokenizer.chat_template = chat_template(self.folder)
                self.image_processor = Qwen2VLImageProcessorPil.from_pretrained(self.folder)
            self.model = AutoModelForImageTextToText.from_pretrained(self.folder, dtype=self.dtype)
        except (OSError, ValueError, KeyError) as e:
            raise DanluError(f"transformers cannot load the captioner in {self.folder}: {e}",
                             f"transformers 无法加载 {self.folder} 中的描述模型：{e}",
                             "The download may be incomplete: delete the folder and download again.",
                             "下载可能不完整：请删除该文件夹后重新下载。", key="caption.model") from e
        self.model.to(self.device).eval()

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    def caption(self, images: list, style: str = "detailed", max_new_tokens: int = 200) -> list[str]:
        """One caption per PIL RGB image, the whole list as one batch."""
        if style not in STYLES:
            raise DanluError(f"Unknown caption style {style!r}; use one of {', '.join(STYLES)}.",
                             f"未知的描述风格 {style!r}；可选 {', '.join(STYLES)}。", key="caption.style")
        import torch

        with torch.inference_mode():
            if self.kind == "florence2":
                return self._florence(images, style, max_new_tokens)
            return self._qwen(images, style, max_new_tokens)

    def _florence(self, images: list, style: str, max_new_tokens: int) -> list[str]:
        inputs = self.processor(text=[FLORENCE_TASKS[style]] * len(images), images=images, return_tensors="pt",
                                padding=True)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=3, do_sample=False)
        return [clean_text(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _qwen(self, images: list, style: str, max_new_tokens: int) -> list[str]:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QWEN_PROMPTS[style]}]}]
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        vision = self.image_processor(images=images, return_tensors="pt")
        merge = int(getattr(self.image_processor, "merge_size", 2)) ** 2
        pad = "<|image_pad|>"
        texts = [prompt.replace(pad, pad * int(grid.prod() // merge), 1) for grid in vision["image_grid_thw"]]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True)
        inputs.update(vision)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [clean_text(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
