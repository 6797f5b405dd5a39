"""Notifications through the outbox (store/outbox.py, sla/notify.py), against real receivers.

A real SMTP server (aiosmtpd, in the test's process; one variant with STARTTLS on a
certificate the test makes and AUTH LOGIN) and a real HTTP receiver (http.server in a thread)
that checks each request's HMAC signature, on loopback; a real database (tests/conftest.py).
Covered: one delivery per idempotency key; with a server down the rows wait (attempts grow,
each next attempt further away by the backoff's bounds) and arrive once it is back; a
notifier stopped half-way and one killed while sending lose nothing (the lease); a row that
gives up is 'failed', published, listed, shown on the admin page, and "Retry now" sends it;
the DingTalk and WeCom robot formats; the settings section; no secret in last_error, in
exceptions or in the logs; `keyline notify list|retry`.

Notifiers are driven with `run_once` and a clock the test moves (the backoff and the lease
are then exact, not waited for); where a notifier's thread runs, waits are bounded by its
settings (the lease bounds one delivery), never by how fast this machine is.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from config.secrets import MASK
from config.settings import SettingsError, load_settings, settings_from_json, settings_to_json
from sla.notify import (
    DeliveryError,
    Notifier,
    NotifySettings,
    WebhookSettings,
    deliver,
    message_id,
)
from store import outbox
from store.database import Database
from tests.test_portal_access import csrf_token, logged_in, portal  # noqa: F401

aiosmtpd_controller = pytest.importorskip(
    "aiosmtpd.controller", reason="aiosmtpd is not installed (pip install -e '.[dev]')")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

SMTP_LOGIN = "keyline"
SMTP_PASSWORD = "smtp-pass-Qx81vT"
HOOK_SECRET = "hook-secret-Zr52mW"
ROBOT_TOKEN = "robot-token-Kp93fJ"
ROBOT_SECRET = "SECrobot-sign-Hn47"
SECRETS = (SMTP_PASSWORD, HOOK_SECRET, ROBOT_TOKEN, ROBOT_SECRET)
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.02)


class Clock:
    """The notifier's time, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance_to(self, moment: datetime) -> None:
        self.now = max(self.now, moment) + timedelta(milliseconds=1)


