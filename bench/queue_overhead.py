"""The run queue and the validation loss on the demo: what they cost around the steps.

    python bench/queue_overhead.py [--runs 2] [--epochs 2] [--validation-split 0.25]

Queues N demo runs (the tiny SD1.5 of `launcher.py demo`, the real trainer as a child process, exactly as the
Train tab does) and trains them through core.runs.queue_runner. From each run's events.jsonl:

- gap: seconds from one run's `done` to the next run's first `progress` (the first step), split into the trainer's
  exit after its last event, the queue's own part (the exit seen → the next trainer started) and the next trainer's
  start-up (imports, loading, caching, the first step itself);
- validation: seconds of each validation pass (its event minus the `saved` event just before it) as a share of an
  epoch (the epoch's steps, from the progress events).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--validation-split", type=float, default=0.25)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)

    from core import config as cfgmod
    from core.events import read_events
    from core.runs.queue import Queue
    from core.runs.queue_runner import QueueRunner
    from core.runs.supervisor import Supervisor
    from models.demo import make_demo

    work = Path(tempfile.mkdtemp(prefix="danlu-queue-bench-"))
    cfg = cfgmod.load(make_demo(work / "demo"))
    cfg.saving.output_dir = str(work / "outputs")
    cfg.training.epochs = args.epochs
    cfg.saving.every_n_epochs = 1
    cfg.sampling.prompts = []
    cfg.dataset.validation_split = args.validation_split
    q = Queue(work / "outputs")
    for i in range(args.runs):
        q.add(cfgmod.apply_overrides(cfg, [f'saving.name="bench{i}"']))
    runner = QueueRunner(q, Supervisor(ROOT, echo=False), interval=0.2)
    t0 = time.time()
    runner.run_all()
    wall = time.time() - t0
    runs = [read_events(work / "outputs" / f"bench{i}" / "events.jsonl")[0] for i in range(args.runs)]
    states = [i.state for i in q.items()]

    items = q.items()
    gaps, exiting, queue_part, startup = [], [], [], []
    for n, (prev, nxt) in enumerate(zip(runs, runs[1:])):
        done = next(e["time"] for e in reversed(prev) if e["type"] == "done")
        first = next(e["time"] for e in nxt if e["type"] == "progress")
        gaps.append(first - done)
        exiting.append(items[n].ended - done)                 # the trainer ends its process after `done`
        queue_part.append(items[n + 1].started - items[n].ended)  # the queue sees the exit, starts the next
        startup.append(first - items[n + 1].started)          # the next trainer: imports, loading, first step
    shares, passes = [], []
    for events in runs:
        progress = [e for e in events if e["type"] == "progress"]
        steps = [(e["step"], e["time"]) for e in progress]
        if len(steps) > 2:
            per_step = (steps[-1][1] - steps[1][1]) / max(1, steps[-1][0] - steps[1][0])
        else:
            per_step = None
        start = next(e for e in events if e["type"] == "start")
        for i, e in enumerate(events):
            if e["type"] == "validation":
                saved = next(x for x in reversed(events[:i]) if x["type"] == "saved")
                passes.append(e["time"] - saved["time"])
                if per_step:
                    shares.append(passes[-1] / (per_step * start["steps_per_epoch"]))
    out = {"runs": args.runs, "states": states, "wall_s": round(wall, 2),
           "gap_s": [round(g, 2) for g in gaps], "exit_s": [round(g, 2) for g in exiting],
           "queue_part_s": [round(g, 3) for g in queue_part],
           "startup_s": [round(g, 2) for g in startup], "validation_pass_s": [round(v, 3) for v in passes],
           "validation_share_of_epoch": [round(s, 3) for s in shares]}
    print(f"{args.runs} demo runs through the queue: {states}, {wall:.1f} s in all")
    if gaps:
        print(f"between runs: {statistics.median(gaps):.2f} s from one run's end to the next run's first step "
              f"(the trainer's exit after its last event {statistics.median(exiting):.2f} s + the queue "
              f"{statistics.median(queue_part):.2f} s + the next trainer's start-up to its first step "
              f"{statistics.median(startup):.2f} s)")
    if passes:
        share = f", {100 * statistics.median(shares):.0f}% of an epoch" if shares else ""
        print(f"validation pass: {statistics.median(passes):.3f} s{share} "
              f"({len(passes)} passes, split {args.validation_split})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0 if all(s == "done" for s in states) else 1


if __name__ == "__main__":
    sys.exit(main())
