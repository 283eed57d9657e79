"""What a training run reports and obeys: its Result, its readable log (stdout and train.log) and the Stopper
(a STOP file in the run folder, SIGINT or SIGTERM). training/loop.py uses them."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.events import STOP_FILE


@dataclass
class Result:
    status: str                                   # finished | stopped
    files: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    step: int = 0
    total_steps: int = 0
    losses: list[float] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)  # the trained (unwrapped) modules, for in-process use
    family: str = ""
    first_step_s: float = 0.0     # from the start of train() to the end of the first step (loading, caching)
    cache_s: float = 0.0          # filling the latent and text caches before the first step
    save_s: float = 0.0           # writing LoRA files (precision report, hashes), samples and validation excluded
    steady_s: float = 0.0         # from the end of the first step to the end of the last, saves and samples excluded
    steady_samples: int = 0       # images trained in steady_s, all processes
    saved_at: int = -1            # the step of the last file saved by the loop (-1: none yet)


class Log:
    """Readable lines on stdout and in train.log (main process only)."""

    def __init__(self, path: Path, active: bool):
        self.path, self.active = path, active

    def __call__(self, msg: str) -> None:
        if self.active:
            line = f"[{time.strftime('%H:%M:%S')}] {msg}"
            print(line, flush=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


class Stopper:
    """A STOP file in the run folder, SIGINT or SIGTERM: finish the step, save, exit 0."""

    def __init__(self, run_dir: Path):
        self.file = run_dir / STOP_FILE
        self.signalled = False
        self.previous: dict = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (in-process use): the stop file still works
                pass

    def restore(self) -> None:
        """Give the signals back (matters when train() runs inside another program, e.g. tests)."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.signalled:  # asked twice: stop now, without the save
            raise KeyboardInterrupt
        self.signalled = True
        print("Stopping after this step (press Ctrl+C again to abort without saving)…", flush=True)

    def requested(self) -> bool:
        return self.signalled or self.file.exists()
