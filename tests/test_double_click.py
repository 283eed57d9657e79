"""Danlu.command (macOS) and Danlu.bat (Windows): find Python 3.11-3.12 and run launcher.py, or say where to get it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash to run Danlu.command")


def _fake_python(folder: Path, name: str, version: tuple[int, int]) -> None:
    """An interpreter that answers the version check like Python `version` and records the arguments it ran."""
    ok = 0 if (3, 11) <= version <= (3, 12) else 1
    path = folder / name
    path.write_text(f'#!{BASH}\nif [ "$1" = -c ]; then exit {ok}; fi\necho "{name} ran $* in $PWD"\n')
    path.chmod(0o755)


def _run(tmp_path: Path, pythons: dict[str, tuple[int, int]]) -> subprocess.CompletedProcess:
    app = tmp_path / "Danlu 丹炉"
    app.mkdir()
    shutil.copy2(ROOT / "Danlu.command", app / "Danlu.command")
    (app / "launcher.py").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, version in pythons.items():
        _fake_python(bin_dir, name, version)
    # started from another folder, as Finder does, with only the fake interpreters on PATH
    return subprocess.run([BASH, str(app / "Danlu.command"), "--lang", "zh"], capture_output=True, text=True,
                          cwd=tmp_path, env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60)


def test_command_runs_launcher_in_its_folder_with_a_supported_python(tmp_path):
    out = _run(tmp_path, {"python3": (3, 9), "python3.11": (3, 11), "python": (3, 12)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"python3.11 ran launcher.py --lang zh in {tmp_path / 'Danlu 丹炉'}"


def test_command_prefers_3_12_and_skips_an_old_python3(tmp_path):
    (tmp_path / "a").mkdir()
    out = _run(tmp_path / "a", {"python3": (3, 9), "python3.12": (3, 12), "python3.11": (3, 11)})
    assert out.stdout.startswith("python3.12 ran launcher.py")
    (tmp_path / "b").mkdir()
    out = _run(tmp_path / "b", {"python3": (3, 12)})
    assert out.stdout.startswith("python3 ran launcher.py")


def test_command_without_python_says_where_to_get_it(tmp_path):
    out = _run(tmp_path, {"python3": (3, 9), "python": (3, 10)})
    assert out.returncode == 1
    assert "Python 3.11 or 3.12" in out.stdout and "python.org/downloads/macos" in out.stdout
    assert "丹炉需要 Python 3.11 或 3.12" in out.stdout


def test_command_is_executable_in_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    mode = subprocess.run(["git", "ls-files", "-s", "Danlu.command"], capture_output=True, text=True, cwd=ROOT)
    if not mode.stdout:
        pytest.skip("Danlu.command is not committed yet")
    assert mode.stdout.startswith("100755")


def test_bat_finds_py_or_python_and_keeps_the_window_open_on_errors():
    text = (ROOT / "Danlu.bat").read_bytes().decode("utf-8")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")  # cmd.exe wants CRLF
    lines = [line.strip() for line in text.splitlines()]
    assert 'cd /d "%~dp0"' in lines
    assert any(line.startswith("py -3 -c") for line in lines) and any("python -c" in line for line in lines)
    assert "%PY% launcher.py %*" in lines and "if errorlevel 1 pause" in lines
    assert "python.org/downloads/windows" in text and "3.11 或 3.12" in text and text.count("pause") == 2
    assert 'DANLU_LAUNCHED_BY=Danlu.bat' in text  # launcher.py then leaves the pause to the .bat
    assert "(3, 11) <= sys.version_info[:2] <= (3, 12)" in text
