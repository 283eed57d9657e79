#!/usr/bin/env python3
"""Danlu 丹炉 — the one entry point.

    python launcher.py            first run: creates .venv and installs requirements.txt, then opens the UI
    python launcher.py test       the same bootstrap, then the whole test suite
    python launcher.py --help     every subcommand

Only the standard library is imported before the bootstrap hands over to the .venv interpreter.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP_NAME = "danlu-requirements.sha256"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"

SUBCOMMANDS = {
    "ui": "start the browser UI (the default): --port, --no-browser, --listen --auth user:password, --lang",
    "train": "train a LoRA from a run TOML: train RUN.toml [--set section.key=value] [--resume] [--dry-run]",
    "tag": "auto-tag a dataset folder with a WD1.4 ONNX tagger: tag DIR [options]",
    "caption": "caption a dataset folder in sentences (Florence-2, Qwen3-VL), optionally with WD tags: caption DIR",
    "grid": "render an XYZ grid of epochs x LoRA weights: grid RUN.toml --weights 0.3,0.6,0.8 [...]",
    "check": "detect a base model's family, prediction type, resolution and hash: check MODEL",
    "demo": "write a tiny demo model, dataset and run.toml under outputs/demo (no network needed)",
    "queue": "the run queue: queue add RUN.toml ... | list | remove ID | cancel ID | up/down ID | pause | run",
    "import": "turn an sd-scripts / kohya_ss / lora-scripts config into a Danlu run TOML: import FILE [-o OUT.toml]",
    "lora": "LoRA tools: lora info FILE | meta | resize | merge | extract | convert (lora --help for each)",
    "test": "run the whole test suite",
}
# Subcommands that run in a module of the project: (module, function taking argv, returning the exit code).
HANDLERS = {
    "ui": ("ui.serve", "main"),
    "train": ("training.cli", "main"),
    "tag": ("taggers.cli", "main"),
    "caption": ("taggers.caption_cli", "main"),
    "grid": ("models.grid.cli", "main"),
    "check": ("models.detect", "main"),
    "demo": ("models.demo", "main"),
    "queue": ("core.runs.cli", "main"),
    "import": ("core.importers.cli", "main"),
    "lora": ("models.toolbox.cli", "main"),
}
# Steps run after a handler succeeded, with the same arguments. The demo's tagger comes from taggers/, which
# models/demo.py may not import (models depend on core only).
FOLLOW_UPS = {"demo": [("taggers.tiny", "demo_main")]}


# --------------------------------------------------------------------------------------------- bootstrap

def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_venv(venv: Path = VENV) -> bool:
    try:
        return Path(sys.prefix).resolve() == venv.resolve()
    except OSError:
        return False


def requirements_hash(path: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def needs_install(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> bool:
    """True when the venv is new or requirements.txt changed since the last successful install."""
    stamp = venv / STAMP_NAME
    return not stamp.exists() or stamp.read_text().strip() != requirements_hash(requirements)


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (nvidia-smi answers)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def torch_index(system: str, nvidia: bool) -> str | None:
    """The extra index that serves a CUDA build of torch, or None for the default index.

    PyPI serves CUDA builds of torch for Linux, and CPU-only wheels for Windows; macOS has no CUDA.
    So only Windows with an NVIDIA GPU needs PyTorch's own index.
    """
    if system == "Windows" and nvidia:
        return TORCH_CUDA_INDEX
    return None


def torch_requirement(requirements: Path = REQUIREMENTS) -> str | None:
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("torch==") or line == "torch":
            return line
    return None


def install_commands(python: Path, system: str, nvidia: bool, requirements: Path = REQUIREMENTS) -> list[list[str]]:
    """The pip commands that install the requirements (progress visible: no -q)."""
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    cmds = []
    index = torch_index(system, nvidia)
    torch_req = torch_requirement(requirements)
    if index and torch_req:
        cmds.append(pip + [torch_req, "--index-url", index])
    cmds.append(pip + ["-r", str(requirements)])
    return cmds


def bootstrap() -> None:
    """Create .venv, install requirements.txt when it changed. Prints what it does."""
    if sys.version_info < (3, 11):  # the pinned diffusers, transformers, numpy … publish no wheels for 3.10
        raise SystemExit(f"Danlu needs Python 3.11 or 3.12; this is {platform.python_version()}. "
                         "Install Python 3.12 from python.org and run `python launcher.py` with it.\n"
                         "丹炉需要 Python 3.11 或 3.12，请从 python.org 安装 Python 3.12 后再运行。")
    python = venv_python()
    if not python.exists():
        print(f"[Danlu] Creating the virtual environment in {VENV} …  正在创建虚拟环境…", flush=True)
        import venv

        venv.EnvBuilder(with_pip=True).create(VENV)
    if needs_install():
        print("[Danlu] Installing requirements.txt (first run or requirements changed; this takes a while) …\n"
              "[丹炉] 正在安装依赖（首次运行或依赖有变化，需要一些时间）…", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "pip"],
                       check=False)
        for cmd in install_commands(python, platform.system(), has_nvidia_gpu()):
            if subprocess.run(cmd).returncode != 0:
                raise SystemExit("[Danlu] Installing the requirements failed; see pip's message above. "
                                 "Check the network and run `python launcher.py` again.\n"
                                 "[丹炉] 依赖安装失败，请查看上方 pip 的信息，检查网络后重新运行。")
        (VENV / STAMP_NAME).write_text(requirements_hash())


# ---------------------------------------------------------------------------------------------- dispatch

def dispatch(command: str, argv: list[str]) -> int:
    """Run the subcommand's handler, then its follow-up when the handler succeeded."""
    if command == "test":
        # Two pytest-xdist workers, one a core of a 2-core machine, each module on one worker (tests/conftest.py
        # hands the longest out first). `test -n 0` runs the suite in one process.
        cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests"), "-q", "-p", "no:cacheprovider",
               "-n", "2", "--dist", "loadfile", *argv]
        print("[Danlu] " + " ".join(cmd), flush=True)
        return subprocess.call(cmd, cwd=ROOT)
    import importlib

    code = 0
    for module_name, func in [HANDLERS[command], *FOLLOW_UPS.get(command, [])]:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            print(f"[Danlu] '{command}' is not available in this version.", file=sys.stderr)
            return 2
        code = getattr(module, func)(argv)
        if code:
            return code
    return code


