"""The run config: every training setting declared once, with its type, default, range and help.

The sections are declared in core/config/model.py (model, dataset, network) and core/config/train.py (optimizer,
training, saving, sampling) with F (core/config/fields.py); this module holds RunConfig, the schema, loading,
merging and saving, and re-exports the sections and choice lists.

Load order: defaults → optional preset → the run file → ``--set section.key=value`` overrides.
Nothing is repaired silently: a wrong key, type or value raises ``ConfigError`` naming the key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from core.config.fields import (  # noqa: F401 - the choice lists are imported from core.config
    DIT_TARGETS,
    FAMILIES,
    FLUX_VARIANTS,
    OPTIMIZERS,
    SAMPLERS,
    SCHEDULERS,
    TIMESTEP_BIASES,
    TIMESTEP_TYPES,
    ZIMAGE_VARIANTS,
    F,
)
from core.config.model import DatasetConfig, ModelConfig, NetworkConfig
from core.config.train import OptimizerConfig, SamplingConfig, SavingConfig, TrainingConfig
from core.errors import ConfigError, DanluError
from core.fsutil import atomic_write_text, read_user_text

SCHEMA_VERSION = 1
SECTIONS = ("model", "dataset", "network", "optimizer", "training", "saving", "sampling")

SECTION_CLASSES = {"model": ModelConfig, "dataset": DatasetConfig, "network": NetworkConfig,
                   "optimizer": OptimizerConfig, "training": TrainingConfig, "saving": SavingConfig,
                   "sampling": SamplingConfig}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    saving: SavingConfig = field(default_factory=SavingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    schema_version: int = SCHEMA_VERSION

    def get(self, path: str) -> Any:
        section, key = path.split(".", 1)
        return getattr(getattr(self, section), key)

    @property
    def run_dir(self) -> Path:
        return Path(self.saving.output_dir) / self.saving.name


@dataclass(frozen=True)
class FieldSpec:
    """One declared field, as the UI, --help and the docs see it."""

    section: str
    name: str
    type: type
    default: Any
    en: str
    zh: str
    choices: tuple | None
    min: float | None
    max: float | None
    multiple_of: int | None
    basic: bool
    families: tuple[str, ...] | None = None   # None: every family (see F)
    item: type = str                          # a list field's item type: str, or int (each item range-checked)

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def help(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list, "list[int]": list}


def schema() -> list[FieldSpec]:
    """Every field of every section, in declaration order."""
    specs = []
    for section, cls in SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            m = f.metadata
            specs.append(FieldSpec(section, f.name, _TYPES[f.type], default, m["en"], m["zh"], m["choices"],
                                   m["min"], m["max"], m["multiple_of"], m["basic"],
                                   m.get("families"), int if f.type == "list[int]" else str))
    return specs


def field_spec(path: str) -> FieldSpec:
    for spec in schema():
        if spec.path == path:
            return spec
    raise KeyError(path)


def default_config() -> RunConfig:
    return RunConfig()


def to_dict(cfg: RunConfig) -> dict:
    """The config as nested plain data, in schema order (what the TOML holds)."""
    out: dict[str, Any] = {"schema_version": cfg.schema_version}
    for section in SECTIONS:
        out[section] = dataclasses.asdict(getattr(cfg, section))
    return out


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings"}[t]


def _type_name_zh(t: type) -> str:
    return {str: "字符串", int: "整数", float: "数字", bool: "true 或 false", list: "字符串列表"}[t]


def _check_value(spec: FieldSpec, value: Any) -> Any:
    """Return the value with the field's type, or raise ConfigError. No silent repair."""
    path = spec.path
    t = spec.type
    ok = (t is bool and isinstance(value, bool)) or \
         (t is int and isinstance(value, int) and not isinstance(value, bool)) or \
         (t is float and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
         (t is str and isinstance(value, str)) or \
         (t is list and isinstance(value, list) and all(_is_item(spec, v) for v in value))
    if not ok:
        en, zh = (("a list of whole numbers", "整数列表") if t is list and spec.item is int
                  else (_type_name(t), _type_name_zh(t)))
        raise ConfigError(
            f"{path}: expected {en}, got {value!r} ({type(value).__name__}).",
            f"{path}：应为{zh}，实际是 {value!r}（{type(value).__name__}）。",
            f"Set {path} to {en}, for example {path.split('.')[1]} = {_example(spec)}.",
            f"把 {path} 改为{zh}，例如 {path.split('.')[1]} = {_example(spec)}。", key=path)
    if t is float:
        value = float(value)
    # a list field takes its items from the choices
    wrong = [v for v in value if v not in spec.choices][:1] if spec.choices is not None and t is list else \
        [value] if spec.choices is not None and value not in spec.choices else []
    if wrong:
        value = wrong[0]
        choices = ", ".join(map(str, spec.choices))
        close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1, cutoff=0.5)
        hint_en = f"Did you mean '{close[0]}'?" if close else f"Use one of: {choices}."
        hint_zh = f"是不是想写 '{close[0]}'？" if close else f"请使用其中之一：{choices}。"
        raise ConfigError(f"{path}: {value!r} is not one of {choices}.",
                          f"{path}：{value!r} 不在可选值 {choices} 中。",
                          hint_en, hint_zh, key=path)
    # a list of numbers: each item within the field's range and on its step
    return [_check_number(spec, v) for v in value] if t is list else _check_number(spec, value)


