"""`python launcher.py lora info|meta|resize|merge|extract|convert ...`: the toolbox from a shell.

Bad input (a wrong argument, a file that is not a LoRA, a pickle, a truncated file, mismatched families, an output
that is an input) exits 2 with the message and what to do, in the user's language (--lang, else DANLU_LANG or the
locale). Ctrl-C stops between modules and leaves no partial file (exit 130)."""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import DanluError, current_lang


class _Parser(argparse.ArgumentParser):
    """argparse that states a usage error in both languages (exit 2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n{self.prog}：参数有误：{message}（用 --help 查看用法）\n")
        raise SystemExit(2)


def _weighted(text: str) -> tuple[str, float]:
    """FILE or FILE:WEIGHT (a Windows drive letter's colon is not a weight)."""
    path, sep, weight = text.rpartition(":")
    if sep and path and not (len(path) == 1 and weight.startswith(("\\", "/"))):
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 1.0


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="launcher.py lora", description="Inspect, resize, merge, extract and convert LoRA files.")
    p.add_argument("--lang", choices=("zh", "en"), default=None, help="language of messages (default: the locale)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("info", help="what is inside a LoRA file")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s = sub.add_parser("meta", help="write a copy with new title / trigger words / description / cover")
    s.add_argument("file")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--title")
    s.add_argument("--trigger", help="trigger words, comma-separated")
    s.add_argument("--description")
    s.add_argument("--cover", help="an image file shown as the LoRA's cover")
    s = sub.add_parser("resize", help="a lower (or dynamic) rank, the best approximation of the same ΔW")
    s.add_argument("file")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--rank", type=int, required=True, help="the rank, or the largest a dynamic method may pick")
    s.add_argument("--conv-rank", type=int, default=None, help="the same for k×k convolutions (default: --rank)")
    s.add_argument("--method", choices=("fixed", "sv_ratio", "sv_fro", "sv_cumulative"), default="fixed")
    s.add_argument("--param", type=float, default=None, help="sv_ratio: e.g. 2; sv_fro / sv_cumulative: e.g. 0.9")
    s.add_argument("--sd-scripts-compat", action="store_true",
                   help="keep one rank more than the rule needs, as sd-scripts' resize_lora.py does")
    s.add_argument("--precision", choices=("fp16", "bf16", "float"), default=None)
    s = sub.add_parser("extract", help="a LoRA from the difference of two checkpoints of one family")
    s.add_argument("--base", required=True)
    s.add_argument("--tuned", required=True)
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--rank", type=int, required=True)
    s.add_argument("--conv-rank", type=int, default=0, help="rank of k×k convolutions (0: none, a plain LoRA)")
    s.add_argument("--method", choices=("fixed", "sv_ratio", "sv_fro", "sv_cumulative"), default="fixed")
    s.add_argument("--param", type=float, default=None)
    s.add_argument("--threshold", type=float, default=0.0, help="skip layers whose largest |ΔW| is at most this")
    s.add_argument("--precision", choices=("fp16", "bf16", "float"), default="fp16")
    s = sub.add_parser("merge", help="LoRAs into one (or into a base checkpoint with --base)")
    s.add_argument("files", nargs="+", help="FILE or FILE:WEIGHT")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--base", help="merge into this checkpoint instead")
    s.add_argument("--rank", type=int, default=None, help="cut to this rank by SVD where the ranks add up to more")
    s.add_argument("--precision", choices=("fp16", "bf16", "float"), default=None)
    s = sub.add_parser("convert", help="another layout of the same family")
    s.add_argument("file")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--to", required=True, help="the target layout")
    s.add_argument("--precision", choices=("fp16", "bf16", "float"), default=None)
    return p


def _run(args: argparse.Namespace, lang: str) -> str:
    """Do the command; the text to print."""
    from models.toolbox.common import Job, console_progress

    job = Job(progress=console_progress(args.command) if sys.stderr.isatty() else None)
    if args.command == "info":
        from models.toolbox.inspect import inspect_lora

        info = inspect_lora(args.file)
        if args.json:
            fields = {k: v for k, v in vars(info).items() if k != "metadata"}
            return json.dumps(fields, ensure_ascii=False, indent=1, default=str)
        return info.report(lang)
    if args.command == "meta":
        from models.toolbox.inspect import edit_metadata

        words = None if args.trigger is None else [w for w in args.trigger.split(",") if w.strip()]
        out = edit_metadata(args.file, args.out, title=args.title, trigger_words=words,
                            description=args.description, cover=args.cover)
        return f"已写入 {out}" if lang == "zh" else f"wrote {out}"
    if args.command == "resize":
        from models.toolbox.resize import resize_lora

        return resize_lora(args.file, args.out, rank=args.rank, conv_rank=args.conv_rank, method=args.method,
                           param=args.param, precision=args.precision, compat=args.sd_scripts_compat,
                           job=job).text(lang)
    if args.command == "extract":
        from models.toolbox.extract import extract_lora

        report = extract_lora(args.base, args.tuned, args.out, rank=args.rank, conv_rank=args.conv_rank,
                              method=args.method, param=args.param, threshold=args.threshold,
                              precision=args.precision, job=job)
        return report.text(lang)
    if args.command == "merge":
        from models.toolbox import merge

        inputs = [_weighted(f) for f in args.files]
        if args.base:
            return merge.merge_into_base(args.base, inputs, args.out, job=job).text(lang)
        return merge.merge_loras(inputs, args.out, rank=args.rank, precision=args.precision, job=job).text(lang)
    from models.toolbox.convert import convert_lora

    return convert_lora(args.file, args.out, target=args.to, precision=args.precision, job=job).text(lang)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lang = args.lang or current_lang()
    try:
        print(_run(args, lang))
    except DanluError as err:
        print(err.text(lang), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the output is written under a temporary name, removed on the way out
        print("已取消：没有写入任何文件。" if lang == "zh" else "Cancelled: no file was written.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
