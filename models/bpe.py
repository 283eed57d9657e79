"""The byte-level BPE table shared by the CLIP tokenizer Danlu builds and the tiny test models."""

from __future__ import annotations


def bytes_to_unicode() -> dict[int, str]:
    """The byte → printable-character table of GPT-2/CLIP byte-level BPE."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
