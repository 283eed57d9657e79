"""Keep an idle page from drawing frames: a script served at the top of the page's HTML that slows animation-frame
loops which change nothing on the page.

gradio 6's status tracker counts the seconds of a pending event with a requestAnimationFrame loop that only stops
when it sees its event end. The page's own "Loading…" tracker is removed while its event is still pending, so at
every page load one loop is left running for the life of the page: 60 wakeups a second that update a number nobody
sees. In headless Chromium that alone costs a bare one-Markdown gradio page 6-8 % of a core (a blank page: under
1 %), and it keeps the renderer and the compositor producing frames while a training runs beside them.

The loop cannot be stopped from outside (its flag lives in a closure) and it calls the requestAnimationFrame it took
when its module loaded, so the script has to run before gradio's modules: the middleware below writes it into
<head> of every HTML page the server sends. The script wraps requestAnimationFrame: a callback that asks for the
next frame from inside its own frame continues a chain; a chain that ran IDLE_FRAMES frames in a row while the page
(its DOM) did not change is a loop that shows nothing, and its next frames come SLOW_MS apart. A chain that changes
the page (an animation, a visible timer, a transition) runs at full rate; one that starts to change it again is back
at full rate at its next frame. Nothing is dropped, so a loop waiting for a condition still sees it.
"""

from __future__ import annotations

from typing import Any

IDLE_FRAMES = 60  # about a second of frames at 60 Hz with no change to the page
SLOW_MS = 1000    # then one frame a second for that chain

SCRIPT = """<script data-danlu-frames>
(() => {
  const raf = window.requestAnimationFrame.bind(window), caf = window.cancelAnimationFrame.bind(window);
  let changes = 0, current = null, next = 1;
  const waiting = new Map();  // our id -> [kind, the browser's id]: "r" a frame, "t" a timeout before one
  new MutationObserver(() => { changes++; }).observe(document, {subtree: true, childList: true, attributes: true,
                                                                characterData: true});
  window.requestAnimationFrame = (cb) => {
    const chain = current || {idle: 0, seen: -1};
    const id = next++;
    const run = (ts) => {
      waiting.delete(id);
      chain.idle = chain.seen === changes ? chain.idle + 1 : 0;
      const outer = current;
      current = chain;
      try { cb(ts); } finally { current = outer; chain.seen = changes; }
    };
    if (chain.idle >= IDLE_FRAMES) {
      waiting.set(id, ["t", setTimeout(() => waiting.set(id, ["r", raf(run)]), SLOW_MS)]);
    } else {
      waiting.set(id, ["r", raf(run)]);
    }
    return id;
  };
  window.cancelAnimationFrame = (id) => {
    const w = waiting.get(id);
    if (!w) return;
    waiting.delete(id);
    if (w[0] === "t") clearTimeout(w[1]); else caf(w[1]);
  };
})();
</script>""".replace("IDLE_FRAMES", str(IDLE_FRAMES)).replace("SLOW_MS", str(SLOW_MS))


class FrameGovernor:
    """ASGI middleware: writes SCRIPT (and the page's other early scripts, `scripts`) at the top of <head> of each
    HTML response (the page and its reloads); everything else passes untouched."""

    def __init__(self, app: Any, scripts: tuple[str, ...] = ()):
        self.app = app
        self.head = (SCRIPT + "".join(scripts)).encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        body: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers:
                    start = message  # held until the whole body is here
                    return
            elif start is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    await send_page(b"".join(body))
                return
            await send(message)

        async def send_page(html: bytes) -> None:
            html = html.replace(b"<head>", b"<head>" + self.head, 1)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, capture)


def app_kwargs(scripts: tuple[str, ...] = ()) -> dict:
    """The launch argument that serves the page with SCRIPT and `scripts`: `demo.launch(..., app_kwargs=...)`."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(FrameGovernor, scripts=tuple(scripts))]}