# --- the receivers -------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A webhook receiver on loopback that checks `X-Keyline-Signature` with `secret` and
    answers `status` with `answer` (after `gate`, when one is set for that request)."""

    port: int = field(default_factory=free_port)
    secret: str = HOOK_SECRET
    status: int = 200
    answer: bytes = b"{}"
    gates: dict[int, threading.Event] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body,
                                                hashlib.sha256).hexdigest()
                signature = self.headers.get("X-Keyline-Signature", "")
                parts = urlsplit(self.path)
                index = len(receiver.requests)
                receiver.requests.append(Request(
                    parts.path, parse_qs(parts.query), dict(self.headers), body,
                    hmac.compare_digest(signature, expected)))
                gate = receiver.gates.get(index)
                if gate is not None:
                    gate.wait(60)
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    try:
        yield made
    finally:
        made.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the cryptography package comes with
    netmiko's paramiko): (certificate, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class MailServer:
    """aiosmtpd on loopback; with `certificate`, STARTTLS and AUTH LOGIN are required."""

    port: int = field(default_factory=free_port)
    certificate: tuple[Path, Path] | None = None
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    logins: list[tuple[bytes, bool]] = field(default_factory=list)
    controller: Any = None

    def start(self) -> MailServer:
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                server.messages.append(email.message_from_bytes(
                    envelope.original_content, policy=email.policy.default))
                return "250 Message accepted"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str,
                         auth_data: Any) -> Any:
            good = (isinstance(auth_data, aiosmtpd_smtp.LoginPassword)
                    and auth_data.login == SMTP_LOGIN.encode()
                    and auth_data.password == SMTP_PASSWORD.encode())
            server.logins.append((auth_data.login, good))
            return aiosmtpd_smtp.AuthResult(success=good, handled=False)

        tls: dict[str, Any] = {}
        if self.certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
            tls = {"tls_context": context, "require_starttls": True, "auth_required": True,
                   "auth_require_tls": True, "authenticator": authenticate,
                   "auth_exclude_mechanism": ["PLAIN"]}
        self.controller = aiosmtpd_controller.Controller(
            Handler(), hostname=HOST, port=self.port, **tls)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    made = MailServer()
    try:
        yield made
    finally:
        made.stop()


def settings_for(receiver: Receiver | None = None, mail: MailServer | None = None,
                 **changes: Any) -> NotifySettings:
    values: dict[str, Any] = {"backoff_initial_s": 30.0, "backoff_max_s": 600.0,
                              "max_attempts": 5, "poll_interval_s": 0.05,
                              "mail_from": "noc@keyline.example"}
    if receiver is not None:
        values["webhooks"] = [WebhookSettings(name="ops", url=receiver.url(),
                                              secret=HOOK_SECRET)]
    if mail is not None:
        values.update(smtp_host=HOST, smtp_port=mail.port)
        if mail.certificate is not None:
            values.update(smtp_starttls=True, smtp_username=SMTP_LOGIN,
                          smtp_password=SMTP_PASSWORD, ca_file=mail.certificate[0])
    values.update(changes)
    return NotifySettings(**values)


def enqueue(db: Database, channel: str, destination: str, key: str, **extra: Any
            ) -> int | None:
    with db.pool.connection() as conn:
        return outbox.enqueue(conn, channel, destination, f"Ticket {key} opened",
                              f"Ticket {key} is open.\n工单已创建。",
                              {"event": "ticket.opened", "key": key}, key, **extra)


def row(db: Database, row_id: int) -> outbox.OutboxRow:
    with db.pool.connection() as conn:
        found = outbox.get(conn, row_id)
    assert found is not None
    return found


# --- delivered once per idempotency key ------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "starttls-login"])
def test_email_is_delivered_once_per_idempotency_key(db: Database, tmp_path: Path,
                                                     secure: bool):
    mail = MailServer(certificate=make_certificate(tmp_path) if secure else None).start()
    try:
        settings = settings_for(mail=mail)
        first = enqueue(db, "email", "it@nanfeng.example", "T-7:opened", ticket_id=7,
                        language="zh_CN")
        assert first is not None
        assert enqueue(db, "email", "it@nanfeng.example", "T-7:opened", ticket_id=7) is None
        notifier = Notifier(db.pool, settings)
        assert notifier.run_once().sent == 1
        assert notifier.run_once().sent == 0  # nothing left: not sent twice
    finally:
        mail.stop()
    assert len(mail.messages) == 1
    message = mail.messages[0]
    assert message["To"] == "it@nanfeng.example"
    assert message["From"] == "noc@keyline.example"
    assert message["Subject"] == "Ticket T-7:opened opened"
    assert message["X-Keyline-Idempotency-Key"] == "T-7:opened"
    assert message["Message-ID"] == message_id("T-7:opened", "noc@keyline.example")
    assert message["Content-Language"] == "zh-CN"
    assert "工单已创建" in message.get_content()
    assert mail.logins == ([(SMTP_LOGIN.encode(), True)] if secure else [])
    stored = row(db, first)
    assert (stored.state, stored.attempts, stored.last_error) == ("sent", 1, None)
    assert stored.sent_at is not None


def test_webhook_is_signed_and_delivered_once_per_key(db: Database, receiver: Receiver):
    receiver.start()
    settings = settings_for(receiver)
    keys = ("T-1:opened", "T-1:opened", "T-2:email:张三@例子.cn")
    ids = [enqueue(db, "webhook", "ops", key) for key in keys]
    assert ids[0] is not None and ids[1] is None and ids[2] is not None
    round_ = Notifier(db.pool, settings).run_once()
    assert (round_.sent, round_.retried, round_.failed) == (2, 0, 0)
    # a key that is not printable ASCII travels percent-encoded (UTF-8)
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [
        "T-1:opened", "T-2:email:%E5%BC%A0%E4%B8%89@%E4%BE%8B%E5%AD%90.cn"]
    for request in receiver.requests:
        assert request.verified, "the receiver could not verify the HMAC signature"
        assert request.path == "/hook"
        assert json.loads(request.body) == {
            "event": "ticket.opened", "key": unquote(request.headers["Idempotency-Key"])}
        assert int(request.headers["X-Keyline-Timestamp"]) > 0
    # a receiver with another key refuses it: the signature is over these exact bytes
    other = Receiver(secret="another-key").start()
    try:
        settings_other = settings_for(other)
        enqueue(db, "webhook", "ops", "T-3:opened")
        Notifier(db.pool, settings_other).run_once()
        assert other.requests and not other.requests[0].verified
    finally:
        other.stop()


def test_a_queued_notification_is_part_of_its_transaction(db: Database):
    with db.pool.connection() as conn, conn.transaction(force_rollback=True):
        assert outbox.enqueue(conn, "email", "a@b.example", "s", "b", {}, "rolled-back")
    with db.pool.connection() as conn:
        assert outbox.counts(conn)["pending"] == 0
        with pytest.raises(outbox.OutboxError, match="destination"):
            outbox.enqueue(conn, "webhook", "https://hooks.example/x?token=1", "s", "b", {},
                           "k1")
        with pytest.raises(outbox.OutboxError, match="idempotency_key"):
            outbox.enqueue(conn, "email", "a@b.example", "s", "b", {}, "line\nbreak")
        with pytest.raises(outbox.OutboxError, match="channel"):
            outbox.enqueue(conn, "sms", "123", "s", "b", {}, "k2")


# --- a server down: the rows wait, then arrive ----------------------------------------------


def test_rows_wait_while_the_servers_are_down_and_arrive_when_they_return(
        db: Database, mail_server: MailServer, receiver: Receiver):
    settings = settings_for(receiver, mail_server)  # neither server started: refused
    mail_id = enqueue(db, "email", "it@nanfeng.example", "T-9:escalated")
    hook_id = enqueue(db, "webhook", "ops", "T-9:escalated:hook")
    clock = Clock()
    notifier = Notifier(db.pool, settings, clock=clock)
    initial = settings.backoff_initial_s
    for attempt in (1, 2, 3):
        attempted_at = clock()
        assert notifier.run_once().retried == 2
        # the delay after the n-th failure lies in [initial * 2^(n-1) / 2, initial * 2^(n-1)]
        ceiling = initial * 2 ** (attempt - 1)
        for row_id in (mail_id, hook_id):
            waiting = row(db, row_id)
            assert (waiting.state, waiting.attempts) == ("pending", attempt)
            delay_s = (waiting.next_attempt_at - attempted_at).total_seconds()
            assert ceiling / 2 <= delay_s <= ceiling, (attempt, delay_s)
            assert "cannot connect" in waiting.last_error
        # not due yet: nothing is attempted before its time
        assert notifier.run_once().retried == 0
        clock.advance_to(max(row(db, r).next_attempt_at for r in (mail_id, hook_id)))
    mail_server.start()
    receiver.start()
    assert notifier.run_once().sent == 2
    assert len(mail_server.messages) == 1 and len(receiver.requests) == 1
    for row_id in (mail_id, hook_id):
        sent = row(db, row_id)
        assert (sent.state, sent.attempts) == ("sent", 4)


# --- nothing lost across a restart of the notifier -----------------------------------------


def test_a_notifier_stopped_half_way_loses_nothing(db: Database, receiver: Receiver):
    settings = settings_for(receiver)
    keys = [f"T-{n}:opened" for n in range(6)]
    for key in keys:
        enqueue(db, "webhook", "ops", key)
    gate = receiver.gates[2] = threading.Event()  # the third delivery waits in the receiver
    receiver.start()
    first = Notifier(db.pool, settings)
    first.start()
    bound_s = settings.poll_interval_s + len(keys) * settings.lease_s
    wait_until(lambda: len(receiver.requests) == 3, bound_s, "three requests arrive")
    first.stop(timeout_s=0)  # while the third is being delivered
    gate.set()
    wait_until(lambda: not first.running, settings.lease_s, "the notifier stops")
    with db.pool.connection() as conn:
        assert outbox.counts(conn) == {"pending": 3, "sending": 0, "sent": 3, "failed": 0}
    second = Notifier(db.pool, settings)
    second.start()
    try:
        wait_until(lambda: len(receiver.requests) == len(keys), bound_s, "all arrive")
        with db.pool.connection() as conn:
            wait_until(lambda: outbox.counts(conn)["sent"] == len(keys), settings.lease_s,
                       "all marked sent")
    finally:
        second.stop()
    assert sorted(r.headers["Idempotency-Key"] for r in receiver.requests) == sorted(keys)


def test_a_row_left_sending_by_a_killed_notifier_is_sent_after_the_lease(
        db: Database, receiver: Receiver):
    receiver.start()
    settings = settings_for(receiver)
    row_id = enqueue(db, "webhook", "ops", "T-5:resolved")
    claimed_at = datetime.now(UTC)
    with db.pool.connection() as conn:  # a notifier claims the row, then is killed
        claimed = outbox.claim_due(
            conn, 10, claimed_at,
            lease_until=claimed_at + timedelta(seconds=settings.lease_s))
    assert [r.id for r in claimed] == [row_id]
    within_lease = Clock()
    within_lease.now = claimed_at + timedelta(seconds=settings.lease_s - 1)
    assert Notifier(db.pool, settings, clock=within_lease).run_once().sent == 0
    assert row(db, row_id).state == "sending" and not receiver.requests
    after_lease = Clock()
    after_lease.now = claimed_at + timedelta(seconds=settings.lease_s + 1)
    assert Notifier(db.pool, settings, clock=after_lease).run_once().sent == 1
    sent = row(db, row_id)
    assert (sent.state, sent.attempts) == ("sent", 2)
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == ["T-5:resolved"]


def test_two_notifiers_never_claim_the_same_row(db: Database):
    for n in range(4):
        enqueue(db, "webhook", "ops", f"T-{n}:claim")
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=60)
    with db.pool.connection() as one, db.pool.connection() as two:
        # without SKIP LOCKED the second claim would wait for the first: fail, not hang
        two.execute("SET lock_timeout = '10s'")
        first = outbox.claim_due(one, 3, now, lease_until=lease_until)  # not yet committed
        second = outbox.claim_due(two, 3, now, lease_until=lease_until)
    assert len(first) == 3 and len(second) == 1
    assert not {r.id for r in first} & {r.id for r in second}


# --- giving up: failed, visible, retried by hand ----------------------------------------------


def fail_until_given_up(db: Database, settings: NotifySettings, key: str) -> int:
    row_id = enqueue(db, "webhook", "ops", key, ticket_id=42)
    assert row_id is not None
    clock = Clock()
    notifier = Notifier(db.pool, settings, clock=clock)
    for _ in range(settings.max_attempts):
        notifier.run_once()
        clock.advance_to(row(db, row_id).next_attempt_at)
    return row_id


def test_a_row_that_gives_up_is_failed_listed_and_retried_by_hand(db: Database,
                                                                 receiver: Receiver):
    settings = settings_for(receiver, max_attempts=3)
    row_id = fail_until_given_up(db, settings, "T-42:escalated:1")
    failed = row(db, row_id)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert "cannot connect" in failed.last_error
    with db.pool.connection() as conn:
        assert [r.id for r in outbox.list_recent(conn, ("failed",), 10)] == [row_id]
        event = conn.execute("SELECT payload FROM events WHERE topic = %s",
                             [outbox.FAILED_TOPIC]).fetchone()
        assert event is not None and event[0]["id"] == row_id
        assert event[0]["ticket_id"] == 42
        assert outbox.counts(conn)["failed"] == 1
    # a failed row is not attempted again by itself
    assert Notifier(db.pool, settings).run_once().retried == 0
    with db.pool.connection() as conn:
        assert outbox.retry(conn, row_id).state == "pending"
    receiver.start()
    assert Notifier(db.pool, settings).run_once().sent == 1
    assert row(db, row_id).state == "sent"
    with db.pool.connection() as conn, pytest.raises(outbox.OutboxError, match="sent"):
        outbox.retry(conn, row_id)


def test_failures_are_shown_on_the_admin_page_and_retry_now_sends(
        portal: Any, receiver: Receiver):  # noqa: F811
    database = portal.database
    settings = settings_for(receiver, max_attempts=2)
    failed_id = fail_until_given_up(database, settings, "T-42:escalated:2")
    waiting_id = enqueue(database, "email", "it@nanfeng.example", "T-43:opened")
    Notifier(database.pool, settings).run_once()  # no SMTP server set: waits, with an error
    untried_id = enqueue(database, "email", "it@nanfeng.example", "T-44:opened")

    assert logged_in(portal.app, "noc.wang").get("/admin/notifications").status_code == 404
    admin = logged_in(portal.app, "admin")
    page = admin.get("/admin/notifications").get_data(as_text=True)
    assert f'data-notification="{failed_id}"' in page
    assert f'data-notification="{waiting_id}"' in page
    assert f'data-notification="{untried_id}"' not in page  # nothing failed yet
    failed_row = page.split(f'data-notification="{failed_id}"')[1].split("</tr>")[0]
    assert "failed" in failed_row and "ops" in failed_row and "42" in failed_row
    assert "cannot connect" in failed_row
    assert "no SMTP server" in page
    assert 'href="/admin/notifications"' in page

    token = csrf_token(page)
    assert admin.post("/admin/notifications/retry",
                      data={"notification_id": str(failed_id)}).status_code == 400  # no CSRF
    response = admin.post("/admin/notifications/retry",
                          data={"csrf_token": token, "notification_id": str(failed_id)})
    assert response.status_code == 302
    assert row(database, failed_id).state == "pending"
    receiver.start()
    Notifier(database.pool, settings).run_once()
    assert row(database, failed_id).state == "sent"
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == ["T-42:escalated:2"]
    page = admin.get("/admin/notifications").get_data(as_text=True)
    assert f'data-notification="{failed_id}"' not in page
    refused = admin.post("/admin/notifications/retry",
                         data={"csrf_token": token, "notification_id": str(failed_id)})
    assert refused.status_code == 400


# --- robots ------------------------------------------------------------------------------------


def test_dingtalk_robot_gets_a_signed_markdown_message(db: Database, receiver: Receiver):
    receiver.secret = ROBOT_SECRET
    receiver.answer = b'{"errcode":0,"errmsg":"ok"}'
    receiver.start()
    settings = settings_for(webhooks=[WebhookSettings(
        name="noc-group", url=receiver.url(f"/robot/send?access_token={ROBOT_TOKEN}"),
        secret=ROBOT_SECRET, format="dingtalk")])
    enqueue(db, "webhook", "noc-group", "T-8:opened")
    assert Notifier(db.pool, settings).run_once().sent == 1
    request = receiver.requests[0]
    assert request.path == "/robot/send"
    assert request.query["access_token"] == [ROBOT_TOKEN]
    timestamp, sign = request.query["timestamp"][0], request.query["sign"][0]
    # DingTalk's check: base64 HMAC-SHA256 of "timestamp\nsecret" keyed with the secret
    expected = base64.b64encode(hmac.new(ROBOT_SECRET.encode(),
                                         f"{timestamp}\n{ROBOT_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert sign == expected  # parse_qs undid the URL encoding
    assert abs(int(timestamp) / 1000 - time.time()) < 3600  # DingTalk's own tolerance
    document = json.loads(request.body)
    assert document["msgtype"] == "markdown"
    assert document["markdown"]["title"] == "Ticket T-8:opened opened"
    assert "工单已创建" in document["markdown"]["text"]


def test_wecom_robot_gets_markdown_and_its_errcode_counts(db: Database, receiver: Receiver):
    receiver.answer = b'{"errcode":93000,"errmsg":"invalid webhook url"}'
    receiver.start()
    settings = settings_for(webhooks=[WebhookSettings(
        name="wecom", url=receiver.url(f"/cgi-bin/webhook/send?key={ROBOT_TOKEN}"),
        format="wecom")])
    row_id = enqueue(db, "webhook", "wecom", "T-8:wecom")
    assert Notifier(db.pool, settings).run_once().retried == 1  # HTTP 200, errcode refused
    waiting = row(db, row_id)
    assert "errcode 93000" in waiting.last_error
    assert ROBOT_TOKEN not in waiting.last_error
    document = json.loads(receiver.requests[0].body)
    assert document == {"msgtype": "markdown", "markdown": {
        "content": "**Ticket T-8:wecom opened**\nTicket T-8:wecom is open.\n工单已创建。"}}


# --- secrets --------------------------------------------------------------------------------------


def test_no_secret_in_last_error_exceptions_or_logs(db: Database, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    mail = MailServer(certificate=make_certificate(tmp_path)).start()
    refusing = Receiver(status=500, answer=json.dumps({"echo": ROBOT_TOKEN}).encode()).start()
    try:
        settings = settings_for(
            mail=mail, smtp_username="someone-else",
            webhooks=[WebhookSettings(
                name="ops", url=refusing.url(f"/hook?token={ROBOT_TOKEN}"),
                secret=HOOK_SECRET),
                WebhookSettings(name="gone", url=f"http://{HOST}:{free_port()}/x?token="
                                f"{ROBOT_TOKEN}", secret=ROBOT_SECRET, format="dingtalk")])
        ids = [enqueue(db, "email", "it@nanfeng.example", "T-1:secret"),
               enqueue(db, "webhook", "ops", "T-2:secret"),
               enqueue(db, "webhook", "gone", "T-3:secret")]
        assert Notifier(db.pool, settings).run_once().retried == 3
        errors = [row(db, row_id).last_error for row_id in ids]
        assert "login as someone-else refused" in errors[0]
        assert "HTTP 500" in errors[1]
        assert "cannot connect" in errors[2]
        with pytest.raises(DeliveryError) as caught:
            deliver(row(db, ids[1]), settings)
    finally:
        mail.stop()
        refusing.stop()
    assert mail.logins == [(b"someone-else", False)]
    shown = "\n".join([*errors, str(caught.value), caplog.text])
    for secret in SECRETS:
        assert secret not in shown, secret
    assert f"http://{HOST}:{refusing.port}" in errors[1]  # where, without path or token


def test_notify_settings_from_a_file_with_secret_files(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    password_file = tmp_path / "smtp_password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    password_file.chmod(0o600)
    url_file = tmp_path / "robot_url"
    url_file.write_text(f"https://oapi.dingtalk.com/robot/send?access_token={ROBOT_TOKEN}")
    url_file.chmod(0o600)
    config = tmp_path / "keyline.toml"
    config.write_text(f"""
