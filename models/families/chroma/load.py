"""Loading Chroma: FLUX's loader (models/families/flux/load.py) with the family fixed to Chroma (T5 only, no
CLIP-L; the approximator's names converted with the blocks')."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.families import chroma
from models.families.flux import load as _flux
from models.families.flux.load import (  # noqa: F401 - the seam's names, shared with FLUX
    Parts,
    classify_file,
    classify_folder,
    encode_prompts,
    from_file_keys,
    to_file_keys,
)


def find_parts(path: Path, components: str | Path | None = None) -> Parts | None:
    """Where T5, the tokenizer and the VAE come from (flux/load.py's order)."""
    return _flux.find_parts(path, components, family=chroma.FAMILY)


def load_parts(path: Path, components: str | Path | None = None, torch_dtype: Any = None):
    """The ChromaPipeline of a diffusers folder, hub download or BFL single file."""
    return _flux.load_parts(path, components, torch_dtype, family=chroma.FAMILY)
