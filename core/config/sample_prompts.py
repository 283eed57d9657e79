"""Per-prompt sample options in kohya's syntax: `a cat --n blurry --w 768 --h 512 --s 30 --d 42 --l 6.5 --ss ddim`.

One parser for every sample: models/recipe.py reads a prompt line here before it builds a training sample or a grid
cell, and core.checks refuses a run whose prompts hold a flag this parser does not understand.

The syntax is sd-scripts' (`line_to_prompt_dict` in library/train_util.py): the line is split at " --"; the first
part is the prompt, each other part is a flag and its value. Unlike sd-scripts, an unknown flag or a bad value is an
error that names the prompt, rather than being skipped with a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import DanluError

# flag → (sampling field, type); kohya's spelling first
FLAGS = {"n": ("negative_prompt", str), "w": ("width", int), "h": ("height", int), "s": ("steps", int),
         "d": ("seed", int), "l": ("cfg", float), "ss": ("sampler", str)}
# sd-scripts' --ss names (library/train_util.py get_my_scheduler) that match a Danlu sampler
KOHYA_SAMPLERS = {"k_euler": "euler", "k_euler_a": "euler_a", "k_lms": "lms", "dpmsolver++": "dpmpp_2m",
                  "dpmsolver": "dpmpp_2m", "dpm++_2m": "dpmpp_2m", "dpm++_2m_karras": "dpmpp_2m_karras",
                  "k_heun": "heun"}
LIMITS = {"width": (64, 8192), "height": (64, 8192), "steps": (1, 1000), "seed": (0, 2**32 - 1), "cfg": (0.0, 100.0)}
_FLAG = re.compile(r"^([a-zA-Z]+)(?:\s+(.*))?$", re.S)


@dataclass(frozen=True)
class PromptLine:
    """A prompt line read: the prompt itself and the sampling fields its flags set."""

    prompt: str
    options: dict = field(default_factory=dict)  # SamplingConfig field → value


def _bad(line: str, en: str, zh: str) -> DanluError:
    return DanluError(f"Sample prompt {line!r}: {en}", f"样图提示词 {line!r}：{zh}",
                      "Flags (kohya's syntax): --n negative, --w width, --h height, --s steps, --d seed, "
                      "--l CFG scale, --ss sampler.",
                      "可用参数（kohya 写法）：--n 反向提示词，--w 宽，--h 高，--s 步数，--d 种子，--l CFG，"
                      "--ss 采样器。", key="sampling.prompts")


def parse(line: str, samplers: tuple[str, ...] = ()) -> PromptLine:
    """Split a prompt line into the prompt and its options; DanluError naming the line when a flag is wrong."""
    parts = line.split(" --")
    options: dict = {}
    for part in parts[1:]:
        m = _FLAG.match(part.strip())
        if not m:
            raise _bad(line, f"cannot read the flag '--{part.strip()}'.", f"无法识别参数 '--{part.strip()}'。")
        flag, value = m.group(1).lower(), (m.group(2) or "").strip()
        if flag not in FLAGS:
            raise _bad(line, f"unknown flag --{flag}.", f"未知参数 --{flag}。")
        key, kind = FLAGS[flag]
        if not value and kind is not str:
            raise _bad(line, f"--{flag} needs a value.", f"--{flag} 缺少数值。")
        if kind is str:
            options[key] = value if key != "sampler" else _sampler(line, value, samplers)
            continue
        try:
            number = kind(value)
        except ValueError:
            raise _bad(line, f"--{flag} {value}: not a {'whole ' if kind is int else ''}number.",
                       f"--{flag} {value}：不是{'整数' if kind is int else '数字'}。") from None
        lo, hi = LIMITS[key]
        if not lo <= number <= hi:
            raise _bad(line, f"--{flag} {value} is outside {lo}–{hi}.", f"--{flag} {value} 超出范围 {lo}–{hi}。")
        if key in ("width", "height") and number % 8:
            raise _bad(line, f"--{flag} {value} is not a multiple of 8.", f"--{flag} {value} 不是 8 的倍数。")
        options[key] = number
    return PromptLine(parts[0].strip(), options)


def _sampler(line: str, value: str, samplers: tuple[str, ...]) -> str:
    name = value.lower()
    name = KOHYA_SAMPLERS.get(name, name)
    if samplers and name not in samplers:
        raise _bad(line, f"--ss {value}: not one of {', '.join(samplers)}.",
                   f"--ss {value}：不在 {', '.join(samplers)} 之中。")
    return name


def problem(prompts: list[str], samplers: tuple[str, ...] = ()) -> DanluError | None:
    """The first prompt line that cannot be read, as its error; None when all are fine."""
    for line in prompts:
        try:
            parse(line, samplers)
        except DanluError as e:
            return e
    return None
