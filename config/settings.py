"""Settings: how this Keyline installation runs (as opposed to the inventory, which says what
it watches).

Settings come from one TOML file (`keyline.toml` in the working directory, or the file named
by `--config` / `KEYLINE_CONFIG`) and from `KEYLINE_*` environment variables, which win over
the file. Nested tables map to double underscores: `[poll] default_interval_s = 30` in the
file is `KEYLINE_POLL__DEFAULT_INTERVAL_S=30` in the environment.

Secrets (the session key, a database URL with a password) are read from the environment or
from a file only its owner can read (`secret_key_file = "/etc/keyline/secret_key"`); they
are held as `SecretStr`, so printing the settings never shows them. When no session key is
given, one is generated once and kept in the data directory with mode 0600.
"""

from __future__ import annotations

import os
import secrets as token_source
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alarms.rules import AlarmSettings
from config.secrets import SecretError, read_secret_file, register_secret
from sla.notify import NotifySettings
from sla.settings import SlaSettings

DEFAULT_CONFIG_FILE = Path("keyline.toml")


class SettingsError(Exception):
    """The settings are not valid; the message names the file or variable and the field."""


def default_data_dir() -> Path:
    """Where Keyline keeps its embedded database and state when not told otherwise.

    As root, the embedded PostgreSQL opens traversal permissions on the data directory's
    parents (PostgreSQL refuses to run as root, so a system user runs it): keep that away
    from home folders.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/keyline")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "keyline"


class PollSettings(BaseModel):
    """How often devices are polled; `groups` maps a device's poller group to its interval.

    A device is called down only after `down_after_failures` polls in a row got no answer
    and it fails an ICMP echo check too (collectors.reachability); answering ping, it is
    SNMP-unresponsive, not down. After the first failed poll of a device that answered
    before, a confirmation poll follows `confirm_after_s` later (or at the next interval,
    whichever is sooner), so a dead device is known in seconds, not in two intervals.
    `icmp_check` false calls a device down on SNMP silence alone (for collectors that may
    not send ICMP)."""

    default_interval_s: int = Field(60, ge=1, le=86_400)
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    groups: dict[str, int] = Field(default_factory=lambda: {"key-accounts": 10})
    down_after_failures: int = Field(2, ge=1, le=20)
    confirm_after_s: float = Field(5.0, gt=0, le=3600)
    icmp_check: bool = True
    icmp_count: int = Field(3, ge=1, le=20)
    icmp_timeout_s: float = Field(1.0, gt=0, le=30)

    @field_validator("groups")
    @classmethod
    def _positive_intervals(cls, groups: dict[str, int]) -> dict[str, int]:
        for name, interval_s in groups.items():
            if interval_s < 1:
                raise ValueError(f"poll group {name!r}: interval must be at least 1 s")
        return groups

    def interval_s_for(self, poller_group: str) -> int:
        return self.groups.get(poller_group, self.default_interval_s)


class HealthSettings(BaseModel):
    """Device health (CPU, memory, temperature, fans, power supplies, optical levels) read
    through the health profiles of collectors/profiles/, every `interval_s` per device."""

    enabled: bool = True
    interval_s: int = Field(300, ge=10, le=86_400)


class CliSettings(BaseModel):
    """CLI collection over SSH (collectors/cli.py): devices with a `cli_credential` and a CLI
    profile for their platform are polled every `interval_s` (the commands of the profile,
    for the metrics the profile says the CLI wins) and their running configuration fetched
    every `config_interval_s`. netmiko is blocking: `workers` threads run the sessions, one
    per device at a time, so a slow device holds one worker at most; at most
    `max_open_sessions` sessions stay open between polls (the least recently used beyond
    that are closed). Timeouts: `connect_timeout_s` for TCP, `banner_timeout_s` for the SSH
    banner, `auth_timeout_s` for the login's answer, `read_timeout_s` for each prompt (the
    login's and every command's). An unparseable answer's raw output is kept for the
    engineer, at most `raw_output_max_bytes`."""

    enabled: bool = True
    interval_s: int = Field(300, ge=10, le=86_400)
    config_interval_s: int = Field(3600, ge=60, le=7 * 86_400)
    workers: int = Field(16, ge=1, le=512)
    max_open_sessions: int = Field(256, ge=0, le=100_000)
    connect_timeout_s: float = Field(10.0, gt=0, le=300)
    banner_timeout_s: float = Field(15.0, gt=0, le=300)
    auth_timeout_s: float = Field(15.0, gt=0, le=300)
    read_timeout_s: float = Field(30.0, gt=0, le=3600)
    raw_output_max_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)


class TrapSettings(BaseModel):
    """Where the trap receiver listens. Accepted communities and v3 users come from the
    inventory's SNMP credentials: a device sends traps with the credential it is polled with.

    `receive_buffer_bytes` is the UDP receive buffer asked of the kernel: it holds the traps
    that arrive while the receiver is busy (a burst, a flood), at least one datagram per
    2 KiB asked (Linux grants twice the size asked and charges a datagram at most 4 KiB of
    it): 4,096 with the default, none of which is lost however slow the receiver. Beyond
    net.core.rmem_max it takes root (SO_RCVBUFFORCE); otherwise the kernel grants less and
    the receiver logs a WARNING naming the sysctl to raise."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1162, ge=1, le=65_535)
    receive_buffer_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)


