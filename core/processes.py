"""The trainer as an operating-system process: the command a user would type, whether a pid still runs that
command, and what an exit code or signal means, in both languages. core/runs/supervisor.py's Supervisor uses them."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path


def command_text(argv: list[str], cwd: Path) -> str:
    """The command as a user would type it in this OS's shell."""
    if os.name == "nt":
        return f'cd /d "{cwd}" && {subprocess.list2cmdline(argv)}'
    return f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}"


def pid_text(pid: int | None) -> str:
    return "?" if pid is None else str(pid)


def pid_alive(pid: int | None, argv: list[str] | None = None) -> bool:
    """Is process `pid` running (and, where /proc shows it, still the command in argv, not a reused pid)?"""
    if not pid or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would end the process on Windows: ask the kernel instead
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":  # a zombie has ended
                return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", errors="replace").split("\0")
    except OSError:
        return True  # no /proc (macOS): the pid answering is all there is to know
    return not argv or argv[-1] in cmdline or (len(argv) > 1 and argv[-2] in cmdline)


def exit_error(code: int | None, killed: bool = False) -> dict:
    """Why a trainer ended without reporting an error: its exit code (None: reattached after a restart, the
    code is unknown; negative: a signal, `killed` when it came from the page), in both languages."""
    if code is None:
        return {"message": "The trainer ended without a final report (Danlu reattached to it after a restart).",
                "message_zh": "重启后接上的训练进程结束了，但没有留下最终报告。",
                "hint": "The last lines of its log are below; files saved so far are kept and resume continues.",
                "hint_zh": "下面是日志的最后几行；已保存的文件都在，可以续训。"}
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if killed:
            return {"message": f"The trainer was killed ({name}) from this page.",
                    "message_zh": f"训练进程已在本页面被强制结束（{name}）。",
                    "hint": "Files saved so far are kept; resume continues from the last saved state.",
                    "hint_zh": "已保存的文件都在；续训会从最近保存的状态继续。"}
        return {"message": f"The trainer was killed by signal {name} from outside Danlu.",
                "message_zh": f"训练进程被外部信号 {name} 结束。",
                "hint": "SIGKILL without a reason is usually the system running out of memory (RAM): "
                        "lower the batch size or resolution, or cache latents to disk, then resume.",
                "hint_zh": "无故的 SIGKILL 通常是系统内存不足：请降低批大小或分辨率，"
                           "或把 latent 缓存到磁盘，然后续训。"}
    return {"message": f"The trainer exited with code {code} without reporting an error.",
            "message_zh": f"训练进程以退出码 {code} 结束，没有报告错误。",
            "hint": "The last lines of its log are below; they usually name the cause.",
            "hint_zh": "下面是日志的最后几行，通常能看出原因。"}
