"""`xtts-ft serve`: the studio in a browser, through textual-serve (Textual's own web server).

Each browser tab that opens the page starts its own studio process (`python -m tui.launch
--workspace W`) on this machine; the studio's play keys then deliver audio to the browser. The
server binds to 127.0.0.1 by default: reach it through an SSH tunnel
(`ssh -L 8000:localhost:8000 gpu-box`, then http://localhost:8000). Another `--host` is allowed
with a warning: whoever reaches the port controls the studio (and through it this machine's files
and GPUs). The engine only starts the server; it never imports the studio.
"""

from __future__ import annotations

import errno
import shlex
import socket
import sys
from pathlib import Path

from engine.cli import UserError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
INSTALL_HINT = "pip install textual-serve==1.1.3 (or rerun scripts/bootstrap.sh, which installs it)"


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve the studio in a web browser (textual-serve; localhost only by default)",
        description="Serve the terminal studio as a web page, to use it and listen to clips and samples from your "
        "own computer while it runs on a GPU server: `xtts-ft serve` there, `ssh -L 8000:localhost:8000 SERVER` "
        "on your computer, then open http://localhost:8000. Every browser tab runs its own studio in the "
        "workspace; training runs keep running when a tab closes.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; anything else lets every "
                   "machine that reaches the port control the studio)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--workspace", type=Path, default=Path("."),
                   help="folder with datasets/, models/ and runs/ (default: the current folder)")
    p.add_argument("--public-url", default=None,
                   help="the URL browsers use to reach the server, when it differs from http://HOST:PORT "
                   "(a reverse proxy, another port forwarded)")
    p.set_defaults(func=cmd_serve)


def port_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, in one line; None when it can."""
    if not 0 < port < 65536:
        return f"--port {port}: not a TCP port (1-65535)"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"--host {host}: unknown address ({exc.strerror})"
    family, _, _, _, addr = infos[0]
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"port {port} on {host} is already in use (another `xtts-ft serve`, or another program): "
                    f"choose another with --port, e.g. --port {port + 1}")
        if exc.errno == errno.EACCES:
            return f"port {port} needs root privileges here: use a port above 1023, e.g. --port 8000"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"--host {host}: this machine has no such address"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    finally:
        s.close()
    return None


def studio_command(workspace: Path) -> str:
    """The command textual-serve runs for each browser session: this interpreter, this checkout."""
    return shlex.join([sys.executable, "-m", "tui.launch", "--workspace", str(workspace)])


def warning_for(host: str, port: int) -> str | None:
    if host in LOCAL_HOSTS:
        return None
    return (f"WARNING: --host {host} makes the studio reachable by every machine that can reach port {port} "
            "of this one, without a password: whoever opens it can start and stop training, edit and delete "
            "clips and read files in the workspace. Prefer the default (127.0.0.1) with an SSH tunnel; "
            f"otherwise allow only your own address in a firewall (e.g. ufw allow from YOUR_IP to any port {port}) "
            "or put a reverse proxy with a password and HTTPS in front (then pass --public-url).")


def cmd_serve(args) -> int:
    try:
        from textual_serve.server import Server
    except ModuleNotFoundError as exc:
        raise UserError(f"serving the studio needs textual-serve, which is not installed ({exc.name}): "
                        f"{INSTALL_HINT}") from None
    workspace = args.workspace.expanduser().resolve()
    if not workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: folder not found")
    problem = port_problem(args.host, args.port)
    if problem:
        raise UserError(problem)
    warn = warning_for(args.host, args.port)
    if warn:
        print(warn, file=sys.stderr, flush=True)
    shown = "localhost" if args.host in LOCAL_HOSTS else args.host
    if args.host in ("0.0.0.0", "::"):
        shown = socket.getfqdn()
    public_url = (args.public_url or f"http://{shown}:{args.port}").rstrip("/")
    if args.host in LOCAL_HOSTS:
        print(f"Serving the studio on http://localhost:{args.port} for this machine only (--host {args.host}).\n"
              f"From your computer: ssh -L {args.port}:localhost:{args.port} {socket.gethostname()}   "
              f"then open http://localhost:{args.port}", flush=True)
    else:
        print(f"Serving the studio on {public_url} (listening on {args.host}:{args.port}).", flush=True)
    print(f"Workspace: {workspace}. Each browser tab runs its own studio; play keys play in the browser. "
          "Ctrl+C stops the server (training runs keep going).", flush=True)
    server = Server(studio_command(workspace), host=args.host, port=args.port, title="xtts-ft studio",
                    public_url=public_url)
    server.serve()
    return 0
