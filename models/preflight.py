"""What core.checks needs to know beyond the config: the device training will use and what the base model is.

The Parameters tab, the Start button, `train --dry-run` and the trainer all call `issues(cfg)`, so they give
the same verdict. Reading the base costs a header read (cached by path and modification time); torch is
imported only to ask for the device.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from core import checks
from core.config import RunConfig


@functools.lru_cache(maxsize=1)
def _accelerators() -> tuple[bool, bool] | None:
    """(CUDA, MPS) available; None when torch cannot be imported (the Model tab reports that)."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - a broken torch install: the device stays unknown
        return None
    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available()), bool(mps is not None and mps.is_available())


def device_kind(setting: str) -> str | None:
    """The device `training.device` resolves to: cuda, mps or cpu (None when torch is not importable)."""
    found = _accelerators()
    if found is None:
        return None if setting in ("auto", "cuda") else setting
    cuda, mps = found
    if setting == "cuda":
        return "cuda" if cuda else "cpu"
    if setting != "auto":
        return setting
    return "cuda" if cuda else "mps" if mps else "cpu"


@functools.lru_cache(maxsize=16)
def _detect(base: str, stamp: float):
    try:
        from models.detect import detect

        return detect(base)
    except Exception:  # noqa: BLE001 - unreadable: the rules that need the base stay silent, the loader explains
        return None


def detected(base: str):
    """The models.detect report of a local base or a downloaded hub id (None when there is nothing to read)."""
    if not base:
        return None
    from models.files import is_hub_id

    p = Path(base)
    if not p.exists() and not is_hub_id(base):
        return None  # a path that is not there: the loader reports it with the fix
    return _detect(base, p.stat().st_mtime if p.exists() else 0.0)


def environment(cfg: RunConfig) -> checks.Env:
    env = env_from_info(detected(cfg.model.base), device_kind(cfg.training.device))
    return dataclasses.replace(env, adapter_unreachable=adapter_unreachable(cfg, env))


def adapter_unreachable(cfg: RunConfig, env: checks.Env) -> tuple[str, str] | None:
    """The download source's (en, zh) name when the run's family needs a file it has not downloaded yet (Z-Image
    Turbo's training adapter) and the source does not answer; else None. The family's load module says which
    file (`missing_download(cfg)`), core.download.reachable probes the source (short, cached)."""
    from core import download
    from models import families

    family = cfg.model.family if cfg.model.family != "auto" else env.family
    dit = families.dit_module(family)
    needs = getattr(families.part(dit, "load"), "missing_download", None) if dit is not None else None
    if needs is None or not needs(cfg):
        return None
    try:
        source = download.resolve(cfg.model.download_source, cfg.model.hub_mirror or None)
    except Exception:  # noqa: BLE001 - an unknown source is reported by its own check
        return None
    return None if download.reachable(source) else (source.label("en"), source.label("zh"))


def env_from_info(info, device: str | None = None) -> checks.Env:
    """What a models.detect report tells core.checks."""
    if info is None or (not info.usable and info.kind == "hub"):  # a hub id not downloaded yet: unknown
        return checks.Env(device=device)
    if not info.usable:
        return checks.Env(device=device, base_problem=(info.problem_en, info.problem_zh, info.hint_en, info.hint_zh))
    return checks.Env(device=device, family=info.family, prediction=info.prediction_type,
                      prediction_known=info.prediction_source != "family rule",
                      native_resolution=info.native_resolution,
                      zero_terminal_snr=bool(getattr(info, "zero_terminal_snr", False)))


def base_issues(cfg: RunConfig, info) -> list[checks.Issue]:
    """The issues this base model (a models.detect report) raises with these settings: what the Model tab shows."""
    env = env_from_info(info)
    without = checks.check(cfg, checks.Env())
    return [i for i in checks.check(cfg, env) if i not in without]


def issues(cfg: RunConfig) -> list[checks.Issue]:
    """core.checks.check with this machine and this base model."""
    return checks.check(cfg, environment(cfg))
