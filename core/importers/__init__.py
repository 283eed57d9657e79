"""Import a peer trainer's settings: sd-scripts (TOML or an argument file), a kohya_ss GUI JSON, a lora-scripts TOML.

`import_file(path)` returns the Danlu config (validated by core.config) and a report of every key read: mapped,
changed (with the reason) or without a Danlu equivalent. The key names are those of sd-scripts' argument parser
(library/train_util.py add_*_arguments, train_network.py), which lora-scripts (Akegarasu, mikazuki/schema) writes
as they are and kohya_ss's GUI JSON writes with a few names of its own (epoch, optimizer, max_resolution,
lr_warmup in percent, LoRA_type).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.errors import ConfigError, DanluError
from core.fsutil import read_user_text
from core.importers import flux
from core.importers.keys import DIRECT, QUIET, SPECIAL, Row

FORMATS = {"sd-scripts": "sd-scripts", "kohya_ss": "kohya_ss GUI JSON", "lora-scripts": "lora-scripts (秋叶)"}

@dataclass
class Imported:
    kind: str                # sd-scripts, kohya_ss, lora-scripts
    config: cfgmod.RunConfig
    rows: list[Row] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh): where the run left its docs' advice
    defaulted: set[str] = field(default_factory=set)  # keys the run left out, read as sd-scripts' defaults

    def table(self, lang: str = "en") -> str:
        """The report as a Markdown table, then the warnings (the console and the Config tab show it)."""
        zh = lang == "zh"
        head = ("| 状态 | 原键 | 原值 | 丹炉键 | 丹炉值 | 说明 |" if zh else
                "| status | their key | their value | Danlu key | Danlu value | why |")
        words = {"mapped": "已映射", "changed": "已更改", "unsupported": "无对应项"} if zh else {}
        lines = [head, "|---|---|---|---|---|---|"]
        for r in sorted(self.rows, key=lambda r: (["mapped", "changed", "unsupported"].index(r.status), r.peer_key)):
            why = (r.why_zh if zh else r.why_en).replace("|", "/")
            value = "" if r.status == "unsupported" or not r.key else _cell(r.value)
            theirs = _cell(r.peer_value) + ((" （未设置，默认）" if zh else " (not set: default)")
                                            if r.peer_key in self.defaulted else "")
            lines.append(f"| {words.get(r.status, r.status)} | {r.peer_key} | {theirs} | {r.key or '—'} | "
                         f"{value} | {why} |")
        if self.warnings:
            lines += ["", "**警告**" if zh else "**Warnings**", ""]
            lines += [f"- ⚠ {zh_text if zh else en}" for en, zh_text in self.warnings]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "…"


def _unreadable(path: Path, en: str, zh: str) -> DanluError:
    return DanluError(f"Cannot import {path}: {en}", f"无法导入 {path}：{zh}",
                      "Give an sd-scripts TOML or argument file, a kohya_ss GUI JSON or a lora-scripts TOML.",
                      "请提供 sd-scripts 的 TOML 或参数文件、kohya_ss 界面的 JSON，或 lora-scripts 的 TOML。",
                      key=str(path))


def read_peer(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(format, {sd-scripts key: value}) of a peer's file; TOML sections are flattened as sd-scripts does."""
    path = Path(path)
    hint = _unreadable(path, "", "")
    text = read_user_text(path, ("the file to import", "要导入的文件"), (hint.hint_en, hint.hint_zh))
    stripped = text.lstrip()
    if not stripped:
        raise _unreadable(path, "the file is empty.", "文件是空的。")
    if stripped.startswith("{") or path.suffix.lower() == ".json":  # a TOML may start with "[section]"
        return "kohya_ss", _json(path, text)
    if re.search(r"(^|\s)--[a-z_0-9]+", text) and not re.search(r"^\s*[a-z_0-9]+\s*=", text, re.M):
        return "sd-scripts", _arguments(text)
    try:
        data = cfgmod.parse_toml(text, str(path))
    except ConfigError as e:
        raise _unreadable(path, e.en, e.zh) from None
    flat: dict[str, Any] = {}
    for k, v in data.items():  # sd-scripts' config_file: sections are only for the reader's eye
        flat.update(v if isinstance(v, dict) else {k: v})
    kind = "lora-scripts" if "model_train_type" in flat else "sd-scripts"
    return kind, flat


