"""Step arithmetic: images × repeats × epochs ÷ batch, counted the way bucketed training counts it.

Every batch comes from one bucket, so each bucket can end in a partial batch:
steps per epoch = Σ over buckets ⌈nᵦ / batch⌉ (≥ ⌈N / batch⌉), then ÷ gradient accumulation.
Regularisation images are cycled until they match the training images (with repeats), as in kohya.

Multi-resolution (dataset.resolutions, as ai-toolkit's `resolution: [512, 768, 1024]`): each image is bucketed at
each resolution and trained once per resolution each epoch, its repeats applying at every resolution; a bucket
belongs to one resolution, so a batch never mixes resolutions (ai-toolkit batches inside each per-resolution copy
of the dataset). samples per epoch = Σ images × repeats × resolutions; batches = Σ over (resolution, bucket).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

# One sample's bucket: (w, h), or (resolution, (w, h)) when the run trains at several resolutions.
Size = tuple[int, int] | tuple[int, tuple[int, int]]


@dataclass
class ConceptSteps:
    name: str           # folder name, e.g. 10_sks dog
    images: int
    repeats: int
    per_epoch: int      # images × repeats × resolutions (for regularisation: after cycling to match)
    batches: int        # this concept alone: Σ over its buckets ⌈n / batch⌉
    is_reg: bool = False


@dataclass
class StepPlan:
    concepts: list[ConceptSteps]
    batch_size: int
    epochs: int
    grad_accum: int
    images_per_epoch: int           # Σ images × repeats, regularisation included
    batches_per_epoch: int          # Σ over buckets ⌈nᵦ / batch⌉ (all concepts share the buckets)
    steps_per_epoch: int            # batches ÷ gradient accumulation, rounded up
    total_steps: int                # steps per epoch × epochs, or max_train_steps when set
    partial_batches: int            # extra batches caused by buckets ending part-full
    bucket_counts: dict[tuple[int, int], int] = field(default_factory=dict)  # with repeats
    save_steps: list[tuple[int, int]] = field(default_factory=list)        # (epoch, step) of each saved file
    max_train_steps: int = 0
    resolutions: list[int] = field(default_factory=list)   # multi-resolution: the listed resolutions, else empty
    per_resolution: dict[int, tuple[int, int]] = field(default_factory=dict)  # resolution → (samples, batches)

    def terms(self) -> str:
        """Each folder's images × repeats (× resolutions), e.g. '12×10 + 5×2 = ' (empty for a single term that says
        nothing more)."""
        n_res = max(1, len(self.resolutions))
        per = f"×{n_res}" if n_res > 1 else ""
        parts = [f"{c.images}×{c.repeats}{per}" if c.per_epoch == c.images * c.repeats * n_res or not c.is_reg
                 else f"{c.per_epoch}(reg)" for c in self.concepts]
        if not parts or (len(parts) == 1 and self.concepts[0].repeats == 1 and n_res == 1):
            return ""
        return " + ".join(parts) + " = "

    def resolutions_text(self, lang: str = "en") -> str:
        """Multi-resolution: samples and batches per epoch at each resolution ('' for one resolution)."""
        if len(self.resolutions) < 2:
            return ""
        if lang == "zh":
            return "多分辨率：" + "，".join(f"{r} px {n} 样本 / {b} 批" for r, (n, b) in self.per_resolution.items())
        return "Resolutions: " + ", ".join(f"{r} px {n} samples / {b} batches"
                                           for r, (n, b) in self.per_resolution.items())

    def formula(self, lang: str = "en") -> str:
        """The step arithmetic in one line, as both the Dataset and the Parameters tab show it."""
        plain = math.ceil(self.images_per_epoch / self.batch_size)
        uncapped = self.steps_per_epoch * self.epochs
        terms = self.terms()
        if lang == "zh":
            what = "图片×重复×分辨率" if len(self.resolutions) > 1 else "图片×重复"
            text = (f"{terms}{self.images_per_epoch} 样本（{what}）÷ 批大小 {self.batch_size} = {plain}，"
                    f"加上分桶末尾不满的批次 {self.partial_batches} = 每轮 {self.batches_per_epoch} 批")
            if self.grad_accum > 1:
                text += f"，÷ 梯度累积 {self.grad_accum} = 每轮 {self.steps_per_epoch} 步"
            if self.max_train_steps:
                return text + f"；× {self.epochs} 轮 = {uncapped} 步（最大步数限制为 **{self.total_steps}**）"
            return text + f"；× {self.epochs} 轮 = **{uncapped}** 步"
        what = "images×repeats×resolutions" if len(self.resolutions) > 1 else "images×repeats"
        text = (f"{terms}{self.images_per_epoch} {what} / batch {self.batch_size} = {plain} "
                f"+ {self.partial_batches} partial-bucket batches = {self.batches_per_epoch} batches per epoch")
        if self.grad_accum > 1:
            text += f" / accumulation {self.grad_accum} = {self.steps_per_epoch} steps"
        if self.max_train_steps:
            cap = f"max_train_steps stops at **{self.total_steps}**"
            return text + f"; × {self.epochs} epochs = {uncapped} steps ({cap})"
        return text + f"; × {self.epochs} epochs = **{uncapped}** steps"

    def notes(self, lang: str = "en") -> str:
        """What the tabs show under the formula: the per-resolution counts and the saved files, each a paragraph
        ('' when neither applies)."""
        parts = [p for p in (self.resolutions_text(lang), self.saves_text(lang)) if p]
        return "".join(f"\n\n{p}" for p in parts)

    def saves_text(self, lang: str = "en") -> str:
        """Which file is saved at which step ('' when none)."""
        if not self.save_steps:
            return ""
        if lang == "zh":
            return "保存：" + "，".join(f"第 {e} 轮 → 第 {s} 步" for e, s in self.save_steps)
        return "Saved files: " + ", ".join(f"epoch {e} → step {s}" for e, s in self.save_steps)


def total_steps(steps_per_epoch: int, epochs: int, max_train_steps: int = 0) -> int:
    """Steps of a run: per epoch × epochs, unless training.max_train_steps is set (then it wins over epochs)."""
    return max_train_steps if max_train_steps else steps_per_epoch * epochs


def _batches(counts: Counter, batch: int) -> int:
    return sum(math.ceil(n / batch) for n in counts.values())


def _keyed(sizes: list[Size]) -> list[tuple[int, tuple[int, int]]]:
    """(resolution, (w, h)) of each sample; a plain (w, h) is at resolution 0 (the run's one resolution)."""
    return [s if isinstance(s[1], tuple) else (0, s) for s in sizes]


def _n_images(keys: list[tuple[int, tuple[int, int]]]) -> int:
    """Images of a concept whose samples are listed once per resolution."""
    return len(keys) // max(1, len({r for r, _ in keys}))


def plan_steps(concepts: list[tuple[str, int, list[Size]]], *, batch_size: int, epochs: int,
               grad_accum: int = 1, reg: list[tuple[str, int, list[Size]]] | None = None,
               max_train_steps: int = 0, every_n_epochs: int = 0) -> StepPlan:
    """concepts / reg: (folder name, repeats, bucket of each of its images). With several resolutions each image is
    listed once per resolution as (resolution, (w, h)), resolution-major (core.dataset.buckets.plan_sizes), the order
    training/data.py builds its items in, so regularisation images cycle alike."""
    batch_size, grad_accum, epochs = max(1, batch_size), max(1, grad_accum), max(1, epochs)
    concepts = [(name, repeats, _keyed(sizes)) for name, repeats, sizes in concepts]
    reg = [(name, repeats, _keyed(sizes)) for name, repeats, sizes in reg or []]
    rows: list[ConceptSteps] = []
    total = Counter()
    for name, repeats, sizes in concepts:
        counts = Counter({s: n * repeats for s, n in Counter(sizes).items()})
        total.update(counts)
        rows.append(ConceptSteps(name, _n_images(sizes), repeats, len(sizes) * repeats, _batches(counts, batch_size)))
    n_train = sum(r.per_epoch for r in rows)
    if reg and n_train:
        # kohya: every reg image once with its repeats, then one more repeat at a time until they match.
        images = [(i, size) for i, (_, _, sizes) in enumerate(reg) for size in sizes]
        extra = Counter()
        seen = 0
        for _, repeats, sizes in reg:
            seen += repeats * len(sizes)
        while seen < n_train and images:
            for image in images:
                if seen >= n_train:
                    break
                extra[image] += 1
                seen += 1
        for i, (name, repeats, sizes) in enumerate(reg):
            counts = Counter()
            for size in sizes:
                counts[size] += repeats
            for (j, size), n in extra.items():
                if j == i:
                    counts[size] += n
            total.update(counts)
            rows.append(ConceptSteps(name, _n_images(sizes), repeats, sum(counts.values()),
                                     _batches(counts, batch_size), is_reg=True))
    images_per_epoch = sum(r.per_epoch for r in rows)
    batches = _batches(total, batch_size)
    steps_per_epoch = math.ceil(batches / grad_accum)
    steps = total_steps(steps_per_epoch, epochs, max_train_steps)
    saves = []
    if steps_per_epoch:
        for epoch in range(1, epochs + 1):
            if (every_n_epochs and epoch % every_n_epochs == 0) or epoch == epochs:
                step = epoch * steps_per_epoch
                if not max_train_steps or step <= steps:
                    saves.append((epoch, step))
    by_size: Counter = Counter()
    per_res: dict[int, tuple[int, int]] = {}
    for (res, size), n in total.items():
        by_size[size] += n
        samples, batches_at = per_res.get(res, (0, 0))
        per_res[res] = (samples + n, batches_at + math.ceil(n / batch_size))
    resolutions = sorted(r for r in per_res if r) if len(per_res) > 1 else []
    return StepPlan(rows, batch_size, epochs, grad_accum, images_per_epoch, batches, steps_per_epoch, steps,
                    batches - math.ceil(images_per_epoch / batch_size), dict(sorted(by_size.items())), saves,
                    max_train_steps, resolutions, {r: per_res[r] for r in resolutions})


def plan_for(cfg, concepts: list[tuple[str, int, list[Size]]],
             reg: list[tuple[str, int, list[Size]]] | None = None) -> StepPlan:
    """plan_steps with a run's settings (core.config.RunConfig): batch, epochs, accumulation, max steps, saves."""
    t = cfg.training
    return plan_steps(concepts, batch_size=t.batch_size, epochs=t.epochs, grad_accum=t.gradient_accumulation_steps,
                      reg=reg or None, max_train_steps=t.max_train_steps, every_n_epochs=cfg.saving.every_n_epochs)
