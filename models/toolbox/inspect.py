"""Inspect a LoRA file and edit its user-facing metadata.

`inspect_lora` reads only the header (and the small alpha tensors): family and base model, network type, rank and
alpha per module, conv layers, text-encoder parts, precision, training settings from ss_* metadata and the run
TOML, modelspec, trigger words and tag frequencies, file size, and which loaders take every key.
`edit_metadata` writes a new file with the title / trigger words / description / cover image (as modelspec names
them); the tensor bytes are copied unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoraInfo:
    path: Path
    family: str | None
    size: int
    layout: str                      # "kohya" or "peft"
    network: str                     # "LoRA", "LoCon", "LoHa", "LoKr", "DoRA"
    ranks: dict[str, int]            # module → rank
    alphas: dict[str, float]         # module → alpha
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

    def report(self, lang: str | None = None) -> str: ...


def inspect_lora(path: str | Path) -> LoraInfo:
    ...


def edit_metadata(path: str | Path, out: str | Path, *, title: str | None = None,
                  trigger_words: list[str] | None = None, description: str | None = None,
                  cover: str | Path | None = None) -> Path:
    ...
