"""docker-compose.yml and the Dockerfile, checked where no Docker daemon runs.

The compose file is validated against the Compose Specification's JSON schema (the copy the
pinned check-jsonschema package ships: none is kept in this repository), after the
interpolation Compose does (`${NAME}`, `${NAME:-default}`, `${NAME:?message}`). Each Keyline
service's command is parsed by the `keyline` command line itself (click; `keyline lab sim`'s
arguments by its argparse), with the container paths it names found through the service's
bind mounts, and its environment is loaded as Keyline's settings: a misspelled command,
option or setting fails here, not at `docker compose up`. The Dockerfile's first stage copies
every package pyproject.toml names and the files setup.py needs; tests/test_installed_wheel.py
builds the wheel from exactly those files (`stage_one_sources`) and runs the compose services'
commands from it.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import json
import os
import re
import shutil
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KEYLINE_IMAGE = "keyline:local"
# What `docker compose up` is run with (the compose file's header): values for its variables.
COMPOSE_ENVIRON = {"KEYLINE_DB_PASSWORD": "db-password-for-the-test",
                   "KEYLINE_SECRET_KEY": "session-key-for-the-test"}

_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"
                       r"|([A-Za-z_][A-Za-z0-9_]*))")


class ComposeError(ValueError):
    """The compose file cannot be used as it stands (a required variable unset)."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """A string of the compose file as Compose reads it: `$$` is `$`; `${NAME:-default}`
    (`:-` unset or empty, `-` unset), `${NAME:?message}` (an error when unset or empty)."""

    def value(match: re.Match[str]) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        current = environ.get(name)
        missing = current is None or (current == "" and operator and operator.startswith(":"))
        if operator and operator.endswith("-"):
            return argument if missing else current
        if operator and operator.endswith("?"):
            if missing:
                raise ComposeError(f"{name}: {argument or 'required'}")
            return current
        return current or ""

    return _VARIABLE.sub(value, text)


def _interpolated(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, dict):
        return {key: _interpolated(item, environ) for key, item in node.items()}
    if isinstance(node, list):
        return [_interpolated(item, environ) for item in node]
    return node


def compose_config(environ: Mapping[str, str] = COMPOSE_ENVIRON) -> dict[str, Any]:
    """docker-compose.yml as plain data, interpolated with `environ`."""
    with COMPOSE_FILE.open(encoding="utf-8") as handle:
        raw = YAML(typ="safe", pure=True).load(handle)
    return _interpolated(json.loads(json.dumps(raw)), environ)


def keyline_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in config["services"].items()
            if service.get("image") == KEYLINE_IMAGE}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """{container path: host path} of a service's bind mounts (short syntax; a relative host
    path is relative to the compose file's folder)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def host_path(argument: str, mounts: dict[str, Path]) -> str:
    """A command's argument with a container path under a bind mount made the host's."""
    for target, source in mounts.items():
        if argument == target or argument.startswith(target + "/"):
            return str(source / Path(argument).relative_to(target))
    return argument


def parse_keyline(arguments: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parse `keyline ARGUMENTS` as the command line does, without running it: the command
    path (e.g. ["keyline", "lab", "sim"]) and its parameters; click.ClickException when the
    command, an option or a value is wrong."""
    from keyline.cli import main

    command: click.Command = main
    context = main.make_context("keyline", list(arguments))
    path = ["keyline"]
    while isinstance(command, click.Group):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, command, rest = command.resolve_command(context, rest)
        assert command is not None and name is not None
        path.append(name)
        context = command.make_context(name, rest, parent=context)
    return path, context.params


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuation lines
    joined and comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    logical = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        instruction, _, arguments = (logical + line).strip().partition(" ")
        logical = ""
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, bare) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern)
                 for n in range(1, len(parts) + 1)):
            return True
    return False


def stage_one_sources(destination: Path, context: Path = ROOT) -> Path:
    """The files the Dockerfile's first stage builds the wheel from: each of its COPY
    instructions applied to the build context (less .dockerignore's files) under
    `destination`, as under the stage's WORKDIR. Returns `destination`."""
    patterns = dockerignore_patterns()

    def ignore(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).resolve().relative_to(context.resolve())
        return [name for name in names
                if _ignored(str(relative / name).removeprefix("./"), patterns)]

    destination.mkdir(parents=True, exist_ok=True)
    for instruction, arguments in dockerfile_stages()[0]:
        if instruction != "COPY":
            continue
        *sources, target = arguments.split()
        assert not any(source.startswith("--") for source in sources), arguments
        for source in sources:
            origin = context / source
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
            where = destination / target / (origin.name if target.endswith("/") else "")
            if origin.is_dir():
                shutil.copytree(origin, where, ignore=ignore, dirs_exist_ok=True)
            else:
                where.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, where)
    return destination


def compose_schema() -> dict[str, Any]:
    schema = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema.read_text(encoding="utf-8"))


