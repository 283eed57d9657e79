"""Third-party notices that tell a Danlu user nothing they can act on, silenced once at import.

- bitsandbytes, on CPUs with AVX-512 BF16, announces that its optional `kernels` package is missing each time it is
  imported (diffusers and peft import it); its 8-bit optimizers work without it.
- transformers says it falls back to the PIL image processors because torchvision is absent; Danlu ships no
  torchvision on purpose (PyPI's build does not load beside the pinned torch) and the PIL processors are the ones
  the taggers and captioners are tested with.
- diffusers warns on every `.to(dtype)` that "modules … should be kept in float32: []" even when that list is
  empty; only the empty-list form is dropped, a real list still shows.
Errors from these libraries still show.
"""

from __future__ import annotations

import logging

QUIET_LOGGERS = ("bitsandbytes.backends.cpu.ops", "transformers.utils.import_utils")


EMPTY_FP32_NOTICE = "that should be kept in float32: []."


def _not_empty_fp32_notice(record: logging.LogRecord) -> bool:
    return EMPTY_FP32_NOTICE not in record.getMessage()


def silence_notices() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    diffusers_models = logging.getLogger("diffusers.models.modeling_utils")
    if _not_empty_fp32_notice not in diffusers_models.filters:
        diffusers_models.addFilter(_not_empty_fp32_notice)


silence_notices()
