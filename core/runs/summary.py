"""What the Train tab shows of a run, read from its events: progress, losses, samples, saved files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.events import best_validation
from core.runs.layout import SAMPLES

if TYPE_CHECKING:
    from core.runs.supervisor import Run


def summarize(run: Run) -> dict:
    """What the Train tab shows, from the run's events: progress, losses, samples, saved files."""
    current = run.current_events()
    start = next((e for e in reversed(current) if e.get("type") == "start"), {})
    progress = next((e for e in reversed(current) if e.get("type") == "progress"), None)
    # the caches fill before the first step: their last event, until a step is reported
    caching = None if progress else next((e for e in reversed(current) if e.get("type") == "caching"), None)
    losses = [(e["step"], e["loss"]) for e in run.events
              if e.get("type") == "progress" and isinstance(e.get("loss"), (int, float))]
    saved = []
    for e in run.events:
        if e.get("type") == "saved":
            path = event_path(run, e.get("file", ""))
            size = path.stat().st_size if path.exists() else e.get("size")
            saved.append({"file": str(path), "epoch": e.get("epoch"), "step": e.get("step"), "size": size,
                          "exists": path.exists()})
    samples = []
    for e in run.events:
        if e.get("type") == "sample":
            png = event_path(run, e.get("png", ""), SAMPLES)
            if png.exists():
                samples.append({**e, "png": str(png)})
    validation = [(e["step"], e["loss"], e.get("epoch")) for e in run.events
                  if e.get("type") == "validation" and isinstance(e.get("loss"), (int, float))]
    warnings = [e for e in current if e.get("type") == "warning"]
    total = (progress or {}).get("total") or start.get("total_steps") or 0
    return {"status": run.status, "step": (progress or {}).get("step", 0), "total": total,
            "epoch": (progress or {}).get("epoch", 0), "epochs": (progress or {}).get("epochs") or start.get("epochs"),
            "loss": (progress or {}).get("loss"), "loss_avg": (progress or {}).get("loss_avg"),
            "lr": (progress or {}).get("lr"), "samples_per_s": (progress or {}).get("samples_per_s"),
            "eta_s": (progress or {}).get("eta_s"), "losses": losses, "saved": saved, "samples": samples,
            "warnings": warnings, "error": run.error, "started": start, "validation": validation,
            "best": best_validation(current), "caching": caching}


def event_path(run: Run, recorded: str, sub: str = "") -> Path:
    """Where a file an event names is now. The trainer records absolute paths; earlier trainers recorded them
    relative to their own folder (the project folder: outputs/demo/runs/demo/samples/x.png), and tests write
    names relative to the run folder. A run folder that was moved still holds its files by name: run_dir/sub/name.
    """
    path = Path(recorded)
    if path.is_absolute() and path.exists():
        return path
    tries = [] if path.is_absolute() else [run.run_dir / path, Path(run.cwd) / path]
    tries.append(run.run_dir / sub / path.name)
    return next((p for p in tries if p.exists()), path if path.is_absolute() else tries[0])
