"""What the page's start costs beyond gradio: no torch, diffusers, transformers or onnxruntime to draw it, and the
garbage collector back on once it is served."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "transformers", "onnxruntime", "safetensors", "peft")


def test_the_page_builds_without_torch(tmp_path):
    from core import config as cfgmod

    run = tmp_path / "outputs" / "my run"  # a finished run, so the grid tab reads its files while building
    cfgmod.save(cfgmod.default_config(), run / "config.toml")
    (run / "my run-000001.safetensors").write_bytes(b"")
    code = ("import sys\nfrom pathlib import Path\nfrom ui.app import build_app\n"
            f"build_app(lang='en', outputs_dir=Path({str(run.parent)!r}), models_dir=Path({str(tmp_path)!r}))\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported while building the page: {out.stdout}"


def test_garbage_collector_is_back_on_once_the_page_is_served(monkeypatch):
    from ui import app, serve

    seen = {}

    class Page:
        danlu_ctx = SimpleNamespace(outputs_dir=Path("outputs"))  # what launch() serves files from

        def launch(self, **kw):
            seen["while starting"] = gc.isenabled()
            seen["blocks"] = not kw["prevent_thread_lock"]

        def block_thread(self):
            seen["while serving"] = gc.isenabled()

    monkeypatch.setattr(app, "build_app", lambda lang=None: Page())
    try:
        assert serve.main(["--no-browser", "--port", "7860"]) == 0
    finally:
        gc.unfreeze()
        gc.enable()
    assert seen == {"while starting": False, "blocks": False, "while serving": True}