class CollectorSettings(BaseModel):
    """Several collectors on one store (store/leases.py, docs/scaling.md).

    `name` tells collector processes apart (default: the host's name and the process id);
    each live one needs its own, and a named one keeps its spool in data_dir/spool-NAME
    unless [spool] directory says otherwise. `groups` are the poller groups it serves
    (empty: every group): within a group, the collectors serving it split the devices by
    leases in the store, renewed every `lease_s` / 3; a collector that stops renewing loses
    its devices to the others `lease_s` later (default: 30 s, or twice the poll budget when
    that is longer). A `lease_s` set must exceed a third of itself plus the poll budget
    (poll timeout x tries, the ICMP check, two flushes), which `keyline collect` checks.
    The fleet's singleton jobs (rollups, retention, discovery, alarms, tickets,
    notifications) run in one collector at a time; the others try to take them over every
    `singleton_retry_s`."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    groups: list[str] = Field(default_factory=list)
    lease_s: float | None = Field(None, ge=1, le=3600)
    singleton_retry_s: float = Field(5.0, gt=0, le=600)

    def instance_name(self) -> str:
        """The name, else one of this process alone (host and process id)."""
        import os
        import socket

        return self.name or f"{socket.gethostname()}-{os.getpid()}"


class TopologySettings(BaseModel):
    """How often the collector walks every device's LLDP tables (0: only on demand, with
    `keyline topology discover`)."""

    discovery_interval_s: int = Field(3600, ge=0, le=7 * 86_400)


class SpoolSettings(BaseModel):
    """The disk spool every sample and observation goes through on its way to the store
    (collectors/spool.py). `max_bytes` bounds the samples it holds while the store is away;
    when full, `when_full` says what gives: "drop_newest" (keep the oldest) or "drop_oldest".
    Observations are never dropped. Every drop is counted per device and recorded as unknown
    time."""

    max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    when_full: Literal["drop_newest", "drop_oldest"] = "drop_newest"
    directory: Path | None = None  # default: data_dir / "spool"


DEFAULT_TOKEN_EXPIRY_DAYS = 90


class AccountSettings(BaseModel):
    """How portal sessions, API tokens and login protection behave (portal/security.py).

    A session ends after `session_idle_timeout_s` without a request (an open live page
    counts as activity) and `session_max_age_s` after its login, whatever happens. An API
    token expires `token_expiry_days` after it is made unless `keyline user token
    --expires-days` says otherwise. Each failed login for a name makes the next attempt for
    that name wait `login_backoff_base_s`, doubled per failure up to `login_backoff_max_s`
    (a right password after the wait works); a streak is forgotten after
    `login_forget_after_s` without failures. One client address may fail
    `address_max_failures` times before it waits until `address_window_s` after its last
    failure."""

    session_idle_timeout_s: int = Field(1800, ge=60, le=7 * 86_400)
    session_max_age_s: int = Field(12 * 3600, ge=60, le=90 * 86_400)
    token_expiry_days: int = Field(DEFAULT_TOKEN_EXPIRY_DAYS, ge=1, le=3650)
    login_backoff_base_s: float = Field(1.0, gt=0, le=60)
    login_backoff_max_s: float = Field(60.0, gt=0, le=3600)
    login_forget_after_s: int = Field(900, ge=1, le=86_400)
    address_max_failures: int = Field(30, ge=1, le=100_000)
    address_window_s: int = Field(600, ge=1, le=86_400)


class PortalServerSettings(BaseModel):
    """How `keyline serve` serves the portal (portal/server.py, gevent).

    A client has `read_timeout_s` to send a request's line and headers (and may pause no
    longer while sending a body): a half-sent request is then answered 408 and closed.
    Beyond `max_connections` open connections (each live page's WebSocket is one) a new one
    is answered 503 and closed. On SIGTERM the server stops accepting, ends the live
    sockets (they reconnect, to another process behind a proxy) and gives the requests in
    flight `shutdown_grace_s` to finish. `websocket_only` makes the pages' live connection
    use the WebSocket transport alone (no long-polling fallback): several portal processes
    behind a reverse proxy then need no sticky sessions (docs/deployment.md)."""

    read_timeout_s: float = Field(10.0, gt=0, le=600)
    max_connections: int = Field(5000, ge=1, le=1_000_000)
    shutdown_grace_s: float = Field(20.0, ge=0, le=3600)
    websocket_only: bool = False


class LiveSettings(BaseModel):
    """The portal's live updates (portal/live.py, Socket.IO).

    Each join of a room answers with one snapshot of the room's state, bounded to the
    `snapshot_max_alarms` newest active alarms (beyond: "alarms_complete": false), and one
    connection may join each room at most `joins_per_window` times in `join_window_s` (a
    snapshot is a few store reads); beyond that a join is refused with "reload": true, and the page
    asks its user to reload it."""

    joins_per_window: int = Field(30, ge=1, le=10_000)
    join_window_s: float = Field(60.0, gt=0, le=86_400)
    snapshot_max_alarms: int = Field(2000, ge=1, le=100_000)


class StoreSettings(BaseModel):
    """The store's connection pool, and how long each resolution of the samples is kept
    (store/timeseries.py): raw samples, then the 5-minute, hourly and daily rollups that
    charts and SLA reports read for longer ranges. Each rollup must be kept at least as long
    as the finer one it is built from. The 5-minute rollup's 400 days keep a year and its
    month's neighbours at 5-minute detail (last year's same month, an SLA dispute about a
    month re-issued the year after); hours 5 years (1830 days) for yearly SLA figures and
    year-over-year comparisons; days 10 years (3660 days), a few hundred rows per series.
    At one sample a minute a series costs per day about 1,440 raw rows, 288 five-minute,
    24 hourly and 1 daily row."""

    pool_min_size: int = Field(1, ge=1, le=100)
    pool_max_size: int = Field(8, ge=1, le=200)
    raw_retention_days: int = Field(90, ge=1, le=3650)
    rollup_5min_retention_days: int = Field(400, ge=1, le=36_600)
    rollup_hour_retention_days: int = Field(1830, ge=1, le=36_600)
    rollup_day_retention_days: int = Field(3660, ge=1, le=36_600)

    @model_validator(mode="after")
    def _coarser_kept_longer(self) -> StoreSettings:
        order = ("raw_retention_days", "rollup_5min_retention_days",
                 "rollup_hour_retention_days", "rollup_day_retention_days")
        for finer, coarser in pairwise(order):
            if getattr(self, coarser) < getattr(self, finer):
                raise ValueError(
                    f"store.{coarser} ({getattr(self, coarser)}) must be at least"
                    f" store.{finer} ({getattr(self, finer)}): the coarser rollup is built"
                    " from the finer one")
        return self


class Settings(BaseSettings):
    """Everything an installation can set. Field names are the TOML keys."""

    model_config = SettingsConfigDict(
        env_prefix="KEYLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL; empty: run the embedded server in data_dir"
    )
    database_url_file: Path | None = None
    data_dir: Path = Field(default_factory=default_data_dir)
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(8080, ge=1, le=65_535)
    log_level: str = "INFO"
    inventory: list[Path] = Field(default_factory=list)
    # An import that would retire more than this share of the stored inventory's objects,
    # or all of them (an empty file), stores nothing until confirmed: `keyline import
    # --allow-retire`, or the admin page's confirmation button.
    inventory_max_retire_share: float = Field(0.2, ge=0, le=1)
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    # Send the portal's session cookie over HTTPS only: set it whenever the portal is served
    # through TLS (a reverse proxy); off by default so http://127.0.0.1 logins work.
    secure_cookies: bool = False
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the portal believes (addresses
    # or networks); `trusted_proxy_hops` of them stand in front of the portal. A request from
    # any other address is taken at its own address, whatever its headers say.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    trusted_proxy_hops: int = Field(1, ge=1, le=10)
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    cli: CliSettings = Field(default_factory=CliSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    traps: TrapSettings = Field(default_factory=TrapSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    topology: TopologySettings = Field(default_factory=TopologySettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    server: PortalServerSettings = Field(default_factory=PortalServerSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)

    @property
    def spool_dir(self) -> Path:
        if self.spool.directory is not None:
            return self.spool.directory
        name = self.collector.name
        return self.data_dir / (f"spool-{name}" if name else "spool")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file_in_use
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def database_url_value(self) -> str | None:
        """The database URL in clear, for the one place that connects."""
        return self.database_url.get_secret_value() if self.database_url else None


# Set by load_settings for the duration of one construction; pydantic-settings asks for the
# sources through a classmethod, so the chosen file has to be visible from there.
_config_file_in_use: Path | None = None


def _describe_validation_error(error: ValidationError, config_file: Path | None) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        env_name = "KEYLINE_" + "__".join(str(part) for part in item["loc"]).upper()
        where = f"{config_file} or {env_name}" if config_file else env_name
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"setting {field} ({where}): {message}")
    return "; ".join(lines)


def load_settings(
    config_file: Path | None = None, *, overrides: dict[str, Any] | None = None
) -> Settings:
    """Read settings from the TOML file (if any) and the environment.

    `config_file` None means `KEYLINE_CONFIG`, else `keyline.toml` if it exists in the
    working directory. `overrides` (from command-line options) win over everything.
    """
    global _config_file_in_use
    if config_file is None:
        from_env = os.environ.get("KEYLINE_CONFIG")
        if from_env:
            config_file = Path(from_env)
        elif DEFAULT_CONFIG_FILE.exists():
            config_file = DEFAULT_CONFIG_FILE
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"settings file {config_file} does not exist")
        try:
            with config_file.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"settings file {config_file}: {error}") from None
    _config_file_in_use = config_file
    try:
        settings = Settings(**(overrides or {}))
    except ValidationError as error:
        raise SettingsError(_describe_validation_error(error, config_file)) from None
    finally:
        _config_file_in_use = None
    return _resolve_secret_files(settings)


def _resolve_secret_files(settings: Settings) -> Settings:
    try:
        if settings.secret_key_file is not None:
            settings.secret_key = read_secret_file(settings.secret_key_file)
        if settings.database_url_file is not None:
            settings.database_url = read_secret_file(settings.database_url_file)
        settings.notify.resolve_secret_files()
    except SecretError as error:
        raise SettingsError(str(error)) from None
    if settings.secret_key is not None:
        register_secret(settings.secret_key.get_secret_value())
    if settings.database_url is not None:
        _register_url_password(settings.database_url.get_secret_value())
    return settings


def _register_url_password(url: str) -> None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(unquote(password))


def settings_to_json(settings: Settings) -> str:
    """The settings as JSON, secrets in clear: for a child process of this one (the portal
    server process, keyline.wiring), handed over a pipe, never written or logged."""
    import json

    def value(item: Any) -> Any:
        return item.get_secret_value() if isinstance(item, SecretStr) else str(item)

    return json.dumps(settings.model_dump(mode="python"), default=value)


def settings_from_json(text: str) -> Settings:
    """What `settings_to_json` wrote, as the same settings (the environment and files are
    not read again); its secrets are masked in this process's logs too."""
    try:
        settings = Settings.model_validate_json(text)
    except ValidationError as error:
        raise SettingsError(_describe_validation_error(error, None)) from None
    return _resolve_secret_files(settings)


def session_secret(settings: Settings) -> SecretStr:
    """The key that signs portal sessions: from the settings, else generated once and kept
    in the data directory (mode 0600) so sessions survive a restart."""
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token_source.token_urlsafe(48))
    try:
        return read_secret_file(path)
    except SecretError as error:
        raise SettingsError(str(error)) from None
