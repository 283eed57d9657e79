"""Parameter sweeps: one run per combination of a few settings, named after what differs, validated, queued.

    python launcher.py train RUN.toml --sweep network.rank=8,16 --sweep optimizer.lr=1e-4,2e-4

makes mylora-rank8-lr1e-4, mylora-rank8-lr2e-4, mylora-rank16-lr1e-4, mylora-rank16-lr2e-4. Before anything starts
the plan says how many runs, their steps and the time they should take: seconds per step measured on the earlier runs
of the same base model in the outputs folder (scaled by pixels and batch), since a guess from nothing would be wrong
by an order of magnitude between a laptop CPU and a 4090.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from core import config as cfgmod
from core.errors import ConfigError, DanluError
from core.events import read_events

MAX_RUNS = 64


@dataclass
class SweepRun:
    cfg: cfgmod.RunConfig
    changes: dict[str, str]           # key path → the value as typed
    steps: int | None = None
    seconds: float | None = None


@dataclass
class SweepPlan:
    runs: list[SweepRun] = field(default_factory=list)
    seconds_per_step: float | None = None   # at the swept config's own resolution and batch
    basis: str = ""                   # the run the speed was measured on

    @property
    def total_steps(self) -> int | None:
        steps = [r.steps for r in self.runs]
        return None if any(s is None for s in steps) else sum(steps)

    @property
    def total_seconds(self) -> float | None:
        secs = [r.seconds for r in self.runs]
        return None if not secs or any(s is None for s in secs) else sum(secs)

    def text(self, lang: str) -> str:
        """The plan in a few lines: count, each run's name and steps, the total time (or why it is unknown)."""
        zh = lang == "zh"
        lines = [f"{len(self.runs)} 个运行：" if zh else f"{len(self.runs)} runs:"]
        for r in self.runs:
            steps = "?" if r.steps is None else str(r.steps)
            time = f", ≈ {fmt_duration(r.seconds)}" if r.seconds is not None else ""
            lines.append(f"- {r.cfg.saving.name}  ({steps} {'步' if zh else 'steps'}{time})")
        total = self.total_seconds
        lines.append("")
        if total is not None:
            lines.append(f"共约 {fmt_duration(total)}（按 {self.basis} 实测的 {self.seconds_per_step:.2f} 秒/步估算）"
                          if zh else f"In all ≈ {fmt_duration(total)} (from {self.seconds_per_step:.2f} s/step "
                          f"measured on {self.basis})")
        else:
            lines.append("总时间未知：输出文件夹里还没有这个底模的已完成运行可供测速。" if zh else
                         "Total time unknown: no earlier run of this base model in the outputs folder to measure "
                         "the speed on.")
        return "\n".join(lines)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """'network.rank=8,16' → ('network.rank', ['8', '16']); the key must be a declared field."""
    if "=" not in text:
        raise ConfigError(f"--sweep {text!r}: expected section.key=value1,value2.",
                          f"--sweep {text!r}：格式应为 section.key=值1,值2。",
                          "For example: --sweep network.rank=8,16", "例如：--sweep network.rank=8,16", key=text)
    path, raw = (s.strip() for s in text.split("=", 1))
    values = [v.strip() for v in raw.split(",") if v.strip()]
    try:
        spec = cfgmod.field_spec(path)
    except KeyError:
        cfgmod.apply_overrides(cfgmod.default_config(), [f"{path}=0"])  # raises the 'unknown key' error with hints
        raise
    if spec.type is list:
        raise ConfigError(f"--sweep {path}: a list setting cannot be swept.", f"--sweep {path}：列表类设置不能扫描。",
                          "Sweep single values such as network.rank or optimizer.lr.",
                          "请扫描单值设置，如 network.rank 或 optimizer.lr。", key=path)
    if len(values) < 1 or len(set(values)) != len(values):
        raise ConfigError(f"--sweep {path}: give distinct values separated by commas.",
                          f"--sweep {path}：请给出以逗号分隔、互不相同的取值。",
                          "For example: --sweep network.rank=8,16", "例如：--sweep network.rank=8,16", key=path)
    return path, values


