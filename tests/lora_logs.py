"""Load a LoRA file through diffusers and keep what diffusers and peft said about it."""

from __future__ import annotations

import io
import logging
import warnings


def load_lora_capturing_logs(pipe, path, adapter_name: str) -> str:
    """load_lora_weights via models.generate; returns the log and warning text, lower-cased."""
    from models.generate import load_lora

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    loggers = [logging.getLogger(n) for n in ("diffusers", "peft")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_lora(pipe, path, adapter_name)
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    return (buf.getvalue() + " ".join(str(w.message) for w in caught)).lower()