def main_in_venv(argv: list[str]) -> int:
    """Parse the command line and run it, turning errors into messages and exit codes."""
    sys.path.insert(0, str(ROOT))
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "ui"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    from core.cli_paths import from_shell_folder

    rest = from_shell_folder(rest, Path.cwd(), ROOT)
    os.chdir(ROOT)
    from core.errors import DanluError

    try:
        return dispatch(command, rest)
    except DanluError as e:
        print(f"[Danlu] {e.text()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def help_text() -> str:
    lines = ["usage: python launcher.py [SUBCOMMAND] [options]", "",
             "Danlu 丹炉: a local LoRA trainer for SD1.5, SD2.x, SDXL and Z-Image.", "",
             "The first run creates .venv and installs requirements.txt. Subcommands:"]
    lines += [f"  {name:<7} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "`python launcher.py SUBCOMMAND --help` shows a subcommand's options."]
    return "\n".join(lines)


def launched_by_double_click(system: str, console_processes: int | None, stdin_tty: bool) -> bool:
    """On Windows a double-clicked script gets a console of its own: only it (and py.exe) are attached."""
    return system == "Windows" and console_processes is not None and console_processes <= 2 and stdin_tty


def console_process_count() -> int | None:
    if os.name != "nt":
        return None
    try:
        import ctypes

        buf = (ctypes.c_uint * 16)()
        return int(ctypes.windll.kernel32.GetConsoleProcessList(buf, 16))
    except (OSError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if not in_venv():
        bootstrap()
        return subprocess.call([str(venv_python()), str(ROOT / "launcher.py"), *argv])
    if needs_install():  # run with the venv's python after requirements.txt changed
        bootstrap()
    return main_in_venv(argv)


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            print(exc.code, file=sys.stderr)
    except Exception:
        import traceback

        traceback.print_exc()
        code = 1
    # Danlu.bat pauses on an error itself; a double-clicked launcher.py keeps its window open here.
    if code not in (0, None) and os.environ.get("DANLU_LAUNCHED_BY") != "Danlu.bat" and launched_by_double_click(
            platform.system(), console_process_count(), sys.stdin is not None and sys.stdin.isatty()):
        input("\nPress Enter to close this window.  按回车键关闭窗口。")
    sys.exit(code or 0)
