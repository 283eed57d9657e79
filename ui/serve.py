"""`python launcher.py [ui]`: the page on 127.0.0.1 (a free port from 7860 up), or on every interface with a
password. Imports gradio only when it starts serving."""

from __future__ import annotations

import argparse
import gc
import os
import socket
import sys

DEFAULT_PORT = 7860


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_port(host: str, start: int, tries: int = 50) -> int:
    """The first free port from start upward."""
    for port in range(start, start + tries):
        if port_free(host, port):
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1}")


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be user:password")
    return user, password


def ui_settings(args: argparse.Namespace) -> tuple[str, tuple[str, str] | None]:
    """Host and auth. Binding all interfaces exposes the trainer to the network, so it needs a password."""
    auth = parse_auth(args.auth)
    if args.listen and auth is None:
        raise ValueError("--listen makes Danlu reachable from other machines; add --auth user:password.\n"
                         "--listen 会让其他机器也能访问丹炉，请同时加上 --auth 用户名:密码。")
    return ("0.0.0.0" if args.listen else "127.0.0.1"), auth


def main(argv: list[str]) -> int:
    """`python launcher.py [ui] [options]`: serve the page and open the browser."""
    parser = argparse.ArgumentParser(prog="launcher.py ui", description="Start the browser UI.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--no-browser", action="store_true", help="do not open the browser")
    parser.add_argument("--listen", action="store_true", help="bind all interfaces (requires --auth)")
    parser.add_argument("--auth", help="user:password for --listen")
    parser.add_argument("--lang", choices=["zh", "en"], help="page language (default: from the system)")
    args = parser.parse_args(argv)
    try:
        host, auth = ui_settings(args)
    except ValueError as e:
        print(f"[Danlu] {e}", file=sys.stderr)
        return 2
    port = find_port("127.0.0.1" if host == "127.0.0.1" else "0.0.0.0", args.port)
    if port != args.port:
        print(f"[Danlu] Port {args.port} is busy; using {port}.  端口 {args.port} 被占用，改用 {port}。", flush=True)
    print(f"[Danlu] Open http://127.0.0.1:{port}  在浏览器中打开 http://127.0.0.1:{port}", flush=True)
    if args.lang:
        os.environ["DANLU_LANG"] = args.lang
    gc.disable()  # until the page is served (ui.app.launch): startup allocates, it frees next to nothing
    from ui.app import launch

    launch(host=host, port=port, auth=auth, open_browser=not args.no_browser, lang=args.lang)
    return 0
