"""The rules' common ground: Issue (one verdict), Env (what the config alone cannot say), the rule registry
(`@rule(name, level)`, RULES in the order they are reported) and the helpers several rules use. The rules
themselves live in core/checks/inputs.py, checks_network.py, checks_training.py and checks_zimage.py;
core.checks is the entry point (`check`, `errors`, `warnings`, `raise_errors`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import family_facts
from core.config import RunConfig, blocks

LEVELS = ("error", "warning", "info")
ONE_LR = ("Prodigy", "DAdaptAdam")  # optimizers with one step size for all parameter groups (training.optim)


@dataclass(frozen=True)
class Issue:
    level: str    # 'error', 'warning' or 'info'
    key: str      # the config key it is about (for pointing at the field)
    en: str
    zh: str
    hint_en: str = ""
    hint_zh: str = ""

    def text(self, lang: str) -> str:
        """Message and hint, as one line."""
        msg, hint = (self.zh, self.hint_zh) if lang == "zh" else (self.en, self.hint_en)
        return f"{msg} {hint}" if hint else msg


@dataclass(frozen=True)
class Env:
    """Facts from outside the config. None means unknown: the rules that need it stay silent."""

    device: str | None = None              # the device training will use: cuda, mps or cpu
    family: str | None = None              # the base model's family, read from the file
    prediction: str | None = None          # the base model's prediction type
    prediction_known: bool = False         # the file says so (not only the family's usual one)
    native_resolution: int | None = None   # of the base model
    zero_terminal_snr: bool = False        # the base carries a `ztsnr` marker key (trained with rescaled betas)
    base_problem: tuple[str, str, str, str] | None = None  # (en, zh, hint_en, hint_zh): not a usable base
    # (en, zh) name of the download source when the Z-Image training adapter (v1/v2) is not downloaded yet and
    # that source does not answer (models/preflight.py asks, with a short timeout)
    adapter_unreachable: tuple[str, str] | None = None


Rule = Callable[[RunConfig, Env], "Issue | None"]
RULES: dict[str, tuple[str, Rule]] = {}   # name → (level, rule), in the order they are reported


def rule(name: str, level: str) -> Callable[[Callable], Rule]:
    """Register a rule; it returns (key, en, zh, hint_en, hint_zh) when it applies, else None."""
    assert level in LEVELS

    def register(fn: Callable) -> Rule:
        def wrapped(cfg: RunConfig, env: Env) -> Issue | None:
            found = fn(cfg, env)
            return Issue(level, *found) if found else None

        RULES[name] = (level, wrapped)
        return wrapped

    return register



def _family(cfg: RunConfig, env: Env) -> str | None:
    return cfg.model.family if cfg.model.family != "auto" else env.family


def _row(cfg: RunConfig, env: Env) -> family_facts.Family | None:
    """The facts row of the run's family, None while it is not known."""
    return family_facts.get(_family(cfg, env))


def _is(cfg: RunConfig, env: Env, trait: str) -> bool:
    """The run's family is known and has the trait."""
    row = _row(cfg, env)
    return row is not None and row.has(trait)


def _lacks(cfg: RunConfig, env: Env, trait: str) -> bool:
    """The run's family is known and has not the trait (an unknown family lacks nothing: nothing is said)."""
    row = _row(cfg, env)
    return row is not None and not row.has(trait)


def _applies(cfg: RunConfig, env: Env, path: str) -> bool:
    """The run's family is known and the field is declared for it (core.config.F(families=...): its name or a
    trait), as the form shows the field."""
    from core.config import field_spec

    families = field_spec(path).families
    row = _row(cfg, env)
    return row is not None and (families is None or bool(family_facts.traits(row.name) & set(families)))


def _label(cfg: RunConfig, env: Env) -> str:
    row = _row(cfg, env)
    return row.label if row is not None else "this model"


def _prediction(cfg: RunConfig, env: Env) -> str | None:
    pred = cfg.model.prediction_type
    return env.prediction if pred == "auto" else pred


def _device(cfg: RunConfig, env: Env) -> str | None:
    return cfg.training.device if cfg.training.device != "auto" else env.device


def _block_wise(cfg: RunConfig) -> bool:
    return blocks.is_set(cfg.network)