[notify]
smtp_host = "mail.example"
smtp_port = 587
smtp_starttls = true
smtp_username = "{SMTP_LOGIN}"
smtp_password_file = "{password_file}"
mail_from = "Keyline NOC <noc@keyline.example>"
max_attempts = 4

[[notify.webhooks]]
name = "ops"
url = "https://hooks.example/keyline"
secret = "{HOOK_SECRET}"

[[notify.webhooks]]
name = "noc-group"
url_file = "{url_file}"
secret = "{ROBOT_SECRET}"
format = "dingtalk"
""")
    settings = load_settings(config)
    notify = settings.notify
    assert notify.smtp_password.get_secret_value() == SMTP_PASSWORD
    assert notify.webhook("noc-group").url_value().endswith(ROBOT_TOKEN)
    assert notify.max_attempts == 4 and notify.lease_s > notify.timeout_s
    shown = repr(settings) + str(settings)
    for secret in SECRETS:
        assert secret not in shown
    again = settings_from_json(settings_to_json(settings))  # the portal process's copy
    assert again.notify.webhook("noc-group").url_value() == notify.webhook(
        "noc-group").url_value()
    assert again.notify.smtp_password.get_secret_value() == SMTP_PASSWORD
    from config.secrets import mask_secrets

    assert mask_secrets(f"token {ROBOT_TOKEN}") == f"token {MASK}"

    config.write_text('[notify]\nsmtp_host = "m"\nsmtp_username = "x"\nsmtp_password = "y1234"\n')
    with pytest.raises(SettingsError, match=r"notify.*smtp_starttls or smtp_ssl"):
        load_settings(config)
    config.write_text('[notify]\nsmtp_pasword = "x"\n')
    with pytest.raises(SettingsError, match=r"notify\.smtp_pasword.*unknown setting"):
        load_settings(config)
    config.write_text('[[notify.webhooks]]\nname = "ops"\nurl = "ftp://h/?token=abcd1234"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert "notify.webhooks.0.url" in str(caught.value) and "abcd1234" not in str(caught.value)


# --- the command line -------------------------------------------------------------------------


def test_notify_list_and_retry_commands(db: Database, receiver: Receiver):
    from tests.test_cli import keyline

    settings = settings_for(receiver, max_attempts=1)
    failed_id = fail_until_given_up(db, settings, "T-50:escalated")
    listed = keyline("notify", "list", "--failed", url=db.url)
    assert listed.returncode == 0, listed.stderr
    assert str(failed_id) in listed.stdout and "failed" in listed.stdout
    assert "last error: webhook ops" in listed.stdout and "ticket 42" in listed.stdout
    assert "1 failed" in listed.stdout
    retried = keyline("notify", "retry", str(failed_id), url=db.url)
    assert retried.returncode == 0, retried.stderr
    assert row(db, failed_id).state == "pending"
    unknown = keyline("notify", "retry", "999999", url=db.url)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "keyline: error: no notification 999999")

