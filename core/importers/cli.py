"""`python launcher.py import FILE [-o OUT.toml]`: a peer trainer's config as a Danlu run TOML, and what became of
each of its keys (core.importers does the mapping; the Config tab shows the same table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import config as cfgmod
from core import importers
from core.errors import current_lang


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launcher.py import",
                                description="Read an sd-scripts TOML or argument file, a kohya_ss GUI JSON or a "
                                            "lora-scripts TOML; write a Danlu run TOML and print what was mapped, "
                                            "changed, and what has no Danlu equivalent.")
    p.add_argument("file", help="the peer's config file")
    p.add_argument("-o", "--output", default="", help="the Danlu TOML to write (default: FILE's name + .danlu.toml)")
    return p


def default_output(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.danlu.toml")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lang = current_lang()
    result = importers.import_file(args.file)
    out = Path(args.output) if args.output else default_output(args.file)
    cfgmod.save(result.config, out)
    print(result.table(lang))
    print()
    kind = importers.FORMATS[result.kind]
    print(f"已按 {kind} 格式读取，写入 {out}" if lang == "zh" else f"Read as {kind}; wrote {out}")
    return 0
