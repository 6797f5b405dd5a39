"""The `keyline` command as a user runs it: one clear line per error, exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from keyline import __version__
from keyline.wiring import EXAMPLE_INVENTORY
from tests.portal_process import start_portal


def keyline(*args: str, url: str | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keyline"]
    if url is not None:
        command += ["--database-url", url]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    full_env.update(env or {})
    return subprocess.run(command + list(args), capture_output=True, text=True, input=stdin,
                          env=full_env, cwd=cwd, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("keyline: error: ")
    return last


def test_version():
    result = keyline("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_import_twice_then_unchanged(db):
    first = keyline("import", str(EXAMPLE_INVENTORY), url=db.url)
    assert first.returncode == 0, first.stderr
    assert "added" in first.stdout
    second = keyline("import", str(EXAMPLE_INVENTORY), url=db.url)
    assert second.returncode == 0, second.stderr
    assert "Inventory unchanged" in second.stdout


def test_import_check_writes_nothing(db):
    result = keyline("import", "--check", str(EXAMPLE_INVENTORY), url=db.url)
    assert result.returncode == 0, result.stderr
    assert "Inventory valid" in result.stdout
    with db.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0


def test_broken_inventory_lists_problems_and_writes_nothing(db, tmp_path: Path):
    from tests.test_inventory_import import snapshot

    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    with db.pool.connection() as conn:
        before = snapshot(conn)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "customers:\n"
        "  - id: acme\n"
        "    name: ACME\n"
        "circuits:\n"
        "  - id: C-1\n"
        "    customer: nobody\n"
    )
    result = keyline("import", str(EXAMPLE_INVENTORY), str(broken), url=db.url)
    last = assert_one_line_error(result, 2)
    assert "nothing was written" in last
    assert f"{broken}:6" in result.stderr  # the unknown customer, with its line
    with db.pool.connection() as conn:
        assert snapshot(conn) == before


def test_db_status_and_migrate(db):
    status = keyline("db", "status", url=db.url)
    assert status.returncode == 0, status.stderr
    assert "Pending: none" in status.stdout
    migrate = keyline("db", "migrate", url=db.url)
    assert migrate.returncode == 0, migrate.stderr
    assert "nothing to apply" in migrate.stdout


def test_status_forgets_a_collector_stopped_for_good_but_never_a_running_one(db, tmp_path):
    import uuid
    from datetime import UTC, datetime

    from store.collection import record_heartbeat

    with db.pool.connection() as conn:
        for name in ("collector:edge-1", "collector:edge-2"):
            record_heartbeat(conn, name, datetime.now(UTC), {})
        # edge-2 was taken out of the fleet an hour ago; edge-1 runs
        conn.execute("UPDATE service_heartbeats SET updated_at = now() - interval '1 hour'"
                     " WHERE name = 'collector:edge-2'")
        conn.execute("INSERT INTO collector_instances (id, name, host, pid, expires_at)"
                     " VALUES (%s, 'edge-2', 'h', 1, now() - interval '59 minutes')",
                     [uuid.uuid4()])
    env = {"KEYLINE_DATA_DIR": str(tmp_path / "data")}
    before = keyline("status", url=db.url, env=env)
    assert before.returncode == 1
    assert "collector:edge-2: NOT RUNNING" in before.stdout

    running = keyline("status", "--forget", "collector:edge-1", url=db.url, env=env)
    assert "--forget: collector:edge-1 is running" in assert_one_line_error(running, 2)
    unknown = keyline("status", "--forget", "collector:edge-9", url=db.url, env=env)
    last = assert_one_line_error(unknown, 2)
    assert "no service named 'collector:edge-9'" in last and "collector:edge-2" in last

    forgot = keyline("status", "--forget", "collector:edge-2", url=db.url, env=env)
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout.startswith("forgot collector:edge-2 (pid ")
    after = keyline("status", url=db.url, env=env)
    assert "edge-2" not in after.stdout and "collector:edge-1: running" in after.stdout
    with db.pool.connection() as conn:
        assert conn.execute("SELECT name FROM collector_instances").fetchall() == []
        assert [row[0] for row in conn.execute("SELECT name FROM service_heartbeats")] == [
            "collector:edge-1"]


def test_newer_database_is_refused(db):
    with db.pool.connection() as conn:
        conn.execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
    result = keyline("import", str(EXAMPLE_INVENTORY), url=db.url)
    last = assert_one_line_error(result, 1)
    assert "9999" in last
    assert "upgrade" in last.lower()


def test_unreachable_database_hides_password(tmp_path: Path):
    url = f"postgresql://keyline:hunter2-very-secret@/keyline?host={tmp_path}/no-such-socket"
    result = keyline("db", "status", url=url)
    assert_one_line_error(result, 1)
    assert "hunter2-very-secret" not in result.stderr + result.stdout


def test_bad_settings_file_is_one_line(tmp_path: Path):
    config = tmp_path / "keyline.toml"
    config.write_text("listen_port = 'eighty'\n")
    result = keyline("--config", str(config), "db", "status")
    last = assert_one_line_error(result, 2)
    assert "listen_port" in last


def test_users_add_passwd_list(db):
    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    added = keyline("user", "add", "ops.local", "--role", "noc", "--password-stdin",
                    url=db.url, stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    short = keyline("user", "add", "ops.two", "--role", "noc", "--password-stdin",
                    url=db.url, stdin="short\n")
    assert "too short" in assert_one_line_error(short, 2)
    unknown = keyline("user", "passwd", "nobody.here", "--password-stdin", url=db.url,
                      stdin="another long password\n")
    assert "does not exist" in assert_one_line_error(unknown, 2)
    listing = keyline("user", "list", url=db.url)
    assert "ops.local" in listing.stdout
    for line in listing.stdout.splitlines():
        if line.startswith("ops.local "):
            assert " ok" in line
    # the password never reaches any output
    assert "correct horse battery" not in added.stdout + added.stderr + listing.stdout


def portal_login(url: str, name: str, password: str) -> urllib.request.OpenerDirector:
    """Log in to the portal at `url` as a browser does (cookie jar, CSRF token from the login
    form); return the opener, which carries the session."""
    import http.cookiejar
    import re
    import urllib.parse

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(url + "login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"name": name, "password": password, "csrf_token": token})
    landed = opener.open(url + "login", data=data.encode(), timeout=10)
    assert not landed.url.endswith("/login"), "login refused"
    return opener


def test_serve_shows_customers_and_circuits(db):
    added = keyline("user", "add", "ops.serve", "--role", "noc", "--password-stdin",
                    url=db.url, stdin="serve test password\n")
    assert added.returncode == 0, added.stderr
    process, url = start_portal("--database-url", db.url, "serve", "--port", "0",
                                "--inventory", str(EXAMPLE_INVENTORY))
    try:
        anonymous = urllib.request.urlopen(url, timeout=10)
        assert anonymous.url.endswith("/login")
        opener = portal_login(url, "ops.serve", "serve test password")
        page = opener.open(url, timeout=10).read().decode()
        with db.pool.connection() as conn:
            customers = [r[0] for r in conn.execute("SELECT name FROM customers")]
            circuits = [r[0] for r in conn.execute("SELECT key FROM circuits")]
        assert customers and circuits
        for name in customers:
            assert name in page
        for key in circuits:
            assert key in page
    finally:
        process.stop()


def test_demo_runs_on_embedded_postgres_and_stops_it(scratch_dir: Path):
    """The README's run command: embedded PostgreSQL, the example inventory as a simulated
    network polled live, the portal showing traffic within a minute; all stopped with it."""
    import json
    import re
    import time

    from config.inventory.loader import load_inventory
    from tests.snmp_agents import free_udp_port_on, free_udp_ports

    inventory = load_inventory([EXAMPLE_INVENTORY])
    lab_port = free_udp_port_on([str(d.management_address) for d in inventory.devices.values()])
    data_dir = scratch_dir / "demo"
    process, url = start_portal(
        "--data-dir", str(data_dir), "demo", "--port", "0", "--lab-snmp-port", str(lab_port),
        env_extra={"KEYLINE_TRAPS__PORT": str(free_udp_ports(1)[0])})
    try:
        health = json.loads(urllib.request.urlopen(url + "healthz", timeout=10).read())
        printed = re.findall(r"Log in as (\S+) with password (\S+)", process.output)
        assert len(printed) == 1, process.output
        opener = portal_login(url, *printed[0])
        deadline = time.monotonic() + 60
        while True:
            page = opener.open(url, timeout=10).read().decode()
            measured = re.findall(r'<td class="num traffic">([^<]+ / [^<]+)</td>', page)
            if (len(measured) == len(inventory.circuits)
                    and f"{len(inventory.devices)} reachable" in page):
                break
            assert time.monotonic() < deadline, "no live traffic on the page within a minute"
            time.sleep(1)
    finally:
        process.stop()
    output = process.output
    assert output.count(printed[0][1]) == 1  # the password is printed once, logged never
    assert health["status"] == "ok"
    assert f"Polling {len(inventory.devices)} devices" in output
    assert all("bit/s" in figures for figures in measured)
    for customer in inventory.customers.values():
        assert customer.name in page
    for key in inventory.circuits:
        assert key in page
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    # the server and the simulated network it started are stopped with it
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "lab-sim" / "snmpsim.pid").exists()
    assert not _processes_mentioning(str(data_dir))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_unknown_command_is_usage_error():
    result = keyline("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_poll_once_an_unknown_device_is_bad_input(db):
    keyline("import", str(EXAMPLE_INVENTORY), url=db.url)
    result = keyline("poll", "--once", "no-such-router", url=db.url)
    last = assert_one_line_error(result, 2)
    assert last == "keyline: error: no such active device in the inventory: no-such-router"


def test_serve_refuses_an_inventory_that_would_retire_the_stored_one(db, tmp_path: Path):
    """`keyline serve --inventory` (and the demo) on a data directory holding another
    inventory: refused like `keyline import` without --allow-retire, nothing retired."""
    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    result = keyline("--database-url", db.url, "serve", "--port", "0",
                     "--inventory", str(empty))
    last = assert_one_line_error(result, 3)
    assert "would retire" in last and "data directory" in last
    with db.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM circuits WHERE retired_at IS NULL"
                            ).fetchone()[0] > 0


def test_calendar_show_lists_each_date_with_its_source(db):
    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    result = keyline("calendar", "show", "bronze", "--year", "2025", url=db.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Time zone: Asia/Shanghai" in lines
    assert "Hours: mon-fri 08:30-18:00; sat 09:00-12:00" in lines
    sla_yaml = EXAMPLE_INVENTORY / "sla.yaml"
    # written in config/example/sla.yaml: the make-up Sunday and 1 October, each on its line
    written = {line.split("#")[0].strip(" -"): number for number, line in enumerate(
        sla_yaml.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()}
    assert f"  2025-09-28 Sun  working date  {sla_yaml}:{written['2025-09-28']}" in lines
    assert f"  2025-10-01 Wed  holiday       {sla_yaml}:{written['2025-10-01']}" in lines
    assert not any("2026-" in line for line in lines)
    # 2026 is filled from the chinesecalendar package: Saturday 10 October is worked
    result = keyline("calendar", "show", "bronze", "--year", "2026", url=db.url)
    assert result.returncode == 0, result.stderr
    assert "  2026-10-10 Sat  working date  chinesecalendar 1.11.0" in result.stdout.splitlines()
    # gold runs around the clock and lists no dates
    result = keyline("calendar", "show", "gold", "--year", "2025", url=db.url)
    assert "Hours: 24x7" in result.stdout
    assert "No holidays or working dates in 2025." in result.stdout
    last = assert_one_line_error(keyline("calendar", "show", "platinum", url=db.url), 2)
    assert "no SLA contract 'platinum'; contracts: bronze, gold, hsbank-gold, silver" in last