def _is_item(spec: FieldSpec, v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) if spec.item is int else isinstance(v, str)


def _check_number(spec: FieldSpec, value: Any) -> Any:
    path = spec.path
    if isinstance(value, float) and value != value:  # NaN compares false with every bound: it passed them all
        raise ConfigError(f"{path}: nan is not a number.", f"{path}：nan 不是数字。",
                          f"Set {path} to a number, for example {path.split('.')[1]} = {_example(spec)}.",
                          f"把 {path} 改为数字，例如 {path.split('.')[1]} = {_example(spec)}。", key=path)
    if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
        raise ConfigError(f"{path}: {value!r} is out of range; expected {spec.min} to {spec.max}.",
                          f"{path}：{value!r} 超出范围，应在 {spec.min} 到 {spec.max} 之间。",
                          f"Choose a value between {spec.min} and {spec.max}.",
                          f"请填写 {spec.min} 到 {spec.max} 之间的值。", key=path)
    if spec.multiple_of and value % spec.multiple_of:
        lower = value - value % spec.multiple_of
        raise ConfigError(f"{path}: {value} is not a multiple of {spec.multiple_of}.",
                          f"{path}：{value} 不是 {spec.multiple_of} 的倍数。",
                          f"Use {lower} or {lower + spec.multiple_of}.",
                          f"请改用 {lower} 或 {lower + spec.multiple_of}。",
                          key=path)
    return value


def _example(spec: FieldSpec) -> str:
    if spec.type is list and spec.item is int:
        return "[512, 768, 1024]"
    return {str: '"…"', int: "1", float: "0.5", bool: "true", list: '["…"]'}[spec.type]


def _check_name(cfg: RunConfig) -> None:
    name = cfg.saving.name
    if not name or name in (".", "..") or re.search(r'[\\/:*?"<>|\x00-\x1f]', name):
        raise ConfigError(f"saving.name: {name!r} cannot be used as a file name.",
                          f"saving.name：{name!r} 不能用作文件名。",
                          "Use letters, digits, Chinese characters, '-' or '_', with no slashes.",
                          "请使用字母、数字、中文、'-' 或 '_'，不要含斜杠等特殊字符。", key="saving.name")


def _unknown(path: str, valid: list[str], everywhere: list[str]) -> ConfigError:
    name = path.rsplit(".", 1)[-1]
    # The right key in the wrong section first, then the closest spelling.
    close = [p for p in everywhere if p.rsplit(".", 1)[-1] == name][:1] or \
        difflib.get_close_matches(path, everywhere, n=1, cutoff=0.6) or \
        difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        hint = close[0] if "." in close[0] or "." not in path else f"{path.rsplit('.', 1)[0]}.{close[0]}"
        return ConfigError(f"Unknown key '{path}'. Did you mean '{hint}'?",
                           f"未知的键 '{path}'。是不是想写 '{hint}'？",
                           f"Rename '{path}' to '{hint}'.", f"把 '{path}' 改为 '{hint}'。", key=path)
    return ConfigError(f"Unknown key '{path}'.", f"未知的键 '{path}'。",
                       "Remove it; `python launcher.py train --help-config` lists every key.",
                       "请删除它；`python launcher.py train --help-config` 列出了所有键。", key=path)


