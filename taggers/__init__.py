"""Auto-taggers that write caption files: one module per tagger family (wd14 first)."""

import core.quiet  # noqa: E402,F401  (third-party notices a user cannot act on)
