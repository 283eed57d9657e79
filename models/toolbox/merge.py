"""Merge several LoRAs into one, or LoRAs into a base checkpoint (built on common.py's helpers)."""

from __future__ import annotations
