"""`python launcher.py grid …`: pick a mode (a run, LoRA files, or runs side by side) and render its grid."""

from __future__ import annotations

import argparse
import sys

from core.errors import DanluError
from models.grid.compare import plan_runs, run_label, run_runs
from models.grid.plan import DEFAULT_WEIGHTS, parse_weights, plan_from_loras, plan_from_run
from models.grid.render import run_grid


def _compare_main(args, weights: list[float], lang: str) -> int:
    """`grid RUN --compare OTHER [--runs MORE …]`: the runs' grids side by side, the runs as Z (grid/compare.py)."""
    runs = [args.run, *([args.compare] if args.compare else []), *(args.runs or [])]
    plans, keys, warnings = plan_runs(
        runs, weights=weights, epochs=args.epochs, bases=args.bases, prompts=args.prompts or None,
        include_base=args.base_column, margin=args.margin, out_dir=args.out)
    for plan in plans:
        plan.batch = max(0, args.batch)
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{chr(65 + i)}: {label}" for i, label in enumerate(labels)]
    print(f"Compare: {' | '.join(labels)}: {len(keys)} files x {len(plans[0].weights)} weights")
    result = run_runs(plans, keys, labels, lang=lang, warnings=warnings,
                      progress=lambda d, n, eta, note="": print(f"  [{d}/{n}] {note}", flush=True))
    for en, zh in result.warnings:
        print(f"注意：{zh}" if lang == "zh" else f"Warning: {en}", file=sys.stderr)
    print(f"Grid saved: {result.grid_png}  ({result.done}/{result.total})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python launcher.py grid RUN.toml --weights 0.3,0.6,0.8 [--epochs …] [--bases …] [--prompts …]`."""
    from core.errors import current_lang

    p = argparse.ArgumentParser(prog="launcher.py grid", description="Render an XYZ grid: epochs x LoRA weights "
                                "(x base models or prompts), labelled like WebUI's X/Y/Z plot.")
    p.add_argument("run", nargs="?", help="the run folder, its config.toml, or the run TOML it was trained from")
    p.add_argument("--weights", default=",".join(map(str, DEFAULT_WEIGHTS)), help="Y: LoRA weights, e.g. 0.3,0.6,0.8")
    p.add_argument("--epochs", default=None, help="X: epochs to show, e.g. 2,4,final (default: all files)")
    p.add_argument("--bases", nargs="+", default=None, help="Z: other base models to try the LoRA on")
    p.add_argument("--prompts", nargs="*", default=None,
                   help="Z: prompts; give none to use all the run's sample prompts")
    p.add_argument("--compare", default=None, metavar="OTHER",
                   help="A/B: a second run (folder or TOML) shown beside the first, same files and weights")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                   help="runs as an axis: more runs (folders or TOMLs) beside the first, same files and weights; "
                        "without --epochs the best epochs by validation loss and their neighbours")
    p.add_argument("--loras", nargs="+", default=None, help="LoRA files instead of a run (needs --base)")
    p.add_argument("--base", default="", help="base model for --loras")
    p.add_argument("--base-column", action="store_true", help="add a column with the base model alone (weight 0)")
    p.add_argument("--margin", type=int, default=0, help="grid margins in px (0-500)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/grids/<time>/)")
    p.add_argument("--batch", type=int, default=0,
                   help="prompts rendered at once (default: 1 on the CPU, as many as fit on a GPU)")
    args = p.parse_args(argv)
    lang = current_lang()
    try:
        weights = parse_weights(args.weights)
        if (args.compare or args.runs) and args.run and not args.loras:
            return _compare_main(args, weights, lang)
        if args.loras:
            plan = plan_from_loras(args.loras, args.base, weights=weights, bases=args.bases, prompts=args.prompts,
                                   include_base=args.base_column, margin=args.margin, out_dir=args.out)
        elif args.run:
            plan = plan_from_run(args.run, weights=weights, epochs=args.epochs, bases=args.bases,
                                 prompts=args.prompts or None, all_prompts=args.prompts == [],
                                 include_base=args.base_column, margin=args.margin, out_dir=args.out)
        else:
            p.error("give a run (folder or TOML) or --loras FILES --base MODEL")
        plan.batch = max(0, args.batch)
        total = len(plan.cells())
        print(f"Grid: {len(plan.columns)} columns x {len(plan.weights)} weights"
              + (f" x {len(plan.z_labels() or [])} {plan.z_axis}s" if plan.z_axis else "") + f" = {total} cells")

        def progress(done: int, total: int, eta: float | None, note: str = "") -> None:
            eta_s = f", ETA {eta:.0f}s" if eta is not None else ""
            print(f"  [{done}/{total}{eta_s}] {note}", flush=True)

        result = run_grid(plan, progress=progress, lang=lang)
        for en, zh in result.warnings:
            print(f"注意：{zh}" if lang == "zh" else f"Warning: {en}", file=sys.stderr)
    except DanluError as e:
        print(("错误：" if lang == "zh" else "Error: ") + e.text(lang), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Cancelled.", file=sys.stderr)
        return 130
    print(f"Grid saved: {result.grid_png}\n  cells: {result.out_dir / 'cells'}  ({result.done}/{result.total})")
    return 0
