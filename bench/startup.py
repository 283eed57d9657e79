"""Time from `python launcher.py --no-browser` to the page being served, with .venv in place.

Prints each run, the best and the median; as a baseline in the same run, the time for a bare Python to
import gradio and serve an empty Blocks page, and the ratio of the two. On Linux also the CPU seconds each
server had used when it first answered, which a busy machine disturbs far less than the wall clock.

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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_until_served(cmd: list[str], port: int, timeout: float = 120) -> tuple[float, float | None]:
    """Seconds until the page answers 200, and the CPU seconds the server had used by then."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start, cpu_seconds(proc.pid)
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(" ".join(cmd))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(name: str, ours: list[float], base: list[float], unit: str) -> None:
    # each run's pair is timed back to back, so the median of the pairs' ratios resists a busy machine best
    ratio = statistics.median(o / b for o, b in zip(ours, base))
    print(f"{name}: best danlu {min(ours):.2f} {unit}, bare gradio {min(base):.2f} {unit}, "
          f"ratio {min(ours) / min(base):.2f}x; median danlu {statistics.median(ours):.2f} {unit}, "
          f"bare gradio {statistics.median(base):.2f} {unit}, ratio {ratio:.2f}x (median of the runs' ratios)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-gc-off", action="store_true",
                        help="the bare page with the garbage collector off while starting, as Danlu's start has it: "
                             "the ratio then compares the pages' own work alone")
    args = parser.parse_args()
    baseline = ("import gc; gc.disable()" if args.baseline_gc_off else "") + BASELINE
    python = sys.executable
    ours, base = [], []
    for i in range(args.runs):
        port = free_port()
        ours.append(time_until_served([python, "launcher.py", "ui", "--no-browser", "--port", str(port)], port))
        port = free_port()
        base.append(time_until_served([python, "-c", baseline.format(port=port)], port))
        (wall, cpu), (bwall, bcpu) = ours[-1], base[-1]
        cpus = f"   cpu {cpu:.2f} s / {bcpu:.2f} s" if cpu and bcpu else ""
        print(f"run {i + 1}: danlu {wall:.2f} s   bare gradio page {bwall:.2f} s   ratio {wall / bwall:.2f}x{cpus}",
              flush=True)
    summary("wall", [w for w, _ in ours], [w for w, _ in base], "s")
    if all(c for _, c in ours + base):  # CPU time: what a busy machine disturbs least
        summary("cpu ", [c for _, c in ours], [c for _, c in base], "s")
    print("targets: the page served in < 5 s; ratio ≤ 1.5x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
