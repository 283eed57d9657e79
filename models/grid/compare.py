"""Runs as an axis: the same files (epoch, step or final) × the same weights, one panel per run (A/B is two).

Each run is rendered as its own grid (models.grid.render.run_grid) with its own base, family and sample recipe, so
each panel shows what that run's LoRA gives a user; the two are then composed into one picture with the runs as
Z. Guides recommend this to choose between two settings on the same data (e.g. Z-Image adapter v1 vs v2).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import DanluError
from core.runs.layout import resolve_run
from models.grid.plan import GridPlan, epoch_files, file_key, plan_from_run
from models.grid.render import GridResult, grid_parameters, new_folder, run_grid


def key_label(key: str, lang: str) -> str:
    """'epoch 2' / 'step 250' / 'final' in the user's language."""
    if lang != "zh":
        return key
    word, _, n = key.partition(" ")
    return {"epoch": f"第 {n} 轮", "step": f"第 {n} 步"}.get(word, "最终")


def run_label(run: str | Path) -> str:
    cfg, run_dir = resolve_run(run)
    return cfg.saving.name if cfg.saving.name else Path(run_dir).name


def best_keys(run: str | Path, keys: list[str]) -> list[str]:
    """The best epoch (lowest validation loss in the run's events.jsonl) and its neighbours among keys, in order;
    all keys when the run scored no validation loss."""
    from core.events import best_validation, read_events

    cfg, run_dir = resolve_run(run)
    events, _ = read_events(Path(run_dir) / "events.jsonl")
    best = best_validation(events)
    if best is None:
        return list(keys)
    saved = [e for e in events if e.get("type") == "saved" and e.get("step") == best.get("step")]
    if not saved:
        return list(keys)
    key = file_key(Path(saved[-1]["file"]), cfg.saving.name)
    if key not in keys:
        return list(keys)
    i = keys.index(key)
    return keys[max(0, i - 1):i + 2]


def plan_runs(runs: list[str | Path], **kwargs) -> tuple[list[GridPlan], list[str], list[tuple[str, str]]]:
    """Plans of several runs over the files all have (as 'epoch 2', 'step 250', 'final'): (plans, keys, warnings).

    kwargs are plan_from_run's (weights, epochs, prompts, include_base, margin, out_dir); the Z axis holds the
    runs, so other base models are refused and only the first prompt is used. Without `epochs`, a run that scored
    a validation loss preselects its best epoch and the neighbours (those of every run, together).
    """
    if kwargs.get("bases"):
        raise DanluError("A comparison of runs uses the Z axis for the runs: other base models cannot be added.",
                         "对比多次运行时 Z 轴用于运行本身，不能再加其他底模。", "Leave the Z axis empty.",
                         "请把 Z 轴留空。", key="z")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("bases", "all_prompts")}
    if kwargs.get("prompts"):
        kwargs["prompts"] = kwargs["prompts"][:1]
    first = plan_from_run(runs[0], **kwargs)
    plans = [first] + [plan_from_run(r, **{**kwargs, "out_dir": None, "epochs": None}) for r in runs[1:]]
    families = {run_label(r): plan.family for r, plan in zip(runs, plans)}
    if len({f for f in families.values() if f}) > 1:
        listed = ", ".join(f"{n} ({f or 'auto'})" for n, f in families.items())
        raise DanluError(f"These runs are of different model families: {listed}.",
                         f"这些运行属于不同的模型系列：{listed}。",
                         "Compare runs trained on the same base family.", "请对比在同一系列底模上训练的运行。",
                         key="compare")
    files = [{file_key(f, resolve_run(r)[0].saving.name): f for f in plan.loras} for r, plan in zip(runs, plans)]
    keys = [k for k in files[0] if all(k in f for f in files[1:])]
    if not keys:
        have = "; ".join(f"{run_label(r)}: {', '.join(f) or 'none'}" for r, f in zip(runs, files))
        have_zh = "；".join(f"{run_label(r)}：{'、'.join(f) or '无'}" for r, f in zip(runs, files))
        raise DanluError(f"The runs have no saved file in common ({have}).",
                         f"这些运行没有对应的保存文件（{have_zh}）。",
                         "Compare runs saved at the same epochs or steps (same settings, one change).",
                         "请对比在相同轮次或步数保存的运行（设置相同，只改一处）。", key="compare")
    warnings = []
    left = [k for k in files[0] if k not in keys]  # chosen for the first run, missing in another
    if left:
        warnings.append((f"Only in some of the runs, left out: {', '.join(left)}.",
                         f"只有部分运行有这些文件，已略过：{'、'.join(left)}。"))
    if not kwargs.get("epochs"):
        preselected = [k for k in keys if any(k in best_keys(r, keys) for r in runs)]
        if preselected != keys:
            warnings.append((f"Best epochs by validation loss and their neighbours: {', '.join(preselected)}.",
                             f"按验证损失选出的最佳轮次及其相邻轮次：{'、'.join(preselected)}。"))
            keys = preselected
    for plan, f in zip(plans, files):
        plan.loras = [f[k] for k in keys]
    for plan in plans[1:]:
        plan.prompts = list(first.prompts)  # the same prompt in every panel, each run's own recipe otherwise
        plan.include_base, plan.margin, plan.out_dir = first.include_base, first.margin, first.out_dir
    return plans, keys, warnings


