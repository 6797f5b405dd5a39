"""Notifications: e-mails and webhook calls that reach people at least once, through an outbox.

Telling a customer "your ticket is escalated" must neither be lost when the mail server is
down nor sent for a change that was rolled back. So nothing is sent where the change is made:
the rule that changes a ticket queues the notification as a row of the outbox
(store.outbox.enqueue) in the same transaction, and the `Notifier` delivers the rows
afterwards, from its own thread. A row is claimed in one short transaction (it becomes
'sending', leased for `lease_s`), delivered with no database lock held, then marked sent, or
due again later with exponential backoff and jitter (`backoff_initial_s` doubled per attempt
up to `backoff_max_s`), or 'failed' after `max_attempts` (kept, shown on the admin page,
`keyline notify retry ID`). A notifier killed while sending leaves the row 'sending': once
the lease is over, any notifier sends it again. Delivery is therefore at least once, never
exactly once: every attempt carries the row's idempotency key (an e-mail's Message-ID and
`X-Keyline-Idempotency-Key` header, a webhook's `Idempotency-Key` header) so that the
receiver can drop a duplicate.

E-mail goes over SMTP (smtplib), with STARTTLS or implicit TLS and a login when set; a
password is never sent over a connection without TLS. The e-mail of an issued SLA report
carries the report's PDF and CSV files, rendered from its stored statement at each attempt
(`report_attachments`); a rendering failure is a failed attempt, retried like any other. A
webhook is named in the settings and the outbox names it, never its URL (a robot's URL
carries its token): it gets a JSON POST whose exact body bytes are signed with HMAC-SHA256
(`X-Keyline-Signature: sha256=<hex>`, with `X-Keyline-Timestamp`), or a DingTalk / WeCom
group robot's markdown message (DingTalk's signed URL when a secret is set). A 2xx answer
(and for a robot, its errcode 0) is delivered; anything else, or no answer within
`timeout_s`, is an attempt that failed. The SMTP password, webhook secrets and URLs never
appear in logs, in a row's last_error or in exceptions: they are registered with
config.secrets' redaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import random
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from psycopg_pool import ConnectionPool
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.secrets import (
    MASK,
    SecretError,
    mask_secrets,
    read_secret_file,
    register_secret,
)
from store import outbox
from store.database import STORE_UNAVAILABLE, scrub
from store.outbox import OutboxRow

log = logging.getLogger(__name__)

# An SMTP delivery waits for at most this many answers, each within timeout_s: greeting,
# EHLO, STARTTLS and its handshake, EHLO, AUTH (two), MAIL, RCPT, DATA (two), QUIT. A row is
# leased for that long (and a webhook call, four waits, fits in it).
LEASE_WAITS = 12
RESPONSE_MAX_BYTES = 64 * 1024  # of a webhook's answer: enough for a robot's errcode
WECOM_MARKDOWN_MAX_BYTES = 4096  # WeCom refuses a longer markdown content
DINGTALK_MARKDOWN_MAX_CHARS = 18_000


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- settings ------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    """An http(s) URL with a host; the message never repeats the URL (it may hold a token)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


