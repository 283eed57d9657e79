"""Browser tests find a browser or say how to get one; under CI=true a skipped browser test fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import conftest
import pytest

ROOT = Path(__file__).resolve().parent.parent


class FakeChromium:
    def __init__(self, works: set[str]):
        self.works, self.calls = works, []

    def launch(self, **kwargs):
        key = kwargs.get("channel") or kwargs.get("executable_path")
        self.calls.append(key)
        if key not in self.works:
            raise RuntimeError(f"{key} is not installed")
        return key


def test_channels_are_tried_after_the_local_programs(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "CHROMIUM", str(tmp_path / "missing"))
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("DANLU_BROWSER", raising=False)
    fake = FakeChromium({"msedge"})
    assert conftest.launch_browser(fake) == "msedge"
    assert fake.calls == ["chrome", "msedge"]
    assert conftest.launch_browser(FakeChromium(set())) is None


def test_danlu_browser_comes_first(monkeypatch, tmp_path):
    exe = tmp_path / "chrome"
    exe.write_text("")
    monkeypatch.setenv("DANLU_BROWSER", str(exe))
    fake = FakeChromium({str(exe), "chrome"})
    assert conftest.launch_browser(fake) == str(exe)
    assert fake.calls == [str(exe)]


@pytest.mark.parametrize("ci", ["", "true"])
def test_no_browser_skips_with_one_line_or_fails_under_ci(tmp_path, ci):
    (tmp_path / "conftest.py").write_text(  # Danlu's fixtures and hook, with no browser to be found
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('danlu_conftest', {str(ROOT / 'tests' / 'conftest.py')!r})\n"
        "danlu = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(danlu)\n"
        "danlu.launch_browser = lambda chromium: None\n"
        "browser, pytest_runtest_makereport = danlu.browser, danlu.pytest_runtest_makereport\n"
        "pytest_terminal_summary = danlu.pytest_terminal_summary\n")
    (tmp_path / "test_b.py").write_text("def test_one(browser):\n    pass\n\ndef test_two(browser):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    if ci:
        assert out.returncode == 1 and "2 errors" in out.stdout, out.stdout
        assert "CI=true: browser tests must run" in out.stdout
    else:
        assert out.returncode == 0 and "2 skipped" in out.stdout, out.stdout
        lines = [line for line in out.stdout.splitlines() if "browser tests skipped" in line]
        assert len(lines) == 1 and lines[0].startswith("2 ") and "apt install chromium" in lines[0], out.stdout
