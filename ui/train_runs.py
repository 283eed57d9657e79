"""Earlier runs on the Train tab: the run picker (every run under the outputs folder, moved-aside ones included) and
what Start offers when the run name already holds results (a new free name, continuing it, or starting over).

A picked run is read from its folder (events.jsonl, train.log) as the live run is read from its child, so the tab
shows its status, loss, samples and files with the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.events import read_events
from core.runs import layout as run_layout
from core.runs.queue import error_of, outcome_of
from core.runs.supervisor import CONSOLE_FILE, PROCESS_FILE, Run, Supervisor
from core.state_files import notices
from ui import i18n
from ui.i18n import t

i18n.add({
    "train.pick": ("查看的运行", "Run shown"),
    "train.pick_live": ("当前运行（实时）", "The current run (live)"),
    "train.pick_earlier": ("{run} · 同名新运行开始前移到一旁的结果（{stamp}）",
                           "{run} · earlier results, moved aside {stamp}"),
    "train.status.ended": ("已结束（没有最终报告）", "Ended (no final report)"),
    "train.taken": (("运行名 **{name}** 已有结果：`{folder}`。\n\n"
                     "请选择：换一个新名字开始（建议 **{free}**）、续训（接着它训练），"
                     "或重新开始（之前的结果移到 `{folder}/.previous/<时间>/`，不会删除）。"),
                    ("The run name **{name}** already holds results: `{folder}`.\n\n"
                     "Choose: start under a new name (**{free}** is free), continue it (resume), or start over "
                     "(the earlier results move to `{folder}/.previous/<time>/`; nothing is deleted).")),
    "train.taken_no_resume": ("（它没有可续训的保存状态，只能换名或重新开始。）",
                              "(It has no saved state to resume from: start under a new name, or start over.)"),
    "train.new_name": ("新的运行名", "New run name"),
    "train.as_new": ("▶ 用这个名字开始", "▶ Start under this name"),
    "train.continue": ("↻ 续训已有的运行", "↻ Continue it (resume)"),
    "train.over": ("▶ 重新开始（旧结果移到 .previous）", "▶ Start over (earlier results to .previous)"),
    "train.moved": ("之前的结果已移到：`{folder}`（在“查看的运行”中可以打开）。",
                    "The earlier results were moved to `{folder}` (open them under “Run shown”)."),
    "train.name_used": ("运行名 {name} 也已有结果，请换一个名字。",
                        "The run name {name} holds results too: pick another."),
})

_PAST: dict[str, tuple[int, Run]] = {}  # a picked run, read once per change of its events.jsonl


def taken(run_dir: Path) -> bool:
    """Whether a run folder holds an earlier run's results: a new run there would move them aside."""
    return run_layout.has_results(run_dir) or (run_dir / "events.jsonl").exists()


def free_name(run_dir: Path) -> str:
    """The first of name-2, name-3, … whose folder beside run_dir holds no results."""
    n = 2
    while taken(run_dir.parent / f"{run_dir.name}-{n}"):
        n += 1
    return f"{run_dir.name}-{n}"


def resumable(run_dir: Path) -> bool:
    return (run_dir / run_layout.STATE).is_dir() and (run_dir / "config.toml").is_file()


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 256 * 1024))  # the recent past is enough to show
            return f.read().decode("utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def past_run(folder: str | Path, sup: Supervisor, lines: int) -> Run:
    """A run read from its folder: its events, the end of its log, the command that reruns it."""
    folder = Path(folder)
    events_path = folder / "events.jsonl"
    try:
        stamp = events_path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    cached = _PAST.get(str(folder))
    if cached and cached[0] == stamp:
        return cached[1]
    config = folder / "config.toml"
    status = outcome_of(folder) or "ended"
    run = Run(folder, config, sup.argv(config), sup.root, False, status=status, version=stamp,
              events=read_events(events_path)[0], started=0.0, ended=0.0)
    log = folder / "train.log"
    run.log.extend(_tail(log if log.exists() else folder / CONSOLE_FILE, lines))
    if status == "failed":
        run.error = {**(error_of(folder) or {}), "log_tail": "\n".join(list(run.log)[-40:])}
    _PAST[str(folder)] = (stamp, run)
    return run


def run_label(folder: Path, outputs_dir: Path, lang: str) -> str:
    """The run's path under the outputs folder; a moved-aside run says which run it came from and when."""
    def rel(p: Path) -> str:
        return str(p.relative_to(outputs_dir)) if p.is_relative_to(outputs_dir) else str(p)

    if folder.parent.name == run_layout.PREVIOUS:
        return t("train.pick_earlier", lang, run=rel(folder.parent.parent), stamp=folder.name)
    return rel(folder)


def run_choices(outputs_dir: Path, live: Run | None, lang: str) -> list[tuple[str, str]]:
    """The picker's runs: every run under the outputs folder, and under the live run's own folder when that is
    elsewhere (a run's output_dir may be any folder), newest first; first the live run itself."""
    folders = run_layout.list_runs(outputs_dir)
    if live is not None:
        outside = live.run_dir.parent
        if not outside.resolve().is_relative_to(Path(outputs_dir).resolve()):
            folders += [f for f in run_layout.list_runs(outside) if f not in folders]
    root = Path(outputs_dir)
    return [(t("train.pick_live", lang), "")] + [(run_label(f, root, lang), str(f)) for f in folders]


def look(sup: Supervisor, live: Run | None, picked: str, lines: int) -> tuple[Run | None, list[Any]]:
    """The run to show (the live one unless another is picked) and the key that says whether anything moved."""
    if picked and Path(picked).is_dir() and (live is None or Path(picked).resolve() != live.run_dir.resolve()):
        shown = past_run(picked, sup, lines)
    else:
        shown = live
    live_key = None if live is None else [str(live.run_dir), live.started, live.version, live.status]
    shown_key = None if shown is None else [str(shown.run_dir), shown.version, shown.status]
    return shown, [live_key, shown_key]


def damage_lines(shown: Run | None, live: Run | None, lang: str) -> str:
    """What became of the run state files found damaged, for the tab's orange warnings: the shown run's
    events.jsonl (copied aside, its readable events shown), and a trainer.json set aside when the server looked for
    a trainer still running (none is followed from it) until a run starts after it."""
    shown_dir = None if shown is None else shown.run_dir.resolve()
    lines = []
    for n in notices():
        if n.path.name == "events.jsonl" and shown_dir is not None and n.path.parent.resolve() == shown_dir \
                or n.path.name == PROCESS_FILE and (live is None or live.started < n.time):
            lines.append(f"⚠ {n.text(lang)}")
    return "\n\n".join(lines)


def taken_message(run_dir: Path, lang: str) -> Any:
    """Start's question when the name holds results, in both languages."""
    def text(lg: str) -> str:
        out = t("train.taken", lg, name=run_dir.name, folder=run_dir, free=free_name(run_dir))
        return out if resumable(run_dir) else out + "\n\n" + t("train.taken_no_resume", lg)
    return i18n.both(text, lang, classes=["danlu-warn"])