def merge_dict(cfg: RunConfig, data: dict) -> RunConfig:
    """Apply nested data (as read from TOML) onto a copy of cfg, validating every key and value."""
    cfg = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s)) for s in SECTIONS})
    specs = {s.path: s for s in schema()}
    everywhere = list(specs)
    for section, values in data.items():
        if section == "schema_version":
            if values != SCHEMA_VERSION:
                raise ConfigError(f"schema_version {values!r} is not supported (this Danlu reads {SCHEMA_VERSION}).",
                                  f"不支持 schema_version {values!r}（当前版本读取 {SCHEMA_VERSION}）。",
                                  f"Set schema_version = {SCHEMA_VERSION}.",
                                  f"请设 schema_version = {SCHEMA_VERSION}。",
                                  key="schema_version")
            continue
        if section not in SECTION_CLASSES:
            if not isinstance(values, dict):
                raise _unknown(section, [], everywhere)
            close = difflib.get_close_matches(section, SECTIONS, n=1, cutoff=0.6)
            if close:
                raise ConfigError(f"Unknown section '[{section}]'. Did you mean '[{close[0]}]'?",
                                  f"未知的段 '[{section}]'。是不是想写 '[{close[0]}]'？",
                                  f"Rename it to [{close[0]}].", f"请改为 [{close[0]}]。", key=section)
            raise ConfigError(f"Unknown section '[{section}]'.", f"未知的段 '[{section}]'。",
                              f"Sections are: {', '.join(SECTIONS)}.", f"可用的段：{', '.join(SECTIONS)}。",
                              key=section)
        if not isinstance(values, dict):
            raise ConfigError(f"'{section}' must be a table ([{section}]).",
                              f"'{section}' 必须是一个表（[{section}]）。",
                              key=section)
        target = getattr(cfg, section)
        valid = [f.name for f in dataclasses.fields(target)]
        for key, value in values.items():
            path = f"{section}.{key}"
            if path not in specs:
                raise _unknown(path, valid, everywhere)
            setattr(target, key, _check_value(specs[path], value))
    _check_name(cfg)
    return cfg


def from_dict(data: dict) -> RunConfig:
    return merge_dict(default_config(), data)


def parse_toml(text: str, source: str = "<text>") -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = m.group(1) if m else "?"
        raise ConfigError(f"{source}: TOML syntax error at line {line}: {e}",
                          f"{source}：第 {line} 行 TOML 语法错误：{e}",
                          "Check quotes, brackets and '=' on that line; Windows paths need single quotes or '\\\\'.",
                          "请检查该行的引号、括号和等号；Windows 路径请用单引号，或把 '\\' 写成 '\\\\'。",
                          key=f"line {line}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config.", f"{source}：嵌套过深，不是配置文件。",
                          "A run TOML has sections of plain values; check that this is the file you meant.",
                          "运行 TOML 由若干节和普通值组成；请确认选择的是正确的文件。", key=source) from None


