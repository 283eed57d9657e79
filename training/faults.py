"""Deterministic faults at named points of a run, for tests of what a kill or a full disk leaves behind.

DANLU_FAULT=<action>@<point>[:<n>] acts at the n-th time (default 1) the trainer passes `point`:

- actions: `kill` (SIGKILL to this process: nothing runs after it, as with the OOM killer or a pulled plug of
  the process) and `enospc` (an OSError "No space left on device" raised where the point is);
- points: `caching` (each latent or caption batch encoded before step 1), `step` (each optimizer step, after
  the backward pass and before the weights change), `save` (each LoRA file, before it is written), `state`
  (each resumable state, its files written and not yet swapped in), `sample` (each sample image, before it is
  written).

Unset (the normal case) every point is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "DANLU_FAULT"
POINTS = ("caching", "step", "save", "state", "sample")
ACTIONS = ("kill", "enospc")

_passed: dict[str, int] = {}


def parse(spec: str) -> tuple[str, str, int]:
    """'kill@save:2' → ('kill', 'save', 2); a spec that names no known action or point is an error, so a typo in
    a test cannot pass silently by never firing."""
    action, _, rest = spec.partition("@")
    point, _, n = rest.partition(":")
    if action not in ACTIONS or point not in POINTS or (n and not n.isdigit()) or n == "0":
        raise ValueError(f"{ENV}={spec!r}: expected <{'|'.join(ACTIONS)}>@<{'|'.join(POINTS)}>[:<n ≥ 1>]")
    return action, point, int(n or 1)


def point(name: str) -> None:
    """Mark one pass of the trainer through `name`; act when DANLU_FAULT asks for this pass."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    action, where, n = parse(spec)
    if where != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] != n:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
