"""The Tools tab's runner: progress with ETA while a tool works, Cancel between modules leaves no file and says so
in orange, an error is said in red, a result in green with the file offered; output names never replace a file."""

from __future__ import annotations

import time

import pytest

import ui.tab_tools  # noqa: F401 - defines the tools' names (tools.resizing, …)
from ui import i18n
from ui.tools_jobs import cancel_tool, output_path, parse_weights, run_tool


def _slow_tool(out, modules: int = 40):
    def work(job):
        from models.toolbox.common import atomic_output

        with atomic_output(out, []) as f:
            for i in range(modules):
                job.step(i, modules, f"module {i}")
                f.write(b"x" * 8)
                time.sleep(0.05)
        return type("Report", (), {"out": out, "text": lambda self, lang: "written"})()
    return work


def test_cancel_leaves_no_file_and_says_so(tmp_path):
    out = tmp_path / "slow.safetensors"
    steps = run_tool("tools.resizing", _slow_tool(out), lambda r, lang: r.text(lang), "en")
    token, progress, *_ = next(steps)
    assert token and "starting" in progress
    for _, progress, *_ in steps:
        if "ETA" in str(progress):
            break
    assert "Resizing:" in progress and "%" in progress
    said = cancel_tool(token, "zh")
    assert said.classes == i18n.LEVELS["warn"] and "取消" in said
    last = list(steps)[-1]
    assert last[2].classes == i18n.LEVELS["warn"] and "no file was written" in last[2].to("en")
    assert not out.exists() and not list(tmp_path.iterdir())  # not even the temporary file
    assert "Nothing is running" in cancel_tool(token, "en")


def test_result_is_green_with_its_file_and_errors_are_red(tmp_path):
    out = tmp_path / "quick.safetensors"
    last = list(run_tool("tools.merging", _slow_tool(out, 2), lambda r, lang: r.text(lang), "en"))[-1]
    assert last[2].classes == i18n.LEVELS["ok"] and "Saved to" in last[2] and last[3]["value"] == str(out)

    def broken(job):
        from models.toolbox.common import open_lora

        return open_lora(tmp_path / "missing.safetensors")

    last = list(run_tool("tools.inspecting", broken, lambda r, lang: "", "zh"))[-1]
    assert last[2].classes == i18n.LEVELS["error"] and "不存在" in last[2] and "does not exist" in last[2].to("en")


def test_output_names_and_weights(tmp_path):
    first = output_path(tmp_path, "", "a-merged")
    assert first == tmp_path / "a-merged.safetensors"
    first.write_bytes(b"")
    assert output_path(tmp_path, "a-merged.safetensors", "x") == tmp_path / "a-merged-2.safetensors"
    assert output_path(tmp_path, "../../elsewhere", "x").parent == tmp_path  # a name, never a path out
    assert parse_weights("0.7, 0.3", 3) == [0.7, 0.3, 1.0] and parse_weights("1，-0.5", 2) == [1.0, -0.5]
    from core.errors import DanluError

    with pytest.raises(DanluError, match="not a list of numbers"):
        parse_weights("0.7, strong", 2)
