"""The trainer's first step: the rules of core.checks with this machine and base model (models.preflight).

Errors stop the run before anything is loaded, with every reason; warnings are returned to be logged and sent
as events, so the Train tab shows them. The Start button and `--dry-run` ask the same function's rules.
"""

from __future__ import annotations

from core import checks
from core.config import RunConfig


def preflight(cfg: RunConfig) -> list[checks.Issue]:
    """Raise ConfigError naming every error; return the warnings and notes."""
    from models import preflight as env

    found = env.issues(cfg)
    checks.raise_errors(found)
    return [i for i in found if i.level != "error"]


def config_warnings(cfg: RunConfig) -> list[tuple[str, str]]:
    """(English, 中文) warnings of the config alone (no device, no base model read)."""
    return [(i.en, i.zh) for i in checks.warnings(checks.check(cfg))]
