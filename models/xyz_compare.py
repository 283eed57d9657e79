"""A/B of two runs side by side: the same files (epoch, step or final) × the same weights, one panel per run.

Each run is rendered as its own grid (models.xyz.run_grid) with its own base, family and sample recipe, so
each panel shows what that run's LoRA gives a user; the two are then composed into one picture with the runs as
Z. Guides recommend this to choose between two settings on the same data (e.g. Z-Image adapter v1 vs v2).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import DanluError
from models.xyz import GridPlan, GridResult, file_key, plan_from_run, resolve_run


def key_label(key: str, lang: str) -> str:
    """'epoch 2' / 'step 250' / 'final' in the user's language."""
    if lang != "zh":
        return key
    word, _, n = key.partition(" ")
    return {"epoch": f"第 {n} 轮", "step": f"第 {n} 步"}.get(word, "最终")


def run_label(run: str | Path) -> str:
    cfg, run_dir = resolve_run(run)
    return cfg.saving.name if cfg.saving.name else Path(run_dir).name


def plan_compare(run_a: str | Path, run_b: str | Path, **kwargs) -> tuple[GridPlan, GridPlan, list[str],
                                                                          list[tuple[str, str]]]:
    """Plans of both runs over the files both have (as 'epoch 2', 'step 250', 'final'): (A, B, keys, warnings).

    kwargs are plan_from_run's (weights, epochs, prompts, include_base, margin, out_dir); the Z axis holds the
    runs, so other base models are refused and only the first prompt is used.
    """
    if kwargs.get("bases"):
        raise DanluError("A comparison of two runs uses the Z axis for the runs: other base models cannot be added.",
                         "两次运行对比时 Z 轴用于运行本身，不能再加其他底模。", "Leave the Z axis empty.",
                         "请把 Z 轴留空。", key="z")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("bases", "all_prompts")}
    if kwargs.get("prompts"):
        kwargs["prompts"] = kwargs["prompts"][:1]
    plan_a = plan_from_run(run_a, **kwargs)
    plan_b = plan_from_run(run_b, **{**kwargs, "out_dir": None, "epochs": None})
    name_a, name_b = resolve_run(run_a)[0].saving.name, resolve_run(run_b)[0].saving.name
    files_a = {file_key(f, name_a): f for f in plan_a.loras}
    files_b = {file_key(f, name_b): f for f in plan_b.loras}
    keys = [k for k in files_a if k in files_b]
    if not keys:
        raise DanluError(f"The two runs have no saved file in common (A: {', '.join(files_a) or 'none'}; "
                         f"B: {', '.join(files_b) or 'none'}).",
                         f"两次运行没有对应的保存文件（A：{', '.join(files_a) or '无'}；"
                         f"B：{', '.join(files_b) or '无'}）。",
                         "Compare runs saved at the same epochs or steps (same settings, one change).",
                         "请对比在相同轮次或步数保存的两次运行（设置相同，只改一处）。", key="compare")
    warnings = []
    left = sorted(set(files_a) ^ set(files_b))
    if left:
        warnings.append((f"Only in one of the runs, left out: {', '.join(left)}.",
                         f"只有一次运行有这些文件，已略过：{', '.join(left)}。"))
    plan_a.loras = [files_a[k] for k in keys]
    plan_b.loras = [files_b[k] for k in keys]
    plan_b.prompts = list(plan_a.prompts)  # the same prompt in both panels, each run's own recipe otherwise
    plan_b.include_base, plan_b.margin = plan_a.include_base, plan_a.margin
    plan_b.out_dir = plan_a.out_dir
    return plan_a, plan_b, keys, warnings


def run_compare(plan_a: GridPlan, plan_b: GridPlan, keys: list[str], labels: tuple[str, str], *, progress=None,
                cancel=None, lang: str = "en", warnings: list | None = None, on_warnings=None) -> GridResult:
    """Render both runs' grids, then the two side by side in <A's grids>/compare-<time>/grid.png (+ grid.json)."""
    from PIL import Image

    from core.fsutil import atomic_write_text
    from core.grid import compose_grid, save_grid_png
    from models.xyz import _new_folder, grid_parameters, run_grid

    total = len(plan_a.cells()) + len(plan_b.cells())

    def shifted(offset: int):
        if progress is None:
            return None
        return lambda done, _n, eta, note="": progress(offset + done, total, eta, note)

    results = []
    for i, plan in enumerate((plan_a, plan_b)):
        if cancel is not None and cancel.is_set():
            break
        results.append(run_grid(plan, progress=shifted(len(plan_a.cells()) if i else 0), cancel=cancel, lang=lang,
                                on_warnings=on_warnings))
    x_labels = plan_a.x_labels(lang)[:1] if plan_a.include_base else []  # the base column keeps its label
    x_labels += [key_label(k, lang) for k in keys]
    images, cells = {}, {}
    out = _new_folder(Path(plan_a.out_dir), "compare")
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
    text = grid_parameters(plan_a) + f', Z Type: Run, Z Values: "{labels[0]}, {labels[1]}"'
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
