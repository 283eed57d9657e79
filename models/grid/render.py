"""The XYZ grid: X = a run's epoch files, Y = LoRA weights, optional Z = other base models or prompts.

Planning (models/grid/plan.py) reads the run's config.toml, so the base model and the sample recipe are the ones
the LoRA was trained with. Rendering loads each base once, loads every LoRA file once as its own adapter and
switches between them by weight, and draws every cell with models.generate.render — the code that
renders the training samples — so a cell at the run's sample settings equals that epoch's sample.
On a GPU the prompt axis is rendered in batches (generate.render_batch) as far as memory allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from models.grid.plan import Cell, GridPlan, base_family, base_label, check_versions, dit_family, weight_label
from models.lora_file import read_metadata
from models.recipe import Sample, batch_args, same_args
from models.recipe import build as build_sample

# ------------------------------------------------------------------------------------------------ render

@dataclass
class GridResult:
    plan: GridPlan
    out_dir: Path
    grid_png: Path | None
    grid: object | None                      # models.grid.compose.Grid
    cells: dict = field(default_factory=dict)  # (z, y, x) → {"png", "parameters"}
    done: int = 0
    total: int = 0
    status: str = "finished"                 # 'finished' or 'cancelled'
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", text)[:60] or "cell"


def new_folder(parent: Path, prefix: str = "grid") -> Path:
    import time

    stamp = time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    folder, n = Path(parent) / stamp, 1
    while folder.exists():
        n += 1
        folder = Path(parent) / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def _hash_or_empty(fn: str, path: str | Path) -> str:
    from models import hashes

    return getattr(hashes, fn)(path) if Path(path).is_file() else ""


def _lora_hash(path: Path) -> str:
    return (read_metadata(path).get("sshs_model_hash") or "")[:12]


def cell_sample(plan: GridPlan, base: str, prompt: str, lora: Path | None = None, weight: float = 0.0) -> Sample:
    """Recipe and render arguments of one cell, built as the training samples build theirs (models.recipe)."""
    loras = [] if lora is None else [{"name": lora.stem, "weight": weight, "hash": _lora_hash(lora)}]
    family = plan.family if base == plan.bases[0] else dit_family(base)  # a DiT base's recipe is its family's
    sample = build_sample(plan.sampling, prompt=prompt, clip_skip=plan.clip_skip, family=family,
                          model=base_label(base), model_hash=_hash_or_empty("autov2", base), loras=loras,
                          zero_terminal_snr=plan.zero_terminal_snr and base == plan.bases[0], base=base)
    from models.lycoris import applied_note, file_kind

    kind = file_kind(lora) if lora is not None else None
    if kind:  # merged into the weights, as the training samples of such a file say (models.grid.loras)
        sample.recipe.setdefault("extra", {})["Lora applied"] = applied_note(kind)
    return sample


def _cell_size(plan: GridPlan) -> tuple[int, int]:
    """The first prompt's size (its own --w/--h, else the run's): cells of another size are scaled to it."""
    args = cell_sample(plan, plan.bases[0], plan.prompts[0]).args
    return args["width"], args["height"]


def cell_recipe(plan: GridPlan, cell: Cell) -> dict:
    """The cell's own A1111 recipe: the LoRA appears as <lora:stem:weight> (none in the base column)."""
    return cell_sample(plan, cell.base, cell.prompt, cell.lora, cell.weight).recipe


def grid_parameters(plan: GridPlan) -> str:
    """The grid's own parameters text: the shared recipe plus WebUI's X/Y/Z plot fields."""
    import json

    from models.generate import recipe_text

    def quoted(values: list[str]) -> str:
        # WebUI's way: values holding a comma are CSV-quoted, the list is then quoted as one JSON string.
        return json.dumps(", ".join(f'"{v}"' if "," in v else v for v in values), ensure_ascii=False)

    extra = {"Script": "X/Y/Z plot", "X Type": "LoRA file", "X Values": quoted(plan.x_labels()),
             "Y Type": "LoRA weight", "Y Values": quoted([weight_label(w) for w in plan.weights])}
    if plan.z_axis:
        extra.update({"Z Type": "Checkpoint name" if plan.z_axis == "base" else "Prompt",
                      "Z Values": quoted(plan.z_labels() or [])})
    recipe = cell_sample(plan, plan.bases[0], plan.prompts[0]).recipe | {"extra": extra}
    return recipe_text(recipe)


