"""The page says where the user meets a damaged state file: a run's trainer.json and events.jsonl on the Train tab's
run view, a caption backup on the Tagging tab's restore line, a downloaded tag list or captioner config on the
tagger's and captioner's status lines. Each file is damaged here, the handler is driven as the page drives it, and
the line is checked for what happened, where the damaged file went, what was recovered, and its orange level."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from ui.i18n import LEVELS, Translator

WARN = LEVELS["warn"]


def aside_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.damaged-*"))


@pytest.fixture
def train_view(tmp_path):
    """The Train tab's look (the handler its timer calls), on an outputs folder and a server that runs nothing."""
    from core.runs.supervisor import Supervisor
    from ui import tab_train, train_live
    from ui.context import AppContext

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    with gr.Blocks():
        ctx = AppContext(lang=gr.State("en"), config=gr.State({}), tr=Translator(), tabs=None, root=tmp_path,
                         outputs_dir=outputs, models_dir=tmp_path / "models")
        c = tab_train._layout(ctx, "en")
    view, _ = tab_train._make_view(ctx, Supervisor(tmp_path), c)
    warnings = train_live.PARTS.index("warnings")

    def look(lang: str, picked: str = "", seen: dict | None = None) -> tuple[dict, dict]:
        out = view(lang, "", picked, seen)
        return out[warnings], out[-1]

    assert c.warnings.elem_classes == WARN  # the line the notices go to is orange
    return outputs, look


def test_a_damaged_trainer_record_is_told_on_the_train_tab(train_view):
    from core.runs.supervisor import PROCESS_FILE

    outputs, look = train_view
    record = outputs / "portrait" / PROCESS_FILE
    record.parent.mkdir()
    record.write_bytes(b'{"pid": 12, "argv": "python launch')  # cut off mid-write before a restart
    shown, seen = look("en")  # the first look after the restart searches for a trainer still running
    kept = aside_of(record)
    assert len(kept) == 1 and not record.exists()
    assert shown["visible"] and f"⚠ The trainer record {record} was damaged" in shown["value"]
    assert f"kept as {kept[0]}" in shown["value"] and "No trainer is followed from it" in shown["value"]
    zh, _ = look("zh", seen=seen)
    assert f"训练进程记录 {record} 已损坏" in zh["value"] and f"已保留为 {kept[0]}" in zh["value"]


def test_a_damaged_event_log_is_told_on_the_run_view(train_view):
    outputs, look = train_view
    run = outputs / "style"
    run.mkdir()
    log = run / "events.jsonl"
    log.write_bytes(b'{"type": "start", "time": 1}\n\x00\xff garbage\n'
                    b'{"type": "progress", "step": 3, "total": 10, "epoch": 1, "loss": 0.12}\n')
    shown, seen = look("en", picked=str(run))  # the user picks the run to look at it
    kept = aside_of(log)
    assert len(kept) == 1 and log.exists()  # copied: a trainer may still append to it
    assert shown["visible"] and f"⚠ The event log {log} was damaged (1 line(s) are not events)" in shown["value"]
    assert f"kept as {kept[0]}" in shown["value"] and "Its readable events are shown" in shown["value"]
    zh, seen = look("zh", picked=str(run), seen=seen)
    assert f"事件日志 {log} 已损坏（有 1 行不是事件）" in zh["value"]
    other, _ = look("en", seen=seen)  # back to the live view: the notice belongs to that run, not to every one
    assert str(log) not in (other.get("value") or "")