def schema_errors(config: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(compose_schema(),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return sorted(f"{'.'.join(str(part) for part in error.absolute_path) or '(top)'}:"
                  f" {error.message}" for error in validator.iter_errors(config))


# --- the compose file ------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (dev extra) not installed")
    config = compose_config()
    assert schema_errors(config) == []
    # the same check finds a mistake: a misspelled key, a restart policy as a list
    broken = copy.deepcopy(config)
    broken["services"]["portal"]["depend_on"] = broken["services"]["portal"].pop("depends_on")
    broken["services"]["collector"]["restart"] = ["always"]
    errors = schema_errors(broken)
    assert any(error.startswith("services.portal:") and "depend_on" in error
               for error in errors), errors
    assert any(error.startswith("services.collector.restart:") for error in errors), errors


def test_compose_refuses_to_start_without_its_secrets():
    for missing in COMPOSE_ENVIRON:
        environ = {name: value for name, value in COMPOSE_ENVIRON.items() if name != missing}
        with pytest.raises(ComposeError, match=missing):
            compose_config(environ)


def test_the_database_is_a_current_timescaledb_on_postgresql_17_or_18():
    service = compose_config()["services"]["timescaledb"]
    match = re.fullmatch(r"timescale/timescaledb:(\d+)\.(\d+)\.(\d+)-pg(\d+)", service["image"])
    assert match, service["image"]
    version, major = tuple(int(part) for part in match.groups()[:3]), int(match.group(4))
    assert version >= (2, 29, 0) and major in (17, 18), service["image"]
    environment = service["environment"]
    # PostgreSQL 18 images refuse a volume at the old /var/lib/postgresql/data: the volume
    # must hold PGDATA
    (volume,) = service["volumes"]
    target = Path(volume.split(":")[1])
    assert Path(environment["PGDATA"]).is_relative_to(target), (volume, environment["PGDATA"])
    assert target != Path("/var/lib/postgresql/data")
    assert "timescaledb.telemetry_level=off" in service["command"]
    # ready only when the final server listens on TCP (not the init scripts' socket-only one)
    assert service["healthcheck"]["test"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
    # Keyline's URL names this service, its database and its user
    for name, keyline in keyline_services(compose_config()).items():
        url = keyline["environment"].get("KEYLINE_DATABASE_URL")
        if url is not None:
            expected = (f"postgresql://{environment['POSTGRES_USER']}:"
                        f"{COMPOSE_ENVIRON['KEYLINE_DB_PASSWORD']}@timescaledb:5432/"
                        f"{environment['POSTGRES_DB']}")
            assert url == expected, name


def test_services_run_real_keyline_commands():
    from lab.sim.cli import _parser as lab_sim_parser

    services = keyline_services(compose_config())
    assert {"init", "collector", "portal", "lab"} <= set(services)
    commands = {}
    for name, service in services.items():
        assert service["command"][0] == "keyline", name
        assert service.get("init") is True, f"{name}: an init as PID 1 (signals, reaping)"
        mounts = bind_mounts(service)
        arguments = [host_path(argument, mounts) for argument in service["command"][1:]]
        path, params = parse_keyline(arguments)
        commands[name] = " ".join(path)
        if path[1:] == ["lab", "sim"]:
            parsed = lab_sim_parser().parse_args(list(params["arguments"]))
            assert parsed.command == "run", name
            assert all(Path(p).is_dir() for p in parsed.inventory), parsed.inventory
        if path[1:] == ["import"]:
            assert all(Path(p).is_dir() for p in params["paths"]), params
    assert commands["init"] == "keyline import"
    assert commands["portal"] == "keyline serve"
    # each collector with its own name (its spool, its leases), volume and trap port
    collectors = [name for name, command in commands.items() if command == "keyline collect"]
    assert {"collector", "collector-2"} <= set(collectors), commands
    for field in ("command", "volumes", "ports"):
        values = [json.dumps(services[name][field]) for name in collectors]
        assert len(set(values)) == len(values), (field, values)
    parsed = [parse_keyline(services[name]["command"][1:])[1] for name in collectors]
    names = [params["name"] for params in parsed]
    assert None not in names and len(set(names)) == len(names), names
    # the groups named are the inventory's poller groups
    from config.inventory.loader import load_inventory

    inventory_dir = host_path(services["init"]["command"][-1], bind_mounts(services["init"]))
    groups = {device.poller_group
              for device in load_inventory([Path(inventory_dir)]).devices.values()}
    assert {group for params in parsed for group in params["groups"]} <= groups, groups
    # the commands the compose file's header and docs/deployment.md tell to run in a service
    told = [line for path in (COMPOSE_FILE, ROOT / "docs" / "deployment.md")
            for line in re.findall(r"docker compose exec (\w+) keyline (.+)$",
                                   path.read_text(encoding="utf-8"), re.MULTILINE)]
    assert told
    for service, arguments in told:
        assert service in services, service
        parse_keyline(arguments.split())
    # a mistake is found the same way
    with pytest.raises(click.UsageError):
        parse_keyline(["serve", "--colect"])
    with pytest.raises(click.UsageError):
        parse_keyline(["colect"])


def test_the_collector_and_portal_wait_for_the_migrations():
    services = compose_config()["services"]
    assert services["init"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert services["init"]["restart"] == "no"
    for name in ("collector", "portal"):
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}}, name
    # one collector (the singleton jobs), portals scalable: no fixed name, no host port
    assert "container_name" not in services["portal"] and "ports" not in services["portal"]


def test_services_environment_is_valid_keyline_settings(monkeypatch: pytest.MonkeyPatch):
    from config.settings import load_settings

    config = compose_config()
    services = keyline_services(config)
    loaded = {}
    for name, service in services.items():
        for variable in [v for v in os.environ if v.startswith("KEYLINE_")]:
            monkeypatch.delenv(variable)
        for variable, value in service.get("environment", {}).items():
            monkeypatch.setenv(variable, str(value))
        loaded[name] = load_settings(None)
    portal, collector = loaded["portal"], loaded["collector"]
    assert loaded["collector-2"].traps == collector.traps
    assert portal.server.websocket_only
    assert portal.listen_host == "0.0.0.0"
    assert portal.secret_key is not None
    assert services["portal"]["expose"] == [str(portal.listen_port)]
    assert f":{portal.listen_port}/healthz" in " ".join(services["portal"]["healthcheck"]["test"])
    # the portal believes the proxy's X-Forwarded-For, and only the proxy's
    proxy_address = config["services"]["proxy"]["networks"]["keyline"]["ipv4_address"]
    assert [str(network.network_address) for network in portal.trusted_proxies] == [
        proxy_address]
    subnet = config["networks"]["keyline"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)
    # traps reach the collector's receiver: listening on every address of its container, on
    # the published container port
    assert collector.traps.host == "0.0.0.0"
    published = [port for port in services["collector"]["ports"] if port.endswith("/udp")]
    assert [int(port.split(":")[-1].removesuffix("/udp")) for port in published] == [
        collector.traps.port]
    lab = services["lab"]["command"]
    assert lab[lab.index("--trap-receiver") + 1] == f"127.0.0.1:{collector.traps.port}"
    assert services["lab"]["network_mode"] == "service:collector"


def test_the_proxy_forwards_to_the_portal_service():
    config = compose_config()
    proxy = config["services"]["proxy"]
    (mounted,) = proxy["configs"]
    assert mounted["target"] == "/etc/nginx/conf.d/default.conf"
    text = (COMPOSE_FILE.parent / config["configs"][mounted["source"]]["file"]).read_text()
    portal_port = config["services"]["portal"]["environment"]["KEYLINE_LISTEN_PORT"]
    assert re.search(rf"^\s*server portal:{portal_port} resolve;", text, re.MULTILINE)
    assert re.search(r"^\s*listen 80;", text, re.MULTILINE)
    assert [port.rsplit(":", 1)[1] for port in proxy["ports"]] == ["80"]
    assert all(port.startswith("127.0.0.1:") for port in proxy["ports"])  # the host's loopback
    # nginx 1.27.3 or later: `resolve` in an upstream's server
    tag = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", proxy["image"])
    assert tag and tuple(int(part) for part in tag.groups()) >= (1, 27, 3), proxy["image"]


# --- the Dockerfile --------------------------------------------------------------------------


def test_stage_one_copies_every_package_and_what_the_build_reads():
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)
    packages = {pattern.rstrip("*") for pattern in
                project["tool"]["setuptools"]["packages"]["find"]["include"]}
    stages = dockerfile_stages()
    assert len(stages) == 2
    copied = {source for instruction, arguments in stages[0] if instruction == "COPY"
              for source in arguments.split()[:-1]}
    assert packages <= copied, sorted(packages - copied)
    needed = {"pyproject.toml", "setup.py", project["project"]["readme"], "package.json",
              "package-lock.json"}
    assert needed <= copied, sorted(needed - copied)
    runs = [arguments for instruction, arguments in stages[0] if instruction == "RUN"]
    assert any(run.startswith("npm ci") for run in runs), runs
    assert any(run.startswith("pip wheel") and "--no-deps" in run for run in runs), runs
    # the runtime stage has the example inventory where the compose file reads an inventory
    final = dict((arguments.split()[-1], arguments) for instruction, arguments in stages[1]
                 if instruction == "COPY")
    init = compose_config()["services"]["init"]
    assert init["command"][-1] in final, final


def test_stage_one_sources_follow_the_copies_and_the_dockerignore(tmp_path: Path):
    context = tmp_path / "context"
    for name in ("pyproject.toml", "setup.py", "README.md", "package.json",
                 "package-lock.json"):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text("x")
    for folder in ("keyline", "config", "store", "collectors", "topology", "alarms", "sla",
                   "portal", "lab"):
        (context / folder / "__pycache__").mkdir(parents=True)
        (context / folder / "__init__.py").write_text("")
        (context / folder / "__pycache__" / "m.cpython-311.pyc").write_text("")
    (context / "keyline.egg-info").mkdir()
    (context / "tests").mkdir()
    built = stage_one_sources(tmp_path / "src", context)
    files = {str(path.relative_to(built)) for path in built.rglob("*") if path.is_file()}
    assert "keyline/__init__.py" in files and "setup.py" in files
    assert not any("__pycache__" in name or name.startswith(("tests", "keyline.egg-info"))
                   for name in files), sorted(files)
