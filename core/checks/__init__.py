"""Every rule that looks at more than one setting (or at a setting and the machine), in one place.

`check(config, env)` returns the issues of a run config; each rule has one level:

- 'error': the run cannot do what the settings say. The Train tab's Start button, `train --dry-run` and the
  trainer refuse to start; the Parameters tab shows it with ✖.
- 'warning': the run trains, but not quite as a user may expect. Shown everywhere, stops nothing.
- 'info': a note about a setting the user chose knowingly.

`env` carries what the config alone cannot say (the device training will use, what the base model file is);
models.preflight.environment builds it. Rules about one field (types, ranges, choices) live in core.config.
"""

from __future__ import annotations

# Importing the rule modules registers their rules, in this order (the order they are reported in).
from core.checks import family, inputs, network, qwen_image, training, zimage  # noqa: F401
from core.checks.base import LEVELS, ONE_LR, RULES, Env, Issue, Rule, rule  # noqa: F401 - core.checks' public names
from core.config import RunConfig
from core.errors import ConfigError


def check(cfg: RunConfig, env: Env | None = None) -> list[Issue]:
    """The issues of this config, errors first."""
    env = env or Env()
    found = [issue for _, fn in RULES.values() if (issue := fn(cfg, env)) is not None]
    return sorted(found, key=lambda i: LEVELS.index(i.level))


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "error"]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "warning"]


def raise_errors(issues: list[Issue]) -> None:
    """Raise one ConfigError naming every error (the first one's key), or return when there is none."""
    found = errors(issues)
    if not found:
        return
    def joined(attr: str) -> str:
        return "\n".join(getattr(i, attr) for i in found if getattr(i, attr))

    raise ConfigError(joined("en"), joined("zh"), joined("hint_en"), joined("hint_zh"), key=found[0].key)
