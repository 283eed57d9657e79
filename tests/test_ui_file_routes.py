"""The page's file routes serve the outputs folder and nothing else: the real app, served with the options
ui.app.launch uses, asked for system files, the project's source, paths with '..' (plain and percent-encoded),
links out of the outputs folder and a model file, through gradio's /file= and /gradio_api/file= routes."""

from __future__ import annotations

import http.client
import os
from urllib.parse import quote

import pytest

from tests.conftest import ROOT, free_port

SERVING = "/gradio_api/file="
# the older spellings too: /file= (gradio 4) and /file/ answer 404 in this gradio, and must go on refusing if they
# come back
ROUTES = ("/file=", "/file/", SERVING, "/gradio_api/file/")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, outputs, models, outside): the app on a free port, its outputs holding a sample and two links out."""
    from ui.app import CSS, build_app, file_routes

    work = tmp_path_factory.mktemp("served")
    outputs, models, outside = work / "outputs", work / "checkpoints", work / "outside"
    for folder in (outputs / "run" / "samples", models, outside):
        folder.mkdir(parents=True)
    (outputs / "run" / "samples" / "run-e000001-00.png").write_bytes(b"\x89PNG\r\n\x1a\n sample")
    (outside / "secret.txt").write_text("not for the page", encoding="utf-8")
    (models / "base.safetensors").write_bytes(b"model bytes")
    os.symlink(outside / "secret.txt", outputs / "run" / "samples" / "link.png")  # a file link out
    os.symlink(ROOT, outputs / "project")                                          # a folder link out
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=models)
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        # launch() gives up when the page does not answer its probe within 3 s, which a loaded machine can miss;
        # the requests below wait as long as they need
        mp.setattr("gradio.networking.url_ok", lambda url: True)
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True,
                    **file_routes(outputs))
    yield port, outputs, models, outside
    demo.close()


def _get(port: int, path: str) -> tuple[int, bytes]:
    """One GET with the path sent exactly as given (no client-side clean-up of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_sample_in_outputs_is_served(served):
    port, outputs, _, _ = served
    status, body = _get(port, SERVING + quote(str(outputs / "run" / "samples" / "run-e000001-00.png")))
    assert status == 200 and body.endswith(b" sample")


@pytest.mark.parametrize("route", ROUTES)
def test_nothing_else_is_served(served, route):
    port, outputs, models, outside = served
    asked = {
        "system file": "/etc/passwd",
        "project source": str(ROOT / "launcher.py"),
        "dot-dot": f"{outputs}/run/../../outside/secret.txt",
        "encoded dot-dot": quote(f"{outputs}/run/../../outside/secret.txt", safe="").replace(".", "%2E"),
        "relative dot-dot": "../" * 12 + "etc/passwd",
        "file link out": str(outputs / "run" / "samples" / "link.png"),
        "folder link out": str(outputs / "project" / "launcher.py"),
        "model file": str(models / "base.safetensors"),
        "outside file": str(outside / "secret.txt"),
    }
    served_anyway = {}
    for what, path in asked.items():
        status, body = _get(port, route + (path if "%" in path else quote(path)))
        if status not in (403, 404) or b"not for the page" in body or b"root:" in body:
            served_anyway[what] = (status, body[:80])
    assert not served_anyway
