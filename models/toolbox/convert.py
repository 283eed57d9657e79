"""Convert a LoRA between the layouts its family has (built on common.py's helpers)."""

from __future__ import annotations
