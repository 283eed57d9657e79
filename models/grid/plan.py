"""The XYZ grid's plan: which cells a grid has (X = a run's epoch files, Y = LoRA weights, optional Z = other
base models or prompts), read from a run's config.toml or from LoRA files, and the checks of a plan's files
against its bases (family refused, a different base hash warned). models/grid/render.py renders a plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from core import config as cfgmod
from core.errors import DanluError
from core.runs import layout as run_layout

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
        return [f"{word}: {weight_label(w)}" for w in self.weights]

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


def weight_label(w: float) -> str:
    """A LoRA weight as the grid labels and file names show it: 1, 0.6."""
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
    cfg, run_dir = run_layout.resolve_run(run)
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
    """The run's family setting; 'auto' stays None (detected at load) unless the base is a DiT family."""
    return cfg.model.family if cfg.model.family != "auto" else dit_family(cfg.model.base)


def dit_family(base: str) -> str | None:
    """The DiT family of `base`, whose sampling recipe (models.recipe's family hook) must be known before anything
    is loaded; None for an SD base or one that cannot be read here (detected at load, which says what is wrong)."""
    from models import families
    from models.detect import detect

    try:
        found = detect(base).family
    except (DanluError, OSError, ValueError):
        return None
    return found if families.dit_module(found) is not None else None


def plan_from_loras(loras: list[str | Path], base: str, *, sampling: dict | None = None,
                    weights: list[float] | None = None, bases: list[str] | None = None,
                    prompts: list[str] | None = None, include_base: bool = False, margin: int = 0,
                    clip_skip: int = 1, device: str = "auto", out_dir: Path | None = None) -> GridPlan:
    """Plan a grid from any LoRA files on one base; `sampling` is a [sampling] section, its missing keys are the
    base's (base_sampling), then the schema's defaults."""
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
    s = cfgmod.merge_dict(cfgmod.default_config(), {"sampling": base_sampling(base) | (sampling or {})}).sampling
    z_bases = [base] + [b for b in (bases or []) if b and b != base]
    chosen = list(prompts) if prompts else (list(s.prompts[:1]) or [""])
    device = _auto_device(device)
    return GridPlan(bases=z_bases, loras=paths, weights=list(weights or DEFAULT_WEIGHTS), prompts=chosen,
                    z_axis="base" if len(z_bases) > 1 else ("prompt" if len(chosen) > 1 else None),
                    include_base=include_base, sampling=s, clip_skip=clip_skip, family=dit_family(base),
                    device=device, margin=margin, out_dir=Path(out_dir) if out_dir else paths[0].parent / "grids")


def base_sampling(base: str, variant: str = "") -> dict:
    """The sample settings LoRA files on `base` start from: the base's native size (a 64-px tiny model renders at
    64 px, SDXL at 1024) and its family's steps, CFG and sampler: those of the preset its family package names for
    the variant (SAMPLE_PRESETS: the one the weights tell, else `variant` when it is one of the family's, else the
    family's first; Z-Image Turbo: 8 steps at CFG 1, FLUX.1 [dev]: 20 steps at CFG 1), else the schema's defaults.
    {} for a base that is not on this machine (a hub id): nothing is downloaded to plan."""
    from core import family_facts
    from core.config.presets import PRESETS
    from models import families
    from models.detect import detect

    if not base or not Path(base).exists():
        return {}
    try:
        info = detect(base)
    except (DanluError, OSError, ValueError):
        return {}
    out: dict = {}
    if info.native_resolution:
        row = family_facts.get(info.family)
        multiple = row.size_multiple if row is not None else 8  # FLUX, Z-Image: 16 (the family's sample sizes)
        out["width"] = out["height"] = max(64, int(info.native_resolution) // multiple * multiple)
    table = getattr(families.dit_module(info.family), "SAMPLE_PRESETS", {})
    chosen = next((v for v in (info.variant, variant) if v in table), next(iter(table), None))
    preset = PRESETS.get(table.get(chosen) or "", {})
    return out | {k: v for k, v in (preset.get("sampling") or {}).items() if k in ("steps", "cfg", "sampler")}


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
