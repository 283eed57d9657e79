"""Time from `python launcher.py --no-browser` to the page being served, with .venv in place.

Prints each run, the best and the median; as a baseline in the same run, the time for a bare Python to
import gradio and serve an empty Blocks page, and the ratio of the two.

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = """
import gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("x")
demo.launch(server_name="127.0.0.1", server_port={port}, prevent_thread_lock=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_until_served(cmd: list[str], port: int, timeout: float = 120) -> float:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(" ".join(cmd))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    ours, base = [], []
    for i in range(args.runs):
        port = free_port()
        ours.append(time_until_served([python, "launcher.py", "ui", "--no-browser", "--port", str(port)], port))
        port = free_port()
        base.append(time_until_served([python, "-c", BASELINE.format(port=port)], port))
        print(f"run {i + 1}: danlu {ours[-1]:.2f} s   bare gradio page {base[-1]:.2f} s   "
              f"ratio {ours[-1] / base[-1]:.2f}x", flush=True)
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    # each run's pair is timed back to back, so the median of the pairs' ratios resists a busy machine best
    ratio = statistics.median(o / b for o, b in zip(ours, base))
    print(f"best:   danlu {min(ours):.2f} s; bare gradio {min(base):.2f} s; ratio {min(ours) / min(base):.2f}x")
    print(f"median: danlu page served in {m_ours:.2f} s (target < 5 s); bare gradio {m_base:.2f} s; "
          f"ratio {ratio:.2f}x (median of the runs' ratios; target ≤ 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
