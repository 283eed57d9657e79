"""Shared fixtures: offline hub, tiny demo data, a running app, and a page in a Chromium-based browser."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DANLU_LANG", "en")

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

# `launcher.py test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadfile`), one a core. Each worker
# is a process of its own with its own session fixtures, temporary folders, app server (on a free port) and browser.
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread a worker, set before torch is imported (after this file): torch and the trainers the tests start
    # as children read it, and two workers' threads fighting over two cores are slower than one thread each.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# A module's tests stay on one worker, so its module fixtures (tiny models, trained runs) are built once. Modules
# that share a costly session fixture go to one worker together (the sweep_runs trainings).
SAME_WORKER = {"test_grid_runs.py": "sweep_runs", "test_grid_runs_browser.py": "sweep_runs"}
# The longest modules, longest first, are handed out first: the worker that would otherwise meet one of them last
# leaves the other idle meanwhile. The rest follow in their order. (pytest --durations in one process on a loaded
# 2-core machine: form_commit_browser 3.4 min, training_faults 2.2 min, stale_save_browser 0.5 min; the journeys
# are the longest; the trainings between them are placed by their runs.)
LONGEST_FIRST = ("test_demo_journey_browser.py", "test_form_commit_browser.py", "test_training_faults.py",
                 "test_grid_demo.py", "test_training_zimage.py", "test_flux_training.py", "test_qwen_training.py",
                 "test_queue_restart_browser.py", "test_training_runs.py", "test_stale_save_browser.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and other files to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo written by `launcher.py demo` (tiny SD1.5 base, 12 images, run.toml): its run.toml path."""
    from models.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def sweep_runs(tmp_path_factory) -> list[Path]:
    """Three finished tiny SD1.5 runs of a rank sweep (mylora-rank2, -rank4, -rank8) with files for epochs 1, 2 and
    the final (3) and a validation loss at every save, trained once for the grid tests of the shell, the tab and the
    page. A test that changes a run's files works on a copy or puts them back."""
    import torch

    from models.tiny import save_tiny
    from training.loop import train
    from training.tiny_run import flat_dataset, tiny_config

    root = tmp_path_factory.mktemp("sweep")
    base = save_tiny("sd15", root / "base").folder
    data = flat_dataset(root / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one torch thread is much faster than several fighting for a shared 2-core CPU
    folders = []
    try:
        for rank in (2, 4, 8):
            cfg = tiny_config(base, data, root / "runs", f"mylora-rank{rank}", network__rank=rank,
                              training__epochs=3, dataset__validation_split=0.25, sampling__steps=2)
            train(cfg)
            folders.append(cfg.run_dir)
    finally:
        torch.set_num_threads(threads)
    return folders


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One running Danlu app for the whole session: (url, demo blocks, outputs dir)."""
    from ui.app import CSS, build_app, page_scripts

    outputs = tmp_path_factory.mktemp("outputs")
    models_dir = tmp_path_factory.mktemp("checkpoints")
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=models_dir)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True,
                allowed_paths=[str(outputs), "/tmp"], app_kwargs=page_scripts())  # served as ui.app serves it
    yield f"http://127.0.0.1:{port}/", demo, outputs
    demo.close()


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
NO_BROWSER = ("browser tests skipped: no browser found. To run them install Chromium (Debian/Ubuntu: apt install "
              "chromium), Google Chrome or Microsoft Edge, or set DANLU_BROWSER to a Chromium-based browser's program")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def launch_browser(chromium):
    """The first Chromium-based browser that starts: DANLU_BROWSER, Debian's chromium, then Chrome and Edge
    through Playwright's channels. None when there is none."""
    import shutil

    paths = [os.environ.get("DANLU_BROWSER", ""), CHROMIUM, shutil.which("chromium") or "",
             shutil.which("chromium-browser") or ""]
    tries = [{"executable_path": p} for p in dict.fromkeys(paths) if p and Path(p).is_file()]
    tries += [{"channel": "chrome"}, {"channel": "msedge"}]
    for kwargs in tries:
        try:
            return chromium.launch(headless=True, args=BROWSER_ARGS, **kwargs)
        except Exception:  # noqa: BLE001 - Playwright raises its own Error for a missing channel; try the next
            continue
    return None


def _no_browser(reason: str):
    if in_ci():  # CI installs Chromium: a browser test that cannot run there is a failure, not a skip
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser(NO_BROWSER + " (and pip install playwright)")
    with sync_playwright() as p:
        b = launch_browser(p.chromium)
        if b is None:
            _no_browser(NO_BROWSER)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped browser test fails, whatever skipped it."""
    outcome = yield
    report = outcome.get_result()
    browser_test = "browser" in getattr(item, "fixturenames", ())
    if report.skipped and browser_test and in_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {call.excinfo.value if call.excinfo else 'browser test'}"


def pytest_collection_modifyitems(config, items):
    """The longest modules first (LONGEST_FIRST); every worker sorts alike, so their collections still agree."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order
    # SAME_WORKER names each module by the fixture it shares; a new user of that fixture has to be added there.
    strays = sorted({f"{item.path.name} ({name})" for item in items for name in set(SAME_WORKER.values())
                     if name in item.fixturenames and SAME_WORKER.get(item.path.name) != name})
    if strays:
        raise pytest.UsageError(f"add {', '.join(strays)} to SAME_WORKER in tests/conftest.py")


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run without pytest-xdist has no such hook
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the SAME_WORKER modules as one unit, units handed out in collection order rather than
    by their number of tests. (pytest-xdist 3.8's loadgroup cannot group under pytest 9: its test ids are fixed.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SAME_WORKER.get(path.rsplit("/", 1)[-1], path)

    config.option.loadscopereorder = False
    return ModuleScheduling(config, log)


def pytest_terminal_summary(terminalreporter):
    """One line, not one per test, saying how to run the browser tests that had no browser."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_BROWSER in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} {NO_BROWSER}")


@pytest.fixture
def page(browser, app_server):
    """A fresh page on the running app, 1400×1000, English."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(60_000)  # a loaded 2-core machine (two workers, a trainer) can take 30 s for a step
    pg.goto(app_server[0])
    pg.wait_for_selector("#danlu-tabs")
    yield pg
    context.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """On a shared 2-core CPU one torch thread is much faster than several fighting for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_network_probe(monkeypatch):
    """core.download's reachability probe never touches the network in a test: every source 'answers' (the hub
    libraries are stubbed or offline); tests of an unreachable source replace download.PROBE themselves."""
    from core import download

    monkeypatch.setattr(download, "PROBE", lambda url, timeout: True)
    monkeypatch.setattr(download, "_probed", {})
