"""`python launcher.py train RUN.toml [--set k=v] [--resume] [--dry-run] [--sweep k=v1,v2]` (or `python -m training`).

Exit codes: 0 finished or stopped (resumable), 2 a problem the user can fix (message and hint on
stdout and as an error event), 1 an unexpected failure (traceback in train.log and the error event).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from pathlib import Path

from core import config as cfgmod
from core.errors import DanluError
from core.events import EVENTS_FILE, EventWriter

OOM_EN = ("Out of GPU memory. Try, in order: batch size 1; gradient checkpointing on; cache latents; a lower "
          "resolution; the AdamW8bit optimizer; mixed precision fp16/bf16.")
OOM_ZH = ("显存不足。请依次尝试：批大小设为 1；打开梯度检查点；缓存 latent；降低分辨率；改用 AdamW8bit 优化器；"
          "使用 fp16/bf16 混合精度。")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launcher.py train", description="Train a LoRA from a run config (TOML).")
    p.add_argument("config", nargs="?", help="the run's TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")
    p.add_argument("--preset", help="a preset applied under the run file (core.config.presets)")
    p.add_argument("--resume", action="store_true", help="continue from the run's saved state")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and dataset, print the plan, train nothing")
    p.add_argument("--help-config", action="store_true", help="list every config key")
    p.add_argument("--sweep", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                   help="one run per combination of values, queued and trained one after another (core.runs.sweep); "
                        "with --dry-run only the plan is printed")
    p.add_argument("--outputs", default="outputs", help="with --sweep: the outputs folder whose queue is used")
    return p


def _log_tail(run_dir: Path, lines: int = 30) -> str:
    try:
        return "\n".join((run_dir / "train.log").read_text(encoding="utf-8").splitlines()[-lines:])
    except OSError:
        return ""


def _dry_run(cfg: cfgmod.RunConfig) -> int:
    """core.checks' verdict (errors stop, with exit code 2), then the dataset and the step plan."""
    from core.checks import errors
    from core.dataset.steps import total_steps
    from core.errors import current_lang
    from models import preflight
    from training import data as D

    found = preflight.issues(cfg)
    lang = current_lang()
    for issue in found:
        print(f"{issue.level.upper()}: {issue.text(lang)}")
    if errors(found):
        return 2
    ds = D.build_dataset(cfg, lambda en, zh: print(f"WARNING: {zh if lang == 'zh' else en}"))
    n_batches = len(D.epoch_batches(ds, cfg.training.batch_size, cfg.training.seed, 0))
    spe = D.steps_per_epoch(n_batches, 1, cfg.training.gradient_accumulation_steps)
    total = total_steps(spe, cfg.training.epochs, cfg.training.max_train_steps)
    print(f"{len(ds.items)} images, {ds.images_per_epoch} with repeats, {n_batches} batches per epoch, "
          f"{spe} steps per epoch, {total} steps in all")
    print(f"Run folder: {cfg.run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.help_config:
        print(cfgmod.describe())
        return 0
    if not args.config:
        _parser().print_usage()
        print("error: give the run's TOML file, e.g. python launcher.py train outputs/demo/run.toml")
        return 2
    try:
        cfg = cfgmod.load(args.config, preset=args.preset, overrides=args.set)
    except DanluError as e:
        print(e.text())
        return 2
    from core.download import apply

    apply(cfg.model.download_source, cfg.model.hub_mirror)  # hub ids in this run come from its download source
    if args.sweep:
        from core.runs.cli import sweep_main
        from models import preflight

        return sweep_main(cfg, args.sweep, Path(args.outputs), queue=not args.dry_run, check=preflight.issues)
    if args.dry_run:
        try:
            return _dry_run(cfg)
        except DanluError as e:
            print(e.text())
            return 2
    command = shlex.join([sys.executable, "-m", "training", *(argv if argv is not None else sys.argv[1:])])
    run_dir = cfg.run_dir
    try:
        from training.loop import train

        result = train(cfg, resume=args.resume, command=command)
        return 0 if result.status in ("finished", "stopped") else 1
    except DanluError as e:
        print(e.text())
        _fail(run_dir, e.to_event())
        return 2
    except KeyboardInterrupt:  # a second Ctrl+C: stopped at once, nothing saved since the last file
        print("Aborted without saving.")
        _fail(run_dir, None)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: the UI must still learn what happened
        err = _as_user_error(e)
        if err is not None:
            print(err.text())
            _fail(run_dir, err.to_event())
            return 2
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "train.log", "a", encoding="utf-8") as f:
                f.write(tb)
        except OSError:
            pass
        _fail(run_dir, {"message": f"Training failed: {e}", "message_zh": f"训练失败：{e}",
                        "hint": "See train.log in the run folder for the full traceback.",
                        "hint_zh": "完整的错误信息见运行文件夹中的 train.log。"})
        return 1


def _as_user_error(e: Exception) -> DanluError | None:
    """Errors with a known cause and a known fix."""
    name = type(e).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(e).lower():
        return DanluError(f"{OOM_EN} ({e})", f"{OOM_ZH}（{e}）", OOM_EN, OOM_ZH, key="training.batch_size")
    return None


def _fail(run_dir: Path, fields: dict | None) -> None:
    """Error and done events (fields None: aborted by the user, done 'stopped' without an error)."""
    try:
        from accelerate import PartialState

        if not PartialState().is_main_process:
            return
    except Exception:  # noqa: BLE001, S110 - no accelerate state yet (the error came first): the only process
        pass
    w = EventWriter(run_dir / EVENTS_FILE)
    if fields is None:
        w.emit("warning", message="Aborted without saving.", message_zh="已中止，未保存。")
        w.emit("done", status="stopped", files=[])
        return
    fields = {k: v for k, v in fields.items() if k != "key"}
    w.emit("error", log_tail=_log_tail(run_dir), **fields)
    w.emit("done", status="failed", files=[])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