class WebhookSettings(BaseModel):
    """One webhook receiver (`[[notify.webhooks]]`). The outbox names it by `name`.

    `url` (or `url_file`, an owner-only file holding it, which wins) is where the JSON is
    POSTed; it is a secret, since a robot's URL carries its access token. `secret` (or
    `secret_file`, which wins) is the HMAC-SHA256 key that signs each body
    (`X-Keyline-Signature`); for `format = "dingtalk"` it is also the robot's signing
    secret ("SEC...": the URL gets `timestamp` and `sign`). `format`: "json" sends the
    notification's payload as it is; "dingtalk" and "wecom" send a group robot's markdown
    message made of its subject and body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: SecretStr | None = None
    url_file: Path | None = None
    secret: SecretStr | None = None
    secret_file: Path | None = None
    format: Literal["json", "dingtalk", "wecom"] = "json"

    @field_validator("url")
    @classmethod
    def _url_shape(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            _check_url(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _has_url(self) -> WebhookSettings:
        if self.url is None and self.url_file is None:
            raise ValueError(f"webhook {self.name!r}: set url or url_file")
        return self

    def url_value(self) -> str:
        if self.url is None:
            raise DeliveryError(f"webhook {self.name}: its url_file was not read")
        return self.url.get_secret_value()


class NotifySettings(BaseModel):
    """The `[notify]` settings section: how notifications are delivered (sla/notify.py).

    E-mail: `smtp_host` (none: e-mails wait in the outbox), `smtp_port`, `smtp_starttls`
    (upgrade a plain connection, port 587) or `smtp_ssl` (TLS from the start, port 465),
    `smtp_username` and `smtp_password` (or `smtp_password_file`, which wins; a login needs
    TLS), `mail_from`; `ca_file` names the certificate authorities (PEM) that SMTP and
    webhook TLS servers are checked against instead of the system's. `timeout_s` bounds
    each wait for a server; a row is leased for LEASE_WAITS of them. A failed attempt is
    retried after `backoff_initial_s`, doubled each time up to `backoff_max_s` (each delay
    between half and all of that, at random, so that retries spread out); after
    `max_attempts` the row is 'failed'. The notifier looks for due rows every
    `poll_interval_s`."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65_535)
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    mail_from: str = "keyline@localhost"
    ca_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0, le=300)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    backoff_initial_s: float = Field(30.0, gt=0, le=86_400)
    backoff_max_s: float = Field(3600.0, gt=0, le=7 * 86_400)
    max_attempts: int = Field(10, ge=1, le=1000)
    poll_interval_s: float = Field(5.0, gt=0, le=3600)

    @field_validator("mail_from")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError("must be an e-mail address")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotifySettings:
        if self.smtp_starttls and self.smtp_ssl:
            raise ValueError("set smtp_starttls (port 587) or smtp_ssl (port 465), not both")
        has_password = self.smtp_password is not None or self.smtp_password_file is not None
        if has_password and not self.smtp_username:
            raise ValueError("smtp_password is set but smtp_username is not")
        if self.smtp_username and not (self.smtp_starttls or self.smtp_ssl):
            raise ValueError("an SMTP login needs smtp_starttls or smtp_ssl: the password"
                             " would cross the network in clear")
        names = [hook.name for hook in self.webhooks]
        doubles = sorted({name for name in names if names.count(name) > 1})
        if doubles:
            raise ValueError(f"webhook names must be unique: {', '.join(doubles)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self

    @property
    def lease_s(self) -> float:
        """How long a claimed row is kept from other notifiers: the longest delivery."""
        return LEASE_WAITS * self.timeout_s

    def webhook(self, name: str) -> WebhookSettings | None:
        return next((hook for hook in self.webhooks if hook.name == name), None)

    def resolve_secret_files(self) -> None:
        """Read the secret files named (owner-only, config.secrets) and register every secret
        with the log redaction. Raises config.secrets.SecretError."""
        if self.smtp_password_file is not None:
            self.smtp_password = read_secret_file(self.smtp_password_file)
        for hook in self.webhooks:
            if hook.url_file is not None:
                url = read_secret_file(hook.url_file)
                try:
                    _check_url(url.get_secret_value())
                except ValueError as error:
                    raise SecretError(f"secret file {hook.url_file}: {error}") from None
                hook.url = url
            if hook.secret_file is not None:
                hook.secret = read_secret_file(hook.secret_file)
        self.register_secrets()

    def secret_values(self) -> list[str]:
        """Every secret these settings hold: the SMTP password, webhook secrets and URLs,
        and the parts of a URL that are tokens (query values, a password)."""
        values = []
        if self.smtp_password is not None:
            values.append(self.smtp_password.get_secret_value())
        for hook in self.webhooks:
            if hook.secret is not None:
                values.append(hook.secret.get_secret_value())
            if hook.url is not None:
                url = hook.url.get_secret_value()
                parts = urlsplit(url)
                values.append(url)
                values.extend(value for _, value in parse_qsl(parts.query))
                if parts.password:
                    values.append(parts.password)
        return [value for value in values if value]

    def register_secrets(self) -> None:
        for value in self.secret_values():
            register_secret(value)


# --- delivery ------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One attempt to deliver a notification failed; the message says where and why, one
    line, with no secret in it."""


def backoff_s(attempts: int, settings: NotifySettings,
              uniform: Callable[[float, float], float] = random.uniform) -> float:
    """The delay before the next attempt, after `attempts` failed ones: the initial delay
    doubled per failure, capped, and drawn between half and all of that (jitter)."""
    ceiling = min(settings.backoff_max_s,
                  settings.backoff_initial_s * 2.0 ** min(max(attempts - 1, 0), 60))
    return uniform(ceiling / 2, ceiling)


def message_id(idempotency_key: str, mail_from: str) -> str:
    """The same Message-ID for every attempt of a notification: mail clients drop the
    duplicates of an at-least-once delivery."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "keyline"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}.keyline@{domain}>"


def header_key(idempotency_key: str) -> str:
    """The idempotency key as an HTTP header value: as it is when printable ASCII without
    spaces, else percent-encoded UTF-8 (a header value is Latin-1 at most)."""
    if all("!" <= character <= "~" for character in idempotency_key):
        return idempotency_key
    return quote(idempotency_key, safe="".join(chr(c) for c in range(0x21, 0x7f)
                                                if chr(c) != "%"))


def signature(secret: str, body: bytes) -> str:
    """The `X-Keyline-Signature` of a webhook body: HMAC-SHA256 of its exact bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """A DingTalk robot's `sign` query value: HMAC-SHA256 of "timestamp\\nsecret" keyed with
    the secret, base64, URL-encoded (DingTalk's custom robot "加签" security setting)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def _scrubbed(text: str, settings: NotifySettings) -> str:
    text = mask_secrets(" ".join(str(text).split()))
    for value in sorted(settings.secret_values(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


@dataclass(frozen=True)
class Attachment:
    """A file attached to an e-mail (an issued SLA report's PDF or CSV)."""

    filename: str
    mime_type: str  # "application/pdf"
    data: bytes


SLA_REPORT_KIND = "sla_report"  # the payload kind of an issued report's e-mail (sla/reports.py)


def report_attachments(pool: ConnectionPool, row: OutboxRow) -> list[Attachment]:
    """The files an outbox row's e-mail carries: for an issued SLA report (payload kind
    "sla_report"), its PDF and its two CSV files (circuits, outages), rendered from the
    stored statement in the row's language; none for anything else. The report is read in
    a short transaction, rendered with no connection held. Raises DeliveryError when the
    report is gone or cannot be rendered (a missing font, say): the row is then retried
    like any failed attempt, so the e-mail is never sent without what it promises."""
    payload = row.payload or {}
    if row.channel != "email" or payload.get("kind") != SLA_REPORT_KIND:
        return []
    from sla import render
    from store import sla as sla_store

    report_id = payload.get("report_id")
    what = f"SLA report {report_id}"
    if isinstance(report_id, bool) or not isinstance(report_id, int):
        raise DeliveryError(f"{what}: the notification names no report id")
    try:
        with pool.connection() as conn:
            report = sla_store.get_report(conn, report_id)
    except STORE_UNAVAILABLE as error:
        raise DeliveryError(f"{what}: the store is away ({type(error).__name__})") from None
    if report is None:
        raise DeliveryError(f"{what}: no such issued report")
    statement = render.issued_statement(report)
    language = row.language if row.language in render.LANGUAGES else "zh_CN"
    wanted = payload.get("attachments") or ["pdf", "csv"]
    files = []
    try:
        if "pdf" in wanted:
            files.append(Attachment(render.report_file_name(statement, "pdf"),
                                    "application/pdf",
                                    render.report_pdf(statement, language=language)))
        if "csv" in wanted:
            for part in render.CSV_PARTS:
                name = render.report_file_name(
                    statement, "csv", part=None if part == "circuits" else part)
                files.append(Attachment(name, "text/csv",
                                        render.report_csv(statement, part).encode("utf-8")))
    except Exception as error:  # a font, Pango, a statement the template cannot show
        raise DeliveryError(f"{what}: the attachments cannot be rendered"
                            f" ({type(error).__name__}: {error})") from None
    return files


def deliver(row: OutboxRow, settings: NotifySettings, *,
            attachments: tuple[Attachment, ...] | list[Attachment] = ()) -> None:
    """Deliver one notification, once; raise DeliveryError when it did not arrive. An
    e-mail carries `attachments` (report_attachments)."""
    settings.register_secrets()
    try:
        if row.channel == "email":
            _send_email(row, settings, attachments)
        elif row.channel == "webhook":
            _call_webhook(row, settings)
        else:
            raise DeliveryError(f"unknown channel {row.channel!r}")
    except DeliveryError as error:
        raise DeliveryError(_scrubbed(str(error), settings)) from None
    except Exception as error:  # a bug must not keep a row 'sending' for ever
        raise DeliveryError(_scrubbed(f"unexpected {type(error).__name__}: {error}",
                                      settings)) from None


def _where_smtp(row: OutboxRow, settings: NotifySettings) -> str:
    return f"e-mail to {row.destination} via {settings.smtp_host}:{settings.smtp_port}"


def _tls_context(settings: NotifySettings) -> ssl.SSLContext:
    cafile = str(settings.ca_file) if settings.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise DeliveryError(f"notify.ca_file {settings.ca_file}: cannot be read"
                            f" ({getattr(error, 'strerror', None) or error})") from None


def _email_message(row: OutboxRow, settings: NotifySettings,
                   attachments: tuple[Attachment, ...] | list[Attachment] = ()) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.destination
    # one line: a line break in a subject would start a header of its own
    message["Subject"] = " ".join(row.subject.split())
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = message_id(row.idempotency_key, settings.mail_from)
    message["X-Keyline-Idempotency-Key"] = row.idempotency_key
    if row.ticket_id is not None:
        message["X-Keyline-Ticket"] = str(row.ticket_id)
    message.set_content(row.body)
    if row.language:  # after set_content, which replaces every Content-* header
        message["Content-Language"] = row.language.replace("_", "-")  # zh_CN -> zh-CN
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        # the body becomes multipart/mixed; a non-ASCII file name is RFC 2231-encoded
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
    return message


def _send_email(row: OutboxRow, settings: NotifySettings,
                attachments: tuple[Attachment, ...] | list[Attachment] = ()) -> None:
    if not settings.smtp_host:
        raise DeliveryError(f"e-mail to {row.destination}: no SMTP server set"
                            " (notify.smtp_host)")
    if "@" not in parseaddr(row.destination)[1]:
        raise DeliveryError(f"e-mail to {row.destination!r}: not an e-mail address")
    where = _where_smtp(row, settings)
    try:
        message = _email_message(row, settings, attachments)
    except (ValueError, TypeError) as error:
        raise DeliveryError(f"{where}: the message cannot be written ({error})") from None
    context = _tls_context(settings) if settings.smtp_starttls or settings.smtp_ssl else None
    try:
        if settings.smtp_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                                  timeout=settings.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                                timeout=settings.timeout_s)
        with smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=context)
            if settings.smtp_username:
                password = settings.smtp_password
                smtp.login(settings.smtp_username,
                           password.get_secret_value() if password else "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryError(f"{where}: login as {settings.smtp_username} refused"
                            f" ({_smtp_reply(error)})") from None
    except smtplib.SMTPRecipientsRefused as error:
        replies = "; ".join(f"{code} {_text(text)}"
                            for code, text in error.recipients.values())
        raise DeliveryError(f"{where}: recipient refused ({replies})") from None
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(f"{where}: the server answered {_smtp_reply(error)}") from None
    except smtplib.SMTPNotSupportedError as error:
        raise DeliveryError(f"{where}: {error}") from None
    except smtplib.SMTPServerDisconnected:
        raise DeliveryError(f"{where}: the server closed the connection") from None
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {settings.timeout_s:g} s") from None
    except ssl.SSLError as error:
        raise DeliveryError(f"{where}: TLS failed ({error.reason or error})") from None
    except OSError as error:
        raise DeliveryError(f"{where}: cannot connect ({error.strerror or error})") from None
    except smtplib.SMTPException as error:
        raise DeliveryError(f"{where}: {error}") from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _smtp_reply(error: smtplib.SMTPResponseException) -> str:
    return f"{error.smtp_code} {_text(error.smtp_error)}"


@dataclass(frozen=True)
class WebhookRequest:
    """What a webhook gets: the URL's path and query, the exact body bytes and headers."""

    target: str
    body: bytes
    headers: dict[str, str]


def _markdown_bytes_cut(text: str, max_bytes: int) -> str:
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


def webhook_request(row: OutboxRow, hook: WebhookSettings, *, now_s: float) -> WebhookRequest:
    """The request for `row` to `hook` at the Unix time `now_s` (signed then)."""
    parts = urlsplit(hook.url_value())
    query = parts.query
    secret = hook.secret.get_secret_value() if hook.secret is not None else None
    if hook.format == "json":
        document: object = row.payload
    elif hook.format == "dingtalk":
        text = f"### {row.subject}\n\n{row.body}"[:DINGTALK_MARKDOWN_MAX_CHARS]
        document = {"msgtype": "markdown", "markdown": {"title": row.subject, "text": text}}
        if secret is not None:
            timestamp_ms = int(now_s * 1000)
            signed = f"timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"
            query = f"{query}&{signed}" if query else signed
    else:  # wecom
        content = _markdown_bytes_cut(f"**{row.subject}**\n{row.body}",
                                      WECOM_MARKDOWN_MAX_BYTES)
        document = {"msgtype": "markdown", "markdown": {"content": content}}
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode()
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": "Keyline-Notifier",
               "Idempotency-Key": header_key(row.idempotency_key),
               "X-Keyline-Timestamp": str(int(now_s))}
    if secret is not None:
        headers["X-Keyline-Signature"] = signature(secret, body)
    target = (parts.path or "/") + (f"?{query}" if query else "")
    return WebhookRequest(target, body, headers)


def _call_webhook(row: OutboxRow, settings: NotifySettings) -> None:
    hook = settings.webhook(row.destination)
    if hook is None:
        raise DeliveryError(f"webhook {row.destination!r}: no webhook of that name in the"
                            " [notify] settings")
    parts = urlsplit(hook.url_value())
    # the URL's path and query may hold the robot's token: messages name scheme, host, port
    port = f":{parts.port}" if parts.port else ""
    where = f"webhook {hook.name} ({parts.scheme}://{parts.hostname}{port})"
    request = webhook_request(row, hook, now_s=time.time())
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=settings.timeout_s,
            context=_tls_context(settings))
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                timeout=settings.timeout_s)
    try:
        connection.request("POST", request.target, body=request.body, headers=request.headers)
        response = connection.getresponse()
        answer = response.read(RESPONSE_MAX_BYTES)
        status, reason = response.status, response.reason
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {settings.timeout_s:g} s") from None
    except ssl.SSLError as error:
        raise DeliveryError(f"{where}: TLS failed ({error.reason or error})") from None
    except OSError as error:
        raise DeliveryError(f"{where}: cannot connect ({error.strerror or error})") from None
    except http.client.HTTPException as error:
        raise DeliveryError(f"{where}: not an HTTP answer ({type(error).__name__})") from None
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise DeliveryError(f"{where}: HTTP {status} {reason}")
    if hook.format in ("dingtalk", "wecom"):
        # the robots answer 200 to a refused message too: their errcode says
        try:
            result = json.loads(answer)
            errcode, errmsg = result.get("errcode"), result.get("errmsg", "")
        except (ValueError, AttributeError):
            raise DeliveryError(f"{where}: the robot's answer is not its JSON") from None
        if errcode != 0:
            raise DeliveryError(f"{where}: the robot refused it (errcode {errcode}:"
                                f" {str(errmsg)[:200]})")


