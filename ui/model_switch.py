"""A new base model of another family drops what the previous family left in the run settings.

After a Z-Image base (or the Z-Image preset), an SD1.5 file must train as SD1.5: the family override goes back to
auto-detection, the fields only the old family reads go back to their defaults, and the values a preset of the
old family set (1024 px, 8 sampling steps, CFG 1 …) go back to the defaults unless the user changed them since.
The new family's own values (native resolution, sample size) are then set by the Model tab as for any base.
"""

from __future__ import annotations

from typing import Any

from core import config as cfgmod


def previous_family(config: dict) -> str | None:
    """The family the run settings are for now: model.family when set, else what the current base is."""
    from ui.form import config_family

    return config_family(config)


def _applies(spec: cfgmod.FieldSpec, family: str) -> bool:
    from models import families

    try:
        names = families.traits(family)
    except KeyError:
        return True
    return spec.families is None or bool(names & set(spec.families))


def _preset_values(family: str) -> dict[str, list[Any]]:
    """path → the values that the presets made for `family` set (a preset names its family in model.family)."""
    from core.config.presets import PRESETS

    out: dict[str, list[Any]] = {}
    for preset in PRESETS.values():
        if (preset.get("model") or {}).get("family") != family:
            continue
        for section, values in preset.items():
            if section != "model" and isinstance(values, dict):
                for key, value in values.items():
                    out.setdefault(f"{section}.{key}", []).append(value)
    return out


def leftovers(config: dict, old: str | None, new: str | None) -> dict[str, Any]:
    """The values (path → value) that switching the base from family `old` to `new` puts back; {} when the family
    stays the same or either is unknown."""
    if not old or not new or old == new:
        return {}
    defaults = cfgmod.to_dict(cfgmod.default_config())
    values: dict[str, Any] = {}
    if (config.get("model") or {}).get("family", "auto") not in ("auto", new):
        values["model.family"] = "auto"  # the old family's override: the new base is detected
    preset = _preset_values(old)
    for spec in cfgmod.schema():
        if spec.path == "model.family":
            continue
        current = (config.get(spec.section) or {}).get(spec.name)
        default = defaults[spec.section][spec.name]
        if current == default:
            continue
        only_old = spec.families is not None and _applies(spec, old) and not _applies(spec, new)
        if only_old or (spec.path in preset and current in preset[spec.path]):
            values[spec.path] = default
    return values


def native_of(family: str | None) -> int | None:
    """A family's native resolution (None when unknown)."""
    from models import families

    return families.NATIVE.get(family or "")
