"""Sentence captioners on tiny random-weight Florence-2 and Qwen3-VL models: real loading, batching, cancel,
the caption layout with WD tags, backups, the offline message and `launcher.py caption`."""

from __future__ import annotations

import json
import threading

import pytest
from PIL import Image

from core.dataset.captions import BACKUP_DIR
from core.errors import DanluError
from taggers.caption_cli import main
from taggers.caption_pipeline import CaptionOptions, caption_folder, compose
from taggers.captioners import Captioner, model_kind, resolve_captioner
from taggers.tiny import make_tiny_tagger
from taggers.tiny_captioners import make_tiny_florence2, make_tiny_qwen3_vl
from taggers.wd14 import Tagger, TagOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def captioners(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioners")
    return {"florence2": Captioner(make_tiny_florence2(root / "florence2")),
            "qwen3_vl": Captioner(make_tiny_qwen3_vl(root / "qwen3_vl"))}


def _ds(root, n=5):
    sub = root / "10_sks"
    sub.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (40 + 7 * i, 30 + 5 * i), (40 * i, 200 - 30 * i, 90)).save(sub / f"{i}.png")
    return sub


@pytest.mark.parametrize("kind", ["florence2", "qwen3_vl"])
def test_batched_captions_equal_one_at_a_time(captioners, kind):
    cap = captioners[kind]
    assert cap.kind == kind and cap.device == "cpu"
    pics = [Image.new("RGB", (40 + 9 * i, 64 - 8 * i), (60 * i, 30, 200 - 50 * i)) for i in range(4)]
    batched = cap.caption(pics, "detailed", 8)
    assert batched == [cap.caption([p], "detailed", 8)[0] for p in pics]   # padding changes nothing
    assert all(batched) and len(set(batched)) > 1                         # image-dependent text
    assert all("\n" not in t for t in batched)
    assert cap.caption(pics[:1], "short", 4) != [""]


def test_folder_prefix_skip_overwrite_and_backups(tmp_path, captioners):
    sub = _ds(tmp_path / "ds")
    (sub / "0.txt").write_text("hand written", encoding="utf-8")
    opts = CaptionOptions(style="short", prefix="sks", max_new_tokens=6)
    report = caption_folder(tmp_path / "ds", captioners["florence2"], opts, "skip", batch_size=2)
    assert (report.total, len(report.written), report.skipped, report.backups) == (5, 4, 1, 0)
    assert (sub / "0.txt").read_text(encoding="utf-8") == "hand written"
    assert all((sub / f"{i}.txt").read_text(encoding="utf-8").startswith("sks, ") for i in range(1, 5))
    report = caption_folder(tmp_path / "ds", captioners["qwen3_vl"], opts, "overwrite", batch_size=3)
    assert len(report.written) == 5 and report.backups == 5 and report.images_per_s > 0
    saved = tmp_path / "ds" / BACKUP_DIR / report.backup_stamp / "10_sks" / "0.txt"
    assert saved.read_text(encoding="utf-8") == "hand written"


def test_cancel_keeps_finished_batches(tmp_path, captioners):
    sub = _ds(tmp_path / "ds", n=6)
    cancel, seen = threading.Event(), []

    def progress(p):
        seen.append(p)
        if p.done >= 2:
            cancel.set()

    report = caption_folder(tmp_path / "ds", captioners["qwen3_vl"], CaptionOptions(max_new_tokens=4),
                            batch_size=2, workers=1, progress=progress, cancel=cancel)
    assert report.cancelled and len(report.written) == 2
    assert sorted(p.name for p in sub.glob("*.txt")) == ["0.txt", "1.txt"]
    assert seen[-1].eta_s > 0 and seen[-1].images_per_s > 0


def test_sentence_and_tags_from_the_wd_tagger(tmp_path, captioners):
    sub = _ds(tmp_path / "ds", n=3)
    tagger = Tagger(make_tiny_tagger(tmp_path / "tagger"), device="cpu")
    opts = CaptionOptions(prefix="sks, simple background", max_new_tokens=5, combine="sentence+tags")
    report = caption_folder(tmp_path / "ds", captioners["florence2"], opts, tagger=tagger,
                            tag_opts=TagOptions(general_threshold=0.5))
    text = (sub / "0.txt").read_text(encoding="utf-8")
    assert len(report.written) == 3 and text.startswith("sks, simple background, ")
    assert text.count("simple background") == 1 and "white background" in text   # a tag, and not twice
    only_tags = caption_folder(tmp_path / "ds", None, CaptionOptions(combine="tags"), "overwrite", tagger=tagger)
    tags = only_tags.captions[sub / "0.png"].split(", ")
    assert {"simple background", "white background"} <= set(tags) and len(tags) == len(set(tags))


def test_compose_layout():
    both = CaptionOptions(prefix="sks", combine="sentence+tags")
    assert compose("A cat.", ["cat", "sks"], both) == "sks, A cat., cat"
    assert compose("A cat.", ["cat"], CaptionOptions(combine="sentence")) == "A cat."
    assert compose("", ["cat", "cat"], CaptionOptions(prefix="", combine="tags")) == "cat"


def test_option_errors_and_refused_models(tmp_path, captioners):
    with pytest.raises(DanluError, match="WD tagger"):
        caption_folder(tmp_path, captioners["florence2"], CaptionOptions(combine="sentence+tags"))
    with pytest.raises(DanluError, match="combine"):
        caption_folder(tmp_path, captioners["florence2"], CaptionOptions(combine="both"))
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "florence2", "auto_map": {"AutoConfig": "x.y"}}))
    with pytest.raises(DanluError, match="trust_remote_code"):
        model_kind(remote)
    with pytest.raises(DanluError, match="not downloaded"):
        resolve_captioner("florence-2-base", local_files_only=True)
    with pytest.raises(DanluError, match="neither a folder"):
        resolve_captioner(str(tmp_path / "missing"))


def test_cli_caption(tmp_path, capsys, captioners):
    sub = _ds(tmp_path / "ds", n=3)
    rc = main([str(tmp_path / "ds"), "--model", str(captioners["florence2"].folder), "--prefix", "sks",
               "--max-length", "5", "--style", "short", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 written" in out and "florence2" in out
    assert (sub / "2.txt").read_text(encoding="utf-8").startswith("sks, ")
    assert main([str(tmp_path / "ds"), "--model", "florence-2-base"]) == 2
    assert "not downloaded" in capsys.readouterr().err


def test_qwen_chat_template_from_the_processor_json(tmp_path):
    """Hub Qwen-VL repos keep the template in chat_template.json, which the tokenizer alone does not read."""
    folder = make_tiny_qwen3_vl(tmp_path / "qwen")
    template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}), encoding="utf-8")
    assert Captioner(folder).caption([Image.new("RGB", (30, 40))], "short", 3)[0]
