"""Every file Danlu opens for the user, tried with the hostile corpus (tests/hostile_corpus.py): each entry point
answers each input with a message naming the file (exit 2 in the shell, a DanluError or a flagged result for the
page), never a traceback, and leaves the user's files as they were. The shell entry points run in-process through
launcher.main_in_venv, as `python launcher.py …` runs them, with stdout and stderr captured."""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_corpus import fingerprint, make_corpus

import launcher
from core.errors import DanluError


# input → name shown for it in the messages (a symlink loop is named by the link the user gave)
def _tag_with_list(p: Path, tmp: Path) -> tuple[list[str], Path]:
    """`tag DIR --model FOLDER` where the tagger folder's selected_tags.csv is the hostile file (the message names
    the tag list in that folder: the path the user gave)."""
    from taggers.wd14 import MODEL_FILE, TAGS_FILE

    model = tmp / "tagger"
    model.mkdir()
    (model / MODEL_FILE).symlink_to(TINY_TAGGER / MODEL_FILE)
    (model / TAGS_FILE).symlink_to(p)
    (tmp / "images").mkdir()
    return ["tag", str(tmp / "images"), "--model", str(model), "--cpu"], model / TAGS_FILE


SHELL = {
    "import": lambda p, tmp: ["import", str(p), "-o", str(tmp / "imported.toml")],
    "tag (its tag list)": _tag_with_list,
    "train --dry-run": lambda p, tmp: ["train", str(p), "--dry-run"],
    "check": lambda p, tmp: ["check", str(p), "--no-hash"],
    "queue add": lambda p, tmp: ["queue", "--outputs", str(tmp / "outputs"), "add", str(p)],
}


def _shell(argv: list[str]) -> tuple[str, int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = launcher.main_in_venv(argv)
    except SystemExit as e:  # argparse's own refusal
        code = e.code if isinstance(e.code, int) else 1
    except Exception:  # noqa: BLE001 - what the user would see as a traceback
        return "traceback", 1, traceback.format_exc()
    text = out.getvalue() + err.getvalue()
    return ("traceback" if "Traceback (most recent call last)" in text else "refused" if code == 2 else
            "accepted"), code, text


def _page(fn: Callable[[], object]) -> tuple[str, str]:
    """A page's handler shows a DanluError as its red line; anything else escaping it would be a traceback."""
    try:
        result = fn()
    except DanluError as e:
        return "refused", e.text("en")
    except Exception:  # noqa: BLE001
        return "traceback", traceback.format_exc()
    return "read", repr(result)[:300]


def _config(p: Path, tmp: Path) -> tuple[str, str]:
    from core import config as cfgmod

    return _page(lambda: cfgmod.load(p))


def _caption(p: Path, tmp: Path) -> tuple[str, str]:
    from core.dataset.captions import read_caption

    outcome, text = _page(lambda: read_caption(p))
    return outcome, text


def _image(p: Path, tmp: Path) -> tuple[str, str]:
    from core.dataset.images import inspect_image

    # the dataset's check table shows each image's row by its file name, with the error beside it
    outcome, text = _page(lambda: [i.code for i in inspect_image(p, decode=True).issues if i.level == "error"])
    return ("refused" if outcome == "read" and text != "[]" else outcome), f"{p.name}: {text}"


def _lora(p: Path, tmp: Path) -> tuple[str, str]:
    from models.lora_file import lora_family

    return _page(lambda: lora_family(p))


def _tag_list(p: Path, tmp: Path) -> tuple[str, str]:
    from taggers.wd14 import load_labels

    return _page(lambda: load_labels(p))


def _prompt_file(p: Path, tmp: Path) -> tuple[str, str]:
    """An imported config whose sample_prompts names the file (sd-scripts reads prompts from a .txt)."""
    from core.importers import convert

    link = tmp / "prompts.txt"  # the name the config gives: the message must name it
    link.symlink_to(p)
    outcome, text = _page(lambda: [(r.status, r.why_en) for r in convert("sd-scripts",
                                                                          {"sample_prompts": str(link)}).rows])
    return ("refused" if outcome == "read" and "unsupported" in text else outcome), text.replace(str(link), p.name)


PAGE = {"config load": _config, "caption": _caption, "image check": _image, "LoRA file": _lora,
        "tag list": _tag_list, "prompt file": _prompt_file}
# What a page entry point may do with a file it can read: a caption is any text (GBK and UTF-16 are decoded and
# flagged), so a caption or a prompt file may be read; the others must refuse every input of the corpus.
MAY_READ = {"caption", "prompt file"}


TINY_TAGGER = Path()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    global TINY_TAGGER
    from taggers.tiny import make_tiny_tagger

    TINY_TAGGER = make_tiny_tagger(tmp_path_factory.mktemp("tiny_tagger"))
    folder = tmp_path_factory.mktemp("hostile")
    return folder, make_corpus(folder)


RESULTS: list[tuple[str, str, str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def summary(corpus, request):
    folder, entries = corpus
    before = fingerprint(folder)
    yield
    after = fingerprint(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    tracebacks = [r for r in RESULTS if r[2] == "traceback"]
    line = (f"hostile corpus: {len(entries)} inputs; {len({r[0] for r in RESULTS})} entry points x {len(entries)} "
            f"inputs = {len(RESULTS)} tried; tracebacks: {len(tracebacks)}; changed user files: {len(changed)}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + line)  # shown without -s: the numbers are the point of the test
    assert not changed, changed


def _names(p: Path) -> list[str]:
    return [p.name, str(p)]  # the page's lines may name a file by its name alone (the check table's rows do)


@pytest.mark.parametrize("entry", list(SHELL) + list(PAGE))
def test_every_entry_point_answers_every_hostile_input(entry, corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(launcher.ROOT)
    _, entries = corpus
    wrong = []
    for name, path in entries.items():
        case = tmp_path / name.replace(".", "_")
        case.mkdir()
        if entry in SHELL:
            built = SHELL[entry](path, case)
            argv, shown = built if isinstance(built, tuple) else (built, path)
            outcome, code, text = _shell(argv)
            named = any(n in text for n in _names(shown))
            ok = outcome == "refused" and named
        else:
            outcome, text = PAGE[entry](path, case)
            ok = outcome == "refused" and any(n in text for n in _names(path)) or \
                outcome == "read" and entry in MAY_READ
        RESULTS.append((entry, name, outcome, text))
        if not ok:
            wrong.append(f"{name}: {outcome}\n{text[-1500:]}")
    assert not wrong, f"{entry}:\n" + "\n---\n".join(wrong)


def test_the_import_messages_say_what_the_file_is(corpus):
    _, entries = corpus
    said = {name: _shell(["import", str(entries[name]), "-o", "/nonexistent/never.toml"])
            for name in ("noise.bin", "gbk.toml", "empty.toml", "no_known_key.toml", "json_syntax.json")}
    assert all(code == 2 and "UnicodeDecodeError" not in text for _, code, text in said.values())
    assert "binary data" in said["noise.bin"][2] and "GBK" in said["gbk.toml"][2]
    assert "empty" in said["empty.toml"][2]
    assert "found: colour, favourite_number" in said["no_known_key.toml"][2]
    json_said = said["json_syntax.json"][2]
    assert "looks like JSON" in json_said and "line 3, column 18" in json_said
    assert "TOML" not in json_said.split("\n")[0]
