"""The run folder, one owner: where a run lives, what its files are called, and what happens to an earlier run.

    <output_dir>/<name>/
        config.toml                 the settings (config.<stamp>.toml: the settings of an earlier part, on resume)
        name-000002.safetensors     the LoRA after epoch 2 (kohya naming)
        name-step00000500.safetensors   after step 500 (stopped mid-epoch, or saving.every_n_steps)
        name.safetensors            the final file
        samples/name-e000002-00.png the samples of each saved file
        state/                      what --resume continues from
        events.jsonl, train.log     what the trainer reported; console.log, trainer.json: the page's child
        grids/                      XYZ grids of this run
        .previous/<stamp>/          an earlier run's results, moved aside by a new run of the same name

An earlier run with the same name is never overwritten or deleted: a new (not resumed) run moves its results into
`.previous/<stamp>/` inside the folder, so the folder's path stays the one the user knows, and anything else the
user keeps there stays where it is. The trainer does this itself, so a shell run and a page run behave the same.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from core import config as cfgmod
from core.config import RunConfig
from core.errors import DanluError

PREVIOUS = ".previous"
SAMPLES = "samples"
STATE = "state"
GRIDS = "grids"
_EPOCH = re.compile(r"-(\d{6})$")
_STEP = re.compile(r"-step(\d{8})$")
# What a run writes in its folder, moved aside together when a new run of the same name starts.
RESULT_GLOBS = ("*.safetensors", SAMPLES, STATE, GRIDS, "events.jsonl", "train.log", "config.toml", "config.*.toml")
CHILD_FILES = ("console.log", "trainer.json")  # the page's record of the child process that writes the run


def run_dir(cfg: RunConfig, root: str | Path | None = None) -> Path:
    """<output_dir>/<name>; a relative output_dir is taken from `root` (the project folder) when given."""
    folder = Path(cfg.saving.output_dir).expanduser() / cfg.saving.name
    return folder if folder.is_absolute() or root is None else Path(root) / folder


def lora_file_name(name: str, epoch: int | None = None, step: int | None = None) -> str:
    """kohya naming: name-000002 (epoch), name-step00000500 (a step), name (final)."""
    if epoch is not None:
        return f"{name}-{epoch:06d}.safetensors"
    if step is not None:
        return f"{name}-step{step:08d}.safetensors"
    return f"{name}.safetensors"


def parse_lora_file(path: str | Path, name: str) -> tuple[str, int | None] | None:
    """('epoch', 2), ('step', 500) or ('final', None) for a LoRA file of run `name`; None for any other file."""
    p = Path(path)
    if p.suffix != ".safetensors":
        return None
    stem = p.stem
    if stem == name:
        return "final", None
    for kind, pattern in (("epoch", _EPOCH), ("step", _STEP)):
        m = pattern.search(stem)
        if m and stem[:m.start()] == name:
            return kind, int(m.group(1))
    return None


def step_number(path: str | Path) -> int | None:
    """The step of a step file (name-step00000500 → 500), whatever the run is called; None for other files."""
    m = _STEP.search(Path(path).stem)
    return int(m.group(1)) if m else None


def lora_files(folder: str | Path, name: str) -> list[tuple[str, int | None, Path]]:
    """(kind, number, path) of the run's LoRA files: epoch files, then step files, each by number, then the final."""
    order = {"epoch": 0, "step": 1, "final": 2}
    found = []
    for f in Path(folder).glob("*.safetensors"):
        parsed = parse_lora_file(f, name)
        if parsed:
            found.append((*parsed, f))
    return sorted(found, key=lambda item: (order[item[0]], item[1] or 0))


def resolve_run(path: str | Path) -> tuple[RunConfig, Path]:
    """A run's config and its folder, from the run folder, its config.toml, or the run TOML it was made from."""
    p = Path(path)
    toml = p / "config.toml" if p.is_dir() else p
    if not toml.is_file():
        raise DanluError(f"No run config at {toml}.", f"找不到运行配置：{toml}。",
                         "Pick a run folder that holds config.toml (outputs/<run>/), or its TOML file.",
                         "请选择含有 config.toml 的运行文件夹（outputs/<运行名>/），或它的 TOML 文件。", key=str(p))
    cfg = cfgmod.load(toml)
    # A config.toml inside a run folder is authoritative about where the run is, even if the folder moved.
    if toml.name == "config.toml" or lora_files(toml.parent, cfg.saving.name):
        return cfg, toml.parent
    folder = run_dir(cfg, toml.parent)
    return cfg, folder if folder.is_dir() else run_dir(cfg)


