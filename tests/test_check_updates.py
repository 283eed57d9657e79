"""tools/check_updates.py without the network: parsing pins, markers, wheel tags, newer releases, offline message."""

from __future__ import annotations

import urllib.error

import pytest

from tools import check_updates as cu


def _file(name, requires_python=None, yanked=False):
    return {"filename": name, "requires_python": requires_python, "yanked": yanked}


def test_every_line_of_requirements_txt_is_an_exact_pin_and_torch_stays():
    pins = cu.parse_requirements((cu.ROOT / "requirements.txt").read_text(encoding="utf-8"))
    assert pins and all(p.version for p in pins), [p.line for p in pins if not p.version]
    by_name = {p.name: p for p in pins}
    assert by_name["torch"].version == "2.13.0"
    assert by_name["tomli"].marker == 'python_version < "3.11"'
    assert "darwin" in by_name["onnxruntime"].marker and "darwin" in by_name["bitsandbytes"].marker


def test_parse_pins_markers_and_loose_lines():
    text = "# comment\n\n-r other.txt\nfoo==1.2.3  # why\nBar_Baz==2.0; sys_platform != 'darwin'\nqux>=1.0\n"
    pins = cu.parse_requirements(text)
    assert [(p.name, p.version) for p in pins] == [("foo", "1.2.3"), ("Bar_Baz", "2.0"), ("qux", None)]
    assert not cu.marker_applies(pins[1], "3.11", "macos arm64")
    assert cu.marker_applies(pins[1], "3.11", "windows x64") and cu.marker_applies(pins[0], "3.12", "macos arm64")


@pytest.mark.parametrize("name,python,target,fits", [
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "3.11", "linux x86_64", True),
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "3.12", "linux x86_64", False),
    ("torch-2.13.0-cp312-cp312-manylinux_2_28_aarch64.whl", "3.12", "linux x86_64", False),
    ("torch-2.13.0-cp312-cp312-win_amd64.whl", "3.12", "windows x64", True),
    ("torch-2.13.0-cp312-cp312-macosx_14_0_arm64.whl", "3.12", "macos arm64", True),
    ("x-1.0-cp312-cp312-macosx_15_0_arm64.whl", "3.12", "macos arm64", False),  # newer than the macOS floor
    ("x-1.0-cp311-cp311-macosx_10_9_universal2.whl", "3.11", "macos arm64", True),
    ("x-1.0-cp311-abi3-win_amd64.whl", "3.12", "windows x64", True),
    ("x-1.0-py3-none-any.whl", "3.11", "macos arm64", True),
    ("x-1.0.tar.gz", "3.11", "linux x86_64", False),
])
def test_wheel_tags(name, python, target, fits):
    assert cu.wheel_fits(_file(name), python, target) is fits


def test_requires_python_and_yanked_files_do_not_count():
    assert not cu.wheel_fits(_file("x-1.0-py3-none-any.whl", ">=3.12"), "3.11", "linux x86_64")
    assert cu.wheel_fits(_file("x-1.0-py3-none-any.whl", ">=3.11"), "3.11", "linux x86_64")
    assert not cu.wheel_fits(_file("x-1.0-py3-none-any.whl", yanked=True), "3.11", "linux x86_64")


def test_newer_versions_skip_prereleases_yanked_and_empty():
    releases = {"1.0": [_file("a")], "1.1": [_file("a")], "2.0rc1": [_file("a")], "1.2": [_file("a", yanked=True)],
                "1.3": [], "2.0": [_file("a")], "junk version": [_file("a")]}
    assert cu.newer_versions("1.0", releases) == ["1.1", "2.0"]
    assert cu.summarize("1.0", ["1.1", "2.0"]) == "newest 2.0 (newest 1.x: 1.1); 2 newer release(s)"
    assert cu.summarize("2.0", []) == "up to date"


def test_check_reports_missing_wheels_and_the_newest_release_that_has_them():
    project = {"releases": {
        "1.0": [_file(f"x-1.0-cp3{m}-cp3{m}-{plat}.whl") for m in (11, 12)
                for plat in ("manylinux_2_17_x86_64", "win_amd64", "macosx_11_0_arm64")],
        "2.0": [_file(f"x-2.0-cp312-cp312-{plat}.whl") for plat in ("manylinux_2_28_x86_64", "win_amd64")]}}
    lines, problems = cu.check(cu.parse_requirements("x==2.0\n"), lambda url: project, wheels=True)
    assert problems == 1
    assert "up to date" in lines[0]
    assert "3.11 on linux x86_64" in lines[1] and "3.12 on macos arm64" in lines[1]
    assert "newest release that has them: 1.0" in lines[1]
    lines, problems = cu.check(cu.parse_requirements("x==1.0\n"), lambda url: project, wheels=True)
    assert problems == 0 and "newest 2.0" in lines[0]


def test_offline_says_so_in_both_languages(tmp_path, capsys, monkeypatch):
    def offline(url, timeout=20):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(cu, "fetch_json", offline)
    req = tmp_path / "requirements.txt"
    req.write_text("x==1.0\n")
    assert cu.main(["--requirements", str(req)]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach PyPI (Name or service not known)" in err and "无法连接 PyPI" in err
