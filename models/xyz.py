"""The XYZ grid: X = a run's epoch files, Y = LoRA weights, optional Z = other base models or prompts.

Planning reads the run's config.toml, so the base model and the sample recipe are the ones the LoRA
was trained with. Rendering loads each base once, loads every LoRA file once as its own adapter and
switches between them by weight, and draws every cell with models.generate.render — the code that
renders the training samples — so a cell at the run's sample settings equals that epoch's sample.
On a GPU the prompt axis is rendered in batches (generate.render_batch) as far as memory allows.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core import config as cfgmod
from core import run_layout
from core.errors import DanluError
from models.recipe import Sample, batch_args, same_args
from models.recipe import build as build_sample

DEFAULT_WEIGHTS = (0.3, 0.6, 0.8, 1.0)


@dataclass
class Cell:
    z: int
    y: int
    x: int
    base: str
    lora: Path | None   # None: the base-model column (no LoRA, weight 0)
    weight: float
    prompt: str


@dataclass
class GridPlan:
    """Everything a grid needs; `cells()` lists them in render order (base outermost, as WebUI does)."""

    bases: list[str]
    loras: list[Path]
    weights: list[float]
    prompts: list[str]
    z_axis: str | None = None            # None, "base" or "prompt"
    include_base: bool = False           # an extra first column: the base model alone (weight 0)
    sampling: cfgmod.SamplingConfig = field(default_factory=cfgmod.SamplingConfig)  # the run's sample recipe
    clip_skip: int = 1
    family: str | None = None            # from the run: 'auto' becomes None (detected)
    prediction_type: str | None = None
    zero_terminal_snr: bool = False      # the run's: the run's own base samples with rescaled betas
    vae: str = ""
    device: str = "cpu"
    dtype: str = "fp32"
    margin: int = 0
    batch: int = 0                       # prompts rendered together; 0 = auto (1 on the CPU, by free memory on a GPU)
    out_dir: Path = field(default_factory=lambda: Path("outputs") / "grids")
    run_dir: Path | None = None

    @property
    def columns(self) -> list[Path | None]:
        return ([None] if self.include_base else []) + list(self.loras)

    def x_labels(self, lang: str = "en") -> list[str]:
        base = "底模（无 LoRA）" if lang == "zh" else "base (no LoRA)"
        return [base if c is None else c.stem for c in self.columns]

    def y_labels(self, lang: str = "en") -> list[str]:
        word = "权重" if lang == "zh" else "Weight"
        return [f"{word}: {_fmt(w)}" for w in self.weights]

    def z_labels(self) -> list[str] | None:
        if self.z_axis == "base":
            return [base_label(b) for b in self.bases]
        if self.z_axis == "prompt":
            return list(self.prompts)
        return None

    def cells(self) -> list[Cell]:
        out = []
        for zb, base in enumerate(self.bases):
            for x, lora in enumerate(self.columns):
                for y, weight in enumerate(self.weights):
                    for zp, prompt in enumerate(self.prompts):
                        z = zb if self.z_axis == "base" else zp
                        out.append(Cell(z, y, x, base, lora, 0.0 if lora is None else weight, prompt))
        return out


def _fmt(w: float) -> str:
    return str(int(w)) if float(w).is_integer() else f"{w:g}"


def base_label(base: str) -> str:
    """What WebUI shows for a checkpoint: the basename without extension (hub ids stay whole)."""
    p = Path(base)
    return p.stem if p.suffix in (".safetensors", ".ckpt", ".pt", ".bin") else (p.name if p.exists() else base)


def parse_weights(text: str | list) -> list[float]:
    """'0.3,0.6, 0.8' (or a list) → [0.3, 0.6, 0.8]; a bad value is a DanluError naming it."""
    items = text if isinstance(text, list) else [s for s in re.split(r"[,\s，]+", str(text)) if s]
    out = []
    for item in items:
        try:
            w = float(item)
        except (TypeError, ValueError):
            raise DanluError(f"LoRA weight {item!r} is not a number.", f"LoRA 权重 {item!r} 不是数字。",
                             "Write weights as numbers separated by commas, e.g. 0.3,0.6,0.8,1.0",
                             "请用逗号分隔的数字填写权重，例如 0.3,0.6,0.8,1.0", key="weights") from None
        if not -4.0 <= w <= 4.0:
            raise DanluError(f"LoRA weight {w} is out of range (-4 to 4).", f"LoRA 权重 {w} 超出范围（-4 到 4）。",
                             "Weights between 0 and 1.2 are usual.", "常用的权重在 0 到 1.2 之间。", key="weights")
        out.append(w)
    if not out:
        raise DanluError("No LoRA weights given.", "没有填写 LoRA 权重。", "For example: 0.3,0.6,0.8,1.0",
                         "例如：0.3,0.6,0.8,1.0", key="weights")
    return out


resolve_run = run_layout.resolve_run  # the grid's callers import it from here


def epoch_files(run_dir: Path, name: str) -> list[tuple[int | None, Path]]:
    """The run's LoRA files in training order: name-000002, …, name-step00000250, …, then name (the final file).

    Step files (saving.every_n_steps) have no epoch number: their key is None as the final file's, and they are
    told apart by name (select_epochs takes their stem or 'step250'). Mixed with epoch files, the order is the
    training step each file records in its metadata.
    """
    found = run_layout.lora_files(run_dir, name)
    numbered = [(n, f) for kind, n, f in found if kind == "epoch"]
    steps = [(n, f) for kind, n, f in found if kind == "step"]
    files = numbered + [(None, f) for _, f in steps]
    if numbered and steps:
        files.sort(key=lambda item: _trained_steps(item[1]))
    return files + [(None, f) for kind, _, f in found if kind == "final"]


def _trained_steps(path: Path) -> int:
    try:
        return int(_lora_metadata(path).get("ss_steps") or 0)
    except (ValueError, OSError):
        return 0


def file_key(path: Path, name: str) -> str:
    """'epoch 2', 'step 250' or 'final': what a file of run `name` is, whatever the run is called."""
    kind, number = run_layout.parse_lora_file(path, name) or ("final", None)
    return kind if number is None else f"{kind} {number}"


def select_epochs(files: list[tuple[int | None, Path]], spec: str | None) -> list[Path]:
    """spec: None/'all', or '2,4,final' (numbers or the final file) → the chosen files, in order."""
    if not spec or spec.strip().lower() == "all":
        return [f for _, f in files]
    wanted = [s.strip().lower() for s in re.split(r"[,\s，]+", spec) if s.strip()]
    chosen = []
    for w in wanted:
        match = [f for e, f in files if w == f.stem.lower() or (e is not None and w.isdigit() and int(w) == e)
                 or (e is None and run_layout.step_number(f) is None and w in ("final", "last"))
                 or (e is None and w.startswith("step") and w[4:].isdigit()
                     and run_layout.step_number(f) == int(w[4:]))]
        if not match:
            have = ", ".join(str(e) if e is not None else f.stem if run_layout.step_number(f) is not None else "final"
                             for e, f in files) or "none"
            raise DanluError(f"No LoRA file for epoch {w!r} in this run (have: {have}).",
                             f"这次运行没有第 {w!r} 轮的 LoRA 文件（现有：{have}）。",
                             "Leave epochs empty for all files, or pick from the list.",
                             "留空表示全部文件，或从现有的轮次中选。", key="epochs")
        chosen += [f for f in match if f not in chosen]
    return chosen


def _auto_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def plan_from_run(run: str | Path, *, weights: list[float] | None = None, epochs: str | None = None,
                  bases: list[str] | None = None, prompts: list[str] | None = None, all_prompts: bool = False,
                  include_base: bool = False, margin: int = 0, out_dir: Path | None = None) -> GridPlan:
    """Plan a grid from a run: its base, sample recipe and epoch files. Z = extra bases or prompts (not both)."""
    cfg, run_dir = resolve_run(run)
    files = epoch_files(run_dir, cfg.saving.name)
    if not files:
        raise DanluError(f"No LoRA files of run '{cfg.saving.name}' in {run_dir}.",
                         f"运行 '{cfg.saving.name}' 的文件夹 {run_dir} 里还没有 LoRA 文件。",
                         "Train first (each saved epoch gives a column), or pick LoRA files directly.",
                         "请先训练（每个保存的轮次是一列），或直接选择 LoRA 文件。", key=str(run_dir))
    s = cfg.sampling
    run_prompts = list(s.prompts) or [cfg.dataset.trigger_word or ""]
    if prompts and bases:
        raise DanluError("Z can be other base models or prompts, not both.",
                         "Z 轴只能是其他底模或提示词，不能同时两者。", "Choose one Z axis.", "请只选一种 Z 轴。",
                         key="z")
    chosen_prompts = list(prompts) if prompts else (run_prompts if all_prompts else run_prompts[:1])
    z_bases = [cfg.model.base] + [b for b in (bases or []) if b and b != cfg.model.base]
    z_axis = "base" if len(z_bases) > 1 else ("prompt" if len(chosen_prompts) > 1 else None)
    device = _auto_device(cfg.training.device)
    dtype = "fp32" if device == "cpu" or cfg.training.mixed_precision == "no" else cfg.training.mixed_precision
    return GridPlan(
        bases=z_bases, loras=select_epochs(files, epochs), weights=list(weights or DEFAULT_WEIGHTS),
        prompts=chosen_prompts, z_axis=z_axis, include_base=include_base, sampling=s,
        clip_skip=cfg.training.clip_skip, family=run_family(cfg),
        prediction_type=None if cfg.model.prediction_type == "auto" else cfg.model.prediction_type,
        zero_terminal_snr=cfg.model.zero_terminal_snr,
        vae=cfg.model.vae, device=device, dtype=dtype, margin=margin,
        out_dir=Path(out_dir) if out_dir else run_dir / "grids", run_dir=run_dir)


def run_family(cfg: cfgmod.RunConfig) -> str | None:
    """The run's family setting; 'auto' stays None (detected at load) unless the base is a DiT family, whose
    sampling recipe (models.recipe's family hook) must be known before anything is loaded."""
    if cfg.model.family != "auto":
        return cfg.model.family
    from models import families
    from models.detect import detect

    found = detect(cfg.model.base).family
    return found if families.dit_module(found) is not None else None


def plan_from_loras(loras: list[str | Path], base: str, *, sampling: dict | None = None,
                    weights: list[float] | None = None, bases: list[str] | None = None,
                    prompts: list[str] | None = None, include_base: bool = False, margin: int = 0,
                    clip_skip: int = 1, device: str = "auto", out_dir: Path | None = None) -> GridPlan:
    """Plan a grid from any LoRA files on one base; `sampling` is a [sampling] section (defaults otherwise)."""
    paths = [Path(p) for p in loras]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        raise DanluError(f"LoRA file not found: {', '.join(missing) or '(none given)'}.",
                         f"找不到 LoRA 文件：{', '.join(missing) or '（未选择）'}。",
                         "Pick existing .safetensors LoRA files.", "请选择存在的 .safetensors LoRA 文件。",
                         key="loras")
    if not base:
        raise DanluError("No base model given for the LoRA files.", "没有为这些 LoRA 文件指定底模。",
                         "Set the base model they were trained on.", "请填写训练它们时用的底模。", key="model.base")
    s = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": sampling or {}}).sampling
    z_bases = [base] + [b for b in (bases or []) if b and b != base]
    chosen = list(prompts) if prompts else (list(s.prompts[:1]) or [""])
    device = _auto_device(device)
    return GridPlan(bases=z_bases, loras=paths, weights=list(weights or DEFAULT_WEIGHTS), prompts=chosen,
                    z_axis="base" if len(z_bases) > 1 else ("prompt" if len(chosen) > 1 else None),
                    include_base=include_base, sampling=s, clip_skip=clip_skip,
                    device=device, margin=margin, out_dir=Path(out_dir) if out_dir else paths[0].parent / "grids")


# ------------------------------------------------------------------------------------------ version checks

def _lora_metadata(path: Path) -> dict[str, str]:
    from models.lora_file import read_metadata

    return read_metadata(path)


def base_family(base: str, plan: GridPlan) -> str:
    """The base's family: the run's setting (for the run's own base) when not 'auto', else detected."""
    if plan.family and base == plan.bases[0]:
        return plan.family
    from models.detect import detect

    family = detect(base).family
    return "sd2" if family == "sd2v" else family


def check_versions(plan: GridPlan, family_of=None) -> list[tuple[str, str]]:
    """Refuse a LoRA of another family than a base (DanluError); warn when a base's hash differs from the one
    recorded in a LoRA's metadata. Returns the warnings as (en, zh) pairs."""
    from models.detect import check_lora_against_base

    family_of = family_of or (lambda b: base_family(b, plan))
    warnings = []
    for base in plan.bases:
        family = family_of(base)
        for lora in plan.loras:
            check_lora_against_base(lora, family)
            warning = _hash_warning(lora, base)
            if warning and warning not in warnings:
                warnings.append(warning)
    return warnings


def _hash_warning(lora: Path, base: str) -> tuple[str, str] | None:
    meta = _lora_metadata(lora)
    recorded = (meta.get("ss_new_sd_model_hash") or "").lower()
    if not recorded or not Path(base).is_file():
        return None
    from models.hashes import sha256_file

    actual = sha256_file(base).lower()
    if actual.startswith(recorded) or recorded.startswith(actual[:10]):
        return None
    trained = meta.get("ss_sd_model_name") or "?"
    return ((f"{lora.name} was trained on {trained} (hash {recorded[:10]}), but this grid uses {base_label(base)} "
            f"(hash {actual[:10]}). The images can differ from the training samples."),
            (f"{lora.name} 训练时的底模是 {trained}（哈希 {recorded[:10]}），但这个网格用的是 {base_label(base)}"
            f"（哈希 {actual[:10]}），图片可能与训练样图不同。"))


# ------------------------------------------------------------------------------------------------ render

@dataclass
class GridResult:
    plan: GridPlan
    out_dir: Path
    grid_png: Path | None
    grid: object | None                      # core.grid.Grid
    cells: dict = field(default_factory=dict)  # (z, y, x) → {"png", "parameters"}
    done: int = 0
    total: int = 0
    status: str = "finished"                 # 'finished' or 'cancelled'
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", text)[:60] or "cell"


def _new_folder(parent: Path, prefix: str = "grid") -> Path:
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
    return (_lora_metadata(path).get("sshs_model_hash") or "")[:12]


def cell_sample(plan: GridPlan, base: str, prompt: str, lora: Path | None = None, weight: float = 0.0) -> Sample:
    """Recipe and render arguments of one cell, built as the training samples build theirs (models.recipe)."""
    loras = [] if lora is None else [{"name": lora.stem, "weight": weight, "hash": _lora_hash(lora)}]
    family = plan.family if base == plan.bases[0] else None
    sample = build_sample(plan.sampling, prompt=prompt, clip_skip=plan.clip_skip, family=family,
                          model=base_label(base), model_hash=_hash_or_empty("autov2", base), loras=loras,
                          zero_terminal_snr=plan.zero_terminal_snr and base == plan.bases[0])
    from models.lycoris import applied_note, file_kind

    kind = file_kind(lora) if lora is not None else None
    if kind:  # merged into the weights, as the training samples of such a file say (models.xyz_loras)
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
             "Y Type": "LoRA weight", "Y Values": quoted([_fmt(w) for w in plan.weights])}
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
    import json
    import time

    from core.fsutil import atomic_write_text
    from core.grid import compose_grid, save_grid_png
    from models.generate import recipe_text, render_batch, save_png
    from models.xyz_loras import open_loras

    warnings = check_versions(plan, family_of)
    if warnings and on_warnings:
        on_warnings(warnings)  # before the long part, so the user can stop a grid on the wrong base early
    cells = plan.cells()
    out = _new_folder(plan.out_dir)
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
            # One LoRA at one weight, up to `batch` prompts at once (the prompt axis is the innermost loop).
            head = todo[0]
            # prompts with their own flags (--w, --s …) batch only with prompts rendered the same way
            head_sample = cell_sample(plan, base, head.prompt)
            group = [c for c in todo[:batch] if (c.x, c.y) == (head.x, head.y)
                     and same_args(cell_sample(plan, base, c.prompt), head_sample)]
            todo = [c for c in todo if all(c is not g for g in group)]
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
                cell_rec = cell_recipe(plan, cell)
                parameters = recipe_text(cell_rec)
                name = f"z{cell.z}_y{cell.y}_x{cell.x}_{_slug(cell.lora.stem if cell.lora else 'base')}" \
                       f"_w{_fmt(cell.weight)}.png"
                save_png(image, out / "cells" / name, parameters, cell_rec.get("png_chunks"))
                images[(cell.z, cell.y, cell.x)] = image
                result.cells[(cell.z, cell.y, cell.x)] = {"png": f"cells/{name}", "parameters": parameters}
                result.done += 1
                if progress:
                    progress(result.done, result.total, _eta(timings, result, len(plan.bases)), name)
        loras.close()
        del pipe
        gc.collect()
    result.status = "finished" if result.done == result.total else "cancelled"
    result.timings = timings
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


def _compare_main(args, weights: list[float], lang: str) -> int:
    """`grid RUN --compare OTHER [--runs MORE …]`: the runs' grids side by side, the runs as Z (models.xyz_compare)."""
    from models.xyz_compare import plan_runs, run_label, run_runs

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
