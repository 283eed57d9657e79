"""What the Train tab sends to the page while a run moves: the live lines through a plain JSON look, everything
else through a gradio event only when it changed.

The page must cost the training almost nothing. Every gradio event costs the browser a pass over the whole app
(gradio's frontend sets the loading status of every component any event ever touched again, each a search of the
layout tree: 0.2-0.4 s of a core per event on a loaded 2-core machine, an event with no outputs included), and a
redraw of the loss chart (a full vega render), the gallery or a 400-line log costs more. A timer event every few
seconds still cost the training a fifth of its speed on two cores, so the tab has two channels:

- the light channel: a script in the page (LOAD_JS, run by the app's load event) asks the server's
  `train_live` API route every ACTIVE_S while a run is active (IDLE_S otherwise) for the status line, the progress
  bar and the log tail, and writes them into those three elements itself: a fetch and three DOM writes, no gradio
  event. It reads which language, search and picked run the page shows from a small element the gradio view keeps
  up to date (`#train-live-ctx`);
- the heavy channel: the same answer carries a digest of everything else the tab shows (buttons, samples, files,
  errors and warnings, which run is live, the queue, the chart's points: while training, at most one chart frame
  every CHART_EVERY_S); when the digest moves, the script clicks the hidden refresh button and the gradio view
  below runs. It compares each part with what this page last received (kept in the page's gr.State) and sends only
  changed parts. It also runs after each button, a language switch, the search and the run picker.

A polled JSON route rather than a server-side stream: a stream holds a worker per open page for its whole life and
cannot see the language or the search change without being restarted; a look that costs one small answer has none
of these problems, and the API route is gradio's own, behind the same password as the page.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
from markdown_it import MarkdownIt

from core.runs.supervisor import Run

# Every event costs the browser a pass over the whole app, whatever its outputs (gradio's frontend sets the loading
# status of every component any event ever touched again, each a search of the layout tree: 0.2-0.4 s of a core per
# event measured on a loaded 2-core machine, an event with no inputs and no outputs included), so the number of
# events is what the page costs: one look every ACTIVE_S at most, for the run and the queue together.
ACTIVE_S = 2.0        # the light look while a run is active: a step's progress shows within two seconds
IDLE_S = 8.0          # otherwise: a queued or reattached run shows within eight seconds
CHART_EVERY_S = 30.0  # the chart re-renders in full on each new frame: one frame this often while training
CHART_MIN_S = 10.0    # the view's own floor between two chart frames of a training run (a search or a pick)
LIGHT = ("status", "progress", "log")  # the parts the page's script writes itself

# The parts of the tab a look may update, in the order of the outputs list; `seen` (the page's State) comes last.
PARTS = ("status", "progress", "command", "log", "loss", "samples", "files", "error", "warnings", "start", "stop",
         "kill", "resume", "grid", "message", "pick", "ctx")
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


def live_html(inner: str) -> str:
    """A live part as the page shows it: the page's script replaces the inside of this wrapper, never a node that
    gradio put there (gradio would go on updating a node no longer in the page)."""
    return f'<div class="danlu-live">{inner}</div>'


def part_update(name: str, r: dict[str, Any], headers: list[str]) -> Any:
    """The update that shows part `name` of the rendered tab `r`."""
    if name == "status":
        return live_html(markdown_html(r["status"]))
    if name == "progress":
        return live_html(r["progress"])
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
    CHART_MIN_S ago for the same run and language; its record then keeps the old signature, so a later look
    sends it."""
    seen = dict(seen or {})
    old = {} if force else seen.get("sig", {})
    sig = signatures(r)
    send = [p for p in sig if sig[p] != old.get(p)]
    same_chart = old.get("loss") is not None and old["loss"][:2] == sig["loss"][:2]  # same run, same language
    seen["chart_due"] = False
    if "loss" in send and active and same_chart and now - seen.get("chart_t", 0.0) < CHART_MIN_S:
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
        page = context_html(lang, query, picked or "")
        if seen.get("ctx") != page:
            out["ctx"] = page
            seen["ctx"] = page
        seen["key"] = key
        return [out[p] for p in PARTS] + [seen]

    return view, outputs