def test_a_damaged_caption_backup_is_told_on_the_restore_line(tmp_path):
    from core.dataset.captions import list_backups, write_caption
    from core.dataset.tags import TagEditor
    from ui.tagging import edits, state

    ds = tmp_path / "ds" / "2_x"
    ds.mkdir(parents=True)
    for name in ("a", "b"):
        (ds / f"{name}.png").write_bytes(b"")
        (ds / f"{name}.txt").write_text(f"first {name}", encoding="utf-8")
        write_caption(ds / f"{name}.txt", f"second {name}", stamp="s1", dataset_root=tmp_path / "ds")
    backup = list_backups(tmp_path / "ds")[0]
    damaged = backup.folder / "2_x" / "a.txt"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")  # noise where a caption was
    state.EDITORS["restore"] = TagEditor(tmp_path / "ds")
    try:
        line = edits.on_restore(SimpleNamespace(session_hash="restore"), "en", "s1")
    finally:
        state.EDITORS.pop("restore", None)
    kept = aside_of(damaged)
    assert len(kept) == 1 and line.classes == WARN
    assert line.to("en").startswith("⚠ Restored 1 files") and "1 file(s) of the backup were damaged" in line
    assert f"The caption backup {damaged} was damaged (not text); kept as {kept[0]}" in line
    assert "the rest of the backup was restored" in line
    assert "备份中有 1 个文件已损坏" in line.to("zh") and f"已保留为 {kept[0]}" in line.to("zh")
    assert (ds / "a.txt").read_text(encoding="utf-8") == "second a"  # left as it was
    assert (ds / "b.txt").read_text(encoding="utf-8") == "first b"


def _hub_snapshot(root: Path, name: str, raw: bytes) -> tuple[Path, Path]:
    """A hub-cache snapshot folder whose `name` links into blobs/, as a download leaves it; (snapshot, blob)."""
    blob = root / "blobs" / "3f1a"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(raw)
    snapshot = root / "snapshots" / "main"
    snapshot.mkdir(parents=True)
    (snapshot / name).symlink_to(blob)
    return snapshot, blob


def test_a_damaged_downloaded_tag_list_is_told_on_the_tagger_line(tmp_path):
    from taggers.options import TagRequest
    from taggers.tiny import make_tiny_tagger
    from taggers.wd14 import MODEL_FILE, TAGS_FILE
    from ui.tagging import auto

    tiny = make_tiny_tagger(tmp_path / "tiny", size=32, dynamic=False, v3=False)
    snapshot, blob = _hub_snapshot(tmp_path / "hub", TAGS_FILE, b"tag_id,name,category,count\n9,general,9,1\n1,1gi")
    shutil.copy(tiny / MODEL_FILE, snapshot / MODEL_FILE)
    (tmp_path / "ds").mkdir()
    _, line = list(auto.run_tagger(str(tmp_path / "ds"), TagRequest(str(snapshot)), "en", "damaged"))[-1]
    kept = aside_of(blob)
    assert len(kept) == 1 and not blob.exists() and line.classes == WARN
    assert line.to("en").startswith(f"⚠ The downloaded tag list {snapshot / TAGS_FILE} was damaged")
    assert f"kept as {kept[0]}" in line and "The next run downloads it again." in line
    assert "Start the tagging again" in line  # what to do
    assert line.to("zh").startswith(f"⚠ 下载的标签表 {snapshot / TAGS_FILE} 已损坏")
    _, line = list(auto.run_tagger(str(tmp_path / "ds"), TagRequest(str(tmp_path / "nowhere")), "en", "x"))[-1]
    assert line.classes == LEVELS["error"]  # any other failure stays red


def test_a_damaged_downloaded_captioner_config_is_told_on_the_caption_line(tmp_path):
    from ui.tagging import captions

    snapshot, blob = _hub_snapshot(tmp_path / "hub", "config.json", b'{"model_type": "florence2", "vision_con')
    (tmp_path / "ds").mkdir()
    _, line = list(captions.run_captioner(str(tmp_path / "ds"), str(snapshot), "short", "sentence", False, 40,
                                          "overwrite", 1, "", ".txt", "", 0.35, 0.85, "zh", "damaged"))[-1]
    kept = aside_of(blob)
    assert len(kept) == 1 and not blob.exists() and line.classes == WARN
    assert line.to("zh").startswith(f"⚠ 下载的模型设置 {snapshot / 'config.json'} 已损坏")
    assert f"已保留为 {kept[0]}" in line.to("zh") and "下次运行会重新下载。" in line.to("zh")
    assert f"kept as {kept[0]}" in line.to("en")  # both languages travel with the line
