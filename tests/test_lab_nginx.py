"""lab.nginx: the main nginx.conf that tests and benches run nginx with, out of a folder of
their own. A real nginx started on it serves the caller's http directives and keeps its pid
file and temporary folders in that folder. Skipped, with the reason, without nginx."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from lab.nginx import nginx_binary, write_nginx_conf
from lab.sim.ssh import free_tcp_port_on
from tests.portal_process import START_TIMEOUT_S, STOP_TIMEOUT_S

NGINX = nginx_binary()
pytestmark = pytest.mark.skipif(NGINX is None,
                                reason="no nginx (lab/debian-packages.txt installs it)")


def test_nginx_runs_from_its_own_folder_with_the_callers_http_directives(
        tmp_path: Path) -> None:
    work = tmp_path / "nginx"
    work.mkdir()
    work.chmod(0o755)  # as root, nginx's workers run as nobody
    port = free_tcp_port_on(["127.0.0.1"])
    main = write_nginx_conf(work, f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ return 200 "from {work.name}"; }}
        }}
        """, worker_connections=64, worker_rlimit_nofile=256)
    assert main == work / "nginx.conf"
    text = main.read_text()
    assert "worker_rlimit_nofile 256;" in text and "worker_connections 64;" in text
    assert NGINX is not None
    checked = subprocess.run([str(NGINX), "-t", "-p", str(work), "-c", str(main)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([str(NGINX), "-p", str(work), "-c", str(main)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
                    assert answer.read() == b"from nginx"
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    process.stdout.read() if process.stdout else "")
                time.sleep(0.1)
        assert (work / "nginx.pid").read_text().strip() == str(process.pid)
        assert {"client_body", "proxy"} <= {path.name for path in work.iterdir()}
    finally:
        process.terminate()
        process.wait(STOP_TIMEOUT_S)
