"""What the Train tab sends to the page on each look at the run: only the parts that changed.

The page must cost the training almost nothing. A browser redrawing the loss chart (a full vega render), the samples
gallery, the files table and a 400-line log every second used most of a core and slowed a CPU run tenfold, so:

- one gr.Timer per page looks at the run and, in the same event, at the queue (ui/train_queue.py's section has no
  timer of its own); the run's handler compares a small key (which run, its version and status, the
  language, the search, the run picked for viewing) and returns no update at all when the key is unchanged;
- when the key moved, each part is compared with what this page last received (kept in the page's gr.State) and
  only changed parts are sent: the gallery when the sample list changed, the files table when saves changed, the
  log when lines came; the chart at most every CHART_EVERY_S while training, at once when the run ends. The log is
  sent whole (its last LOG_SHOWN lines, filtered by the search) rather than appended: setting a textarea's value is
  one text node for the browser, and a client-side append would need its own script to keep the search and a
  reload in step with the server's lines;
- the timer looks every ACTIVE_S while a run is active and every IDLE_S otherwise (it returns a new interval only
  when that changes). It stays on while idle because a queued run, a run started from a second tab or a trainer
  found after a restart must appear without a click; an idle look reads one attribute and sends nothing. The
  look itself is the cost that remains (each event makes the browser walk the app once, empty updates or not), so
  the intervals are few seconds, not one, and a look does its work in the same event (a cheap probe whose State
  change starts the view would make two events of one).

A timer rather than a server-side stream (a generator waiting on the run's version): a stream holds a worker per
open page for its whole life, never ends (so the page always shows an event in flight), and cannot see the language
or the search box change without being restarted; a look that usually returns nothing has none of these problems.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import gradio as gr

from core.runs.supervisor import Run

# Every event costs the browser a pass over the whole app, whatever its outputs (gradio's frontend sets the loading
# status of every component any event ever touched again, each a search of the layout tree: 0.2-0.4 s of a core per
# event measured on a loaded 2-core machine, an event with no inputs and no outputs included), so the number of
# events is what the page costs: one look every ACTIVE_S at most, for the run and the queue together.
ACTIVE_S = 5.0        # while a run is active: a step's progress shows within five seconds
IDLE_S = 10.0         # otherwise: a queued or reattached run shows within ten seconds
CHART_EVERY_S = 10.0  # the chart re-renders in full on each new frame: at most this often while training

# The parts of the tab a look may update, in the order of the outputs list; `seen` (the page's State) comes last.
PARTS = ("status", "progress", "command", "log", "loss", "samples", "files", "error", "warnings", "start", "stop",
         "kill", "resume", "grid", "message", "pick", "timer")
BUTTONS = ("start", "stop", "kill", "resume", "grid")


def run_key(run: Run | None) -> list[Any] | None:
    """Which run this is (a run folder can hold one run after another), with its version and status."""
    return None if run is None else [str(run.run_dir), run.started, run.version, run.status]


def signatures(r: dict[str, Any]) -> dict[str, Any]:
    """What each part showed, compact enough to keep per page and compare on every look."""
    sig = {p: r[p] for p in ("status", "progress", "command", "log", "error", "warnings")}
    sig["loss"] = r["loss_key"]
    sig["samples"] = [[list(s) for s in r["samples"]], r["columns"]]
    sig["files"] = [list(row) for row in r["files"]] + [r["lang"]]
    for name in BUTTONS:
        sig[name] = sorted(r["buttons"][name].items())
    return sig


def part_update(name: str, r: dict[str, Any], headers: list[str]) -> Any:
    """The update that shows part `name` of the rendered tab `r`."""
    if name == "samples":
        return gr.update(value=r["samples"], columns=r["columns"])
    if name == "files":
        return gr.update(value=r["files"] or None, headers=headers)
    if name in BUTTONS:
        return gr.update(**r["buttons"][name])
    if name in ("error", "warnings"):
        return gr.update(value=r[name], visible=bool(r[name]))
    return r[name]


def plan(r: dict[str, Any], seen: dict[str, Any] | None, now: float, active: bool, force: bool) -> tuple[list[str],
                                                                                                          dict]:
    """The parts to send and the page's new record. The chart waits while a run is active and it was sent less than
    CHART_EVERY_S ago for the same run and language; its record then keeps the old signature, so a later look
    sends it."""
    seen = dict(seen or {})
    old = {} if force else seen.get("sig", {})
    sig = signatures(r)
    send = [p for p in sig if sig[p] != old.get(p)]
    same_chart = old.get("loss") is not None and old["loss"][:2] == sig["loss"][:2]  # same run, same language
    seen["chart_due"] = False
    if "loss" in send and active and same_chart and now - seen.get("chart_t", 0.0) < CHART_EVERY_S:
        send.remove("loss")
        sig["loss"] = old["loss"]
        seen["chart_due"] = True
    if "loss" in send:
        seen["chart_t"] = now
    seen["sig"] = sig
    return send, seen


def make_view(c: SimpleNamespace, look: Callable[[str, str, str], tuple[Run | None, Run | None, list]],
              render: Callable[..., dict], choices: Callable[[str, str | None], list],
              headers: Callable[[str], list[str]]) -> tuple[Callable, list]:
    """The tab's look at the run and its outputs (the PARTS' components, then c.seen).

    look(lang, query, picked) -> (live run, shown run, key); render(shown, live, lang, query) -> the tab's values;
    choices(lang, picked) -> the run picker's update."""
    outputs = [getattr(c, p) for p in PARTS] + [c.seen]
    skip = [gr.update()] * len(PARTS)

    def view(lang: str, query: str, picked: str | None, seen: dict | None, force: bool = False) -> list[Any]:
        live, shown, key = look(lang, query, picked or "")
        seen = dict(seen or {})
        if not force and seen.get("key") == key and not seen.get("chart_due"):
            return [*skip, gr.update()]
        active = live is not None and live.active
        r = render(shown, live, lang, query)
        send, seen = plan(r, seen, time.monotonic(), shown is not None and shown.active, force)
        out = dict.fromkeys(PARTS, gr.update())
        for name in send:
            out[name] = part_update(name, r, headers(lang))
        # A new run or a new state of the live run: the run list may have grown, and the message about the earlier
        # state ("Stop requested" while the next queued run trains) is old news. A button's own answer is kept.
        live_state = None if live is None else [str(live.run_dir), live.started, live.status]
        if seen.get("live", "unset") != live_state or seen.get("lang") != lang:
            out["pick"] = choices(lang, picked)
            if not force and seen.get("live", "unset") not in ("unset", live_state):
                out["message"] = ""
        seen["live"], seen["lang"] = live_state, lang
        interval = ACTIVE_S if active else IDLE_S
        if seen.get("timer") != interval:
            out["timer"] = gr.Timer(value=interval)
            seen["timer"] = interval
        seen["key"] = key
        return [out[p] for p in PARTS] + [seen]

    return view, outputs


def same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