def parse_override(item: str) -> tuple[str, Any]:
    """'section.key=value' → (path, value). The value is read as TOML, else taken as a plain string."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value.",
                          f"--set {item!r}：格式应为 section.key=value。",
                          "For example: --set network.rank=16", "例如：--set network.rank=16", key=item)
    path, raw = item.split("=", 1)
    path = path.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    for item in overrides:
        path, value = parse_override(item)
        if "." not in path:
            raise _unknown(path, [], [s.path for s in schema()])
        section, key = path.split(".", 1)
        cfg = merge_dict(cfg, {section: {key: value}})
    return cfg


def load(path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    """defaults → preset → the run file → overrides."""
    cfg = default_config()
    if preset:
        from core.config.presets import preset_dict
        cfg = merge_dict(cfg, preset_dict(preset))
    if path is not None:
        p = Path(path)
        if not p.exists() and not p.is_symlink():
            raise ConfigError(f"Config file not found: {p}", f"找不到配置文件：{p}",
                              "Check the path, or create one with `python launcher.py demo`.",
                              "请检查路径，或用 `python launcher.py demo` 生成一个。", key=str(p))
        try:  # a folder, a link loop, a gigabyte, binary bytes, GBK or UTF-16: each named as what it is
            text = read_user_text(p, ("the config", "配置文件"), ("Give a run TOML saved as UTF-8.",
                                                             "请提供以 UTF-8 保存的运行 TOML 文件。"))
        except DanluError as e:
            raise ConfigError(e.en, e.zh, e.hint_en, e.hint_zh, key=e.key) from None
        if not text.strip():
            raise ConfigError(f"The config {p} is empty.", f"配置文件 {p} 是空的。",
                              "Give a run TOML (Export in the Parameters tab writes one).",
                              "请提供运行 TOML 文件（参数页的“导出”可生成）。", key=str(p))
        try:
            cfg = merge_dict(cfg, parse_toml(text, str(p)))
        except ConfigError as e:  # the key is named; the file is named too, so a shell user knows which one
            if str(p) in e.en:
                raise
            raise ConfigError(f"{p}: {e.en}", f"{p}：{e.zh}", e.hint_en, e.hint_zh, key=e.key) from None
    return apply_overrides(cfg, overrides or [])


def loads(text: str, source: str = "<text>") -> RunConfig:
    return from_dict(parse_toml(text, source))


def dumps(cfg: RunConfig) -> str:
    import tomli_w

    return tomli_w.dumps(to_dict(cfg), multiline_strings=False)


def save(cfg: RunConfig, path: str | Path) -> Path:
    """Write the TOML atomically (temp file, then rename)."""
    return atomic_write_text(Path(path), dumps(cfg))


def describe() -> str:
    """Every key with its type, default, allowed values and help: for --help-config and the docs."""
    lines = []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for s in (s for s in schema() if s.section == section):
            allowed = f" one of {', '.join(map(str, s.choices))}" if s.choices else \
                (f" {s.min}..{s.max}" if s.min is not None else "")
            lines.append(f"  {s.name} = {s.default!r}  ({s.type.__name__}{allowed})  {s.en}")
    return "\n".join(lines)


def with_values(config: RunConfig | dict, values: dict[str, Any]) -> RunConfig | dict:
    """The config with `values` ({"section.key": value}) set, each validated as in a run file; the same form
    back (a RunConfig, or the nested dict the page holds). Raises ConfigError naming the key."""
    cfg = config if isinstance(config, RunConfig) else from_dict(config)
    data: dict[str, dict] = {}
    for path, value in values.items():
        section, _, key = path.partition(".")
        data.setdefault(section, {})[key] = value
    new = merge_dict(cfg, data)
    return new if isinstance(config, RunConfig) else to_dict(new)


def merge_lenient(cfg: RunConfig, data: dict) -> tuple[RunConfig, list[str], list[ConfigError], int]:
    """Apply nested data key by key, as the page imports settings: a bad value keeps the old one (its ConfigError
    is returned), an unknown key or section is listed, the rest is applied. Returns (config, unknown, rejected,
    number applied)."""
    specs = {s.path for s in schema()}
    unknown: list[str] = []
    rejected: list[ConfigError] = []
    applied = 0
    for section, values in data.items():
        if section == "schema_version":
            continue
        if not isinstance(values, dict) or section not in SECTIONS:
            unknown.append(section if not isinstance(values, dict) else f"[{section}]")
            continue
        for key, value in values.items():
            if f"{section}.{key}" not in specs:
                unknown.append(f"{section}.{key}")
                continue
            try:
                cfg = merge_dict(cfg, {section: {key: value}})
                applied += 1
            except ConfigError as e:
                rejected.append(e)
    return cfg, unknown, rejected, applied