def plan_compare(run_a: str | Path, run_b: str | Path, **kwargs) -> tuple[GridPlan, GridPlan, list[str],
                                                                          list[tuple[str, str]]]:
    """A/B of two runs: plan_runs with two, as (A, B, keys, warnings)."""
    plans, keys, warnings = plan_runs([run_a, run_b], **kwargs)
    return plans[0], plans[1], keys, warnings


def run_compare(plan_a: GridPlan, plan_b: GridPlan, keys: list[str], labels: tuple[str, str], **kwargs) -> GridResult:
    """Render both runs' grids, then the two side by side in <A's grids>/compare-<time>/grid.png (+ grid.json)."""
    return run_runs([plan_a, plan_b], keys, list(labels), **kwargs)


def run_runs(plans: list[GridPlan], keys: list[str], labels: list[str], *, progress=None, cancel=None,
             lang: str = "en", warnings: list | None = None, on_warnings=None) -> GridResult:
    """Render each run's grid, then all side by side (the runs as Z) in <first's grids>/compare-<time>/grid.png."""
    from PIL import Image

    from core.fsutil import atomic_write_text
    from models.grid.compose import compose_grid, save_grid_png

    plan_a = plans[0]
    total = sum(len(p.cells()) for p in plans)
    offsets = [sum(len(p.cells()) for p in plans[:i]) for i in range(len(plans))]

    def shifted(offset: int):
        if progress is None:
            return None
        return lambda done, _n, eta, note="": progress(offset + done, total, eta, note)

    results = []
    for i, plan in enumerate(plans):
        if cancel is not None and cancel.is_set():
            break
        results.append(run_grid(plan, progress=shifted(offsets[i]), cancel=cancel, lang=lang,
                                on_warnings=on_warnings))
    x_labels = plan_a.x_labels(lang)[:1] if plan_a.include_base else []  # the base column keeps its label
    x_labels += [key_label(k, lang) for k in keys]
    images, cells = {}, {}
    out = new_folder(Path(plan_a.out_dir), "compare")
    for z, result in enumerate(results):
        for (_, y, x), info in result.cells.items():
            png = result.out_dir / info["png"]
            with Image.open(png) as im:
                images[(z, y, x)] = im.convert("RGB")
            cells[(z, y, x)] = {"png": str(Path("..") / result.out_dir.name / info["png"]),
                                "parameters": info["parameters"]}
    grid = compose_grid(images, x_labels, plan_a.y_labels(lang), list(labels), margin=plan_a.margin,
                        cell_size=(plan_a.sampling.width, plan_a.sampling.height))
    done = sum(r.done for r in results)
    status = "finished" if done == total else "cancelled"
    text = grid_parameters(plan_a) + f', Z Type: Run, Z Values: "{", ".join(labels)}"'
    if status == "cancelled":
        text += f", Cells done: {done}/{total}"
    all_warnings = list(warnings or [])
    for result in results:
        all_warnings += [w for w in result.warnings if w not in all_warnings]
    png = save_grid_png(grid.image, out / "grid.png", text)
    boxes = grid.layout.boxes
    atomic_write_text(out / "grid.json", json.dumps({
        "parameters": text, "status": status, "done": done, "total": total, "x_labels": x_labels,
        "y_labels": plan_a.y_labels(lang), "z_labels": list(labels), "warnings": all_warnings,
        "size": list(grid.image.size), "runs": [str(r.out_dir) for r in results],
        "cells": [{"z": z, "y": y, "x": x, "box": list(boxes[(z, y, x)]), **info}
                  for (z, y, x), info in sorted(cells.items())]}, ensure_ascii=False, indent=1))
    return GridResult(plan_a, out, png, grid, cells, done=done, total=total, status=status, warnings=all_warnings)


def best_stems(run: str | Path) -> list[str]:
    """The file stems a grid of one run preselects: the best epoch and its neighbours, or every file."""
    cfg, run_dir = resolve_run(run)
    files = [f for _, f in epoch_files(run_dir, cfg.saving.name)]
    keys = [file_key(f, cfg.saving.name) for f in files]
    chosen = best_keys(run, keys)
    return [f.stem for f, k in zip(files, keys) if k in chosen]
