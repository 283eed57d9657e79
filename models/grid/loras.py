"""The XYZ grid's LoRA files on one base pipeline: each file loaded once, then switched by weight per cell.

Plain LoRA/LoCon files are diffusers adapters (``set_adapters`` picks one at its weight). LoHa, LoKr and DoRA
files, which diffusers cannot load (or loads without ``dora_scale``), take the training samples' path
(training/export.py): models.lycoris merges the file's deltas into the weights, as WebUI and ComfyUI compute them.
For those the base's weights of the layers they touch are kept on the CPU and put back before each merge, so a
cell at weight 1 is the run's own sample bit for bit, and a cell at weight w merges the file at strength w: w · ΔW
(LoHa, LoKr), w · (W' − W) for DoRA — how A1111's ``network.py`` ``finalize_updown`` and ComfyUI's
``weight_decompose`` apply the multiplier.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


class GridLoras:
    """The grid's files on `pipe` (loaded by `open_loras`); `select` sets one file at one weight (None: the base)."""

    def __init__(self, pipe: Any, family: str):
        self.pipe, self.family = pipe, family
        self.adapters: dict[Path, str] = {}                # plain LoRA files: diffusers adapter names
        self.merged: dict[Path, tuple[dict, dict]] = {}    # LoHa/LoKr/DoRA files: (modules, their weights)
        self.originals: dict[str, Any] = {}                # base name → the base's weight (CPU copy)
        self.current: tuple[Path, float] | None = None     # the merged file and strength now in the weights

    def _add_merged(self, path: Path) -> None:
        from safetensors.torch import load_file

        from models.lycoris import file_weights, group_modules, pipe_components

        groups = group_modules(load_file(str(path)))
        try:
            weights = file_weights(pipe_components(self.pipe), groups, self.family)  # needs the un-injected models
        except ValueError as e:
            from core.errors import DanluError

            raise DanluError(f"{path.name} does not fit this base model: {e}.",
                             f"{path.name} 与这个底模不匹配：{e}。",
                             "Use the base model the file was trained on.", "请使用训练该文件时的底模。",
                             key=str(path)) from None
        for base, w in weights.items():
            if base not in self.originals:
                self.originals[base] = w.detach().to("cpu", copy=True)
        self.merged[path] = (groups, weights)

    def select(self, lora: Path | None, weight: float) -> None:
        from models.generate import set_lora_weights
        from models.lycoris import merge_groups

        wanted = (lora, float(weight)) if lora in self.merged and weight != 0 else None
        if wanted != self.current:
            self.restore()
            if wanted is not None:
                groups, weights = self.merged[lora]
                merge_groups(weights, groups, float(weight))
                self.current = wanted
        if self.adapters:  # a plain file at its weight, or every adapter off (weight 0 of the first)
            name = self.adapters.get(lora) if lora is not None else None
            set_lora_weights(self.pipe, {name: weight} if name else {next(iter(self.adapters.values())): 0.0})

    def restore(self) -> None:
        """The base's own weights back in every layer a merged file touched."""
        import torch

        if self.current is None:
            return
        groups, weights = self.merged[self.current[0]]
        with torch.no_grad():
            for base in groups:
                weights[base].copy_(self.originals[base].to(weights[base].device))
        self.current = None

    def close(self) -> None:
        from models.generate import unload_loras

        self.restore()
        if self.adapters:
            unload_loras(self.pipe)


def open_loras(pipe: Any, loras: list[Path], family: str) -> tuple[GridLoras, list[float]]:
    """Load every file once onto `pipe`; returns the switcher and each file's load time in seconds.

    Merged files are read first: their layers are found in the models before diffusers wraps any of them."""
    from models.generate import load_lora
    from models.lycoris import file_kind

    out, seconds = GridLoras(pipe, family), []
    kinds = {lora: file_kind(lora) for lora in loras}
    for lora in sorted(loras, key=lambda p: kinds[p] is None):
        start = time.monotonic()
        if kinds[lora]:
            out._add_merged(lora)
        else:
            out.adapters[lora] = load_lora(pipe, lora, f"grid{len(out.adapters)}")
        seconds.append(time.monotonic() - start)
    return out, seconds
