"""`python launcher.py queue add|list|remove|run|...`: the run queue from a shell (the Train tab shows the same)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import current_lang
from core.runs.queue import Queue

STATE_ZH = {"queued": "排队中", "running": "训练中", "done": "完成", "failed": "失败", "cancelled": "已取消"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launcher.py queue", description="The run queue: runs train one after another.")
    p.add_argument("--outputs", default="outputs", help="the outputs folder whose queue to use (default: outputs)")
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="queue run TOMLs (validated; their settings are copied into the queue)")
    add.add_argument("configs", nargs="+")
    sub.add_parser("list", help="the queue in order, with states and errors")
    for name, text in (("remove", "take items off the queue"), ("cancel", "cancel items (a running one saves, then "
                                                                           "stops)"),
                       ("requeue", "queue failed or cancelled items again"), ("up", "move an item up"),
                       ("down", "move an item down")):
        s = sub.add_parser(name, help=text)
        s.add_argument("ids", nargs="+")
    sub.add_parser("pause", help="let the current run finish, start no other")
    sub.add_parser("resume", help="start queued runs again")
    run = sub.add_parser("run", help="train the queued runs one after another, here in the foreground")
    run.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    return p


def list_text(q: Queue, lang: str) -> str:
    items = q.items()
    if not items:
        return "队列为空。" if lang == "zh" else "The queue is empty."
    lines = ["（已暂停：当前运行结束后不再开始新的运行）" if lang == "zh" else
             "(paused: no new run starts after the current one)"] if q.paused() else []
    for n, item in enumerate(items, 1):
        state = STATE_ZH[item.state] if lang == "zh" else item.state
        lines.append(f"{n:>3}. {item.id}  {state:<9}  {item.name}" + (f"  ({item.note})" if item.note else ""))
        if item.error:
            lines.append(f"       {item.error.get('message_zh' if lang == 'zh' else 'message', '')}")
            hint = item.error.get("hint_zh" if lang == "zh" else "hint", "")
            if hint:
                lines.append(f"       {hint}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    q = Queue(Path(args.outputs).resolve())
    lang = current_lang()
    if args.action == "add":
        for path in args.configs:
            item = q.add(path)
            print(f"{item.id}  {item.name}  ← {path}")
    elif args.action == "list":
        print(list_text(q, lang))
    elif args.action in ("remove", "cancel", "requeue", "up", "down"):
        for item_id in args.ids:
            {"remove": q.remove, "cancel": q.cancel, "requeue": q.requeue,
             "up": lambda i: q.move(i, -1), "down": lambda i: q.move(i, +1)}[args.action](item_id)
        print(list_text(q, lang))
    elif args.action in ("pause", "resume"):
        q.set_paused(args.action == "pause")
        print(list_text(q, lang))
    elif args.action == "run":
        return _run(q, lang, args.interval)
    return 0


def _run(q: Queue, lang: str, interval: float) -> int:
    from core.runs.queue_runner import QueueRunner
    from core.runs.supervisor import Supervisor

    r = QueueRunner(q, Supervisor(Path.cwd(), echo=True), interval=interval)
    try:
        state = r.run_all()
    except KeyboardInterrupt:
        print("队列已停止；正在训练的进程会继续，再次运行 `queue run` 或打开界面即可接上。" if lang == "zh" else
              "The queue runner stopped; a trainer still running goes on, and `queue run` or the UI picks it up.")
        return 130
    print(list_text(q, lang))
    failed = sum(i.state == "failed" for i in q.items())
    return 1 if failed and state == "idle" else 0


def sweep_main(cfg, sweeps: list[str], outputs: Path, queue: bool = True, run: bool = True, check=None) -> int:
    """`train RUN.toml --sweep k=v1,v2 ...`: print the plan (runs, steps, time), queue the runs, train the queue.

    check(cfg) → core.checks issues (models.preflight.issues): a run with an error is refused before any is queued.
    """
    from core.checks import errors
    from core.errors import DanluError
    from core.runs.sweep import plan, queue_plan

    lang = current_lang()
    try:
        p = plan(cfg, sweeps, outputs.resolve(), Path.cwd())
    except DanluError as e:
        print(e.text(lang))
        return 2
    print(p.text(lang), flush=True)
    if not queue:
        return 0
    refused = [(r.cfg.saving.name, i.text(lang)) for r in p.runs for i in errors(check(r.cfg) if check else [])]
    for name, text in refused:
        print(f"ERROR {name}: {text}")
    if refused:
        return 2
    q = Queue(outputs.resolve())
    for item in queue_plan(p, outputs.resolve()):
        print(f"{item.id}  {item.name}  → {q.config_path(item)}")
    return _run(q, lang, 1.0) if run else 0