def batch_size(plan: GridPlan, pipe) -> int:
    """How many prompts of one cell column to render at once.

    On the CPU batching gains little and batch 1 keeps cells bit-identical to the training samples, so auto is 1.
    On a GPU, auto fits the batch in the free memory (a rough per-image estimate from the image area).
    """
    if plan.batch:
        return max(1, plan.batch)
    if len(plan.prompts) < 2 or not str(plan.device).startswith("cuda"):
        return 1
    import torch

    free, _ = torch.cuda.mem_get_info()
    sdxl = hasattr(pipe, "text_encoder_2")
    area = plan.sampling.width * plan.sampling.height
    per_image = (3.0e9 if sdxl else 1.2e9) * area / (1024 * 1024 if sdxl else 512 * 512)
    return int(max(1, min(len(plan.prompts), 8, (free * 0.7) // per_image)))


def open_base(plan: GridPlan, base: str):
    """A fresh pipeline for `base`, loaded as the training samples load it."""
    import torch

    from models.generate import open_pipeline

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[plan.dtype]
    own = base == plan.bases[0]  # the run's family/prediction/VAE settings describe its own base, not the others
    pipe = open_pipeline(base, family=plan.family if own else None,
                         prediction_type=plan.prediction_type if own else None,
                         vae=(plan.vae or None) if own else None, device=plan.device, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _eta(timings: dict, result: GridResult, n_bases: int) -> float:
    """Seconds left: cells at their mean render time, plus loading the bases still to come."""
    cells = timings["cell_s"]
    per_cell = sum(cells) / len(cells) if cells else 0.0
    loads = timings["base_load_s"]
    per_base = (sum(loads) + sum(timings["lora_load_s"])) / len(loads) if loads else 0.0
    return per_cell * (result.total - result.done) + per_base * (n_bases - len(loads))


def run_grid(plan: GridPlan, *, progress=None, cancel=None, lang: str = "en", family_of=None,
             on_warnings=None) -> GridResult:
    """Render every cell (each base loaded once, each LoRA loaded once and switched by weight), save each cell
    PNG with its own recipe and the grid PNG with its parameters. `cancel` (a threading.Event) stops between
    cells; what is done is still composed and saved."""
    import gc
    import time

    from models.generate import render_batch
    from models.grid.loras import open_loras

    warnings = check_versions(plan, family_of)
    if warnings and on_warnings:
        on_warnings(warnings)  # before the long part, so the user can stop a grid on the wrong base early
    cells = plan.cells()
    out = new_folder(plan.out_dir)
    (out / "cells").mkdir()
    result = GridResult(plan, out, None, None, total=len(cells), warnings=warnings)
    images: dict = {}
    base_images: dict = {}  # (base, prompt) → weight-0 image, shared by the base column and weight-0 rows
    timings = {"base_load_s": [], "lora_load_s": [], "cell_s": [], "switch_s": []}
    if progress:
        progress(0, len(cells), None, "")
    for base in plan.bases:
        if cancel is not None and cancel.is_set():
            break
        start = time.monotonic()
        pipe = open_base(plan, base)
        timings["base_load_s"].append(time.monotonic() - start)
        loras, seconds = open_loras(pipe, plan.loras, base_family(base, plan))
        timings["lora_load_s"] += seconds
        batch = batch_size(plan, pipe)
        todo = [c for c in cells if c.base == base]
        while todo and not (cancel is not None and cancel.is_set()):
            head, group, todo = _next_group(plan, base, todo, batch)
            fresh = [c for c in group if not (c.weight == 0 and (base, c.prompt) in base_images)]
            rendered = {}
            if fresh:
                start = time.monotonic()
                loras.select(head.lora, head.weight)
                timings["switch_s"].append(time.monotonic() - start)
                start = time.monotonic()
                sample = cell_sample(plan, base, fresh[0].prompt)
                out_images = render_batch(pipe, **batch_args(sample, [c.prompt for c in fresh]))
                timings["cell_s"] += [(time.monotonic() - start) / len(fresh)] * len(fresh)
                rendered = {c.prompt: im for c, im in zip(fresh, out_images, strict=True)}
                if head.weight == 0:
                    base_images.update({(base, p): im for p, im in rendered.items()})
            for cell in group:
                image = rendered[cell.prompt] if cell.prompt in rendered else base_images[(base, cell.prompt)]
                name = _save_cell(plan, cell, image, out, result)
                images[(cell.z, cell.y, cell.x)] = image
                if progress:
                    progress(result.done, result.total, _eta(timings, result, len(plan.bases)), name)
        loras.close()
        del pipe
        gc.collect()
    result.status = "finished" if result.done == result.total else "cancelled"
    result.timings = timings
    return _compose(plan, result, images, lang)


def _next_group(plan: GridPlan, base: str, todo: list[Cell], batch: int) -> tuple[Cell, list[Cell], list[Cell]]:
    """(first cell, the cells rendered with it, the cells left): one LoRA at one weight, up to `batch` prompts at
    once (the prompt axis is the innermost loop)."""
    head = todo[0]
    # prompts with their own flags (--w, --s …) batch only with prompts rendered the same way
    head_sample = cell_sample(plan, base, head.prompt)
    group = [c for c in todo[:batch] if (c.x, c.y) == (head.x, head.y)
             and same_args(cell_sample(plan, base, c.prompt), head_sample)]
    return head, group, [c for c in todo if all(c is not g for g in group)]


def _save_cell(plan: GridPlan, cell: Cell, image, out: Path, result: GridResult) -> str:
    """Save one cell's PNG with its own recipe and record it in `result`; returns the file name."""
    from models.generate import recipe_text, save_png

    cell_rec = cell_recipe(plan, cell)
    parameters = recipe_text(cell_rec)
    name = f"z{cell.z}_y{cell.y}_x{cell.x}_{_slug(cell.lora.stem if cell.lora else 'base')}" \
           f"_w{weight_label(cell.weight)}.png"
    save_png(image, out / "cells" / name, parameters, cell_rec.get("png_chunks"))
    result.cells[(cell.z, cell.y, cell.x)] = {"png": f"cells/{name}", "parameters": parameters}
    result.done += 1
    return name


def _compose(plan: GridPlan, result: GridResult, images: dict, lang: str) -> GridResult:
    """Compose the rendered cells into the grid PNG (with the grid's parameters) and its grid.json."""
    import json

    from core.fsutil import atomic_write_text
    from models.grid.compose import compose_grid, save_grid_png

    out = result.out_dir
    grid = compose_grid(images, plan.x_labels(lang), plan.y_labels(lang), plan.z_labels(), margin=plan.margin,
                        cell_size=_cell_size(plan))
    result.grid = grid
    result.warnings += [w for w in grid.warnings if w not in result.warnings]
    text = grid_parameters(plan)
    if result.status == "cancelled":
        text += f", Cells done: {result.done}/{result.total}"
    result.grid_png = save_grid_png(grid.image, out / "grid.png", text)
    boxes = grid.layout.boxes
    atomic_write_text(out / "grid.json", json.dumps({
        "parameters": text, "status": result.status, "done": result.done, "total": result.total,
        "x_labels": plan.x_labels(lang), "y_labels": plan.y_labels(lang), "z_labels": plan.z_labels(),
        "warnings": result.warnings, "size": list(grid.image.size),
        "cells": [{"z": z, "y": y, "x": x, "box": list(boxes[(z, y, x)]), **info}
                  for (z, y, x), info in sorted(result.cells.items())]}, ensure_ascii=False, indent=1))
    return result


def cell_at(grid_json: Path, px: float, py: float) -> dict | None:
    """The cell record under a pixel of a saved grid (for clicks on the picture), or None."""
    import json

    data = json.loads(Path(grid_json).read_text(encoding="utf-8"))
    for cell in data["cells"]:
        left, top, right, bottom = cell["box"]
        if left <= px < right and top <= py < bottom:
            return cell
    return None
