"""The Train tab sends only what changed, and shows earlier runs and a run name already used; without a browser."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core.runs.supervisor import Run, Supervisor
from ui import train_live, train_runs
from ui.tab_train import render
from ui.train_live import CHART_EVERY_S, CHART_MIN_S, PARTS, heavy_parts, light, make_view, plan


def write_events(run_dir: Path, events: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def live_run(tmp_path: Path) -> Run:
    run_dir = tmp_path / "outputs" / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text("", encoding="utf-8")
    return Run(run_dir, run_dir / "config.toml", ["python", "launcher.py", "train", "x"], tmp_path, False,
               status="running", started=100.0)


def progress(step: int) -> dict:
    return {"type": "progress", "step": step, "total": 8, "epoch": 1, "epochs": 2, "loss": 1.0 / step}


def is_skip(update) -> bool:
    return isinstance(update, dict) and set(update) == {"__type__"}


class Page:
    """One page's looks at a run: the tab's view with a fake supervisor, its State carried from look to look."""

    def __init__(self, run: Run | None):
        self.run, self.seen, self.picked = run, None, ""
        c = SimpleNamespace(**{p: p for p in PARTS}, seen="seen")
        self.view, self.outputs = make_view(c, self._look, lambda s, live, lang, q: render(s, lang, q, str, live),
                                            lambda lang, picked: gr.update(choices=[("live", "")], value=""),
                                            lambda lang: ["File", "Epoch", "Step", "Size"])

    def _look(self, lang, query, picked):
        run = self.run
        key = None if run is None else [str(run.run_dir), run.started, run.version, run.status]
        return run, run, [key, lang, query, picked]

    def look(self, lang: str = "en", query: str = "", force: bool = False) -> dict:
        out = self.view(lang, query, self.picked, self.seen, force)
        if not is_skip(out[-1]):  # gradio keeps a State that gets an empty update
            self.seen = out[-1]
        return {p: u for p, u in zip(PARTS, out[:-1], strict=True) if not is_skip(u)}


def test_a_look_sends_only_the_parts_that_changed(tmp_path):
    run = live_run(tmp_path)
    write_events(run.run_dir, [progress(1)])
    run.events = [progress(1)]
    run.log.extend(["step 1"])
    page = Page(run)
    first = page.look()
    assert {"status", "progress", "command", "log", "loss", "samples", "files", "pick", "ctx"} <= set(first)
    assert 'data-lang="en"' in first["ctx"]  # what the page's script asks the light look about
    assert page.look() == {}  # nothing moved: nothing is sent, not even an empty update of a part

    run.log.append("a line with no event")
    run.version += 1
    assert set(page.look()) == {"log"}  # a new log line redraws the log only

    run.events.append(progress(2))
    run.log.append("step 2")
    run.version += 1
    sent = page.look()
    assert {"status", "progress", "log"} <= set(sent)
    assert not {"loss", "samples", "files", "command", "ctx", "pick", "message"} & set(sent)  # the chart waits

    page.seen["chart_t"] -= CHART_MIN_S  # ten seconds on: the chart is due and comes with the next look
    assert "loss" in page.look()
    assert page.look() == {}

    png = run.run_dir / "samples" / "demo-e000001-00.png"
    png.parent.mkdir()
    png.write_bytes(b"png")
    run.events += [{"type": "saved", "file": "demo-000001.safetensors", "epoch": 1, "step": 2},
                   {"type": "sample", "png": str(png), "epoch": 1, "prompt_index": 0, "prompt": "demo"}]
    run.version += 1
    sent = page.look()
    assert {"samples", "files"} <= set(sent) and sent["samples"]["value"][0][0] == str(png)

    run.status = "finished"  # the end: the chart is sent at once, the old message goes
    run.events.append(progress(3))
    run.version += 1
    sent = page.look()
    assert "loss" in sent and sent["message"] == "" and "ctx" not in sent
    assert sent["stop"] == {"__type__": "update", "interactive": False}


def test_a_button_answer_redraws_everything_and_keeps_its_message(tmp_path):
    run = live_run(tmp_path)
    page = Page(run)
    page.look()
    sent = page.look(force=True)
    assert {"status", "log", "files", "start", "stop"} <= set(sent) and "message" not in sent
    run.status = "stopping"
    sent = page.look(force=True)  # Stop's own answer: its message is put in by the button, not cleared here
    assert "message" not in sent and sent["stop"]["interactive"] is False


def test_a_new_run_clears_the_message_of_the_last_one(tmp_path):
    """'Stop requested' must not stay shown while the next queued run trains."""
    run = live_run(tmp_path)
    page = Page(run)
    page.look()
    run.status = "stopping"
    page.look(force=True)  # the Stop button's answer shows "Stop requested"
    nxt = Run(tmp_path / "outputs" / "next", tmp_path / "outputs" / "next" / "config.toml", ["x"], tmp_path, False,
              status="running", started=200.0)
    page.run = nxt
    sent = page.look()
    assert sent["message"] == "" and "pick" in sent and "status" in sent


def test_the_chart_is_sent_at_once_for_a_new_language():
    r = {"status": "", "progress": "", "command": "", "log": "", "error": "", "warnings": "", "samples": [],
         "columns": 4, "files": [], "lang": "en", "buttons": {b: {} for b in train_live.BUTTONS},
         "loss_key": [["/r", 1.0], "en", 5, 0]}
    send, seen = plan(r, None, 1000.0, True, False)
    assert "loss" in send
    send, seen = plan({**r, "loss_key": [["/r", 1.0], "en", 6, 0]}, seen, 1001.0, True, False)
    assert "loss" not in send and seen["chart_due"]
    send, seen = plan({**r, "loss_key": [["/r", 1.0], "zh", 6, 0]}, seen, 1002.0, True, False)
    assert "loss" in send and not seen["chart_due"]


def test_free_name_and_what_counts_as_taken(tmp_path):
    run_dir = tmp_path / "demo"
    assert not train_runs.taken(run_dir)
    (run_dir / "samples").mkdir(parents=True)
    assert train_runs.taken(run_dir) and train_runs.free_name(run_dir) == "demo-2"
    (tmp_path / "demo-2").mkdir()  # an empty folder is free
    assert train_runs.free_name(run_dir) == "demo-2"
    write_events(tmp_path / "demo-2", [progress(1)])
    assert train_runs.free_name(run_dir) == "demo-3"
    assert not train_runs.resumable(run_dir)
    (run_dir / "state").mkdir()
    (run_dir / "config.toml").write_text("", encoding="utf-8")
    assert train_runs.resumable(run_dir)
    text = train_runs.taken_message(run_dir, "zh")
    assert "demo-3" in text.to("en") and ".previous" in text.to("zh") and "续训" in text.to("zh")


def test_the_picker_lists_runs_at_any_depth_and_moved_aside_and_shows_one(tmp_path):
    outputs = tmp_path / "outputs"
    deep = outputs / "demo" / "runs" / "demo2x"
    earlier = deep / ".previous" / "20261207-135400"
    for folder, status in ((deep, "finished"), (earlier, "stopped")):
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text("", encoding="utf-8")
        write_events(folder, [{"type": "start", "total_steps": 8}, progress(4),
                              {"type": "done", "status": status}])
        (folder / "train.log").write_text("step 4/8 loss 0.25\n", encoding="utf-8")
    (deep / "demo2x.safetensors").write_bytes(b"x")
    choices = dict((v, label) for label, v in train_runs.run_choices(outputs, None, "en"))
    assert choices[""] == "The current run (live)"
    assert choices[str(deep)] == str(Path("demo/runs/demo2x"))
    assert choices[str(earlier)] == "demo/runs/demo2x · earlier results, moved aside 20261207-135400"

    sup = Supervisor(tmp_path, echo=False)
    shown, key = train_runs.look(sup, None, str(earlier), 400)
    view = render(shown, "en", "", str, None)
    assert "Stopped" in view["status"] and "step 4/8" in view["log"] and view["loss_key"][2] == 1
    assert "launcher.py train" in view["command"] and str(earlier / "config.toml") in view["command"]
    assert view["buttons"]["start"]["interactive"] and not view["buttons"]["grid"]["visible"]
    assert train_runs.look(sup, None, str(earlier), 400) == (shown, key)  # read once, until its events change
    shown, _ = train_runs.look(sup, None, str(deep), 400)
    assert "Finished" in render(shown, "en", "", str, None)["status"]
    assert render(shown, "en", "", str, None)["buttons"]["grid"]["visible"]


def test_the_light_look_moves_its_digest_only_for_what_the_view_must_draw(tmp_path):
    """While training, a new step changes the live lines (the page's script writes them itself) and not the digest
    (no gradio event); a sample does, and the chart counts once every CHART_EVERY_S."""
    run = live_run(tmp_path)
    run.events = [progress(1)]
    run.log.append("step 1")

    def look(now: float) -> dict:
        r = render(run, "en", "", str, run)
        return light(r, True, heavy_parts(r, True, now))

    first = look(0.0)
    assert "<strong>Running</strong>" in first["status"] and "step 1/8" in first["status"]
    assert 'data-step="1"' in first["progress"] and first["log"] == "step 1" and first["active"]
    run.events.append(progress(2))
    run.log.append("step 2")
    second = look(1.0)
    assert second["heavy"] == first["heavy"] and 'data-step="2"' in second["progress"] and "step 2" in second["log"]
    assert look(CHART_EVERY_S + 1.0)["heavy"] != first["heavy"]  # the chart's next frame is due
    png = run.run_dir / "samples" / "demo-e000001-00.png"
    png.parent.mkdir()
    png.write_bytes(b"png")
    run.events.append({"type": "sample", "png": str(png), "epoch": 1, "prompt_index": 0, "prompt": "demo"})
    assert look(1.0)["heavy"] != second["heavy"]
    said = light({"status": "**Running** · `/runs/<b>x</b>` <img src=x>", "progress": "", "log": ""}, True, [])
    assert "<b>" not in said["status"] and "<img" not in said["status"]  # Markdown, with raw HTML escaped


def test_the_page_has_no_timer_and_one_refresh_for_the_run_and_the_queue(tmp_path):
    """Each gradio event costs the browser a pass over the whole app: no timer; the hidden refresh (clicked by the
    page's script when the light look's digest moves) and a language switch redraw the run and the queue in one
    event, with no progress animation; the light look is an API route."""
    from ui.app import build_app

    demo = build_app(lang="en", outputs_dir=tmp_path / "outputs", models_dir=tmp_path / "checkpoints")
    assert not [b for b in demo.blocks.values() if isinstance(b, gr.Timer)]
    refresh = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train-refresh")
    clicks = [fn for fn in demo.fns.values() if (refresh._id, "click") in fn.targets]
    assert len(clicks) == 1 and clicks[0].show_progress == "hidden" and clicks[0].trigger_mode == "always_last"
    shown = {getattr(b, "elem_id", None) for b in clicks[0].outputs}
    assert {"train-status", "train-log", "train-live-ctx", "train-queue-status", "train-queue-list"} <= shown
    lang = demo.danlu_ctx.lang
    switches = [fn for fn in demo.fns.values() if (lang._id, "change") in fn.targets
                and {"train-status", "train-queue-list"} & {getattr(b, "elem_id", None) for b in fn.outputs}]
    assert len(switches) == 1
    assert [fn for fn in demo.fns.values() if fn.api_name == "train_live"]