def name_part(path: str, value: str) -> str:
    """rank8, lr1e-4, schedulercosine: the field's name and the value as typed, safe in a file name."""
    key = path.rsplit(".", 1)[-1]
    return re.sub(r'[\\/:*?"<>|\s]+', "_", f"{key}{value}")


def expand(cfg: cfgmod.RunConfig, sweeps: list[str]) -> list[SweepRun]:
    """One validated config per combination, named <name>-<part>-<part>."""
    axes = [parse_sweep(s) for s in sweeps]
    if len({p for p, _ in axes}) != len(axes):
        raise ConfigError("A setting is swept twice.", "同一个设置被扫描了两次。",
                          "Give each key once, with all its values: --sweep network.rank=8,16,32",
                          "每个设置只写一次，列出全部取值：--sweep network.rank=8,16,32", key="sweep")
    count = 1
    for _, values in axes:
        count *= len(values)
    if count > MAX_RUNS:
        raise ConfigError(f"The sweep makes {count} runs; at most {MAX_RUNS} are queued at once.",
                          f"这个扫描会产生 {count} 个运行；一次最多排队 {MAX_RUNS} 个。",
                          "Sweep fewer values, or split the sweep.", "请减少取值，或分几次扫描。", key="sweep")
    runs = []
    for combo in itertools.product(*[[(p, v) for v in values] for p, values in axes]):
        name = "-".join([cfg.saving.name, *(name_part(p, v) for p, v in combo)])
        overrides = [f"{p}={v}" for p, v in combo] + [f'saving.name="{name}"']
        runs.append(SweepRun(cfgmod.apply_overrides(cfg, overrides), dict(combo)))
    return runs


def measured_speed(cfg: cfgmod.RunConfig, outputs_dirs: list[Path]) -> tuple[float, str] | None:
    """Seconds per trained pixel of the newest earlier run of the same base model, and that run's name."""
    from core.runs.layout import list_runs

    best = None
    for folder in {Path(d).resolve() for d in outputs_dirs}:
        for run_dir in list_runs(folder):
            try:
                other = cfgmod.load(run_dir / "config.toml")
            except DanluError:
                continue
            if other.model.base != cfg.model.base:
                continue
            events, _ = read_events(run_dir / "events.jsonl")
            prog = [e for e in events if e.get("type") == "progress" and isinstance(e.get("step"), int)]
            if len(prog) < 3:
                continue
            a, b = prog[1], prog[-1]  # the first step carries the start-up: leave it out
            if b["step"] <= a["step"]:
                continue
            spp = (b["time"] - a["time"]) / (b["step"] - a["step"])
            per_pixel = spp / (other.dataset.resolution ** 2 * other.training.batch_size)
            if best is None or b["time"] > best[0]:
                best = (b["time"], per_pixel, run_dir.name)
    return (best[1], best[2]) if best else None


def step_seconds(cfg: cfgmod.RunConfig, per_pixel: float) -> float:
    """A step's time scales with the pixels it trains: resolution² × batch."""
    return per_pixel * cfg.dataset.resolution ** 2 * cfg.training.batch_size


def plan(cfg: cfgmod.RunConfig, sweeps: list[str], outputs_dir: Path, root: Path | None = None) -> SweepPlan:
    """The runs of a sweep with their step counts (from the dataset) and times (from the measured speed)."""
    from core.runs.estimate import count_steps
    from core.runs.layout import run_dir

    runs = expand(cfg, sweeps)
    speed = measured_speed(cfg, [outputs_dir, run_dir(cfg, root).parent])
    out = SweepPlan(runs, step_seconds(cfg, speed[0]) if speed else None, speed[1] if speed else "")
    for r in runs:
        try:
            r.steps = count_steps(r.cfg).total_steps
        except (DanluError, OSError):
            r.steps = None
        if r.steps is not None and speed:
            r.seconds = r.steps * step_seconds(r.cfg, speed[0])
    return out


def queue_plan(p: SweepPlan, outputs_dir: Path) -> list:
    """Queue every run of the plan, in order; returns the queue items."""
    from core.runs.queue import Queue

    q = Queue(outputs_dir)
    return [q.add(r.cfg, note=", ".join(f"{k}={v}" for k, v in r.changes.items())) for r in p.runs]