def _json(path: Path, text: str) -> dict[str, Any]:
    """A kohya_ss GUI JSON: an object of settings. A syntax error says where it breaks, as JSON (not as TOML)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _unreadable(path, f"it looks like JSON but breaks at line {e.lineno}, column {e.colno}: {e.msg}.",
                          f"它看起来是 JSON，但在第 {e.lineno} 行第 {e.colno} 列出错：{e.msg}。") from None
    except RecursionError:
        raise _unreadable(path, "it looks like JSON but is nested too deeply to be a config.",
                          "它看起来是 JSON，但嵌套过深，不是配置文件。") from None
    if not isinstance(data, dict):
        raise _unreadable(path, f"it is JSON but holds a {type(data).__name__}, not an object of settings.",
                          f"它是 JSON，但内容是 {type(data).__name__}，不是设置对象。")
    return {k: v for k, v in data.items() if not isinstance(v, dict)}


def _arguments(text: str) -> dict[str, Any]:
    """`--key=value` / `--key value` / `--flag` (a shell command line or one argument a line)."""
    text = re.sub(r"[\\^`]\s*\n", " ", text)  # line continuations of sh, cmd and PowerShell
    out: dict[str, Any] = {}
    tokens = shlex.split(text, comments=True, posix=True)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.endswith(".py"):  # what came before the script were accelerate's own options
            out = {flux.SCRIPT_KEY: Path(tok.replace("\\", "/")).name}
        if not tok.startswith("--"):
            continue
        key, eq, value = tok[2:].partition("=")
        if not eq:
            values = []
            while i < len(tokens) and not tokens[i].startswith("--") and not tokens[i].endswith(".py"):  # nargs
                values.append(tokens[i])
                i += 1
            value = True if not values else values[0] if len(values) == 1 else values
        out[key] = value
    return out


def import_file(path: str | Path) -> Imported:
    """Read a peer's file into a Danlu config and a report of each key."""
    kind, peer = read_peer(path)
    result = convert(kind, peer)
    if not any(r.status in ("mapped", "changed") for r in result.rows):  # nothing of it would reach the run
        found = ", ".join(sorted(peer)[:12]) + (" …" if len(peer) > 12 else "")
        taken = [r for r in result.rows if r.key]
        why_en = f"no setting could be taken ({taken[0].peer_key}: {taken[0].why_en})" if taken else \
            "no key is one that sd-scripts, kohya_ss or lora-scripts writes"
        why_zh = f"没有可采用的设置（{taken[0].peer_key}：{taken[0].why_zh}）" if taken else \
            "没有 sd-scripts、kohya_ss 或 lora-scripts 写出的键"
        raise _unreadable(Path(path), f"{why_en}; found: {found or 'nothing'}.",
                          f"{why_zh}；找到的键：{found or '无'}。")
    return result


def convert(kind: str, peer: dict[str, Any]) -> Imported:
    result = Imported(kind, cfgmod.default_config())
    values: dict[str, Any] = {}
    special, start = SPECIAL, {}
    if flux.is_flux(peer):  # FLUX.1 / Chroma: sd-scripts' defaults for the flags left out, FLUX's own keys
        peer, result.defaulted = flux.with_defaults(peer)
        special, start = {**SPECIAL, **flux.SPECIAL}, flux.starting_point(peer)

    def put(peer_key: str, key: str, value: Any, why: tuple[str, str] | None = None, raw: Any = None) -> None:
        raw = peer.get(peer_key, value) if raw is None else raw  # a network_args entry is not a key of its own
        try:
            spec = cfgmod.field_spec(key)
        except (ConfigError, KeyError):
            result.rows.append(Row("unsupported", peer_key, raw,
                                   why_en="no Danlu setting", why_zh="丹炉没有对应设置"))
            return
        section, name = key.split(".", 1)
        try:  # one key at a time, so that one bad value is reported and the rest still comes across
            value = getattr(getattr(cfgmod.merge_dict(cfgmod.default_config(),
                                                      {section: {name: _typed(spec.type, value)}}), section), name)
        except (ConfigError, ValueError, TypeError) as e:
            en, zh = (e.en, e.zh) if isinstance(e, ConfigError) else (str(e), str(e))
            result.rows.append(Row("unsupported", peer_key, raw, key,
                                   why_en=f"not taken: {en}", why_zh=f"未采用：{zh}"))
            return
        values[key] = value
        status = "changed" if why else "mapped"
        result.rows.append(Row(status, peer_key, raw, key, value, *(why or ("", ""))))

    for k, v in peer.items():
        if v in ("", None) or k in QUIET:
            continue
        if k in special:
            special[k](k, v, peer, put, result)
        elif k in DIRECT:
            put(k, DIRECT[k], v)
        elif v in (0, False, [], "0", "false", "False"):  # an option of theirs that is off: nothing is lost
            continue
        else:
            result.rows.append(Row("unsupported", k, v, why_en="no Danlu setting", why_zh="丹炉没有对应设置"))
    nested: dict[str, dict] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = value
    result.config = cfgmod.merge_dict(cfgmod.merge_dict(cfgmod.default_config(), start), nested)
    return result


def _typed(kind: type, value: Any) -> Any:
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if kind in (int, float) and isinstance(value, str):
        number = float(value)
        return int(number) if kind is int and number.is_integer() else kind(number)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
