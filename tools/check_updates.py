"""Check requirements.txt's exact pins against PyPI: newer releases, and wheels for every supported platform.

    python tools/check_updates.py            newer versions of each pin
    python tools/check_updates.py --wheels   also: does each pin have a wheel for Python 3.11-3.12 on
                                             Linux x86_64, Windows x64 and macOS arm64?

Nothing is installed or changed. Updating stays a deliberate step: edit the pin, run `python launcher.py test`,
and run this with --wheels so that the new pin installs on every user's machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/pypi"
# Python 3.10 is not among them: diffusers, transformers, numpy, scipy, matplotlib and onnxruntime at the pinned
# versions publish no 3.10 wheels (check it with --python 3.10).
PYTHONS = ("3.11", "3.12")
# The machines a first run must install on: glibc 2.31+ Linux (Ubuntu 20.04, Debian 11), 64-bit Windows, and
# Apple silicon on macOS 14+ (torch's own floor).
GLIBC = (2, 31)
MACOS = (14, 0)
TARGETS = {"linux x86_64": ("linux", "x86_64"), "windows x64": ("win32", "AMD64"), "macos arm64": ("darwin", "arm64")}

Fetch = Callable[[str], dict]


@dataclass(frozen=True)
class Pin:
    name: str
    version: str | None  # None: the line is not an exact pin
    marker: str | None
    line: str


def parse_requirements(text: str) -> list[Pin]:
    """The requirement lines of a requirements.txt, comments and options left out."""
    from packaging.requirements import Requirement

    pins = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        pins.append(Pin(req.name, exact[0] if len(exact) == 1 else None, str(req.marker) if req.marker else None,
                        line))
    return pins


def marker_applies(pin: Pin, python: str, target: str) -> bool:
    """Does the pin's environment marker select it for this Python and platform?"""
    if not pin.marker:
        return True
    from packaging.markers import Marker

    sys_platform, machine = TARGETS[target]
    env = {"python_version": python, "python_full_version": python + ".0", "sys_platform": sys_platform,
           "platform_system": {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}[sys_platform],
           "platform_machine": machine, "os_name": "nt" if sys_platform == "win32" else "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    return Marker(pin.marker).evaluate(env)


def target_tags(python: str, target: str) -> set:
    """The wheel tags pip accepts for CPython `python` on `target`."""
    from packaging import tags

    major, minor = (int(x) for x in python.split("."))
    if target == "linux x86_64":
        platforms = [f"manylinux_{GLIBC[0]}_{m}_x86_64" for m in range(GLIBC[1], 4, -1)]
        platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    elif target == "windows x64":
        platforms = ["win_amd64"]
    else:
        platforms = list(tags.mac_platforms(MACOS, "arm64"))
    cp = f"cp{major}{minor}"
    found = set(tags.cpython_tags((major, minor), abis=[cp, "abi3", "none"], platforms=platforms))
    found |= set(tags.compatible_tags((major, minor), cp, platforms))
    return found


def wheel_fits(file: dict, python: str, target: str) -> bool:
    """A PyPI file entry (filename, requires_python, yanked) that pip would install on this Python and target."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import parse_wheel_filename

    name = file["filename"]
    if not name.endswith(".whl") or file.get("yanked"):
        return False
    if file.get("requires_python") and python + ".0" not in SpecifierSet(file["requires_python"]):
        return False
    return bool(parse_wheel_filename(name)[3] & target_tags(python, target))


def missing_wheels(pin: Pin, files: list[dict], pythons: tuple[str, ...] = PYTHONS) -> list[tuple[str, str]]:
    """(python, target) for every combination the pin applies to where no wheel of the release fits."""
    return [(py, target) for target in TARGETS for py in pythons
            if marker_applies(pin, py, target) and not any(wheel_fits(f, py, target) for f in files)]


def newest_covering(releases: dict[str, list], gaps: list[tuple[str, str]]) -> str | None:
    """The newest final release with a wheel for each of gaps: a pin for those Pythons and platforms."""
    from packaging.version import InvalidVersion, Version

    def key(text):
        try:
            return Version(text)
        except InvalidVersion:
            return None

    for text in sorted((t for t in releases if key(t) and not key(t).is_prerelease), key=key, reverse=True):
        if all(any(wheel_fits(f, py, target) for f in releases[text]) for py, target in gaps):
            return text
    return None


def newer_versions(current: str, releases: dict[str, list]) -> list[str]:
    """Final releases above `current` that still have files, oldest first."""
    from packaging.version import InvalidVersion, Version

    now = Version(current)
    out = []
    for text, files in releases.items():
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        if v > now and not v.is_prerelease and not v.is_devrelease and files and \
                not all(f.get("yanked") for f in files):
            out.append(v)
    return [str(v) for v in sorted(out)]


def fetch_json(url: str, timeout: float = 20) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a fixed https URL
        return json.load(resp)


def summarize(current: str, newer: list[str]) -> str:
    if not newer:
        return "up to date"
    same_major = [v for v in newer if v.split(".")[0] == current.split(".")[0]]
    text = f"newest {newer[-1]}"
    if same_major and same_major[-1] != newer[-1]:
        text += f" (newest {current.split('.')[0]}.x: {same_major[-1]})"
    return text + f"; {len(newer)} newer release(s)"


def check(pins: list[Pin], fetch: Fetch, wheels: bool, pythons: tuple[str, ...] = PYTHONS) -> tuple[list[str], int]:
    """Report lines and the number of problems (an unpinned line, or a pin without a wheel somewhere)."""
    lines, problems = [], 0
    for pin in pins:
        if pin.version is None:
            lines.append(f"{pin.name:<22} not an exact pin: {pin.line}")
            problems += 1
            continue
        project = fetch(f"{PYPI}/{pin.name}/json")
        newer = newer_versions(pin.version, project["releases"])
        lines.append(f"{pin.name:<22} {pin.version:<12} {summarize(pin.version, newer)}")
        if wheels:
            files = project["releases"].get(pin.version)
            if not files:
                problems += 1
                lines.append(f"{'':<22} the pinned release is not on PyPI")
                continue
            gaps = missing_wheels(pin, files, pythons)
            if gaps:
                problems += 1
                fallback = newest_covering(project["releases"], gaps)
                lines.append(f"{'':<22} NO WHEEL for {', '.join(f'{py} on {t}' for py, t in gaps)}; newest release "
                             f"that has them: {fallback or 'none'}")
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/check_updates.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--requirements", default=str(ROOT / "requirements.txt"))
    p.add_argument("--wheels", action="store_true", help="also check each pin's wheels for every supported Python "
                   "on Linux x86_64, Windows x64 and macOS arm64")
    p.add_argument("--python", action="append", help=f"a Python version to check wheels for (default: {PYTHONS})")
    args = p.parse_args(argv)
    pins = parse_requirements(Path(args.requirements).read_text(encoding="utf-8"))
    try:
        lines, problems = check(pins, fetch_json, args.wheels, tuple(args.python or PYTHONS))
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        print(f"Cannot reach PyPI ({reason}). This check needs the network; nothing was changed.\n"
              f"无法连接 PyPI（{reason}）。此检查需要联网；没有做任何改动。", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if problems:
        print(f"\n{problems} problem(s) above. 上面有 {problems} 个问题。")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