# --- the notifier --------------------------------------------------------------------------


@dataclass
class NotifierRound:
    """What one pass over the due rows did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


class Notifier:
    """Delivers the outbox's due rows from a thread of its own, every `poll_interval_s`
    (at once after `wake()`), each row in its own short transactions (module docstring).
    `clock` is the time rows are due by (tests move it past a lease)."""

    def __init__(self, pool: ConnectionPool, settings: NotifySettings, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        settings.register_secrets()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the notifier is running already")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="keyline-notifier",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop after the row being sent, if any (its delivery waits at most the lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self._settings.lease_s if timeout_s is None else timeout_s)
            if not self._thread.is_alive():
                self._thread = None

    def wake(self) -> None:
        """Look for due rows now (a notification was queued)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except STORE_UNAVAILABLE as error:
                log.warning("notifier: the store is away (%s); rows wait in the outbox",
                            scrub(" ".join(str(error).split()), self._pool.conninfo))
            except Exception:
                log.exception("notifier: unexpected error; retrying in %g s",
                              self._settings.poll_interval_s)
            self._wake.wait(self._settings.poll_interval_s)
            self._wake.clear()

    def run_once(self) -> NotifierRound:
        """Deliver every row due now, one by one, until none is due or the notifier stops.
        A row that fails now is due later, so it is tried at most once per round."""
        done = NotifierRound()
        round_start = self._clock()
        while not self._stop.is_set():
            with self._pool.connection() as conn:
                claimed = outbox.claim_due(
                    conn, 1, round_start,
                    lease_until=self._clock() + timedelta(seconds=self._settings.lease_s))
            if not claimed:
                break
            self._attempt(claimed[0], done)
        return done

    def _attempt(self, row: OutboxRow, done: NotifierRound) -> None:
        what = f"notification {row.id} ({row.channel} {row.destination})"
        try:
            # rendered before the SMTP connection opens, within the row's lease (a PDF takes
            # seconds; the lease is LEASE_WAITS server waits)
            attachments = report_attachments(self._pool, row)
            deliver(row, self._settings, attachments=attachments)
        except DeliveryError as error:
            reason = str(error)
            with self._pool.connection() as conn:
                if row.attempts >= self._settings.max_attempts:
                    outbox.mark_failed(conn, row.id, reason)
                    done.failed += 1
                    log.error("%s gave up after %d attempts: %s", what, row.attempts, reason)
                    return
                retry_at = self._clock() + timedelta(
                    seconds=backoff_s(row.attempts, self._settings))
                outbox.mark_retry(conn, row.id, reason, retry_at)
            done.retried += 1
            log.warning("%s: attempt %d failed, next at %s: %s", what, row.attempts,
                        retry_at.isoformat(timespec="seconds"), reason)
            return
        with self._pool.connection() as conn:
            outbox.mark_sent(conn, row.id, self._clock())
        done.sent += 1
        log.info("%s delivered (attempt %d)", what, row.attempts)
