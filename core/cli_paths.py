"""Command-line paths as the user meant them: `python launcher.py` runs its subcommands in the project folder, while
the user typed paths relative to the folder their shell was in."""

from __future__ import annotations

from pathlib import Path

# Options whose value is a file or folder to write: taken from the shell's folder like the paths that exist there.
OUTPUT_OPTIONS = ("-o", "--output", "--out", "--outputs")


def from_shell_folder(args: list[str], cwd: Path, root: Path) -> list[str]:
    """The subcommand's relative paths as the user meant them: from the folder the shell was in, since the launcher
    runs in the project folder `root`. A relative path that exists there, or the value of an output option, becomes
    absolute; everything else (options, keys, names) is left as it is."""
    if cwd.resolve() == root.resolve():
        return list(args)

    def absolute(value: str, output: bool = False) -> str:
        path = Path(value)
        if value and not path.is_absolute() and (output or (cwd / path).exists()):
            return str(cwd / path)
        return value

    out: list[str] = []
    for i, arg in enumerate(args):
        after_output = i > 0 and args[i - 1] in OUTPUT_OPTIONS
        if arg.startswith("-") and "=" in arg and arg.split("=", 1)[0] in OUTPUT_OPTIONS:
            key, value = arg.split("=", 1)
            out.append(f"{key}={absolute(value, output=True)}")
        elif arg.startswith("-") and not after_output:
            out.append(arg)
        else:
            out.append(absolute(arg, output=after_output))
    return out
