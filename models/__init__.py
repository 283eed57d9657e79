"""Model families, detection, loading, the LoRA file format, generation and the tiny-model factory."""

import core.quiet  # noqa: E402,F401  (third-party notices a user cannot act on)
