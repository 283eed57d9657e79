"""`python launcher.py lora info|meta|resize|merge|extract|convert ...`: the toolbox from a shell.

Bad input exits 2 with the message in the user's language (core.errors.current_lang)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    ...
