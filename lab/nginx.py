"""nginx run by a test or a bench out of a folder of its own, as any user.

A proxy in front of portal processes (docker/nginx.conf's, or a bench's own) is started with
`nginx -p WORK -c WORK/nginx.conf`. Run that way, nginx must not touch what belongs to the
system's nginx: its pid file, error log and every temporary folder go under WORK, it stays
in the foreground (the caller owns the process and stops it), and it logs errors to stderr
and no access. `write_nginx_conf` writes that main file around the caller's own `http`
directives (upstreams, servers, an include); `nginx_binary` finds the program
(lab/debian-packages.txt installs it).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

NGINX_MAIN = """\
daemon off;
worker_processes 1;
{rlimit}pid {work}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
{http}
}}
"""


def nginx_binary() -> Path | None:
    """The nginx program on PATH, else Debian's /usr/sbin/nginx (not on a user's PATH);
    None when neither is there."""
    found = Path(shutil.which("nginx") or "/usr/sbin/nginx")
    return found if found.exists() else None


def write_nginx_conf(work: Path, http: str, *, worker_connections: int = 256,
                     worker_rlimit_nofile: int | None = None) -> Path:
    """Write WORK/nginx.conf: nginx kept inside `work` (see the module docstring) with
    `http` as the rest of its http block. Returns the file's path."""
    rlimit = (f"worker_rlimit_nofile {worker_rlimit_nofile};\n"
              if worker_rlimit_nofile is not None else "")
    path = work / "nginx.conf"
    path.write_text(NGINX_MAIN.format(
        work=work, rlimit=rlimit, worker_connections=worker_connections,
        http=textwrap.indent(textwrap.dedent(http).strip("\n"), "    ")))
    return path