def sample_file_name(lora_stem: str, epoch: int, index: int) -> str:
    return f"{lora_stem}-e{epoch:06d}-{index:02d}.png"


# Folders that are never runs nor hold one: Danlu's own (outputs/.danlu: queue, previews), a run's grids, samples
# and resume state, latent and text-encoder caches. Other hidden folders are skipped too, apart from .previous.
_NOT_RUNS = {GRIDS, SAMPLES, STATE, "cache", "caches", "__pycache__"}
_MAX_DEPTH = 8  # outputs/<a>/<b>/<run>/.previous/<stamp> is 5; deeper is a copied tree, not a run folder


def _may_hold_runs(folder: os.DirEntry) -> bool:
    name = folder.name
    if name == PREVIOUS:
        return True
    return not (name.startswith(".") or name in _NOT_RUNS or name.endswith("_cache") or folder.is_symlink())


def list_runs(outputs_dir: str | Path, *, earlier: bool = True) -> list[Path]:
    """The run folders (those holding config.toml) at any depth under outputs_dir, newest first: a run's
    output_dir may be any folder under outputs (the demo writes outputs/demo/runs/<name>). With `earlier`,
    the earlier runs a new run of the same name moved into <run>/.previous/<stamp>/ are listed too
    (previous_stamp tells them apart)."""
    root = Path(outputs_dir)
    if not root.is_dir():
        return []
    runs: list[Path] = []
    todo = [(root, 0)]
    while todo:
        folder, depth = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # unreadable or removed while listing: not a run the user can open
            continue
        if depth and any(e.name == "config.toml" and e.is_file() for e in entries):
            if earlier or previous_stamp(folder) is None:
                runs.append(folder)
        if depth < _MAX_DEPTH:
            todo += [(Path(e.path), depth + 1) for e in entries
                     if e.is_dir(follow_symlinks=False) and _may_hold_runs(e)
                     and (earlier or e.name != PREVIOUS)]
    return sorted(runs, key=lambda p: (p / "config.toml").stat().st_mtime, reverse=True)


def previous_stamp(folder: str | Path) -> str | None:
    """The stamp of an earlier run moved aside (<run>/.previous/<stamp>), None for a run in its own folder."""
    folder = Path(folder)
    return folder.name if folder.parent.name == PREVIOUS else None


def has_results(folder: str | Path) -> bool:
    """Whether a run folder holds an earlier run's LoRA files, samples or state."""
    folder = Path(folder)
    return any(folder.glob("*.safetensors")) or (folder / SAMPLES).exists() or (folder / STATE).exists()


def set_aside_earlier_run(folder: str | Path, *, by_page: bool = False) -> Path | None:
    """Move an earlier run's results into <folder>/.previous/<stamp>/ (nothing is deleted); return that folder,
    or None when there was nothing to move.

    The trainer moves them when it finds LoRA files, samples or state of another run, and leaves the page's
    console.log and trainer.json (its own child's) alone. The page, before it starts a child, also moves an
    earlier run that saved nothing (its logs say why it failed) and that run's console.log and trainer.json.
    """
    folder = Path(folder)
    names = RESULT_GLOBS + (CHILD_FILES if by_page else ())
    moving = sorted({p for pattern in names for p in folder.glob(pattern)})
    outputs = [p for p in moving if not p.name.startswith("config")]
    if not (has_results(folder) or by_page and outputs):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = folder / PREVIOUS / stamp
    n = 1
    while dest.exists():
        dest = folder / PREVIOUS / f"{stamp}-{n}"
        n += 1
    dest.mkdir(parents=True)
    for p in moving:
        p.rename(dest / p.name)
    return dest
