"""ui/frames.py: the page's HTML starts with the frame governor, and in the browser an animation-frame loop that
changes nothing (gradio's leaked status timer) slows to about one frame a second while one that changes the page
keeps its full rate."""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port
from ui import frames

# Counts the frames the browser runs; installed before the page's own scripts, so under the governor.
COUNT_FRAMES = """window.__frames = 0;
const native = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (cb) => native((ts) => { window.__frames++; cb(ts); });"""


def test_middleware_writes_the_script_into_html_only():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    app = Starlette(routes=[Route("/", lambda r: HTMLResponse("<html><head><title>x</title></head><body/></html>")),
                            Route("/data", lambda r: JSONResponse({"head": "<head>"}))],
                    middleware=[Middleware(frames.FrameGovernor)])
    client = TestClient(app)
    page = client.get("/")
    assert page.text.startswith("<html><head><script data-danlu-frames>")
    assert page.text.count("data-danlu-frames") == 1 and page.text.endswith("<title>x</title></head><body/></html>")
    assert int(page.headers["content-length"]) == len(page.content)
    assert client.get("/data").json() == {"head": "<head>"}
    assert "IDLE_FRAMES" not in frames.SCRIPT and f"idle >= {frames.IDLE_FRAMES}" in frames.SCRIPT


@pytest.fixture(scope="module")
def bare_pages():
    """A one-Markdown gradio page served plainly and served as ui.app.launch serves Danlu: their URLs."""
    import gradio as gr

    urls = {}
    apps = []
    for governed in (False, True):
        with gr.Blocks() as demo:
            gr.Markdown("hello")
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    app_kwargs=frames.app_kwargs() if governed else None)
        urls[governed], apps = f"http://127.0.0.1:{port}/", apps + [demo]
    yield urls
    for demo in apps:
        demo.close()


def frames_in(page, seconds: float) -> int:
    start = page.evaluate("() => window.__frames")
    time.sleep(seconds)
    return page.evaluate("() => window.__frames") - start


def test_idle_page_stops_drawing_and_animations_keep_their_rate(browser, bare_pages):
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        pages = {}
        for governed, url in bare_pages.items():
            pages[governed] = page = context.new_page()
            page.add_init_script(COUNT_FRAMES)
            page.goto(url)
            page.wait_for_selector(".gradio-container")
            assert page.locator("script[data-danlu-frames]").count() == int(governed)
        # gradio's leaked status timer: a frame per vsync for the life of a page served plainly
        pages[False].bring_to_front()  # a page in the background gets its frames throttled by the browser
        time.sleep(1.0)
        assert frames_in(pages[False], 2.0) >= 30
        pages[True].bring_to_front()
        # served with the governor, the page goes quiet once the loader's own last moves are over (a few seconds
        # after the load): about one frame a second, in windows of two seconds
        pages[True].wait_for_function("""() => { const now = performance.now(), w = window.__quiet;
            if (!w || now - w.t >= 2000) { const ok = w && window.__frames - w.n <= 4;
                window.__quiet = {t: now, n: window.__frames}; return ok; }
            return false; }""", polling=250, timeout=20_000)
        # a loop that changes the page on each frame is an animation: it keeps the browser's rate
        pages[True].evaluate("""() => { const el = document.createElement('div'); document.body.append(el);
            window.__anim = 0; const step = () => { el.textContent = ++window.__anim;
            if (window.__anim < 1000) requestAnimationFrame(step); }; requestAnimationFrame(step); }""")
        time.sleep(2.0)
        assert pages[True].evaluate("() => window.__anim") >= 30
    finally:
        context.close()