def context_html(lang: str, query: str, picked: str) -> str:
    """The element the page's script reads to ask for what this page shows (its language, search, picked run)."""
    return (f'<span data-lang="{html.escape(lang)}" data-query="{html.escape(query)}" '
            f'data-picked="{html.escape(picked)}"></span>')


_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # the status line's bold and code; raw HTML is escaped


def markdown_html(text: str) -> str:
    return _MARKDOWN.render(text)


def light(r: dict[str, Any], active: bool, heavy: list[Any]) -> dict[str, Any]:
    """The light look's answer: the three live parts as the page shows them, and the digest of the rest."""
    digest = hashlib.sha1(json.dumps(heavy, default=str, sort_keys=True).encode()).hexdigest()[:16]
    return {"active": active, "status": markdown_html(r["status"]), "progress": r["progress"], "log": r["log"],
            "heavy": digest}


def heavy_parts(r: dict[str, Any], active: bool, now: float) -> list[Any]:
    """What the gradio view would send apart from the light parts: when it moves, the page asks for the view. While
    training, the chart counts once every CHART_EVERY_S (each new point would redraw it)."""
    sig = signatures(r)
    loss = list(sig.pop("loss"))
    if active and loss[2]:
        loss[2] = int(now // CHART_EVERY_S)
    return [loss, *(sig[p] for p in sig if p not in LIGHT)]


def same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


# The page's side of the light channel, run by the app's load event (ui/app.py), so every page of the app has it
# however it is served. It keeps one look in flight at most; a failed look (a restarting server) waits IDLE_S.
LOAD_JS = """() => {
  if (window.danluLive) return;
  window.danluLive = true;
  const ACTIVE = ACTIVE_MS, IDLE = IDLE_MS;
  let heavy = null;
  const base = () => ((window.gradio_config && window.gradio_config.root) || "").replace(/\\/$/, "");
  async function ask(args) {
    const url = base() + "/gradio_api/call/train_live";
    const posted = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify({data: args})});
    if (!posted.ok) return null;
    const text = await (await fetch(url + "/" + (await posted.json()).event_id)).text();
    const found = text.match(/event: complete\\s*\\ndata: (.*)/);
    return found ? JSON.parse(found[1])[0] : null;
  }
  function put(res) {
    for (const part of ["status", "progress"]) {
      const el = document.querySelector("#train-" + part + " .danlu-live");
      if (el && el.dataset.shown !== res[part]) { el.innerHTML = res[part]; el.dataset.shown = res[part]; }
    }
    const log = document.querySelector("#train-log textarea");
    if (log && log.value !== res.log) { log.value = res.log; log.scrollTop = log.scrollHeight; }
  }
  async function look() {
    let wait = IDLE;
    try {
      const page = document.querySelector("#train-live-ctx [data-lang]");
      const refresh = document.querySelector("#train-refresh");
      if (!page || !refresh) {
        wait = 300;
      } else {
        const res = await ask([page.dataset.lang, page.dataset.query, page.dataset.picked]);
        if (res) {
          // Anything else moved (a run started or ended, a sample, the buttons): the view draws it all in one
          // event, the live lines with it, so the status never says "Finished" beside a Stop still enabled.
          if (res.heavy !== heavy) { heavy = res.heavy; refresh.click(); } else { put(res); }
          wait = res.active ? ACTIVE : IDLE;
        }
      }
    } catch (e) {
      wait = IDLE;
    }
    setTimeout(look, wait);
  }
  setTimeout(look, 300);
}""".replace("ACTIVE_MS", str(int(ACTIVE_S * 1000))).replace("IDLE_MS", str(int(IDLE_S * 1000)))
